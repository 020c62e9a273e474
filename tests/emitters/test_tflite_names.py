"""A ``.tflite`` names its outputs as the model does. The converter goes through a SavedModel whose
signature returns a flat list, so every output was ``output_i`` in LiteRT's signature runner and
``PartitionedCall:i`` in ``get_output_details()``, for every model (a Keras 2 ``.h5`` with ``Lambda``
heads, plain heads, Keras 3), while ONNX and OpenVINO carried the heads' names. A model above
``--external-threshold`` (TFLite's large-model form, its buffers after the flatbuffer at absolute
offsets) kept ``StatefulPartitionedCall:i`` in ``get_output_details()``: forced onto that path by a tiny
threshold here. Checked in the real LiteRT runtime, by name and by value against the original."""

from __future__ import annotations

import numpy as np
import pytest


def _keras2(kind: str, path: str, heads: tuple[str, ...]):
    import tf_keras as K

    K.utils.set_random_seed(len(heads))
    a, b = K.Input((3,), name="a"), K.Input((5,), name="b")
    h = K.layers.Dense(4 * len(heads), activation="tanh")(K.layers.Concatenate()([a, b]))
    if kind == "lambda":  # the acdc-nn-seq form: heads that are Lambda layers over a shared tensor
        outs = [K.layers.Lambda(lambda t, i=i: t[:, 4 * i:4 * i + 2] - t[:, 4 * i + 2:4 * i + 4], name=n)(h)
                for i, n in enumerate(heads)]
    else:
        outs = [K.layers.Dense(i + 1, name=n)(h) for i, n in enumerate(heads)]
    model = K.Model([a, b], outs)
    model.save(path)
    return model


def _keras3(path: str, heads: tuple[str, ...]):
    import keras as K

    K.utils.set_random_seed(len(heads))
    a, b = K.Input((3,), name="a"), K.Input((5,), name="b")
    h = K.layers.Dense(6, activation="tanh")(K.layers.Concatenate()([a, b]))
    model = K.Model([a, b], [K.layers.Dense(i + 1, name=n)(h) for i, n in enumerate(heads)])
    model.save(path)
    return model


class _Frozen:
    """A TF1 graph frozen to a ``.pb`` (heads named by their nodes), called as the Keras models are."""

    def __init__(self, path: str, heads: tuple[str, ...]):
        from tests.helpers import graph_pb

        self.w = np.linspace(-1, 1, 8 * len(heads), dtype=np.float32).reshape(8, len(heads))

        def build(t):
            a = t.compat.v1.placeholder(t.float32, (None, 3), name="a")
            b = t.compat.v1.placeholder(t.float32, (None, 5), name="b")
            h = t.matmul(t.concat([a, b], axis=1), self.w)
            for i, name in enumerate(heads):
                t.identity(t.tanh(h[:, i:i + 1]) * (i + 1), name=name)

        graph_pb(path, build)
        self.heads = heads

    def __call__(self, feeds):
        h = np.concatenate(feeds, axis=1) @ self.w
        return [np.tanh(h[:, i:i + 1]) * (i + 1) for i in range(len(self.heads))]


@pytest.mark.parametrize("kind,heads,precision", [
    ("lambda", ("out_diff", "out_av"), "fp32"),
    ("lambda", ("z_head", "a_head", "m_head"), "fp16"),
    ("plain", ("scores", "boxes"), "dynamic"),
    ("keras3", ("second", "first"), "fp32"),
    ("keras3", ("only",), "fp32"),
    ("frozen", ("logits", "scores/prob"), "fp32"),
], ids=["keras2-lambda-2", "keras2-lambda-3-fp16", "keras2-dense-dynamic", "keras3-2", "keras3-single", "frozen-pb"])
def test_tflite_outputs_carry_the_models_names(tmp_path, kind, heads, precision):
    _check_names(tmp_path, kind, heads, precision)


LARGE_THRESHOLD = 128  # bytes: each model here has a kernel larger (192 to 256), so it takes the large path


# Each case is a large-model converter child importing TensorFlow. The fast lane keeps the Keras 3 model on
# the large path; the Keras 2 lambda heads are named on the ordinary path above (keras2-lambda-2) and on the
# large path to OpenVINO (tests/emitters/test_openvino_large_names.py, keras2-lambda-passthrough).
@pytest.mark.parametrize("kind,heads,precision", [
    pytest.param("lambda", ("out_diff", "out_av"), "fp32", marks=pytest.mark.slow),
    pytest.param("plain", ("scores", "boxes"), "dynamic", marks=pytest.mark.slow),  # the same large path, dynamic
    ("keras3", ("second", "first"), "fp32"),
], ids=["keras2-lambda-2", "keras2-dense-dynamic", "keras3-2"])
def test_large_model_tflite_outputs_carry_the_models_names(tmp_path, kind, heads, precision):
    from tests.helpers import counting
    from tfopt.emitters import large

    with counting(large, "emit_from_savedmodel") as calls:
        _check_names(tmp_path, kind, heads, precision, external_threshold=LARGE_THRESHOLD)
    assert calls  # the large-model path wrote it


def _check_names(tmp_path, kind, heads, precision, external_threshold=None):
    from ai_edge_litert.interpreter import Interpreter

    import tfopt

    path = str(tmp_path / {"keras3": "model.keras", "frozen": "model.pb"}.get(kind, "model.h5"))
    model = (_keras3(path, heads) if kind == "keras3" else _Frozen(path, heads) if kind == "frozen"
             else _keras2(kind, path, heads))
    out = tmp_path / "out"
    result = tfopt.convert(path, str(out), to=["tflite"], quantize=[precision], report_runs=1, unsafe=True,
                           outputs=list(heads) if kind == "frozen" else [], external_threshold=external_threshold)
    assert not result.failed, result.errors
    interpreter = Interpreter(model_path=str(out / f"model.{precision}.tflite"))
    assert sorted(d["name"] for d in interpreter.get_output_details()) == sorted(heads)
    runner = interpreter.get_signature_runner()
    assert sorted(runner.get_output_details()) == sorted(heads)
    rng = np.random.default_rng(0)
    feeds = {"a": rng.normal(size=(1, 3)).astype("float32"), "b": rng.normal(size=(1, 5)).astype("float32")}
    got = runner(**feeds)
    want = model([feeds["a"], feeds["b"]])
    want = dict(zip(heads, want if isinstance(want, (list, tuple)) else [want]))
    tolerance = {"fp32": 1e-5, "fp16": 2e-3, "dynamic": 5e-2}[precision]  # fp16 weights; int8 weights
    for name in heads:  # each head under its own name holds that head's values
        np.testing.assert_allclose(got[name], np.asarray(want[name]), rtol=tolerance, atol=tolerance)
