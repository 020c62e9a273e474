#!/usr/bin/env python
"""tfopt benchmarks: ratios measured side by side in one run (medians; the machine is shared).

    python scripts/benchmark.py tf [--models mobilenetv2 resnet50] [--batches 1 8] [--runs 50]

``tf``: node counts and TensorFlow-runtime latency of (a) the original SavedModel signature,
(b) TensorFlow's plain ``convert_variables_to_constants_v2``, (c) TensorFlow's
``optimize_for_inference`` on (b), (d) ``tfopt optimize`` (the .pb it writes) and, for reference,
``tfopt freeze`` alone and tfopt's folded-but-unfused graph (what portable exports start from). All are called the same way (a ConcreteFunction call), interleaved
round-robin so that machine noise hits each alike. Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np

MODELS = {
    "mobilenetv2": lambda keras: keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3)),
    "resnet50": lambda keras: keras.applications.ResNet50(weights=None, input_shape=(224, 224, 3)),
}


def count_nodes(graph_def: Any) -> int:
    """Top-level nodes plus nodes inside library functions (a signature hides its body there)."""
    return len(graph_def.node) + sum(len(f.node_def) for f in graph_def.library.function)


def frozen_function(graph_def: Any, inputs: list[str], outputs: list[str]) -> Any:
    import tensorflow as tf

    wrapped = tf.compat.v1.wrap_function(lambda: tf.compat.v1.import_graph_def(graph_def, name=""), [])
    return wrapped.prune([wrapped.graph.get_tensor_by_name(i) for i in inputs],
                         [wrapped.graph.get_tensor_by_name(o) for o in outputs])


def interleaved_medians(fns: dict[str, Callable[[], Any]], runs: int, warmup: int = 5) -> dict[str, float]:
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(runs):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - start) * 1e3)
    return {k: statistics.median(v) for k, v in times.items()}


def bench_tf(model_name: str, batches: list[int], runs: int) -> None:
    import keras
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2
    from tensorflow.python.tools import optimize_for_inference_lib

    import tfopt

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "sm")
        MODELS[model_name](keras).export(path, verbose=False)
        loaded = tf.saved_model.load(path)
        sig = loaded.signatures["serving_default"]
        key = next(iter(sig.structured_input_signature[1]))

        timings = {}
        t0 = time.perf_counter()
        plain = convert_variables_to_constants_v2(sig)
        timings["(b)"] = time.perf_counter() - t0
        plain_gd = plain.graph.as_graph_def()
        ins = [t.name for t in plain.inputs]
        outs = [t.name for t in plain.outputs]
        t0 = time.perf_counter()
        ofi_gd = optimize_for_inference_lib.optimize_for_inference(
            plain_gd, [n.split(":")[0] for n in ins], [n.split(":")[0] for n in outs], tf.float32.as_datatype_enum)
        timings["(c)"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        frozen, _ = tfopt.freeze(path, verify=False)
        timings["freeze"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        portable, runtime, _, _ = tfopt.optimize(path, verify=False)
        timings["(d)"] = time.perf_counter() - t0

        variants = {
            "(a) original signature": (count_nodes(sig.graph.as_graph_def()), lambda x: sig(**{key: x})),
            "(b) convert_variables_to_constants_v2": (count_nodes(plain_gd), plain),
            "(c) optimize_for_inference": (count_nodes(ofi_gd), frozen_function(ofi_gd, ins, outs)),
            "tfopt freeze": (count_nodes(frozen.graph_def), _call(frozen)),
            "tfopt optimize, unfused (portable)": (count_nodes(portable.graph_def), _call(portable)),
            "(d) tfopt optimize": (count_nodes(runtime.graph_def), _call(runtime)),
        }
        print(f"\n### {model_name} (weights=None, 224x224), TF {tf.__version__}, {os.cpu_count()} cores, "
              f"medians of interleaved runs ({runs} at batch 1, {max(5, runs // 8)} at batch 8)\n")
        print("conversion time: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items())
              + " (tfopt: load + freeze [+ optimize], verification off)\n")
        print("| variant | nodes |" + "".join(f" batch {b} ms | vs (a) | vs (b) |" for b in batches))
        print("|" + "---|" * (2 + 3 * len(batches)))
        results = {}
        for batch in batches:
            x = tf.constant(np.random.default_rng(0).standard_normal((batch, 224, 224, 3)).astype(np.float32))
            results[batch] = interleaved_medians({name: (lambda fn=fn, x=x: fn(x)) for name, (_, fn) in variants.items()},
                                                 runs=max(5, runs // batch))
        for name, (nodes, _) in variants.items():
            row = f"| {name} | {nodes} |"
            for batch in batches:
                ms = results[batch][name]
                row += (f" {ms:.2f} | {results[batch]['(a) original signature'] / ms:.2f}x |"
                        f" {results[batch]['(b) convert_variables_to_constants_v2'] / ms:.2f}x |")
            print(row)


def _call(model: Any) -> Any:
    return frozen_function(model.graph_def, [s.tensor for s in model.inputs], [s.tensor for s in model.outputs])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("tf", help="TF runtime: original, plain freeze, optimize_for_inference, tfopt")
    p.add_argument("--models", nargs="+", choices=sorted(MODELS), default=["mobilenetv2", "resnet50"])
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    p.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    if args.what == "tf":
        for model in args.models:
            bench_tf(model, args.batches, args.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
