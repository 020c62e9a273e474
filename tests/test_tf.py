"""tfopt._tf: TensorFlow imported without Keras 3, with the same artifacts as a process that imported it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import keras
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CONVERT = """
import hashlib, json, os, sys
if sys.argv[1] == "keras-first":
    import keras  # what `import tensorflow` did before: Keras 3 in the process first
import tfopt
digests, errors = {}, {}
for sm in sys.argv[3:]:
    out = os.path.join(sys.argv[2], sys.argv[1], os.path.basename(sm))
    os.makedirs(os.path.dirname(out), exist_ok=True)
    # the bytes show the two processes agree; one of them verifies against the original
    result = tfopt.convert(sm, out, to=["tflite", "onnx", "openvino"], verify=sys.argv[1] == "alone")
    errors[sm] = [a.max_abs_err for a in result.artifacts]
    for root, _, files in os.walk(out):
        for f in files:
            if f.startswith("report.") or f == "manifest.json":  # what was verified, and measured latencies
                continue
            path = os.path.join(root, f)
            digests[os.path.relpath(path, sys.argv[2]).split(os.sep, 1)[1]] = hashlib.sha256(open(path, "rb").read()).hexdigest()
print(json.dumps({"keras": "keras" in sys.modules, "sklearn": "sklearn" in sys.modules,
                  "digests": digests, "errors": errors}))
"""


def _python(code: str, *args: str, env: dict[str, str] | None = None) -> dict:
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})})
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _exported(tmp_path, name: str, build) -> str:
    """A Keras 3 model exported as a SavedModel (``model.export``: what users convert)."""
    keras.utils.set_random_seed(len(name))
    path = str(tmp_path / name)
    build().export(path, verbose=False)
    return path


@pytest.mark.slow  # two processes that each convert three models to three targets: 1-4 min on 2 shared cores
def test_savedmodels_convert_without_keras_to_the_same_bytes(tmp_path):
    """Keras-exported SavedModels of several shapes (dense, conv + pooling, two branches): converted in a
    process where tfopt imported TensorFlow (no Keras), the artifacts are byte-identical to those of a
    process that imported Keras first, each verified against the original (max error within 1e-4)."""
    L = keras.layers

    def dense():
        return keras.Sequential([keras.Input((7,)), L.Dense(5, activation="relu"), L.Dense(3)])

    def conv():
        return keras.Sequential([keras.Input((12, 12, 3)), L.Conv2D(4, 3, activation="relu6"),
                                 L.DepthwiseConv2D(3), L.GlobalAveragePooling2D(), L.Dense(2)])

    def branches():
        x = keras.Input((9, 2))
        a, b = L.Conv1D(3, 2)(x), L.Conv1D(3, 2, activation="tanh")(x)
        return keras.Model(x, L.Add()([a, b]))

    models = [_exported(tmp_path, name, build) for name, build in (("dense", dense), ("conv", conv),
                                                                    ("branches", branches))]
    alone = _python(CONVERT, "alone", str(tmp_path), *models)
    first = _python(CONVERT, "keras-first", str(tmp_path), *models)
    assert not alone["keras"] and not alone["sklearn"] and first["keras"]
    assert len(alone["digests"]) == 3 * 4 and alone["digests"] == first["digests"]  # .tflite .onnx .xml .bin
    for errors in alone["errors"].values():
        assert len(errors) == 3 and all(e is not None and e <= 1e-4 for e in errors)


def test_keras_still_imports_after_tensorflow():
    """Keras 3 comes in whole when something uses it: ``tf.keras``, ``import keras``, a Keras model
    built and run; its optimizers module is the real one, not the marker that kept it out."""
    out = _python("""
import json, sys
import numpy as np
from tfopt._tf import tf, KERAS3_EAGER_IMPORT
t = tf()
before = "keras" in sys.modules
model = t.keras.Sequential([t.keras.Input((3,)), t.keras.layers.Dense(2)])
y = model(np.ones((4, 3), np.float32))
import keras
print(json.dumps({"before": before, "after": "keras" in sys.modules, "shape": list(y.shape),
                  "optimizers": sys.modules[KERAS3_EAGER_IMPORT] is not None and hasattr(keras.optimizers, "Adam")}))
""")
    assert out == {"before": False, "after": True, "shape": [4, 2], "optimizers": True}


# "import keras" imports TensorFlow first: the fast lane keeps that case (one TensorFlow import per case)
@pytest.mark.parametrize("first", [pytest.param("import tensorflow", marks=pytest.mark.slow), "import keras"])
def test_tensorflow_imported_before_is_left_alone(first):
    """TensorFlow (or Keras, which imports it) imported before tfopt's first use: nothing is blocked
    or removed, Keras is there as TensorFlow imported it."""
    out = _python(f"""
import json, sys
{first}
from tfopt._tf import tf, KERAS3_EAGER_IMPORT
tf()
print(json.dumps({{"keras": "keras" in sys.modules, "marker": sys.modules.get(KERAS3_EAGER_IMPORT, 0) is None}}))
""")
    assert out == {"keras": True, "marker": False}


def test_failed_import_leaves_no_marker():
    """An ``import tensorflow`` that fails inside the block raises its error and leaves no marker
    in ``sys.modules`` (Keras imports afterwards as usual)."""
    out = _python("""
import json, sys
class NoTensorFlow:
    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow":
            raise ImportError("no tensorflow here")
sys.meta_path.insert(0, NoTensorFlow())
from tfopt._tf import tf, KERAS3_EAGER_IMPORT
try:
    tf()
    raised = ""
except ImportError as exc:
    raised = str(exc)
print(json.dumps({"raised": raised, "marker": KERAS3_EAGER_IMPORT in sys.modules}))
""")
    assert out == {"raised": "no tensorflow here", "marker": False}


@pytest.mark.parametrize("user_choice", [None, "1"], ids=["keras3-process", "user-chose-keras2"])
def test_tfmot_import_leaves_the_process_keras_and_environment_alone(user_choice):
    """TFMOT's import sets ``TF_USE_LEGACY_KERAS=1`` and reads ``tf.keras``: imported bare in a fresh process,
    ``from tensorflow import keras`` then gives Keras 2 for good and every child inherits the variable.
    Through :func:`tfopt._tf.tfmot` the process keeps the Keras it had (Keras 3, or Keras 2 where the user
    set the variable) and the variable as it was, and TFMOT still works (its Keras is tf-keras). Under
    ``TF_USE_LEGACY_KERAS=1`` TensorFlow's own import of Keras 2 (``tf_keras``, whose optimizers register
    with the SavedModel registry) is not touched by :func:`tfopt._tf.tf` either."""
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    env.update({"TF_CPP_MIN_LOG_LEVEL": "3", **({"TF_USE_LEGACY_KERAS": user_choice} if user_choice else {})})
    code = """
import json, os, sys
from tfopt._tf import tf, tfmot
tf()
legacy = "tf_keras.src.optimizers" in sys.modules
m = tfmot()
from tensorflow import keras
print(json.dumps({"env": os.environ.get("TF_USE_LEGACY_KERAS"), "legacy": legacy,
                  "keras": keras.layers.Layer.__module__.split(".")[0],
                  "tfmot_keras": m.quantization.keras.quantize_annotate_layer.__module__.split(".")[0]}))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out == {"env": user_choice, "legacy": bool(user_choice), "keras": "tf_keras" if user_choice else "keras",
                   "tfmot_keras": "tensorflow_model_optimization"}
