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
224x224 with random weights, its "accuracy" the top-1 agreement with its own float model
(``mobilenetv2-bn``: with random BatchNorm statistics, so that its convolutions have biases as
trained ones do; see :func:`imagenet_sized`). The CPU
is named in the output; without VNNI (AVX-512 VNNI, AVX-VNNI or AMX) int8 gains less.

The ``tfopt default`` row is exactly what ``tfopt convert --quantize int8`` writes (no
``--int8-recipe``: ``DEFAULT_RECIPE`` with each target's own weight grid; the row names each target's recipe as
its plan chose it). Whether it is as fast
as the native int8 is decided by a *paired* measurement, not by two medians taken apart (on a
shared machine those move by several percent from one block of calls to the next): in the same
runtime process the default, native and fp32 artifacts are called in alternating blocks of 5
calls for ``--rounds`` rounds (:func:`benchmark.paired_speeds`), each round giving ``native ms /
default ms`` and ``fp32 ms / default ms``, in CPU time of the process (one runtime thread: the
latency, without the time spent waiting for a core while other jobs run). The second table prints the median of those per-round
ratios with their 25th-75th percentiles and whether issue 25's targets are met: the default at
least as fast as native (>= 1.0) and faster than fp32; with VNNI, >= 2x fp32 in TFLite and
OpenVINO, >= 1.2x in ONNX Runtime. Its last column says what the two int8 artifacts run differently
(:func:`_kernel_diff`): ``same kernels`` where a ratio near 1.0 is all the same work can give.

Default (about 3 minutes on 2 cores): ``mobilenet``, per channel, no AdaRound. ``--full``: the
README's table (mobilenet, resnet, mobilenet-spread; per channel and per tensor; AdaRound).
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import tempfile
import time
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np

TARGETS = ["tflite", "onnx", "openvino"]
MODELS = {"mobilenet": "keras_mobilenet_like", "resnet": "keras_resnet_like", "cnn": "keras_cnn",
          "mobilenet-spread": "keras_mobilenet_like", "mobilenetv2": "MobileNetV2", "mobilenetv2-bn": "MobileNetV2"}
# Each row adds one technique to the one above it (the method row keeps the best range method).
STEPS = [("native", dict(quantizer="native")),
         ("minmax", dict(int8_recipe="minmax")),
         ("best range method", None),  # filled in: the best of percentile, entropy, mse
         ("+ equalize", "equalize"),
         ("+ bias correction", "bias_correction"),
         ("+ adaround", "adaround")]
METHODS = ("percentile", "entropy", "mse")
# issue 25: the default int8's speed against fp32 on a CPU with VNNI (without it: faster than fp32)
VNNI_TARGETS = {"tflite": 2.0, "onnx": 1.2, "openvino": 2.0}
DEFAULT = "tfopt default"  # the row of no --int8-recipe: printed with the recipe's name


def train(name: str, epochs: int, root: str) -> dict[str, Any]:
    from tfopt.demos import examples

    if name.startswith("mobilenetv2"):
        return imagenet_sized(root, name)
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


def imagenet_sized(root: str, name: str = "mobilenetv2") -> dict[str, Any]:
    """Keras MobileNetV2 at 224x224 with random weights (nothing is downloaded): the speed of a real
    network. Its labels are its own float top-1 on 50 random images, so "accuracy" is agreement.

    ``mobilenetv2``: Keras' initial weights, whose BatchNorms (beta 0, mean 0) fold to a zero bias,
    so no convolution has a bias, unlike any trained network. ``mobilenetv2-bn``: the same with
    random BatchNorm statistics (gamma, beta, moving mean and variance), so every folded
    convolution has a bias, as with trained weights; native and engine int8 then have the same
    layers (bias correction adds a bias only where there is none)."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3))
    if name == "mobilenetv2-bn":
        rng = np.random.default_rng(0)
        for layer in model.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                c = layer.gamma.shape[0]
                layer.set_weights([rng.uniform(0.5, 1.5, c), rng.normal(0, 0.2, c), rng.normal(0, 0.2, c),
                                   rng.uniform(0.5, 1.5, c)])
    path = os.path.join(root, name)
    model.export(path, verbose=False)
    key = next(iter(tf.saved_model.load(path).signatures["serving_default"].structured_input_signature[1]))
    rng = np.random.default_rng(0)
    calib_x, x = (rng.uniform(-1, 1, (n, 224, 224, 3)).astype(np.float32) for n in (32, 50))
    calib, evald = os.path.join(root, f"{name}.calib.npz"), os.path.join(root, f"{name}.eval.npz")
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


def speeds(rows: list[tuple[str, dict[str, Any]]], x: dict[str, np.ndarray], threads: int, runs: int,
           rounds: int) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, tuple[float, float, float]]]]:
    """Per target: ms of its fp32 artifact (key ``fp32``) and of each row's int8 artifact (key: the
    row's label), timed in one block per runtime; then, when the table has a default and a native
    row, the paired speeds of the default against them and fp32 (see the module docstring)."""
    from benchmark import interleaved_medians, paired_speeds

    from tfopt.runtimes import runner_for

    spec = rows[0][1]["spec"]
    out: dict[str, dict[str, float]] = {}
    paired: dict[str, dict[str, tuple[float, float, float]]] = {}
    for target in TARGETS:
        paths = {"fp32": next(r["paths"][target, "fp32"] for _, r in rows if (target, "fp32") in r["paths"])}
        paths.update({label: r["paths"][target, "int8"] for label, r in rows if (target, "int8") in r["paths"]})
        runners = {k: runner_for(target, path, spec, threads=threads) for k, path in paths.items()}
        calls = {k: (lambda r=r: r(x)) for k, r in runners.items()}
        out[target] = interleaved_medians(calls, runs=runs)
        if DEFAULT in calls and "native" in calls:
            paired[target] = paired_speeds({k: calls[k] for k in (DEFAULT, "native", "fp32")}, DEFAULT, rounds,
                                           clock=time.process_time)
        for runner in runners.values():
            runner.close()
    return out, paired


def bench_int8(names: list[str], epochs: int, *, grids: list[str], adaround: bool, threads: int, runs: int,
               rounds: int, default_only: bool = False) -> None:
    from benchmark import cpu_summary

    print(f"{cpu_summary()}; latency at batch 1, {threads} thread(s) per runtime, medians of {runs} calls\n")
    print("| model | weights | quantizer / recipe | fp32 | "
          + " | ".join(f"{t} int8 (drop) | {t} speed vs fp32" for t in TARGETS) + " | agree: targets / with float |")
    print("|---|---|---|---|" + "---|---|" * len(TARGETS) + "---|")
    paired_rows: dict[tuple[str, str], dict[str, tuple[float, float, float]]] = {}
    kernels: dict[tuple[str, str], str] = {}
    with tempfile.TemporaryDirectory(prefix="tfopt-bench-int8-") as root:
        for name in names:
            model = train(name, epochs, root)
            for grid in grids:
                per_tensor = grid == "per-tensor"
                recipe, rows = "minmax", []
                for label, step in STEPS:
                    if (step == "adaround" and not adaround) or (default_only and label != "native"):
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
                if not per_tensor:  # what `tfopt convert --quantize int8` writes: no recipe option at all
                    rows.append((DEFAULT, run(model, root, f"{name}-{grid}-default")))
                if not rows:  # --default-only on the per-tensor grid: no native, no default
                    continue
                ms, paired = speeds(rows, {model["input"]: model["x"][:1]}, threads, runs, rounds)
                _fp32_row(name, grid, rows[0][1], ms)
                for label, r in rows:
                    _row(name, grid, label, r, ms)
                paired_rows.update({(name, t): v for t, v in paired.items()})
                kernels.update({(name, t): _kernel_diff(t, dict(rows)) for t in paired})
            _paired_table(paired_rows, rounds, kernels)  # per model: a long run shows what it has measured so far
            paired_rows.clear()


def _kernel_diff(target: str, rows: dict[str, dict[str, Any]]) -> str:
    """What the default int8 runs that the native does not, or the reverse, in the counts of
    :func:`tfopt.quantizing.int8_ops.count_quantized_ops` (float layers, unfused activations, int8
    elementwise kernels, float islands, per-channel offsets; each layer's kernel, precision, offset and
    whether its activation runs separately): ``same kernels`` when nothing differs. (A clamp at 0 in a
    layer's requantization, fused or not, costs the kernel nothing.)"""
    from tfopt.quantizing.int8_ops import count_quantized_ops

    default, native = (count_quantized_ops(target, rows[k]["paths"][target, "int8"]) for k in (DEFAULT, "native"))
    keys = ("float", "unfused", "int8_elementwise", "float_islands", "offsets")
    diff = [f"{k} {default[k] - native[k]:+d}" for k in keys if default[k] != native[k]]
    layers = [[(x["op"], x["precision"], x["activation"] == "separate", x["offset"]) for x in c["layers"]]
              for c in (default, native)]
    return ", ".join(diff) or ("same kernels" if layers[0] == layers[1] else "same counts, other layers")


def _paired_table(found: dict[tuple[str, str], dict[str, tuple[float, float, float]]], rounds: int,
                  kernels: dict[tuple[str, str], str]) -> None:
    from benchmark import cpu_summary

    if not found:
        return
    vnni = "no VNNI" not in cpu_summary()
    print(f"\nPaired, in each runtime's process: {DEFAULT} against native int8 and fp32 ({rounds} rounds of "
          "alternating 5-call blocks; per-round ratio of process CPU ms per call, median [25th-75th percentile]; "
          "above 1: the default is faster)\n")
    print("| model | target | default vs native | default vs fp32 | issue-25 targets (>= 1.0 vs native; vs fp32 "
          + ("with VNNI" if vnni else "without VNNI: > 1.0") + ") | kernels: default against native |\n"
          "|---|---|---|---|---|---|")
    for (name, target), ratios in found.items():
        need = VNNI_TARGETS[target] if vnni else 1.0
        native, fp32 = ratios["native"], ratios["fp32"]
        met = [f"{'met' if native[0] >= 1.0 else 'NOT met'} vs native",
               f"{'met' if fp32[0] >= need and fp32[0] > 1.0 else 'NOT met'} vs fp32 (>= {need:.1f}x)"]
        print(f"| {name} | {target} | {native[0]:.3f}x [{native[1]:.3f}-{native[2]:.3f}] "
              f"| {fp32[0]:.3f}x [{fp32[1]:.2f}-{fp32[2]:.2f}] | {', '.join(met)} | {kernels.get((name, target), '-')} |",
              flush=True)


def _fp32_row(name: str, grid: str, r: dict[str, Any], ms: dict[str, dict[str, float]]) -> None:
    cells = [f"{r['fp32']:.1f} | {ms[t]['fp32']:.3f} ms" for t in TARGETS]
    print(f"| {name} | {grid} | fp32 (ms per call) | {r['fp32']:.1f} | " + " | ".join(cells) + " | - |", flush=True)


def _row(name: str, grid: str, label: str, r: dict[str, Any], ms: dict[str, dict[str, float]]) -> None:
    cells = [(f"{r['acc'][t]:.1f} ({r['fp32'] - r['acc'][t]:+.1f}) | {ms[t]['fp32'] / ms[t][label]:.2f}x"
              if t in r["acc"] else "- | -") for t in TARGETS]
    if label == DEFAULT:
        label = f"**{DEFAULT} ({_recipes(r.get('recipe') or {})})**"
    print(f"| {name} | {grid} | {label} | {r['fp32']:.1f} | " + " | ".join(cells)
          + f" | {r['cross']:.1f} / {r['with_float']:.1f} |", flush=True)


def _recipes(chosen: dict[str, str]) -> str:
    """The recipe each target's default int8 was built with (the plan's ``chosen(target)``, in the manifest):
    one name when every target's is the same, else ``target: recipe`` each (OpenVINO's adds ``7bit+no_new_bias``
    on a model with zero-bias layers)."""
    found = {t: chosen[t] for t in TARGETS if t in chosen}
    if len(set(found.values())) == 1:
        return next(iter(found.values()))
    return "; ".join(f"{t}: {recipe}" for t, recipe in found.items()) or "no engine recipe recorded"


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
    parser.add_argument("--default-only", action="store_true", help="only the native and default rows (no "
                        "recipe steps): the paired speed check in a fraction of the time")
    parser.add_argument("--rounds", type=int, default=40, help="rounds of the paired default/native/fp32 "
                        "measurement, 5 calls per artifact each (default: 40)")
    args = parser.parse_args(argv)
    names = args.models or (["mobilenet", "resnet", "mobilenet-spread"] if args.full else ["mobilenet"])
    grids = ["per-channel", "per-tensor"] if args.full or args.per_tensor else ["per-channel"]
    bench_int8(names, args.epochs, grids=grids, adaround=args.full or args.adaround, threads=args.threads,
               runs=args.runs, rounds=args.rounds, default_only=args.default_only)
    return 0


if __name__ == "__main__":
    sys.exit(main())
