#!/usr/bin/env python
"""Models over 2 GB: tfopt's large-model emit path against the three converters run separately
(``python scripts/benchmark.py large [--rows 540000] [--dim 1024]``).

The model is the recommendation shape of issue 28: Keras 3, an ``Embedding(rows, dim)`` table
(540,000 x 1,024 = 2.2 GB by default), inputs ``ids`` int32 [?, 8] and ``feats`` float32 [?, 16], one
sigmoid output, exported with ``model.export`` (a serving SavedModel whose table is a variable).

Measured, each step its own process (one at a time): wall time, the peak of each process (the
kernel's high-water mark, ``VmHWM``) and of the whole process tree (the sum, sampled every 0.1 s):

(a) the converters as users run them: ``openvino.convert_model`` + ``save_model``;
    ``TFLiteConverter.from_saved_model(...).convert()``; tf2onnx's large-model mode (``--large_model``,
    a zip of the model and its tensors);
(b) ``tfopt convert SM -o OUT --to tflite,onnx,openvino`` with no flags: load, freeze, each target
    converted in its own child process and verified in its runtime, the report. Its per-target times
    are the report's ``stage_seconds``; each child's peak is labelled with the target of its job.

Building the model needs about 3x the table in memory. Check ``free -g`` first: the script refuses
to start with less available memory than 7x the table (16 GB at the default size).
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
from typing import Any

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


class Failed(RuntimeError):
    """The step exited with an error: ``seconds`` to the failure, ``peak`` bytes of its tree, ``last``
    its output's last line (a baseline converter that cannot convert the model is a row, not the end)."""

    def __init__(self, message: str, seconds: float, peak: int, last: str):
        super().__init__(message)
        self.seconds, self.peak, self.last = seconds, peak, last


def measure(cmd: list[str], cap: int) -> tuple[float, int, str, dict[str, int]]:
    """``(seconds, peak bytes of the process tree, output, {process label: its peak bytes})`` of
    ``cmd``; raises when it fails, and :class:`OverCap` (after killing the tree) when it holds more
    than ``cap`` bytes. A process's peak is its ``VmHWM`` (exact); the tree's is sampled."""
    import psutil

    start = time.perf_counter()
    log = tempfile.TemporaryFile()  # noqa: SIM115 (read after the process ends, closed with it below)
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": ROOT})
    peak: list[int] = [0]
    labels: dict[int, str] = {}
    peaks: dict[int, int] = {}

    def sample() -> None:
        root = psutil.Process(proc.pid)
        while proc.poll() is None:
            try:
                tree = [root, *root.children(recursive=True)]
                total = 0
                for p in tree:
                    with contextlib.suppress(psutil.Error, OSError):
                        rss = p.memory_info().rss
                        total += rss
                        if p.pid not in labels:
                            labels[p.pid] = _label(p, root)
                        peaks[p.pid] = max(peaks.get(p.pid, 0), rss, _high_water(p.pid))
                peak[0] = max(peak[0], total)
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
        last = (out.strip().splitlines() or [""])[-1][:200]
        raise Failed(f"{' '.join(cmd[:4])}... exited with {code}:\n{out[-2000:]}", seconds, peak[0], last)
    by_label: dict[str, int] = {}
    for pid, label in labels.items():
        by_label[label] = max(by_label.get(label, 0), peaks.get(pid, 0))
    return seconds, max(peak[0], *peaks.values(), 0), out, by_label


def _high_water(pid: int) -> int:
    """The process's peak resident bytes so far (``VmHWM``; 0 where /proc has none)."""
    with contextlib.suppress(OSError, StopIteration, ValueError), open(f"/proc/{pid}/status") as f:
        return int(next(line for line in f if line.startswith("VmHWM")).split()[1]) * 1024
    return 0


def _label(process: Any, root: Any) -> str:
    """``main`` for the measured process; a tfopt converter child by its job's target; else its module."""
    args = process.cmdline()
    if process.pid == root.pid or not args:
        return "main" if process.pid == root.pid else "?"
    if "tfopt.emitters.large_worker" in args:
        with contextlib.suppress(OSError, ValueError, KeyError), open(args[-1]) as f:
            return f"{json.load(f)['target']} converter child"
    return f"{args[args.index('-m') + 1]} (pool)" if "-m" in args[:-1] else os.path.basename(args[0])


def build(directory: str, rows: int, dim: int) -> None:
    import keras

    keras.utils.set_random_seed(0)
    ids = keras.Input((8,), dtype="int32", name="ids")
    feats = keras.Input((16,), name="feats")
    pooled = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(rows, dim)(ids))
    hidden = keras.layers.Dense(64, activation="relu")(keras.layers.Concatenate()([pooled, feats]))
    keras.Model({"ids": ids, "feats": feats}, keras.layers.Dense(1, activation="sigmoid")(hidden)).export(
        directory, verbose=False)


def bench_large(rows: int, dim: int, keep: str | None, cap_gb: float | None, threshold: str | None) -> None:
    import psutil
    from benchmark import cpu_summary

    table = rows * dim * 4
    available = psutil.virtual_memory().available
    if available < 7 * table:
        sys.exit(f"{available / 2**30:.1f} GB available, {7 * table / 2**30:.1f} GB needed (7x the table): "
                 "wait for memory or pass --rows")
    cap = int(cap_gb * 2**30) if cap_gb else available - (1 << 30)
    with tempfile.TemporaryDirectory(dir=keep) as tmp:
        savedmodel = os.path.join(tmp, "sm")
        script = os.path.abspath(__file__)
        seconds, peak, _, _ = measure([sys.executable, script, "_build", savedmodel, str(rows), str(dim)], cap)
        print(f"\n### large: Embedding {rows:,} x {dim:,} ({table / 1e9:.2f} GB table)\n")
        print(f"{cpu_summary()}; built and exported in {seconds:.0f} s (peak {peak / 2**30:.1f} GiB)\n")
        lines, alone = [], {}
        for label, code in BASELINES.items():
            out = os.path.join(tmp, "ref")
            os.makedirs(os.path.join(out, "ov"), exist_ok=True)
            try:
                seconds, peak, _, _ = measure([sys.executable, "-c", code, savedmodel, out], cap)
            except OverCap as exc:
                lines.append(f"| (a) {label} | - | > {cap / 2**30:.1f} | - | {exc} |")
                print(lines[-1], flush=True)
                continue
            except Failed as exc:  # not counted in the sum: it wrote nothing
                lines.append(f"| (a) {label} | failed after {exc.seconds:.1f} | {exc.peak / 2**30:.2f} | - | {exc.last} |")
                print(lines[-1], flush=True)
                subprocess.run(["rm", "-rf", out], check=True)
                continue
            alone[label] = seconds, peak
            lines.append(f"| (a) {label} | {seconds:.1f} | {peak / 2**30:.2f} | {_tree_bytes(out) / 1e9:.2f} | - |")
            print(lines[-1], flush=True)  # as it finishes: a later failure keeps it
            subprocess.run(["rm", "-rf", out], check=True)
        total_alone = sum(t for t, _ in alone.values())
        out = os.path.join(tmp, "tfopt")
        seconds, peak, _, peaks = measure([sys.executable, "-m", "tfopt", "convert", savedmodel, "-o", out,
                                           "--to", "tflite,onnx,openvino",
                                           *(["--external-threshold", threshold] if threshold else [])], cap)
        with open(os.path.join(out, "report.json")) as f:
            report = json.load(f)
        print("| step | seconds | peak GiB | artifact GB | max abs err vs TF |\n|---|---|---|---|---|")
        print("\n".join(lines))
        print(f"| (a) those that finished, one after another | {total_alone:.1f} | "
              f"{max((p for _, p in alone.values()), default=0) / 2**30:.2f} (the largest) | | |")
        stages = report.get("stage_seconds", {})
        for artifact in report["artifacts"]:
            key = f"{artifact['format']} {artifact['precision']}"
            print(f"| (b) tfopt {key} (convert, verify, sizes) | {stages.get(key, float('nan')):.1f} | "
                  f"{peaks.get(artifact['format'] + ' converter child', 0) / 2**30:.2f} (its child) | "
                  f"{artifact['bytes'] / 1e9:.2f} | {artifact['fidelity']['max_abs_err']:.2e} |")
        for stage, value in stages.items():
            if not any(stage == f"{a['format']} {a['precision']}" for a in report["artifacts"]):
                print(f"| (b) tfopt {stage} | {value:.1f} | | | |")
        ratio = f" ({seconds / total_alone:.2f}x (a))" if total_alone else ""
        print(f"| **(b) tfopt convert, all three, verified** | **{seconds:.1f}**{ratio} | "
              f"**{peak / 2**30:.2f}** (tree) | | |")
        print("\npeak of each process of (b), GiB: "
              + ", ".join(f"{label} {value / 2**30:.2f}" for label, value in sorted(peaks.items(), key=lambda kv: -kv[1])
                          if value > 64 << 20))
        worst = max(a["fidelity"]["max_abs_err"] for a in report["artifacts"])
        print(f"fp32 verification tolerance {TOLERANCE:g}: " + ("all within" if worst <= TOLERANCE else "EXCEEDED"))


def _tree_bytes(path: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_build"]:  # the steps, each run as its own process by bench_large
        build(argv[1], int(argv[2]), int(argv[3]))
        return 0
    parser = argparse.ArgumentParser(prog="benchmark.py large", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=540_000, help="embedding rows (default: 540,000, a 2.2 GB table)")
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--cap-gb", type=float, help="stop a step whose process tree holds more (default: the "
                        "memory available at the start, less 1 GB)")
    parser.add_argument("--external-threshold", help="passed to tfopt convert (e.g. 64MB: the large-model path "
                        "for a table under 1 GiB)")
    parser.add_argument("--keep", help="a directory for the model and artifacts (default: the system's temporary one)")
    args = parser.parse_args(argv)
    bench_large(args.rows, args.dim, args.keep, args.cap_gb, args.external_threshold)
    return 0


if __name__ == "__main__":
    sys.exit(main())
