#!/usr/bin/env python
"""tfopt benchmarks: ratios measured side by side in one run (medians; the machine is shared).

    python scripts/benchmark.py freeze [--model mobilenetv2] [--batches 1 8] [--runs 50]

``freeze``: node counts and TF-runtime latency of (a) the original SavedModel signature,
(b) TensorFlow's plain ``convert_variables_to_constants_v2`` and (c) tfopt's frozen graph. All
three are called the same way (a ConcreteFunction call), interleaved round-robin so that machine
noise hits each alike. Prints a Markdown table.
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


def bench_freeze(model_name: str, batches: list[int], runs: int) -> None:
    import keras
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    import tfopt

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "sm")
        MODELS[model_name](keras).export(path, verbose=False)
        loaded = tf.saved_model.load(path)
        sig = loaded.signatures["serving_default"]
        key = next(iter(sig.structured_input_signature[1]))

        t0 = time.perf_counter()
        plain = convert_variables_to_constants_v2(sig)
        t_plain = time.perf_counter() - t0
        t0 = time.perf_counter()
        frozen, _ = tfopt.freeze(path, verify=False)
        t_tfopt = time.perf_counter() - t0
        ours = frozen_function(frozen.graph_def, [s.tensor for s in frozen.inputs], [s.tensor for s in frozen.outputs])

        nodes = {"(a) original signature": count_nodes(sig.graph.as_graph_def()),
                 "(b) convert_variables_to_constants_v2": count_nodes(plain.graph.as_graph_def()),
                 "(c) tfopt freeze": count_nodes(frozen.graph_def)}
        print(f"\n### freeze: {model_name} (weights=None, 224x224), TF {tf.__version__}, "
              f"{os.cpu_count()} cores, median of {runs} interleaved runs\n")
        print(f"freeze time: convert_variables_to_constants_v2 {t_plain:.2f} s, tfopt freeze {t_tfopt:.2f} s "
              "(load + freeze, verification off)\n")
        header = "| variant | nodes |" + "".join(f" batch {b} ms | vs (a) |" for b in batches)
        print(header)
        print("|" + "---|" * (2 + 2 * len(batches)))
        results = {}
        for batch in batches:
            x = tf.constant(np.random.default_rng(0).standard_normal((batch, 224, 224, 3)).astype(np.float32))
            results[batch] = interleaved_medians({
                "(a) original signature": lambda x=x: sig(**{key: x}),
                "(b) convert_variables_to_constants_v2": lambda x=x: plain(x),
                "(c) tfopt freeze": lambda x=x: ours(x),
            }, runs=max(5, runs // batch))
        for name in nodes:
            row = f"| {name} | {nodes[name]} |"
            for batch in batches:
                ms = results[batch][name]
                row += f" {ms:.2f} | {results[batch]['(a) original signature'] / ms:.2f}x |"
            print(row)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("freeze", help="original vs convert_variables_to_constants_v2 vs tfopt")
    p.add_argument("--model", choices=sorted(MODELS), default="mobilenetv2")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    p.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    if args.what == "freeze":
        bench_freeze(args.model, args.batches, args.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
