"""Latency of tfopt's artifact against another file of the same target, in the same runtime: the
corpus's "vs authors" and "vs plain" columns (``scripts/corpus.py``). Each target's bare call is
the function its record's ``latency`` names (:mod:`tfopt.targets`)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

Opened = tuple[Callable[[list[np.ndarray]], Any], list[tuple[list, str]]]


def _open(target: str, path: str, threads: int) -> Opened:
    """A callable taking inputs by position, and the inputs' (shape, dtype) as the runtime reports them
    (the target record's ``latency``)."""
    from tfopt.targets import TABLE

    record = TABLE.get(target)
    if record is None or record.latency is None:
        raise ValueError(target)
    opened: Opened = record.call("latency", path, threads)
    return opened


def open_tflite(path: str, threads: int) -> Opened:
    """A .tflite in the LiteRT interpreter (resized when the inputs' shapes change)."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=path, num_threads=threads)
    details = it.get_input_details()
    specs = [(list(d["shape_signature"]), np.dtype(d["dtype"]).name) for d in details]

    def run_tflite(xs: list[np.ndarray]) -> Any:
        if any(tuple(d["shape"]) != x.shape for d, x in zip(it.get_input_details(), xs)):
            for d, x in zip(details, xs):
                it.resize_tensor_input(d["index"], x.shape)
            it.allocate_tensors()
        elif not getattr(run_tflite, "ready", False):
            it.allocate_tensors()
        run_tflite.ready = True  # type: ignore[attr-defined]
        for d, x in zip(details, xs):
            it.set_tensor(d["index"], x)
        it.invoke()
    return run_tflite, specs


def open_onnx(path: str, threads: int) -> Opened:
    """A .onnx in ONNX Runtime's CPU provider."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    ins = sess.get_inputs()
    dt = {"tensor(float)": "float32", "tensor(int32)": "int32", "tensor(int64)": "int64"}
    specs = [([d if isinstance(d, int) else -1 for d in i.shape], dt.get(i.type, "float32")) for i in ins]
    return (lambda xs: sess.run(None, {i.name: x for i, x in zip(ins, xs)})), specs


def open_openvino(path: str, threads: int) -> Opened:
    """An OpenVINO IR's .xml compiled for the CPU plugin at f32."""
    from tfopt._openvino import openvino

    ov = openvino()
    core = ov.Core()
    # f32 stated, for both files alike: the CPU plugin would otherwise pick bf16 where it can
    compiled = core.compile_model(path, "CPU", {"INFERENCE_NUM_THREADS": threads,
                                                "INFERENCE_PRECISION_HINT": "f32"})
    specs = [([d.get_length() if d.is_static else -1 for d in i.get_partial_shape()],
              i.get_element_type().to_dtype().name) for i in compiled.inputs]
    request = compiled.create_infer_request()
    return (lambda xs: request.infer(xs)), specs


def bench_inputs(specs: list[tuple[list, str]], *, dim: int = 64, seed: int = 0,
                 shapes: Sequence[Sequence[int] | None] = ()) -> list[np.ndarray]:
    """Seeded inputs for the runtime's input specs, batch 1. An unknown dimension takes its size from
    ``shapes`` (the shapes tfopt verified at, by input position) where given, else ``dim``."""
    rng = np.random.default_rng(seed)
    out = []
    for k, (shape, dtype) in enumerate(specs):
        given = shapes[k] if k < len(shapes) else None
        known = list(given) if given is not None and len(given) == len(shape) else None
        shape = [1 if i == 0 and (d is None or d < 0) else
                 d if d is not None and d >= 0 else (known[i] if known else dim) for i, d in enumerate(shape)]
        out.append(rng.standard_normal(shape).astype(dtype) if dtype.startswith("float")
                   else rng.integers(0, 8, size=shape).astype(dtype))
    return out


def interleaved_latency(target: str, ours: str, theirs: str, *, runs: int = 40, min_seconds: float = 2.0,
                        threads: int = 1, shapes: Sequence[Sequence[int] | None] = ()) -> dict[str, Any]:
    """Median latency of two artifacts in the same runtime, timed alternately (so load on the machine
    hits both alike; the order flips every round, so neither always runs on a cache the other
    warmed), on the same inputs: unknown dimensions from ``shapes`` (tfopt's verified shapes) where
    given. At least ``runs`` rounds, and more until each file has run ``min_seconds`` (up to 5,000
    rounds): a 0.7 ms model timed 40 times is 28 ms of samples, which one burst of load on a shared
    machine moves by 5 %. ``ratio`` is the median over rounds of theirs / ours within the round:
    paired, so load that drifts over seconds (the same two 0.4 s files gave 370 to 430 ms medians
    from run to run here, and ratios of medians from 0.96 to 1.04) cancels. Above 1 means tfopt's
    artifact is faster. ``ours_ms``/``theirs_ms`` are each file's median."""
    run_a, specs = _open(target, ours, threads)
    run_b, specs_b = _open(target, theirs, threads)
    xs = bench_inputs(specs, shapes=shapes)
    fixed = [[d for d in s] for s, _ in specs_b]
    if len(fixed) != len(xs) or any(len(f) != x.ndim or any(d > 0 and d != n for d, n in zip(f, x.shape))
                                    for f, x in zip(fixed, xs)):
        xs = bench_inputs(specs_b, shapes=shapes)  # theirs is more specific (e.g. fixed batch): shape by theirs
    for _ in range(3):
        run_a(xs)
        run_b(xs)
    times: dict[str, list[float]] = {"a": [], "b": []}
    i = 0
    while i < runs or (min(sum(times["a"]), sum(times["b"])) < min_seconds and i < 5000):
        i += 1
        for key, run in (("a", run_a), ("b", run_b)) if i % 2 == 0 else (("b", run_b), ("a", run_a)):
            t = time.perf_counter()
            run(xs)
            times[key].append(time.perf_counter() - t)
    ma, mb = statistics.median(times["a"]) * 1e3, statistics.median(times["b"]) * 1e3
    ratio = statistics.median(b / a for a, b in zip(times["a"], times["b"]))
    return {"ours_ms": ma, "theirs_ms": mb, "ratio": ratio, "rounds": i, "shapes": [list(x.shape) for x in xs]}
