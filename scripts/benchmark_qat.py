#!/usr/bin/env python
"""int8 by quantization-aware fine-tune against the engine's post-training int8, per target
(``python scripts/benchmark_qat.py``).

Models: tf_keras (Keras 2) versions of ``scripts/benchmark_int8.py``'s MobileNet-style digits
classifier (depthwise-separable blocks, BatchNorm, ReLU6) and its ``mobilenet-spread`` variant (ReLU,
depthwise BatchNorm channels rescaled over three decades and compensated in the next conv: the same
float function, the per-channel weight spread of trained ImageNet MobileNets). Rows:

- ``PTQ engine``: ``tfopt convert --quantize int8`` (default recipe, per channel) and ``+per_tensor``;
- ``PTQ engine mse``: the engine's ranges alone (no weight transforms): what the QAT path starts from;
- ``QAT engine init, 0 epochs``: TFMOT wrappers with the engine's ranges, not trained (init only);
- ``QAT engine init, E epochs``: ``tfopt convert --finetune-data`` (the wired path);
- ``QAT plain TFMOT, E epochs``: ``quantize_apply`` with TFMOT's own initial ranges, the same
  fine-tune (Adam 1e-4, batch 32, BatchNorm frozen, same shuffling).

Every artifact is built by ``tfopt.convert`` and run in its runtime (LiteRT, ONNX Runtime, OpenVINO);
numbers are top-1 in percent on the 360 held-out digits; calibration is 200 training images; the
fine-tune uses the 1437 training images with labels.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np

TARGETS = ["tflite", "onnx", "openvino"]


def mobilenet(*, spread: bool, seed: int = 0) -> Any:
    """The tf_keras MobileNet-style digits classifier (``tfopt.demos.examples.keras_mobilenet_like``)."""
    import tf_keras as keras

    keras.utils.set_random_seed(seed)
    relu = None if spread else 6.0

    def block(layer: Any, x: Any) -> Any:
        return keras.layers.ReLU(relu)(keras.layers.BatchNormalization(momentum=0.9)(layer(x)))

    inputs = keras.Input((8, 8, 1), name="images")
    h = block(keras.layers.Conv2D(16, 3, padding="same", use_bias=False), inputs)
    for filters, stride in ((32, 1), (64, 2), (64, 1)):
        h = block(keras.layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False), h)
        h = block(keras.layers.Conv2D(filters, 1, use_bias=False), h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    return keras.Model(inputs, keras.layers.Dense(10, activation="softmax", name="probs")(h))


def accuracies(result: Any) -> dict[str, float]:
    return {a["format"]: a["accuracy"]["top1"] for a in result.report["artifacts"]}


def bench(name: str, epochs: int, finetune_epochs: int, root: str, *, skip_ptq: bool = False) -> None:
    import tfopt
    from tfopt.demos import examples
    from tfopt.quantizing.engine.quantize import quantize_model
    from tfopt.quantizing.qat.finetune import finetune, load_qat

    x_train, y_train, x_test, y_test = examples.digits()
    model = mobilenet(spread=name == "mobilenet-spread")
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x_train, y_train, epochs=epochs, batch_size=64, verbose=0)
    if name == "mobilenet-spread":
        examples.spread_depthwise_channels(model)
    path = os.path.join(root, f"{name}.h5")
    model.save(path)
    calib, evald, train = (os.path.join(root, f"{name}.{k}.npz") for k in ("calib", "eval", "train"))
    np.savez(calib, images=x_train[:200])
    np.savez(evald, images=x_test, labels=y_test)
    np.savez(train, images=x_train, labels=y_train)
    common = dict(to=TARGETS, quantize=["int8"], eval_data=evald, report_runs=1, overwrite=True)

    def out(label: str) -> str:
        return os.path.join(root, f"{name}-{label}")

    fp32 = 100 * float(np.mean(model.predict(x_test, verbose=0).argmax(-1) == y_test))  # the float model's

    def row(label: str, result: Any, keras_acc: str = "") -> None:
        acc = accuracies(result)
        cells = " | ".join(f"{acc[t]:.1f} ({acc[t] - fp32:+.1f})" if t in acc else "-" for t in TARGETS)
        print(f"| {name} | {label} | {fp32:.1f} | {cells} | {keras_acc} |", flush=True)

    if not skip_ptq:
        row("PTQ engine (mse+equalize+bias_correction)", tfopt.convert(path, out("ptq"), calibration=calib, **common))
        row("PTQ engine +per_tensor", tfopt.convert(path, out("ptq-pt"), calibration=calib, per_tensor=True, **common))
        row("PTQ engine mse (no transforms)", tfopt.convert(path, out("ptq-mse"), calibration=calib, int8_recipe="mse",
                                                            **common))

    portable, _, _, _ = tfopt.optimize(path)
    samples = {"images": x_train[:200]}
    _, engine = quantize_model(portable, samples, "mse")
    data, held_out = ({"images": x_train}, y_train), ({"images": x_test}, y_test)
    for label, init, e in ((("QAT engine init, 0 epochs", "engine", 0),) if not skip_ptq else ()) + (
                           (f"QAT plain TFMOT, {finetune_epochs} epochs", "tfmot", finetune_epochs),):
        qat, report = finetune(portable.keepalive, portable, engine.ranges, samples, data, epochs=e, init=init,
                               evaluate=held_out)
        keras_acc = f"{report.accuracy_before:.1f} -> {report.accuracy_after:.1f}"  # a trained QAT model's
        # .h5 save fails in tf_keras (duplicate dataset names): convert it loaded, as the CLI does
        row(label, tfopt.convert(load_qat(qat, portable), out(f"{init}-{e}"), **common), keras_acc)
    tuned = tfopt.convert(path, out("qat"), calibration=calib, finetune_data=train, finetune_epochs=finetune_epochs,
                          **common)
    facts = tuned.int8["qat_finetune"]
    row(f"QAT engine init, {finetune_epochs} epochs (tfopt convert --finetune-data)", tuned,
        f"{facts['accuracy_before']:.1f} -> {facts['after']:.1f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=["mobilenet", "mobilenet-spread"],
                        default=["mobilenet-spread", "mobilenet"])
    parser.add_argument("--epochs", type=int, default=20, help="float training epochs")
    parser.add_argument("--finetune-epochs", type=int, default=3)
    parser.add_argument("--skip-ptq", action="store_true", help="only the fine-tuned rows (and no init-only row)")
    args = parser.parse_args(argv)
    print("| model | int8 | fp32 | " + " | ".join(f"{t} int8 (vs fp32)" for t in TARGETS)
          + " | Keras QAT top-1 before -> after fine-tune |")
    print("|---|---|---|" + "---|" * len(TARGETS) + "---|")
    with tempfile.TemporaryDirectory(prefix="tfopt-bench-qat-") as root:
        for name in args.models:
            bench(name, args.epochs, args.finetune_epochs, root, skip_ptq=args.skip_ptq)
    return 0


if __name__ == "__main__":
    sys.exit(main())
