"""``make demo``: train two small digits models, then freeze both with tfopt.

1. A Keras 3 CNN (BatchNorm + Dropout), exported as a SavedModel.
2. The same idea written TF1-style: placeholders, ``tf.cond`` on ``is_training``, Adam and a
   Saver checkpoint carrying Adam's slots and the whole gradient graph.

Each is frozen through the ``tfopt`` CLI (the commands are printed so they can be copied), the
TF1 one is also optimized (BatchNorm folded into the conv, activations fused), and each result's
accuracy on held-out digits is compared with the original's. Finally one ``tfopt convert`` emits
every target (TFLite, ONNX, OpenVINO, .pb, SavedModel) in every precision, calibrated on digits,
and its report shows each artifact's size, fidelity, held-out accuracy and latency, with a CI gate
on the accuracy drop.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time

import numpy as np


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tfopt.demos.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="demo_output", help="working directory (default: %(default)s)")
    args = parser.parse_args(argv)

    from tfopt import cli, load
    from tfopt.demos import examples
    from tfopt.runtimes.tensorflow import GraphRunner
    from tfopt.terminal.capture import Capture

    out = os.path.abspath(args.out)
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    # The demo's own TensorFlow work is captured like the CLI's stages: only tfopt's lines show.
    quiet = Capture(log=os.path.join(out, "demo.log"))
    with quiet.stage("reading digits"):
        _, _, x_test, y_test = examples.digits()

    start = time.perf_counter()
    print("== training a Keras 3 CNN on scikit-learn's digits (BatchNorm, Dropout) ...")
    keras_dir = os.path.join(out, "keras_savedmodel")
    with quiet.stage("training the Keras CNN"):
        keras_model = examples.train_keras_cnn(epochs=15)
        keras_model.export(keras_dir, verbose=False)
        keras_acc = _accuracy(keras_model.predict(x_test, verbose=0), y_test)
    print("== training the TF1-style graph (is_training cond, Adam, Saver) ...")
    with quiet.stage("training the TF1 graph"):
        ckpt = examples.train_tf1_checkpoint(os.path.join(out, "tf1_checkpoint"), steps=150)
    print(f"   trained both in {time.perf_counter() - start:.1f} s\n")

    jobs = [("Keras SavedModel", keras_dir, os.path.join(out, "keras_frozen.pb"), keras_acc, "freeze"),
            ("TF1 checkpoint", ckpt.directory, os.path.join(out, "tf1_frozen.pb"), None, "freeze"),
            ("TF1 checkpoint, optimized", ckpt.directory, os.path.join(out, "tf1_optimized.pb"), None, "optimize")]
    for title, src, dst, original_acc, verb in jobs:
        steps = [["inspect", src], [verb, src, "-o", dst]] if verb == "freeze" else [[verb, src, "-o", dst]]
        for command in steps:
            print(f"$ tfopt {' '.join(os.path.relpath(c) if os.path.exists(c) or c == dst else c for c in command)}")
            code = cli.main(command)
            if code:
                return code
            print()
        with quiet.stage(f"accuracy of {dst}"):
            frozen = load(dst)
            probs = GraphRunner(frozen)({frozen.inputs[0].name: x_test})[frozen.outputs[0].name]
            if original_acc is None:
                original_acc = _tf1_accuracy(ckpt, x_test, y_test)
        print(f"{title}: held-out accuracy original {original_acc:.2%}, {'frozen' if verb == 'freeze' else verb + 'd'} {_accuracy(probs, y_test):.2%}\n")
    code = _convert_all(ckpt.directory, out, x_test, y_test)
    if code:
        return code
    print(f"artifacts in {os.path.relpath(out)}/")
    return 0


def _convert_all(src: str, out: str, x_test: np.ndarray, y_test: np.ndarray) -> int:
    """Every target and precision from one command, calibrated on digits; the report that ends it
    shows each artifact's size, fidelity, held-out accuracy and latency."""
    from tfopt import cli
    from tfopt.demos import examples

    calibration = os.path.join(out, "calibration.npz")
    np.savez(calibration, images=examples.digits()[0][:200])
    eval_data = os.path.join(out, "eval.npz")
    np.savez(eval_data, images=x_test, labels=y_test)
    deploy = os.path.join(out, "deploy")
    command = ["convert", src, "-o", deploy, "--quantize", "none,fp16,dynamic,int8,int16x8",
               "--calibration", calibration, "--eval-data", eval_data, "--fail-if", "accuracy_drop>1.5"]
    print(f"$ tfopt {' '.join(os.path.relpath(c) if os.path.exists(c) or c == deploy else c for c in command)}")
    code = cli.main(command)
    print()
    return code


def _accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.argmax(probs, axis=-1) == labels))


def _tf1_accuracy(ckpt: object, x: np.ndarray, y: np.ndarray) -> float:
    """The original checkpoint restored by TF's own Saver, is_training=False."""
    from tfopt._tf import tf

    t = tf()
    graph = t.Graph()
    with graph.as_default():
        saver = t.compat.v1.train.import_meta_graph(ckpt.meta)  # type: ignore[attr-defined]
        with t.compat.v1.Session(graph=graph) as sess:
            saver.restore(sess, ckpt.prefix)  # type: ignore[attr-defined]
            probs = sess.run("probs:0", {"images:0": x, "is_training:0": False})
    return _accuracy(probs, y)


if __name__ == "__main__":
    sys.exit(main())
