#!/usr/bin/env python
"""tfopt benchmarks: ratios measured side by side in one run (medians; the machine is shared).

    python scripts/benchmark.py tf [--models mobilenetv2 resnet50] [--batches 1 8] [--runs 50]
    python scripts/benchmark.py convert [--model mobilenetv2] [--runs 50]
    python scripts/benchmark.py all [--runs 50]      # both, with their defaults (about 10 minutes)
    python scripts/benchmark.py int8 [--models mobilenet resnet] [--full]  # int8 accuracy and speed (benchmark_int8.py)
    python scripts/benchmark.py cluster [--models mobilenet resnet fer]  # clustering (scripts/benchmark_cluster.py)
    python scripts/benchmark.py qat               # QAT fine-tune from the engine's ranges (scripts/benchmark_qat.py)
    python scripts/benchmark.py fleet [--models 24] [--quick]    # local vs Ray fleet (scripts/benchmark_fleet.py)
    python scripts/benchmark.py large [--rows 540000]  # a 2.2 GB table: time, peak memory (scripts/benchmark_large.py)
    python scripts/benchmark.py ov-batch [--rounds 40]  # OpenVINO: dynamic vs fixed batch (scripts/benchmark_ov_batch.py)
    python scripts/benchmark.py onnx-concat [--rounds 40]  # ONNX int8: ReLU + linear branches concatenated (benchmark_onnx_concat.py)

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


def paired_speeds(fns: dict[str, Callable[[], Any]], base: str, rounds: int, block: int = 5, warmup: int = 5,
                  clock: Callable[[], float] = time.perf_counter) -> dict[str, tuple[float, float, float]]:
    """Speed of ``fns[base]`` against each other function, measured paired: every round times a
    block of ``block`` calls of each function back to back (the order rotated each round, so no
    function always runs first or after the same one), takes each block's median call, and divides:
    ``other ms / base ms`` for that round. Load that drifts over seconds hits both sides of a
    round alike and cancels in its ratio; what two separate medians would compare does not.

    Returns:
        per other function: the median of its per-round ratios and their 25th and 75th
        percentiles (above 1: ``base`` is faster).
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    names = list(fns)
    per_round: dict[str, list[float]] = {k: [] for k in names if k != base}
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        block_ms = {}
        for name in order if r % 2 == 0 else order[::-1]:
            calls = []
            for _ in range(block):
                start = clock()
                fns[name]()
                calls.append(clock() - start)
            block_ms[name] = statistics.median(calls)
        for name in per_round:
            per_round[name].append(block_ms[name] / block_ms[base])
    return {k: (statistics.median(v), *(float(q) for q in np.percentile(v, [25, 75]))) for k, v in per_round.items()}


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


def bench_convert(model_name: str, runs: int) -> None:
    """``tfopt convert`` against the TFLite converter, the tf2onnx CLI and ovc run separately on the
    same SavedModel (each as its own process, as users run them), then size and latency of every
    artifact against the original TF model and against each backend's own conversion."""
    import subprocess

    import keras
    import tensorflow as tf

    from tfopt.conversion.manifest import manifest_model
    from tfopt.graph import TensorSpec
    from tfopt.runtimes import runner_for

    bin_dir = os.path.dirname(sys.executable)
    with tempfile.TemporaryDirectory() as tmp:
        sm = os.path.join(tmp, "sm")
        MODELS[model_name](keras).export(sm, verbose=False)
        calib = os.path.join(tmp, "calib.npz")
        np.savez(calib, keras_tensor=np.random.default_rng(0).uniform(-1, 1, (32, 224, 224, 3)).astype(np.float32))
        key = next(iter(tf.saved_model.load(sm).signatures["serving_default"].structured_input_signature[1]))
        np.savez(calib, **{key: np.load(calib)["keras_tensor"]})

        def timed(cmd: list[str]) -> tuple[float, float]:
            """Wall seconds, and CPU seconds (user + sys of the process and every child it waited for:
            the tf2onnx child included). On a shared machine only the CPU time compares."""
            import resource

            before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
            # this checkout's tfopt (not whichever one the environment installed)
            root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
            path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
            subprocess.run(cmd, check=True, capture_output=True,
                           env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": path})
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            return (time.perf_counter() - start,
                    after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)

        separate = {
            "TFLite converter": timed([sys.executable, "-c",
                                       "import sys, tensorflow as tf; open(sys.argv[2], 'wb').write("
                                       "tf.lite.TFLiteConverter.from_saved_model(sys.argv[1]).convert())",
                                       sm, os.path.join(tmp, "ref.tflite")]),
            "tf2onnx CLI": timed([sys.executable, "-m", "tf2onnx.convert", "--saved-model", sm, "--opset", "17",
                                  "--output", os.path.join(tmp, "ref.onnx")]),
            "ovc": timed([os.path.join(bin_dir, "ovc"), sm, "--output_model", os.path.join(tmp, "ref_ov", "model.xml"),
                          "--compress_to_fp16=False"]),
        }
        out = os.path.join(tmp, "out")
        t_tfopt = timed([os.path.join(bin_dir, "tfopt"), "convert", sm, "-o", out, "--to", "tflite,onnx,openvino",
                         "--no-verify"])
        t_int8 = timed([os.path.join(bin_dir, "tfopt"), "convert", sm, "-o", out + "_q", "--to", "tflite,onnx,openvino",
                        "--quantize", "none,fp16,int8", "--calibration", calib, "--no-verify"])
        wall, cpu = (sum(t[i] for t in separate.values()) for i in (0, 1))
        print(f"\n### convert: {model_name} (weights=None, 224x224)\n\n{cpu_summary()}\n")
        print("| conversion | wall s | CPU s (user+sys, process tree) |\n|---|---|---|")
        for name, (w, c) in separate.items():
            print(f"| {name} (separately) | {w:.1f} | {c:.1f} |")
        print(f"| sum of the three | {wall:.1f} | {cpu:.1f} |")
        print(f"| **tfopt convert --to tflite,onnx,openvino** | **{t_tfopt[0]:.1f}** ({t_tfopt[0] / wall:.2f}x) "
              f"| **{t_tfopt[1]:.1f}** ({t_tfopt[1] / cpu:.2f}x) |")
        print(f"| tfopt convert, fp32 + fp16 + int8 for all three (32 calibration images) | {t_int8[0]:.1f} "
              f"| {t_int8[1]:.1f} |")

        model = manifest_model(out + "_q")
        spec = model.inputs[0]
        x = np.random.default_rng(1).normal(size=(1, 224, 224, 3)).astype(np.float32)
        loaded = tf.saved_model.load(sm)
        sig = loaded.signatures["serving_default"]
        fns: dict[str, Callable[[], Any]] = {"TF original (SavedModel)": lambda: sig(**{key: tf.constant(x)})}
        sizes = {"TF original (SavedModel)": _dir_bytes(sm)}
        ref_specs = [TensorSpec(key, f"{key}:0", "float32", (None, 224, 224, 3))]
        for label, fmt, path in (("TFLite converter, fp32", "tflite", os.path.join(tmp, "ref.tflite")),
                                 ("tf2onnx CLI, fp32", "onnx", os.path.join(tmp, "ref.onnx")),
                                 ("ovc, fp32", "openvino", os.path.join(tmp, "ref_ov", "model.xml"))):
            runner = runner_for(fmt, path, model.replace(inputs=ref_specs if fmt != "openvino" else model.inputs))
            name = ref_specs[0].name if fmt != "openvino" else spec.name
            fns[label] = lambda r=runner, n=name: r({n: x})
            sizes[label] = _dir_bytes(path if fmt != "openvino" else os.path.dirname(path))
        with open(os.path.join(out + "_q", "manifest.json")) as f:
            import json

            for a in json.load(f)["artifacts"]:
                path = os.path.join(out + "_q", a["path"])
                runner = runner_for(a["format"], path, model)
                label = f"tfopt {a['format']} {'fp32' if a['precision'] == 'none' else a['precision']}"
                fns[label] = lambda r=runner: r({spec.name: x})
                sizes[label] = a["bytes"]
        medians = interleaved_medians(fns, runs=runs)
        base = medians["TF original (SavedModel)"]
        print(f"\n| artifact | MB | batch 1 ms (median of {runs}, interleaved) | speed vs TF original |\n|---|---|---|---|")
        for label, ms in medians.items():
            print(f"| {label} | {sizes[label] / 1e6:.1f} | {ms:.2f} | {base / ms:.2f}x |")
        print("\nOpenVINO runs with INFERENCE_PRECISION_HINT=f32 (the CPU plugin would otherwise use bf16).")


INT8_INSTRUCTIONS = {"avx512_vnni": "AVX-512 VNNI", "avx_vnni": "AVX-VNNI", "amx_int8": "AMX"}


def cpu_summary(cpuinfo: str = "/proc/cpuinfo") -> str:
    """``CPU: <model name>, N cores; int8 dot products: ...``, saying when the CPU has no VNNI (nor AMX):
    its int8 kernels widen to 16 bits and multiply-add in more instructions, so int8 gains less there."""
    import platform

    name, flags = "", set()
    if os.path.exists(cpuinfo):
        with open(cpuinfo) as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and not name:
                    name = value.strip()
                elif key.strip() == "flags" and not flags:
                    flags = set(value.split())
    found = [label for flag, label in INT8_INSTRUCTIONS.items() if flag in flags]
    simd = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "SSE"
    isa = ", ".join(found) if found else f"{simd} only, no VNNI (AVX-512 VNNI / AVX-VNNI) nor AMX: int8 gains less here"
    return f"CPU: {name or platform.processor() or platform.machine()}, {os.cpu_count()} cores; int8 dot products: {isa}"


def _dir_bytes(path: str) -> int:
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def _call(model: Any) -> Any:
    return frozen_function(model.graph_def, [s.tensor for s in model.inputs], [s.tensor for s in model.outputs])


OWN_MODULES = {"int8": "benchmark_int8", "cluster": "benchmark_cluster", "qat": "benchmark_qat",
               "fleet": "benchmark_fleet", "large": "benchmark_large", "ov-batch": "benchmark_ov_batch",
               "onnx-concat": "benchmark_onnx_concat"}


def main() -> int:
    if sys.argv[1:2] and sys.argv[1] in OWN_MODULES:  # benchmarks with their own module: scripts/benchmark_<name>.py
        import importlib

        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        code: int = importlib.import_module(OWN_MODULES[sys.argv[1]]).main(sys.argv[2:])
        return code
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("tf", help="TF runtime: original, plain freeze, optimize_for_inference, tfopt")
    p.add_argument("--models", nargs="+", choices=sorted(MODELS), default=["mobilenetv2", "resnet50"])
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    p.add_argument("--runs", type=int, default=50)
    p = sub.add_parser("convert", help="tfopt convert vs the TFLite converter, tf2onnx and ovc; artifact size/latency")
    p.add_argument("--model", choices=sorted(MODELS), default="mobilenetv2")
    p.add_argument("--runs", type=int, default=50)
    sub.add_parser("int8", help="int8 accuracy and speed vs fp32: native quantizers vs tfopt's engine per target "
                   "(scripts/benchmark_int8.py)")
    sub.add_parser("cluster", help="gzip and agreement: TFMOT clustering vs fold-aware (scripts/benchmark_cluster.py)")
    sub.add_parser("qat", help="int8 by QAT fine-tune from the engine's ranges vs PTQ (scripts/benchmark_qat.py)")
    sub.add_parser("fleet", help="fleet: local executor vs Ray, cold and warm cache (scripts/benchmark_fleet.py)")
    sub.add_parser("large", help="a model over 2 GB: tfopt vs the three converters, time and peak memory "
                   "(scripts/benchmark_large.py)")
    sub.add_parser("ov-batch", help="OpenVINO: a dynamic batch against a fixed one, op by op "
                   "(scripts/benchmark_ov_batch.py)")
    sub.add_parser("onnx-concat", help="ONNX Runtime int8: ReLU and linear branches concatenated, engine vs "
                   "native (scripts/benchmark_onnx_concat.py)")
    p = sub.add_parser("all", help="every benchmark, with its defaults")
    p.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    if args.what == "all":
        for model in ("mobilenetv2", "resnet50"):
            bench_tf(model, [1, 8], args.runs)
        bench_convert("mobilenetv2", args.runs)
        return 0
    if args.what == "tf":
        for model in args.models:
            bench_tf(model, args.batches, args.runs)
    elif args.what == "convert":
        bench_convert(args.model, args.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
