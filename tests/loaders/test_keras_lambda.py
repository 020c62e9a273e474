"""Keras 2 Lambda layers whose stored bytecode this Python cannot rebuild (facenet-keras: Python 3.6
bytecode from Keras 2.1.2): a typed error that names every such layer, its arguments and the two ways
out, with or without --unsafe; the functions supplied through a ``CUSTOM_OBJECTS`` module convert the
model to the same numbers; and whatever else Keras raises while rebuilding a model is a typed error
naming the file and the layer, never an internal error.

The foreign bytecode is made here: each Lambda's stored code is replaced by the same function laid out
as Python 3.6's marshal wrote code objects (five int32 fields, no position-only count), or by this
Python's own bytes cut short.
"""

from __future__ import annotations

import base64
import marshal
import struct
import sys

import h5py
import numpy as np
import pytest
import tensorflow as tf

import tfopt
from tfopt.errors import LambdaCodeError, ModelFormatError, TfoptError
from tfopt.freezing import freeze
from tfopt.loaders import load
from tfopt.runtimes.tensorflow import GraphRunner

FEATURES = 6


def scale_sum(inputs, scale):
    """facenet's residual scaling: the block's input plus its branch times ``scale``."""
    return inputs[0] + inputs[1] * scale


def shifted_tanh(t):
    return tf.tanh(t) + 0.5 * t


def scaled(t, scale, shift):
    return t * scale + shift


# What a training script wrote (lambdas, so Keras 2 stores their bytecode) and the same math as a
# named function (what the user supplies).
KINDS = {"scale_sum": (lambda ins, scale: ins[0] + ins[1] * scale, scale_sum, 2),
         "shifted_tanh": (lambda t: tf.tanh(t) + 0.5 * t, shifted_tanh, 1),
         "affine": (lambda t, scale, shift: t * scale + shift, scaled, 1)}
# layer name -> (kind, arguments): Lambdas with and without arguments, with one and two inputs
LAMBDAS = {"block_scale_sum": ("scale_sum", {"scale": 0.17}), "act": ("shifted_tanh", None),
           "affine_a": ("affine", {"scale": 0.3, "shift": -1.0}), "affine_b": ("affine", {"scale": 2.0, "shift": 0.5})}


def _model(names: list[str], seed: int):
    import tf_keras as keras

    keras.utils.set_random_seed(seed)
    x = keras.Input((FEATURES,), name="x")
    h = keras.layers.Dense(FEATURES, name="d0")(x)
    for i, name in enumerate(names):
        kind, arguments = LAMBDAS[name]
        stored, _, arity = KINDS[kind]
        branch = keras.layers.Dense(FEATURES, name=f"branch{i}")(h)
        h = keras.layers.Lambda(stored, arguments=arguments, name=name)([h, branch] if arity == 2 else branch)
    return keras.Model(x, keras.layers.Dense(3, name="out")(h))


def _py36_code(code) -> bytes:
    """``code`` marshalled in Python 3.6's layout: argcount, kwonlyargcount, nlocals, stacksize, flags
    (int32 each), then code, consts, names, varnames, freevars, cellvars, filename, name, firstlineno,
    lnotab (version-2 marshal pieces: no back-references)."""
    def dump(value) -> bytes:
        return marshal.dumps(value, 2)

    return (b"c" + struct.pack("<5i", code.co_argcount, code.co_kwonlyargcount, code.co_nlocals,
                               code.co_stacksize, code.co_flags)
            + dump(code.co_code) + dump(tuple(c for c in code.co_consts if not hasattr(c, "co_code")))
            + dump(code.co_names) + dump(code.co_varnames) + dump(code.co_freevars) + dump(code.co_cellvars)
            + dump(code.co_filename) + dump(code.co_name) + struct.pack("<i", code.co_firstlineno) + dump(b""))


FOREIGN = {"py36_layout": lambda raw: _py36_code(marshal.loads(raw)),
           "truncated": lambda raw: raw[: len(raw) // 2]}


def _saved_with_foreign_bytecode(path: str, names: list[str], foreign: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Save the model with tf-keras (an .h5, or a .keras archive as Keras 2.13-2.15 wrote), replace every
    Lambda's bytecode in the stored config; returns (input, output)."""
    import json
    import zipfile

    model = _model(names, seed)
    x = np.random.default_rng(seed).standard_normal((4, FEATURES)).astype(np.float32)
    expected = model(x, training=False).numpy()

    def replaced(text) -> str:
        config = json.loads(text)
        for layer in config["config"]["layers"]:
            if layer["class_name"] == "Lambda":
                stored = layer["config"]["function"]
                raw = FOREIGN[foreign](base64.b64decode(stored[0]))
                layer["config"]["function"] = [base64.b64encode(raw).decode(), *stored[1:]]
        return json.dumps(config)

    if path.endswith(".keras"):
        model.save(path + ".saved.keras")
        with zipfile.ZipFile(path + ".saved.keras") as zf, zipfile.ZipFile(path, "w") as out:
            for info in zf.infolist():
                data = zf.read(info)
                out.writestr(info, replaced(data).encode() if info.filename == "config.json" else data)
        return x, expected
    model.save(path)
    with h5py.File(path, "r+") as f:
        f.attrs["model_config"] = replaced(f.attrs["model_config"])
    return x, expected


CASES = [(["block_scale_sum"], "py36_layout"), (["act", "affine_a"], "truncated"),
         (["block_scale_sum", "act", "affine_b"], "py36_layout"), (["affine_a", "affine_b"], "truncated")]
CASE_IDS = ["+".join(names) + "-" + foreign for names, foreign in CASES]


@pytest.mark.parametrize("suffix", [".h5", ".keras"])
@pytest.mark.parametrize("unsafe", [False, True], ids=["safe", "unsafe"])
@pytest.mark.parametrize(("names", "foreign"), CASES, ids=CASE_IDS)
def test_unreadable_lambda_bytecode_is_a_typed_error_naming_every_layer_and_the_fix(tmp_path, names, foreign,
                                                                                    unsafe, suffix):
    path = str(tmp_path / f"m{suffix}")
    _saved_with_foreign_bytecode(path, names, foreign, seed=len(names))
    with pytest.raises(LambdaCodeError) as caught:
        load(path, unsafe=unsafe)
    message = str(caught.value)
    assert caught.value.exit_code == ModelFormatError.exit_code and message.startswith(path)
    for name in names:
        assert f"'{name}'" in message
        for key, value in (LAMBDAS[name][1] or {}).items():
            assert f"{key}={value!r}" in message
    assert f"Python {sys.version_info[0]}.{sys.version_info[1]}" in message and "Keras 2." in message
    assert "CUSTOM_OBJECTS" in message and "--custom-objects" in message and "SavedModel" in message


def _supply(tmp_path, monkeypatch, module: str, entries: dict[str, str]) -> str:
    """A --custom-objects module whose CUSTOM_OBJECTS maps ``entries`` keys to this file's functions."""
    (tmp_path / f"{module}.py").write_text(
        "from tests.loaders.test_keras_lambda import scale_sum, scaled, shifted_tanh\n\n"
        "CUSTOM_OBJECTS = {" + ", ".join(f"{k!r}: {v}" for k, v in entries.items()) + "}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return module


SUPPLIED = [(["block_scale_sum", "act", "affine_b"], "py36_layout", "layer_name"),
            (["act", "affine_a"], "truncated", "layer_name"),
            (["affine_a", "affine_b"], "py36_layout", "any_lambda")]  # one function serves every layer


@pytest.mark.parametrize("suffix", [".h5", ".keras"])
@pytest.mark.parametrize(("names", "foreign", "keyed"), SUPPLIED, ids=["-".join(("+".join(n), f, k)) for n, f, k in SUPPLIED])
def test_supplied_functions_rebuild_the_model_to_the_same_numbers(tmp_path, monkeypatch, names, foreign, keyed, suffix):
    path = str(tmp_path / f"m{suffix}")
    x, expected = _saved_with_foreign_bytecode(path, names, foreign, seed=len(names))
    functions = {name: KINDS[LAMBDAS[name][0]][1].__name__ for name in names}
    entries = functions if keyed == "layer_name" else {"<lambda>": functions[names[0]]}
    module = _supply(tmp_path, monkeypatch, f"lambdas_{keyed}_{len(names)}_{foreign}_{suffix[1:]}", entries)
    try:
        model = load(path, custom_objects=module)  # no --unsafe: no stored code runs
    finally:
        sys.modules.pop(module, None)
    assert model.provenance["lambda_functions_supplied"] == sorted(names)
    frozen, _ = freeze(model, verify=False)
    got = GraphRunner(frozen)({frozen.inputs[0].name: x})[frozen.outputs[0].name]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_supplied_functions_convert_to_every_target(tmp_path, monkeypatch):
    from tfopt.conversion.manifest import manifest_model
    from tfopt.runtimes import runner_for

    path, out = str(tmp_path / "m.h5"), str(tmp_path / "out")
    x, expected = _saved_with_foreign_bytecode(path, ["block_scale_sum", "affine_a"], "py36_layout", seed=7)
    module = _supply(tmp_path, monkeypatch, "lambdas_e2e", {"block_scale_sum": "scale_sum", "affine_a": "scaled"})
    try:
        result = tfopt.convert(path, out, to=["tflite", "onnx", "openvino"], custom_objects=module, report_runs=1)
    finally:
        sys.modules.pop(module, None)
    assert {a.format for a in result.artifacts} >= {"tflite", "onnx", "openvino"}
    loaded = manifest_model(out)
    for artifact in result.artifacts:
        runner = runner_for(artifact.format, f"{out}/{artifact.path}", loaded)
        try:
            got = runner({loaded.inputs[0].name: x})[loaded.outputs[0].name]
        finally:
            getattr(runner, "close", lambda: None)()
        np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4, err_msg=artifact.format)


def _lambda_calling_a_missing_name(path: str) -> None:
    """A Lambda whose body calls a helper of the training script (module ``__main__`` when saved
    from a script; here rewritten so): the code loads, the name is missing when Keras calls it."""
    import json

    import tf_keras as keras

    x = keras.Input((FEATURES,), name="x")
    h = keras.layers.Lambda(lambda t: helper_of_the_script(t), name="uses_helper")(x)
    keras.Model(x, keras.layers.Dense(2)(h)).save(path)
    with h5py.File(path, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        for layer in config["config"]["layers"]:
            if layer["class_name"] == "Lambda":
                layer["config"]["module"] = "__main__"
        f.attrs["model_config"] = json.dumps(config)


helper_of_the_script = shifted_tanh


def _layer_whose_module_lacks_a_package(path: str, tmp_path, monkeypatch) -> str:
    """A custom layer saved by tf-keras whose --custom-objects module, at load time, builds it with a
    package that is not installed (ModuleNotFoundError inside deserialization)."""
    import tf_keras as keras

    class Gate(keras.layers.Layer):
        def call(self, t):
            return t * 2.0

    x = keras.Input((FEATURES,), name="x")
    keras.Model(x, Gate(name="gate_7")(x)).save(path)
    (tmp_path / "gate_layers.py").write_text(
        "import tf_keras as keras\n\n\nclass Gate(keras.layers.Layer):\n"
        "    def __init__(self, **kwargs):\n        super().__init__(**kwargs)\n"
        "        import a_package_that_is_not_installed  # noqa: F401\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return "gate_layers"


FAILURES = {"NameError": lambda path, tmp_path, monkeypatch: (_lambda_calling_a_missing_name(path), {"unsafe": True})[1],
            "ModuleNotFoundError": lambda path, tmp_path, monkeypatch: {
                "custom_objects": _layer_whose_module_lacks_a_package(path, tmp_path, monkeypatch)}}
FAILING_LAYER = {"NameError": "uses_helper", "ModuleNotFoundError": "gate_7"}


@pytest.mark.parametrize("raised", sorted(FAILURES))
def test_any_failure_inside_keras_deserialization_is_typed_and_names_the_layer(tmp_path, monkeypatch, raised):
    path = str(tmp_path / "m.h5")
    options = FAILURES[raised](path, tmp_path, monkeypatch)
    try:
        with pytest.raises(TfoptError) as caught:
            load(path, **options)
    finally:
        sys.modules.pop("gate_layers", None)
    assert isinstance(caught.value, ModelFormatError)
    message = str(caught.value)
    assert message.startswith(path) and f"'{FAILING_LAYER[raised]}'" in message and raised in message


@pytest.mark.parametrize("foreign", sorted(FOREIGN))
def test_keras3_archive_with_unreadable_lambda_bytecode_is_a_typed_error(tmp_path, foreign):
    """Keras 3 stores a Lambda's function as {"class_name": "__lambda__", "config": {"code": ...}}: the
    same check, and the way out Keras 3 allows (it takes no replacement function for a built-in layer)."""
    import json
    import zipfile

    import keras

    x = keras.Input((FEATURES,), name="x")
    h = keras.layers.Lambda(KINDS["affine"][0], arguments={"scale": 0.3, "shift": -1.0}, name="affine_k3")(x)
    h = keras.layers.Lambda(KINDS["shifted_tanh"][0], name="act_k3")(keras.layers.Dense(FEATURES)(h))
    saved, path = str(tmp_path / "saved.keras"), str(tmp_path / "m.keras")
    keras.Model(x, h).save(saved)
    with zipfile.ZipFile(saved) as zf, zipfile.ZipFile(path, "w") as out:
        for info in zf.infolist():
            data = zf.read(info)
            if info.filename == "config.json":
                config = json.loads(data)
                for layer in config["config"]["layers"]:
                    if layer["class_name"] == "Lambda":
                        inner = layer["config"]["function"]["config"]
                        inner["code"] = base64.b64encode(FOREIGN[foreign](base64.b64decode(inner["code"]))).decode()
                data = json.dumps(config).encode()
            out.writestr(info, data)
    with pytest.raises(LambdaCodeError) as caught:
        load(path, unsafe=True)
    message = str(caught.value)
    assert message.startswith(path) and "'affine_k3' (scale=0.3, shift=-1.0)" in message and "'act_k3'" in message
    assert "load_weights" in message and "SavedModel" in message and "CUSTOM_OBJECTS" not in message
