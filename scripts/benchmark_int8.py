#!/usr/bin/env python
"""int8 accuracy and speed: each target's native post-training quantization against tfopt's engine,
one technique added at a time, per channel (and per tensor) (``python scripts/benchmark.py int8``).

Models are trained here on scikit-learn's bundled digits (no download): a MobileNet-style network
(depthwise-separable blocks, BatchNorm, ReLU6: where per-tensor int8 is known to break), a
ResNet-style one, and ``mobilenet-spread``: the MobileNet with ReLU whose depthwise channels are
rescaled over three decades (compensated in the next conv, so the float model is the same), the
channel-range spread trained ImageNet MobileNets have and digits training does not produce. Calibration: 200 training images; accuracy: the 360 held-out test images. Every
artifact is built by ``tfopt.convert`` and run in its real runtime (LiteRT, ONNX Runtime, OpenVINO
CPU at f32 inference precision); the numbers are top-1 accuracy in percent, and the drop against
the float model in points. ``agree`` is the lowest top-1 agreement between two targets' int8
outputs (cross-target consistency) next to the lowest agreement of a target with float.

Speed: per target, its fp32 artifact and every int8 artifact of the table are timed in one block
(batch 1, ``--threads`` intra-op threads in every runtime, 1 by default; the median of ``--runs``
calls after 5 warm-ups), the artifacts of one runtime called round-robin so that drift in the
machine's load hits each alike, and one runtime at a time (never alternating between runtimes,
whose thread pools would disturb each other). A cell's ``N.NNx`` is fp32 ms / int8 ms (above 1:
faster than fp32); the fp32 row gives the ms. The digits models take 8x8 inputs, so a call's fixed
overhead weighs more than on a real network: ``--models mobilenetv2`` is Keras' MobileNetV2 at
224x224 with random weights, its "accuracy" the top-1 agreement with its own float model. The CPU is named in the output; without VNNI
(AVX-512 VNNI, AVX-VNNI or AMX) int8 gains less.

Default (about 3 minutes on 2 cores): ``mobilenet``, per channel, no AdaRound. ``--full``: the
README's table (mobilenet, resnet, mobilenet-spread; per channel and per tensor; AdaRound).
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import tempfile
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np

TARGETS = ["tflite", "onnx", "openvino"]
MODELS = {"mobilenet": "keras_mobilenet_like", "resnet": "keras_resnet_like", "cnn": "keras_cnn",
          "mobilenet-spread": "keras_mobilenet_like", "mobilenetv2": "MobileNetV2"}
# Each row adds one technique to the one above it (the method row keeps the best range method).
STEPS = [("native", dict(quantizer="native")),
         ("minmax", dict(int8_recipe="minmax")),
         ("best range method", None),  # filled in: the best of percentile, entropy, mse
         ("+ equalize", "equalize"),
         ("+ bias correction", "bias_correction"),
         ("+ adaround", "adaround")]
METHODS = ("percentile", "entropy", "mse")


def train(name: str, epochs: int, root: str) -> dict[str, Any]:
    from tfopt.demos import examples

    if name == "mobilenetv2":
        return imagenet_sized(root)
    if name == "mobilenet-spread":  # ReLU, then a function-preserving spread of the depthwise channels
        model = examples.spread_depthwise_channels(examples.train(examples.keras_mobilenet_like(max_value=None),
                                                                  epochs=epochs))
    else:
        model = examples.train(getattr(examples, MODELS[name])(), epochs=epochs)
    x_train, _, x_test, y_test = examples.digits()
    path = os.path.join(root, name)
    model.export(path, verbose=False)
    calib, evald = os.path.join(root, f"{name}.calib.npz"), os.path.join(root, f"{name}.eval.npz")
    np.savez(calib, images=x_train[:200])
    np.savez(evald, images=x_test, labels=y_test)
    return {"path": path, "calib": calib, "eval": evald, "x": x_test, "input": "images"}


def imagenet_sized(root: str) -> dict[str, Any]:
    """Keras MobileNetV2 at 224x224 with random weights (nothing is downloaded): the speed of a real
    network. Its labels are its own float top-1 on 50 random images, so "accuracy" is agreement."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3))
    path = os.path.join(root, "mobilenetv2")
    model.export(path, verbose=False)
    key = next(iter(tf.saved_model.load(path).signatures["serving_default"].structured_input_signature[1]))
    rng = np.random.default_rng(0)
    calib_x, x = (rng.uniform(-1, 1, (n, 224, 224, 3)).astype(np.float32) for n in (32, 50))
    calib, evald = os.path.join(root, "mobilenetv2.calib.npz"), os.path.join(root, "mobilenetv2.eval.npz")
    np.savez(calib, **{key: calib_x})
    np.savez(evald, **{key: x, "labels": np.argmax(model.predict(x, verbose=0), -1)})
    return {"path": path, "calib": calib, "eval": evald, "x": x, "input": key}


def run(model: dict[str, Any], root: str, label: str, **options: Any) -> dict[str, Any]:
    """Accuracy per target, the float accuracy, and the cross-target agreement of one configuration."""
    import tfopt
    from tfopt.conversion.manifest import manifest_model
    from tfopt.runtimes import runner_for

    os.makedirs(os.path.join(root, "out"), exist_ok=True)
    out = os.path.join(root, "out", label.replace(" ", "_").replace("+", "p"))
    quantize = ["none", "int8"] if options.pop("with_fp32", False) else ["int8"]
    result = tfopt.convert(model["path"], out, to=TARGETS, quantize=quantize, calibration=model["calib"],
                           eval_data=model["eval"], report_runs=1, overwrite=True, **options)
    rows = {a["format"]: a for a in result.report["artifacts"] if a["precision"] == "int8"}
    spec = manifest_model(out)
    tops, paths = {}, {}
    for a in result.artifacts:
        paths[a.format, a.precision] = os.path.join(out, a.path)
        if a.precision != "int8":
            continue
        runner = runner_for(a.format, os.path.join(out, a.path), spec)
        tops[a.format] = np.concatenate([np.argmax(runner({model["input"]: model["x"][i:i + 1]})[spec.outputs[0].name], -1)
                                         for i in range(len(model["x"]))])
    cross = min((100 * float(np.mean(tops[a] == tops[b])) for a, b in itertools.combinations(tops, 2)), default=np.nan)
    with_float = min(rows[t]["fidelity"]["top1_agreement"] for t in rows)
    return {"fp32": result.report["reference"]["accuracy"]["top1"], "acc": {t: rows[t]["accuracy"]["top1"] for t in rows},
            "cross": cross, "with_float": with_float, "recipe": (result.int8 or {}).get("recipe"), "paths": paths,
            "spec": spec}


def speeds(rows: list[tuple[str, dict[str, Any]]], x: dict[str, np.ndarray], threads: int,
           runs: int) -> dict[str, dict[str, float]]:
    """Per target: ms of its fp32 artifact (key ``fp32``) and of each row's int8 artifact (key: the
    row's label), timed in one block per runtime (see the module docstring)."""
    from benchmark import interleaved_medians

    from tfopt.runtimes import runner_for

    spec = rows[0][1]["spec"]
    out: dict[str, dict[str, float]] = {}
    for target in TARGETS:
        paths = {"fp32": next(r["paths"][target, "fp32"] for _, r in rows if (target, "fp32") in r["paths"])}
        paths.update({label: r["paths"][target, "int8"] for label, r in rows if (target, "int8") in r["paths"]})
        runners = {k: runner_for(target, path, spec, threads=threads) for k, path in paths.items()}
        out[target] = interleaved_medians({k: (lambda r=r: r(x)) for k, r in runners.items()}, runs=runs)
        for runner in runners.values():
            runner.close()
    return out


def bench_int8(names: list[str], epochs: int, *, grids: list[str], adaround: bool, threads: int, runs: int) -> None:
    from benchmark import cpu_summary

    print(f"{cpu_summary()}; latency at batch 1, {threads} thread(s) per runtime, medians of {runs} calls\n")
    print("| model | weights | quantizer / recipe | fp32 | "
          + " | ".join(f"{t} int8 (drop) | {t} speed vs fp32" for t in TARGETS) + " | agree: targets / with float |")
    print("|---|---|---|---|" + "---|---|" * len(TARGETS) + "---|")
    with tempfile.TemporaryDirectory(prefix="tfopt-bench-int8-") as root:
        for name in names:
            model = train(name, epochs, root)
            for grid in grids:
                per_tensor = grid == "per-tensor"
                recipe, rows = "minmax", []
                for label, step in STEPS:
                    if step == "adaround" and not adaround:
                        continue
                    if label == "native":
                        if per_tensor:
                            continue  # the converters' native int8 is per channel (TFLite, NNCF) or fixed
                        options: dict[str, Any] = dict(step, with_fp32=True)  # type: ignore[arg-type]
                    elif label == "minmax":
                        options = dict(int8_recipe="minmax", per_tensor=per_tensor)
                    elif step is None:
                        scored = {m: run(model, root, f"{name}-{grid}-{m}", int8_recipe=m, per_tensor=per_tensor)
                                  for m in METHODS}
                        recipe = max(scored, key=lambda m: np.nanmean(list(scored[m]["acc"].values())))
                        rows.append((f"tfopt {recipe}", scored[recipe]))
                        continue
                    else:
                        recipe = f"{recipe}+{step}"
                        options = dict(int8_recipe=recipe, per_tensor=per_tensor)
                    if per_tensor and not rows:  # the fp32 artifacts the speed ratios divide by
                        options["with_fp32"] = True
                    rows.append(("native" if label == "native" else f"tfopt {recipe}",
                                 run(model, root, f"{name}-{grid}-{label}", **options)))
                ms = speeds(rows, {model["input"]: model["x"][:1]}, threads, runs)
                _fp32_row(name, grid, rows[0][1], ms)
                for label, r in rows:
                    _row(name, grid, label, r, ms)


def _fp32_row(name: str, grid: str, r: dict[str, Any], ms: dict[str, dict[str, float]]) -> None:
    cells = [f"{r['fp32']:.1f} | {ms[t]['fp32']:.3f} ms" for t in TARGETS]
    print(f"| {name} | {grid} | fp32 (ms per call) | {r['fp32']:.1f} | " + " | ".join(cells) + " | - |", flush=True)


def _row(name: str, grid: str, label: str, r: dict[str, Any], ms: dict[str, dict[str, float]]) -> None:
    cells = [(f"{r['acc'][t]:.1f} ({r['fp32'] - r['acc'][t]:+.1f}) | {ms[t]['fp32'] / ms[t][label]:.2f}x"
              if t in r["acc"] else "- | -") for t in TARGETS]
    print(f"| {name} | {grid} | {label} | {r['fp32']:.1f} | " + " | ".join(cells)
          + f" | {r['cross']:.1f} / {r['with_float']:.1f} |", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), help="default: mobilenet (--full: "
                        "mobilenet resnet mobilenet-spread)")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--per-tensor", action="store_true", help="also the per-tensor grid")
    parser.add_argument("--adaround", action="store_true", help="also the + adaround step")
    parser.add_argument("--full", action="store_true", help="the README's table: three models, both grids, AdaRound")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads in every runtime (default: 1)")
    parser.add_argument("--runs", type=int, default=200, help="timed calls per artifact (default: 200)")
    args = parser.parse_args(argv)
    names = args.models or (["mobilenet", "resnet", "mobilenet-spread"] if args.full else ["mobilenet"])
    grids = ["per-channel", "per-tensor"] if args.full or args.per_tensor else ["per-channel"]
    bench_int8(names, args.epochs, grids=grids, adaround=args.full or args.adaround, threads=args.threads,
               runs=args.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
