#!/usr/bin/env python
"""ONNX Runtime int8 on concatenations of ReLU and linear branches (``python scripts/benchmark.py onnx-concat``).

Generated Inception-like graphs (random weights, no training): modules whose ReLU / ReLU6 branches
are concatenated with a linear 1x1 branch, so the engine's shared concatenation range goes below 0.
Each is converted by ``tfopt.convert`` to ONNX at fp32, at int8 by the engine as ``tfopt convert
--quantize int8`` writes it (``default``), the same without the ReLU layers' own zero points
(``default before``: :mod:`tfopt.emitters.onnx_relu_grids` switched off, what the engine wrote before
it), and by ONNX Runtime's own quantizer (``--quantizer native``). Printed per artifact: compute
layers int8 / float in ONNX Runtime's optimized model and the largest difference from the fp32
artifact's outputs (64 random inputs); then the median ms per call (CPU time, batch 1, one thread)
and, paired as ``scripts/benchmark.py int8`` pairs (:func:`benchmark.paired_speeds`: alternating
5-call blocks), each artifact's ms divided by the default's (above 1: the default is faster).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import zlib
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np

# name -> (modules, input height/width, input channels, branch width)
MODELS = {"inception-28": (3, 28, 32, 64), "inception-8": (1, 8, 3, 16)}


def _conv(t: Any, x: Any, k: int, c_out: int, name: str, act: str) -> Any:
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    c_in = int(x.shape[-1])
    w = rng.normal(0, (2 / (k * k * c_in)) ** 0.5, (k, k, c_in, c_out)).astype(np.float32)
    y = t.nn.bias_add(t.nn.conv2d(x, w, 1, "SAME", name=name), rng.normal(0, 0.1, c_out).astype(np.float32))
    return {"relu": t.nn.relu, "relu6": t.nn.relu6, "none": lambda v: v}[act](y)


def inception_pb(path: str, modules: int, size: int, channels: int, width: int) -> None:
    """Write the GraphDef of ``modules`` Inception-like modules (ReLU, ReLU, ReLU6 and linear
    branches concatenated, a ReLU 1x1 mix), a global mean and a dense head to ``path``."""
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        h = tf.compat.v1.placeholder(tf.float32, (None, size, size, channels), name="x")
        h = _conv(tf, h, 3, width, "stem", "relu")
        for i in range(modules):
            a = _conv(tf, h, 1, width, f"m{i}_b1", "relu")
            b = _conv(tf, _conv(tf, h, 1, 3 * width // 4, f"m{i}_b2a", "relu"), 3, width, f"m{i}_b2b", "relu")
            c = _conv(tf, _conv(tf, h, 1, width // 2, f"m{i}_b3a", "relu"), 3, 3 * width // 4, f"m{i}_b3b", "relu6")
            linear = _conv(tf, h, 1, width, f"m{i}_linear", "none")
            h = _conv(tf, tf.concat([a, b, c, linear], -1), 1, 3 * width // 2, f"m{i}_mix", "relu")
        w = np.random.default_rng(7).normal(0, 0.1, (3 * width // 2, 10)).astype(np.float32)
        tf.identity(tf.matmul(tf.reduce_mean(h, [1, 2]), w), name="out")
    with open(path, "wb") as f:
        f.write(graph.as_graph_def().SerializeToString())


def convert_all(root: str, shape: tuple[int, ...]) -> dict[str, str]:
    """The four ONNX artifacts of ``root/m.pb`` (module docstring), by label."""
    import tfopt
    import tfopt.emitters.onnx_relu_grids as grids

    calibration = os.path.join(root, "calib.npz")
    np.savez(calibration, x=np.random.default_rng(1).uniform(-1, 1, (64, *shape)).astype(np.float32))
    real, paths = grids.own_relu_grids, {}
    for label, options, own in [("default", {}, True), ("default before", {}, False),
                                ("native", {"quantizer": "native"}, True)]:
        grids.own_relu_grids = real if own else (lambda graph: 0)  # the form before the rewrite existed
        try:
            out = os.path.join(root, label.replace(" ", "_"))
            result = tfopt.convert(os.path.join(root, "m.pb"), out, to=["onnx"], outputs=["out"],
                                   quantize=["none", "int8"] if label == "default" else ["int8"],
                                   calibration=calibration, report_runs=1, overwrite=True, **options)
        finally:
            grids.own_relu_grids = real
        for artifact in result.artifacts:
            paths[label if artifact.precision == "int8" else "fp32"] = os.path.join(out, artifact.path)
    return paths


def bench(name: str, rounds: int) -> None:
    import onnxruntime as ort
    from benchmark import paired_speeds

    from tfopt.quantizing.int8_ops import count_quantized_ops

    modules, size, channels, width = MODELS[name]
    shape = (size, size, channels)
    with tempfile.TemporaryDirectory(prefix="tfopt-bench-concat-") as root:
        inception_pb(os.path.join(root, "m.pb"), modules, size, channels, width)
        paths = convert_all(root, shape)
        sessions = {}
        for label, path in paths.items():
            options = ort.SessionOptions()
            options.intra_op_num_threads = options.inter_op_num_threads = 1
            sessions[label] = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        feed = sessions["fp32"].get_inputs()[0].name
        xs = np.random.default_rng(4).uniform(-1, 1, (64, *shape)).astype(np.float32)
        reference = sessions["fp32"].run(None, {feed: xs})[0]
        for label, session in sessions.items():
            counts = count_quantized_ops("onnx", paths[label]) if label != "fp32" else {"int8": 0, "float": "-"}
            diff = np.abs(session.run(None, {feed: xs})[0] - reference).max() / np.abs(reference).max()
            print(f"| {name} | {label} | {counts['int8']} / {counts['float']} | {diff:.4f} |")
        x = xs[:1]
        calls = {label: (lambda s=s: s.run(None, {feed: x})) for label, s in sessions.items()}
        paired = paired_speeds(calls, "default", rounds, clock=time.process_time)
        ms = {}
        for label, call in calls.items():
            times = []
            for _ in range(100):
                start = time.process_time()
                call()
                times.append(time.process_time() - start)
            ms[label] = 1e3 * float(np.median(times))
        print(f"\n{name}: ms per call: " + ", ".join(f"{k} {v:.3f}" for k, v in ms.items()))
        print(f"{name}: paired, other / default: " + ", ".join(f"{k} {v[0]:.3f}x [{v[1]:.3f}-{v[2]:.3f}]"
                                                           for k, v in paired.items()) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=sorted(MODELS))
    parser.add_argument("--rounds", type=int, default=40, help="rounds of the paired measurement (default: 40)")
    args = parser.parse_args(argv)
    import onnxruntime
    from benchmark import cpu_summary

    print(f"{cpu_summary()}; ONNX Runtime {onnxruntime.__version__}, batch 1, one thread\n")
    print("| model | artifact | layers int8 / float | max diff from fp32 / max fp32 output |\n|---|---|---|---|")
    for name in args.models:
        bench(name, args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
