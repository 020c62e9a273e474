#!/usr/bin/env python
"""What a dynamic batch costs in OpenVINO's CPU plugin (``python scripts/benchmark.py ov-batch``).

Keras' MobileNetV2 at 224x224 (``benchmark_int8.imagenet_sized``) is converted by ``tfopt.convert``
to OpenVINO fp32 and int8; tfopt writes its batch as the model has it, ``[?, 224, 224, 3]``. Each IR
is compiled four ways in one process (one thread, the f32 hint) and called on one image:

- ``dynamic``: as written;
- ``static``: reshaped to batch 1 at load (``model.reshape``);
- ``bounded``: reshaped to ``[1..8, 224, 224, 3]``;
- ``nchw``: the input's ``Transpose`` removed and the input made ``[?, 3, 224, 224]``: an interface
  tfopt does not write (every caller would transpose), measured to bound what a dynamic IR without
  that ``Transpose`` could gain.

Speeds are paired (:func:`benchmark.paired_speeds`, CPU time of the process): ``dynamic ms / X ms``
per round (the inverse of ``paired_speeds``' ``X ms / dynamic ms``), the median and 25th-75th
percentiles (above 1: X is faster). The last column is the executed layers the dynamic graph has and
the static one does not (``get_runtime_model()`` names), with their median ``PERF_COUNT`` CPU time.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np

PROFILED = 50  # dynamic calls whose PERF_COUNT layer times are taken (the median per layer)
CONFIG = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": 1, "NUM_STREAMS": 1, "PERF_COUNT": True}


def variants(ov: Any, model: Any) -> dict[str, Any]:
    """The four compiled forms of ``model`` (an NHWC image model with a dynamic batch)."""
    core = ov.Core()
    shape = model.inputs[0].get_partial_shape()
    static, bounded = model.clone(), model.clone()
    static.reshape({0: ov.PartialShape([1, *list(shape)[1:]])})
    bounded.reshape({0: ov.PartialShape([ov.Dimension(1, 8), *list(shape)[1:]])})
    return {name: core.compile_model(m, "CPU", CONFIG)
            for name, m in (("dynamic", model), ("static", static), ("bounded", bounded), ("nchw", nchw(ov, model)))}


def nchw(ov: Any, model: Any) -> Any:
    """``model`` with its input ``[?, C, H, W]`` and the frontend's NHWC -> NCHW ``Transpose`` (after
    the input's ``FakeQuantize`` in an int8 IR) removed."""
    from openvino import opset13

    model = model.clone()
    reader = next(iter(model.get_parameters()[0].output(0).get_target_inputs())).get_node()
    quantize = reader if reader.get_type_name() == "FakeQuantize" else None
    transpose = next(iter(reader.output(0).get_target_inputs())).get_node() if quantize else reader
    assert transpose.get_type_name() == "Transpose", f"the input feeds a {transpose.get_type_name()}"
    n, h, w, c = list(model.inputs[0].get_partial_shape())
    parameter = opset13.parameter(ov.PartialShape([n, c, h, w]), ov.Type.f32, name="nchw")
    if quantize is not None:
        quantize.input(0).replace_source_output(parameter.output(0))
    source = quantize.output(0) if quantize is not None else parameter.output(0)
    for target in list(transpose.output(0).get_target_inputs()):
        target.replace_source_output(source)
    out = ov.Model(model.get_results(), [parameter], "nchw")
    out.validate_nodes_and_infer_types()
    return out


def measure(ov: Any, xml: str, x: np.ndarray, rounds: int) -> tuple[dict[str, tuple[float, float, float]], str]:
    """Paired speeds against ``dynamic``, and the layers only the dynamic graph executes with their CPU ms."""
    from benchmark import paired_speeds

    compiled = variants(ov, ov.Core().read_model(xml))
    inputs = {name: x.transpose(0, 3, 1, 2).copy() if name == "nchw" else x for name in compiled}
    requests = {name: c.create_infer_request() for name, c in compiled.items()}
    calls = {name: (lambda r=r, v=inputs[name]: r.infer({0: v})) for name, r in requests.items()}
    ratios = paired_speeds(calls, "dynamic", rounds, clock=time.process_time)  # X ms / dynamic ms
    speeds = {name: (1 / m, 1 / hi, 1 / lo) for name, (m, lo, hi) in ratios.items()}
    static = {op.get_friendly_name() for op in compiled["static"].get_runtime_model().get_ordered_ops()}
    extra: dict[tuple[str, str], list[float]] = {}
    for _ in range(PROFILED):
        calls["dynamic"]()
        for info in requests["dynamic"].get_profiling_info():
            if info.node_name not in static and info.status == info.Status.EXECUTED:
                extra.setdefault((info.node_type, info.node_name), []).append(info.cpu_time.total_seconds() * 1e3)
    return speeds, ", ".join(f"{kind} {np.median(ms):.3f} ms" for (kind, _), ms in extra.items()) or "none"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40, help="paired rounds of 5 calls (default: 40)")
    args = parser.parse_args(argv)
    import openvino as ov
    from benchmark import cpu_summary
    from benchmark_int8 import imagenet_sized

    import tfopt

    print(f"{cpu_summary()}; OpenVINO {ov.get_version()}; batch 1, one thread, the f32 hint\n")
    print("| IR | static vs dynamic | bounded vs dynamic | nchw vs dynamic | only in the dynamic graph (PERF_COUNT) |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="tfopt-bench-ovbatch-") as root:
        model = imagenet_sized(root)
        tfopt.convert(model["path"], os.path.join(root, "out"), to=["openvino"], quantize=["fp32", "int8"],
                      calibration=model["calib"], verify=False, report_runs=1)
        for precision in ("fp32", "int8"):
            xml = os.path.join(root, "out", f"openvino.{precision}", "model.xml")
            speeds, extra = measure(ov, xml, model["x"][:1], args.rounds)
            cells = [f"{m:.3f}x [{lo:.3f}-{hi:.3f}]" for m, lo, hi in (speeds[k] for k in ("static", "bounded", "nchw"))]
            print(f"| {precision} | {' | '.join(cells)} | {extra} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
