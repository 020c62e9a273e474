#!/usr/bin/env python
"""Models over 2 GB: tfopt's large-model emit path against the three converters run separately
(``python scripts/benchmark.py large [--rows 540000] [--dim 1024]``).

The model is the recommendation shape of issue 28: Keras 3, an ``Embedding(rows, dim)`` table
(540,000 x 1,024 = 2.2 GB by default), inputs ``ids`` int32 [?, 8] and ``feats`` float32 [?, 16], one
sigmoid output, exported with ``model.export`` (a serving SavedModel whose table is a variable).

Measured, each step its own process (one at a time), wall time and the peak resident memory of its
whole process tree (the sum over the process and its children, sampled every 0.1 s):

(a) the converters as users run them: ``openvino.convert_model`` + ``save_model``;
    ``TFLiteConverter.from_saved_model(...).convert()``; tf2onnx's large-model mode (``--large_model``,
    a zip of the model and its tensors);
(b) tfopt's path (:func:`tfopt.emitters.large.emit_from_savedmodel`) for all three targets, each then
    verified in its runtime (LiteRT, ONNX Runtime, OpenVINO at f32) against TensorFlow's outputs.

Building the model needs about 3x the table in memory; (a)'s TFLite converter the most (issue 28
measured 14 GB at 2.2 GB). Check ``free -g`` first: the script refuses to start with less available
memory than 6x the table.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

TOLERANCE = 1e-5  # fp32 artifacts against TensorFlow: max abs error on the sigmoid output
NUMPY2_SHIM = "import numpy; numpy.product = getattr(numpy, 'product', numpy.prod); "  # tf2onnx 1.17's large path

BASELINES = {
    "openvino.convert_model + save_model": (
        "import sys; sys.modules['openvino_telemetry'] = None; import openvino as ov; "
        "ov.save_model(ov.convert_model(sys.argv[1]), sys.argv[2] + '/ov/model.xml', compress_to_fp16=False)"),
    "TFLiteConverter.from_saved_model": (
        "import sys, tensorflow as tf; open(sys.argv[2] + '/ref.tflite', 'wb').write("
        "tf.lite.TFLiteConverter.from_saved_model(sys.argv[1]).convert())"),
    "tf2onnx --large_model": (
        NUMPY2_SHIM + "import sys; from tf2onnx import convert; sys.argv = ['tf2onnx', '--saved-model', sys.argv[1], "
        "'--large_model', '--opset', '17', '--output', sys.argv[2] + '/ref.zip']; convert.main()"),
}


class OverCap(RuntimeError):
    """The step's process tree went over the memory cap and was stopped (the machine is shared)."""


def measure(cmd: list[str], cap: int) -> tuple[float, int, str]:
    """``(seconds, peak bytes of the process tree, output)`` of ``cmd``; raises when it fails, and
    :class:`OverCap` (after killing the tree) when it holds more than ``cap`` bytes."""
    import psutil

    start = time.perf_counter()
    log = tempfile.TemporaryFile()  # noqa: SIM115 (read after the process ends, closed with it below)
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": ROOT})
    peak = [0]

    def sample() -> None:
        root = psutil.Process(proc.pid)
        while proc.poll() is None:
            try:
                tree = [root, *root.children(recursive=True)]
                peak[0] = max(peak[0], sum(p.memory_info().rss for p in tree if p.is_running()))
                if peak[0] > cap:
                    for p in reversed(tree):
                        p.kill()
            except psutil.Error:
                pass
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    code = proc.wait()
    seconds = time.perf_counter() - start
    sampler.join()
    log.seek(0)
    out = log.read().decode(errors="replace")
    log.close()
    if peak[0] > cap:
        raise OverCap(f"stopped above the {cap / 2**30:.1f} GB cap after {seconds:.0f} s")
    if code != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])}... exited with {code}:\n{out[-2000:]}")
    return seconds, peak[0], out


def build(directory: str, rows: int, dim: int) -> None:
    import keras

    keras.utils.set_random_seed(0)
    ids = keras.Input((8,), dtype="int32", name="ids")
    feats = keras.Input((16,), name="feats")
    pooled = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(rows, dim)(ids))
    hidden = keras.layers.Dense(64, activation="relu")(keras.layers.Concatenate()([pooled, feats]))
    keras.Model({"ids": ids, "feats": feats}, keras.layers.Dense(1, activation="sigmoid")(hidden)).export(
        directory, verbose=False)


def tfopt_path(savedmodel: str, out: str, rows: int, precision: str) -> None:
    """Emit the three targets, then verify each in its runtime against TensorFlow (loaded last, so
    the table is never held twice in this process while a converter runs)."""
    import numpy as np

    from tfopt.emitters.large import artifact_bytes, emit_from_savedmodel
    from tfopt.graph import Model, TensorSpec
    from tfopt.runtimes import runner_for

    rng = np.random.default_rng(0)
    feeds = {"ids": np.concatenate([rng.integers(0, rows, (3, 8)), np.full((1, 8), rows - 1)]).astype(np.int32),
             "feats": rng.normal(size=(4, 16)).astype(np.float32)}
    written, times, peaks = {}, {}, {}
    for target, name in (("tflite", "model.tflite"), ("onnx", "model.onnx"), ("openvino", "openvino")):
        start = time.perf_counter()
        with _tree_peak() as peak:
            written[target] = emit_from_savedmodel(target, savedmodel, os.path.join(out, f"{precision}.{name}"),
                                                   precision=precision, input_names=["ids", "feats"],
                                                   output_names=["output_0"])
        times[target], peaks[target] = time.perf_counter() - start, peak[0]
    from tfopt._tf import tf

    signature = tf().saved_model.load(savedmodel).signatures["serving_default"]
    expected = signature(**{k: tf().constant(v) for k, v in feeds.items()})["output_0"].numpy()
    del signature
    specs = Model(None, [TensorSpec("ids", "ids:0", "int32", (None, 8)), TensorSpec("feats", "feats:0", "float32",
                                                                                   (None, 16))],
                  [TensorSpec("output_0", "output_0:0", "float32", (None, 1))])
    result = {}
    for target, path in written.items():
        runner = runner_for(target, path, specs)
        error = float(np.max(np.abs(runner(feeds)["output_0"] - expected)))
        runner.close()
        result[target] = {"bytes": artifact_bytes(target, path), "max_abs_err": error, "seconds": times[target],
                          "peak": peaks[target]}
    print("RESULT " + json.dumps(result))


@contextlib.contextmanager
def _tree_peak() -> Iterator[list[int]]:
    """The peak resident bytes of this process and its children while inside (``[peak]``)."""
    import psutil

    peak, done = [0], threading.Event()

    def sample() -> None:
        me = psutil.Process()
        while not done.is_set():
            with contextlib.suppress(psutil.Error):
                peak[0] = max(peak[0], sum(p.memory_info().rss for p in [me, *me.children(recursive=True)]))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield peak
    finally:
        done.set()
        sampler.join()


def bench_large(rows: int, dim: int, precision: str, keep: str | None, cap_gb: float | None) -> None:
    import psutil
    from benchmark import cpu_summary

    table = rows * dim * 4
    available = psutil.virtual_memory().available
    if available < 6 * table:
        sys.exit(f"{available / 2**30:.1f} GB available, {6 * table / 2**30:.1f} GB needed (6x the table): "
                 "wait for memory or pass --rows")
    cap = int(cap_gb * 2**30) if cap_gb else available - (1 << 30)
    with tempfile.TemporaryDirectory(dir=keep) as tmp:
        savedmodel = os.path.join(tmp, "sm")
        script = os.path.abspath(__file__)
        seconds, peak, _ = measure([sys.executable, script, "_build", savedmodel, str(rows), str(dim)], cap)
        print(f"\n### large: Embedding {rows:,} x {dim:,} ({table / 1e9:.2f} GB table), {precision}\n")
        print(f"{cpu_summary()}; built and exported in {seconds:.0f} s (peak {peak / 2**30:.1f} GB)\n")
        rows_out = []
        total_time, max_peak = 0.0, 0
        for label, code in BASELINES.items():
            out = os.path.join(tmp, "ref")
            os.makedirs(os.path.join(out, "ov"), exist_ok=True)
            try:
                seconds, peak, _ = measure([sys.executable, "-c", code, savedmodel, out], cap)
            except OverCap as exc:
                rows_out.append(f"| (a) {label} | - | > {cap / 2**30:.1f} | - | {exc} |")
                continue
            total_time, max_peak = total_time + seconds, max(max_peak, peak)
            rows_out.append(f"| (a) {label} | {seconds:.1f} | {peak / 2**30:.1f} | {_tree_bytes(out) / 1e9:.2f} | - |")
            subprocess.run(["rm", "-rf", out], check=True)
        out = os.path.join(tmp, "tfopt")
        os.makedirs(out)
        seconds, peak, log = measure([sys.executable, script, "_tfopt", savedmodel, out, str(rows), precision], cap)
        result = json.loads(next(line for line in log.splitlines() if line.startswith("RESULT "))[7:])
        print("| step | seconds | peak GB (process tree) | artifact GB | max abs err vs TF |\n|---|---|---|---|---|")
        print("\n".join(rows_out))
        print(f"| (a) those that finished, one after another | {total_time:.1f} | {max_peak / 2**30:.1f} (the largest) "
              "| | |")
        for target, r in result.items():
            print(f"| (b) tfopt {target} {precision} (emit) | {r['seconds']:.1f} | {r['peak'] / 2**30:.1f} | "
                  f"{r['bytes'] / 1e9:.2f} | "
                  f"{r['max_abs_err']:.2e} |")
        print(f"| **(b) tfopt, all three emitted and verified** | **{seconds:.1f}** ({seconds / total_time:.2f}x (a)) "
              f"| **{peak / 2**30:.1f}** | | |")
        print(f"\nfp32 verification tolerance {TOLERANCE:g}: "
              + ("all within" if all(r["max_abs_err"] <= TOLERANCE for r in result.values()) else "EXCEEDED"))


def _tree_bytes(path: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_build"]:  # the steps, each run as its own process by bench_large
        build(argv[1], int(argv[2]), int(argv[3]))
        return 0
    if argv[:1] == ["_tfopt"]:
        tfopt_path(argv[1], argv[2], int(argv[3]), argv[4])
        return 0
    parser = argparse.ArgumentParser(prog="benchmark.py large", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=540_000, help="embedding rows (default: 540,000, a 2.2 GB table)")
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--precision", choices=("fp32", "dynamic"), default="fp32",
                        help="tfopt's precision in (b) (the converters in (a) always write fp32)")
    parser.add_argument("--cap-gb", type=float, help="stop a step whose process tree holds more (default: the "
                        "memory available at the start, less 1 GB)")
    parser.add_argument("--keep", help="a directory for the model and artifacts (default: the system's temporary one)")
    args = parser.parse_args(argv)
    bench_large(args.rows, args.dim, args.precision, args.keep, args.cap_gb)
    return 0


if __name__ == "__main__":
    sys.exit(main())
