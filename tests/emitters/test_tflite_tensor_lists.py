"""A TFLite conversion that fails lowering TensorList ops names the list's node and what made it
(issue 24): tf.vectorized_map's fallback loop (pfor) is not called a recurrent layer, and gets the fix
that removes it (the mapped axis folded into the batch); a loop writing a TensorArray of open element
shape is named as a loop. Generated: several scopes and sizes, each frozen from a tf.function."""

from __future__ import annotations

import re

import numpy as np
import pytest

import tfopt
from tests.helpers import saved_function
from tfopt._tf import tf
from tfopt.emitters.tflite import emit_tflite
from tfopt.errors import ConversionError
from tfopt.runtimes.tflite import open_runner

SCOPES = ["per_step", "frames/encoder"]
FEATURES = [3, 5]


def _mapped(t, scope, features, *, fold):
    """``x [n, k, f] -> y [n, k, f]``: each step ``x[:, i]`` scaled and squashed, by a
    ``tf.vectorized_map`` over the steps (the gather ``x[i]`` has no vectorised form: pfor's
    fallback loop) or folded: one call on ``[n * k, f]``, the fix the error gives."""
    w = t.constant(np.linspace(0.5, 1.5, features, dtype=np.float32))

    def serve(x):
        with t.name_scope(scope):
            if fold:
                y = t.reshape(t.tanh(t.reshape(x, [-1, features]) * w), t.shape(x))
            else:
                steps = t.transpose(x, [1, 0, 2])
                y = t.transpose(t.vectorized_map(lambda i: t.tanh(steps[i] * w), t.range(t.shape(steps)[0])), [1, 0, 2])
        return {"y": y}

    return serve


def _written_loop(t, scope):
    """``x [n, m] -> y [n, m]``: a tf.while_loop writing each row (of open length) into a TensorArray of
    unknown element shape (``infer_shape=False``): a loop's list, open at any batch."""

    def serve(x):
        with t.name_scope(scope):
            n = t.shape(x)[0]
            rows = t.TensorArray(t.float32, size=n, infer_shape=False)
            _, rows = t.while_loop(lambda i, a: i < n, lambda i, a: (i + 1, a.write(i, x[i] * 2.0)), [0, rows])
            y = rows.stack()
        return {"y": y}

    return serve


def _frozen(tmp_path, fn, shape):
    t = tf()
    path = saved_function(tmp_path / "saved", fn, [t.TensorSpec(shape, t.float32, name="x")])
    frozen, _ = tfopt.freeze(path)
    return frozen


@pytest.mark.parametrize("features", FEATURES)
@pytest.mark.parametrize("scope", SCOPES)
def test_a_vectorized_map_fallback_list_is_named_with_its_fix(tmp_path, scope, features):
    model = _frozen(tmp_path, _mapped(tf(), scope, features, fold=False), [None, None, features])
    with pytest.raises(ConversionError) as info:
        emit_tflite(model, str(tmp_path / "m.tflite"))
    message = str(info.value)
    assert "tf.vectorized_map" in message and "recurrent" not in message, message
    node = re.search(r"tf\.TensorListReserve '([^']+)', in '([^']+)'", message)
    assert node and "/pfor/" in node[1] and node[2].endswith(scope) and node[1].startswith(node[2]), message
    assert "[n * k, ...]" in message, message  # the fix: tested below


@pytest.mark.parametrize("features", FEATURES)
def test_the_fix_the_vectorized_map_error_gives_converts(tmp_path, features):
    model = _frozen(tmp_path, _mapped(tf(), "per_step", features, fold=True), [None, None, features])
    emit_tflite(model, str(tmp_path / "m.tflite"))
    x = np.random.default_rng(features).normal(size=(2, 7, features)).astype(np.float32)
    got = open_runner(str(tmp_path / "m.tflite"), model)({"x": x})["y"]
    np.testing.assert_allclose(got, np.tanh(x * np.linspace(0.5, 1.5, features)), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("scope", SCOPES)
def test_a_loop_list_of_open_element_shape_is_named_as_a_loop(tmp_path, scope):
    model = _frozen(tmp_path, _written_loop(tf(), scope), [None, None])
    with pytest.raises(ConversionError) as info:
        emit_tflite(model, str(tmp_path / "m.tflite"))
    message = str(info.value)
    node = re.search(r"TensorList of a loop \(tf\.\w+ '([^']+)'\)", message)
    assert node and f"{scope}/" in node[1], message
    assert "vectorized_map" not in message and "--allow-tf-ops" in message, message


# The converter's text where its error carries no structured records (older TensorFlow, a child's one-line
# message): diagnostics recorded from real conversions (corpus held-out set 2, and this test's Keras 3 model).
RECORDED = [
    ('loc(callsite(fused["TensorListReserve:", "sequential_1/bidirectional_1/backward_gru_1/TensorArrayV2_1@__inference'
     '___call___4090"] at callsite(fused["PartitionedCall:", ...: error: Lowering tensor list ops is failed.',
     "a loop", "sequential_1/bidirectional_1/backward_gru_1/TensorArrayV2_1"),
    ('loc(callsite(fused["TensorListReserve:", callsite("functional_1/time_distributed_1/loop_body/strided_slice_1/pfor/'
     'TensorArrayV2@__inference_pruned_1132"("x.py":7:1) at ...: error: Lowering tensor list ops is failed.',
     "a tf.vectorized_map fallback loop", "functional_1/time_distributed_1/loop_body/strided_slice_1/pfor/TensorArrayV2"),
]


@pytest.mark.parametrize(("text", "kind", "node"), RECORDED, ids=["loop", "pfor"])
def test_the_converters_text_names_the_node_without_structured_errors(text, kind, node):
    from tfopt.emitters.tflite_tensor_lists import explain

    message = explain(RuntimeError(text))
    assert message.startswith(f"TFLite cannot lower the TensorList of {kind} (tf.TensorListReserve '{node}'"), message
