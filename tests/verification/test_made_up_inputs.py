"""Made-up inputs keep to what the graph does with them: a BERT-like block's ids stay inside their
tables, its attention mask is 0/1 (``(1 - mask) * -10000`` saturates the softmax at 0..7, issue 24's
Hugging Face BERT), and tolerances scale with the outputs' magnitude."""

from __future__ import annotations

import numpy as np
import pytest

import tfopt


def _bert_like(vocab: int, types: int, seq: int = 16, width: int = 8):
    """Word + token-type + position embeddings, one softmax attention with an additive mask bias."""
    import keras
    from keras import ops

    ids = keras.Input((None,), dtype="int32", name="input_ids")
    token_types = keras.Input((None,), dtype="int32", name="token_type_ids")
    mask = keras.Input((None,), dtype="int32", name="attention_mask")
    positions = keras.layers.Lambda(lambda t: ops.expand_dims(ops.arange(ops.shape(t)[1]), 0))(ids)
    h = (keras.layers.Embedding(vocab, width)(ids) + keras.layers.Embedding(types, width)(token_types)
         + keras.layers.Embedding(seq, width)(positions))
    bias = keras.layers.Lambda(lambda m: (1.0 - ops.expand_dims(ops.cast(m, "float32"), 1)) * -10000.0)(mask)
    q, k, v = (keras.layers.Dense(width)(h) for _ in range(3))
    scores = keras.layers.Lambda(lambda a: ops.matmul(a[0], ops.transpose(a[1], (0, 2, 1))) / width ** 0.5 + a[2])(
        [q, k, bias])
    out = keras.layers.Lambda(lambda a: ops.matmul(ops.softmax(a[0], axis=-1), a[1]))([scores, v])
    return keras.Model([ids, token_types, mask], keras.layers.Dense(3)(out))


# vocab30 in the slow lane: vocab1000 is a table the ids must cover past its first rows too, vocab5 one below 8.
@pytest.mark.parametrize("vocab", [5, pytest.param(30, marks=pytest.mark.slow), 1000], ids=lambda v: f"vocab{v}")
def test_ids_stay_in_their_tables_and_the_mask_is_zero_or_one(vocab, tmp_path):
    import keras

    keras.utils.set_random_seed(0)
    _bert_like(vocab, types=2).export(str(tmp_path / "bert"), verbose=False)
    _, _, report, opt_report = tfopt.optimize(str(tmp_path / "bert"))
    at = report.verified_at
    assert at.source == "made up" and opt_report.verification["portable"]
    frozen, _ = tfopt.freeze(str(tmp_path / "bert"), verify=False)
    for feeds in (at.feeds, at.with_batch(frozen.inputs, 1, graph_def=frozen.graph_def).feeds):
        assert feeds["input_ids"].min() >= 0 and feeds["input_ids"].max() < vocab
        assert set(np.unique(feeds["token_type_ids"])) <= {0, 1}
        mask = feeds["attention_mask"]
        assert set(np.unique(mask)) <= {0, 1} and mask[:, 0].all()  # padding: a prefix of ones, never empty
    if vocab > 8:  # ids cover the table, not just its first rows
        assert at.feeds["input_ids"].max() >= 8
    assert all(d.max_abs_err <= 1e-5 for d in report.verification)


@pytest.mark.slow  # ~60 s on a shared 2-core machine; the parametrized test above proves the inputs
def test_a_bert_like_block_converts_and_verifies(tmp_path):
    import importlib.util

    import keras

    if not importlib.util.find_spec("tf2onnx"):
        pytest.skip("the onnx extra is needed")
    keras.utils.set_random_seed(1)
    _bert_like(50, types=2).export(str(tmp_path / "bert"), verbose=False)
    result = tfopt.convert(str(tmp_path / "bert"), str(tmp_path / "out"), to=["tflite", "onnx"], report_runs=1)
    assert set(np.unique(result.verified_at.feeds["attention_mask"])) <= {0, 1}
    assert all(a.max_abs_err <= 1e-4 for a in result.artifacts)


def test_roles_come_from_consumers_not_names():
    """Inputs named p..u: a mask is a mask by ``1 - x``, a length by a compare; a float compared
    with 0 (Keras' Masking) or ``1 - x`` on a float stays a value."""
    from tests.helpers import graph_model
    from tfopt.verification.made_up_inputs import input_roles

    def build(t):
        v1 = t.compat.v1
        p = v1.placeholder(t.int32, [None, None], name="p")
        q = v1.placeholder(t.int32, [None], name="q")
        r = v1.placeholder(t.int32, [None, None], name="r")
        s = v1.placeholder(t.float32, [None, None], name="s")  # Masking: NotEqual(x, 0)
        f = v1.placeholder(t.float32, [None, None], name="f")  # a float mask as an additive bias
        u = v1.placeholder(t.float32, [None, None], name="u")  # 1 - u: arithmetic
        table = t.constant(np.ones((11, 4), np.float32))
        emb = t.gather(table, p)
        bias = (1.0 - t.cast(r, t.float32)) * -10000.0
        valid = t.cast(t.less(t.range(t.shape(p)[1])[None, :], q[:, None]), t.float32)
        extra = t.cast(t.not_equal(s, 0.0), t.float32) + (1.0 - f) * -10000.0 + (1.0 - u)
        t.identity(emb * (bias + valid + extra)[:, :, None], name="y")

    model = graph_model(build, {}, ["y"])
    assert input_roles(model.graph_def) == {"p": ("ids", 11), "r": ("mask", 0), "q": ("length", 0), "f": ("mask", 0)}


def test_the_tolerance_scales_with_the_outputs_magnitude():
    from tfopt.verification.testing import compare

    ref = {"y": np.array([1000.0, 1e-3], np.float64)}
    near = {"y": np.array([1000.005, 1e-3 + 5e-3])}  # 5e-3 everywhere: 5e-6 of the output's magnitude
    assert compare(ref, near, atol=1e-5, rtol=1e-5)[0].ok
    assert not compare(ref, {"y": np.array([1000.0, 1e-3 + 2e-2])}, atol=1e-5, rtol=1e-5)[0].ok
    small = {"y": np.array([1.0, 1e-3])}
    assert not compare(small, {"y": np.array([1.0, 1e-3 + 5e-3])}, atol=1e-5, rtol=1e-5)[0].ok


def test_a_string_the_graph_parses_as_a_number_is_made_up_as_a_numeral():
    """``tf.strings.to_number`` after a ``regex_replace`` (and directly): the made-up strings parse,
    so the original model runs on them (``b"a"`` made StringToNumber fail, and the op sweep called
    that a mismatch); a string no op parses stays ``b"a"``."""
    from tests.helpers import graph_model
    from tfopt.graph import TensorSpec
    from tfopt.runtimes.tensorflow import GraphRunner
    from tfopt.verification.testing import random_inputs

    def build(t):
        v1 = t.compat.v1
        text = v1.placeholder(t.string, [None], name="text")
        plain = v1.placeholder(t.string, [None, 2], name="plain")
        other = v1.placeholder(t.string, [None], name="other")
        number = t.strings.to_number(t.strings.regex_replace(text, "[^0-9]", ""))
        t.identity(number[:, None] + t.strings.to_number(plain) + t.cast(t.strings.length(other), t.float32)[:, None],
                   name="y")

    model = graph_model(build, {}, ["y"])
    specs = [TensorSpec(n, f"{n}:0", "string", s) for n, s in (("text", (None,)), ("plain", (None, 2)),
                                                               ("other", (None,)))]
    feeds = random_inputs(specs, graph_def=model.graph_def)
    assert {v for k in ("text", "plain") for v in feeds[k].ravel()} <= {str(n).encode() for n in range(8)}
    assert set(feeds["other"].ravel()) == {b"a"}
    y = GraphRunner(model.replace(inputs=specs))(feeds)["y"]
    assert y.shape == (2, 2) and np.all(np.isfinite(y))
