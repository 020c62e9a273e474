"""Made-up inputs must give outputs that carry information (issue 24: ebeer's CNN was verified on
standard-normal images that drove its head to exactly 0/1, so a wrong artifact would have passed).

Generated models (Keras 3 and tf-keras; CNN and MLP; sigmoid, softmax and ReLU outputs) are trained
for [0, 1]-like data by construction: a head kernel scaled so standard-normal inputs saturate it, or a
ReLU head with a negative bias that only positive inputs overcome. For each: the made-up inputs tfopt
chooses give a non-degenerate output, and a model with one weight perturbed, checked against the
original at the fp32 artifact bound, is caught (before: every output was 0/1 or 0 and it passed)."""

from __future__ import annotations

import os

import numpy as np
import pytest

import tfopt
from tfopt.errors import VerificationError
from tfopt.verification.tolerances import ARTIFACT

CASES = [("keras3", "cnn", "sigmoid"), ("keras3", "mlp", "softmax"), ("keras3", "mlp", "relu"),
         ("tf_keras", "cnn", "softmax"), ("tf_keras", "mlp", "sigmoid"), ("tf_keras", "cnn", "relu")]


def _keras(flavour: str):
    if flavour == "tf_keras":
        import tf_keras

        return tf_keras
    import keras

    return keras


def _model(k, kind: str, head: str, seed: int, scale: float = 1.0, bias: float = 0.0):
    """``kind`` body on an 8x8x3 image. ``head`` sigmoid/softmax: over logits scaled by ``scale`` (no
    biases: logits scale with the input, so 300 saturates at standard normal). ``head`` relu: of a
    positive-weight average of the image plus ``bias`` (-0.45: zero for centred inputs, positive for
    [0, 1] images)."""
    rng = np.random.default_rng(seed)
    x = k.Input((8, 8, 3), name="image")
    h = x
    if kind == "cnn":
        h = k.layers.Conv2D(4, 3, activation=None if head == "relu" else "relu", use_bias=False, name="conv")(h)
    h = k.layers.Flatten()(h)
    if head == "relu":
        model = k.Model(x, k.layers.Dense(3, activation="relu", name="head")(h))
        layers = (["conv"] if kind == "cnn" else []) + ["head"]
        for name in layers:  # every kernel a positive average (its columns sum to 1)
            weights = model.get_layer(name).get_weights()
            w = rng.uniform(0.5, 1.5, weights[0].shape)
            weights[0] = (w / w.reshape(-1, w.shape[-1]).sum(0)).astype("float32")
            if name == "head":
                weights[1] = np.full(3, bias, "float32")
            model.get_layer(name).set_weights(weights)
        return model
    units = 1 if head == "sigmoid" else 4
    model = k.Model(x, k.layers.Dense(units, activation=head, use_bias=False, name="head")(
        k.layers.Dense(6, activation="relu", use_bias=False, name="hidden")(h)))
    (kernel,) = model.get_layer("head").get_weights()
    model.get_layer("head").set_weights([kernel * scale])
    return model


def _save(k, model, directory: str, name: str) -> str:
    path = os.path.join(directory, name + (".h5" if k.__name__ == "tf_keras" else ".keras"))
    model.save(path)
    return path


def _perturbed(model, k):
    """The same model with its head's kernel 5% larger (a wrong artifact)."""
    clone = k.models.clone_model(model)
    clone.set_weights(model.get_weights())
    weights = clone.get_layer("head").get_weights()
    clone.get_layer("head").set_weights([weights[0] * 1.05, *weights[1:]])
    return clone


@pytest.mark.parametrize("flavour,kind,head", CASES, ids=["-".join(c) for c in CASES])
def test_saturated_heads_get_informative_inputs_and_a_wrong_model_is_caught(flavour, kind, head, tmp_path):
    from tfopt.verification.verify import verify_against_reference

    k = _keras(flavour)
    k.utils.set_random_seed(len(kind) + len(head))
    model = _model(k, kind, head, seed=len(head), scale=300.0, bias=-0.45)
    original = tfopt.load(_save(k, model, str(tmp_path), "original"))
    wrong, _ = tfopt.freeze(tfopt.load(_save(k, _perturbed(model, k), str(tmp_path), "wrong")), verify=False)
    bound = ARTIFACT["fp32"]
    with pytest.raises(VerificationError, match="differs"):  # before: compared on constants, passed
        verify_against_reference(original, wrong, {}, atol=bound, rtol=bound)

    from tfopt.verification.saturation import NORMAL, degenerate

    frozen, report = tfopt.freeze(original)
    at = report.verified_at
    assert at.values != NORMAL and not at.saturated
    assert len(at.saturated_before) == 1  # the one output, degenerate at standard normal
    outputs = {"out": np.asarray(model(next(iter(at.feeds.values()))))}
    assert not degenerate(outputs), outputs
    assert f"made-up floats {at.values}" in at.summary()
    assert at.as_dict()["values"]["floats"] == at.values
    assert at.with_batch(frozen.inputs, 1, 0, frozen.graph_def).values == at.values  # artifacts: the same rung


@pytest.mark.parametrize("flavour,kind,head", CASES[:3], ids=["-".join(c) for c in CASES[:3]])
def test_informative_models_keep_todays_standard_normal_inputs(flavour, kind, head, tmp_path):
    from tfopt.verification.testing import random_inputs

    k = _keras(flavour)
    k.utils.set_random_seed(1)
    model = _model(k, kind, head, seed=1)  # no scaling, a bias of 0: informative at standard normal
    frozen, report = tfopt.freeze(tfopt.load(_save(k, model, str(tmp_path), "model")))
    at = report.verified_at
    today = random_inputs(frozen.inputs, seed=0, batch=2, graph_def=frozen.graph_def)
    assert at.values == "standard normal" and not at.saturated and not at.saturated_before
    assert all(np.array_equal(at.feeds[n], today[n]) for n in today)
    assert "values" not in at.as_dict() and "made-up floats" not in at.summary()


def test_a_head_nothing_unsaturates_is_verified_and_said_to_be_saturated(tmp_path):
    """A step output (0/1 at every scale): verified on today's inputs, and the record says so."""
    from tfopt.verification.saturation import REAL_CHECK

    def build(t):
        x = t.compat.v1.placeholder(t.float32, (None, 5), name="x")
        t.identity(t.cast(x > -100.0, t.float32), name="step")

    from tests.helpers import graph_model

    _, report = tfopt.freeze(graph_model(build, {"x": (None, 5)}, ["step"]))
    at = report.verified_at
    assert at.values == "standard normal" and "step" in at.saturated
    assert "WARNING: outputs saturated on made-up inputs" in at.summary() and REAL_CHECK in at.summary()
    assert at.as_dict()["values"]["saturated"] == at.saturated


def test_ids_masks_and_domains_keep_their_values_on_every_rung():
    """Only unconstrained floats move: ids into a table and a value before a Log are drawn the same."""
    from tests.helpers import graph_model
    from tfopt.verification.saturation import LADDER, degenerate, scaled
    from tfopt.verification.testing import random_inputs

    def build(t):
        ids = t.compat.v1.placeholder(t.int32, (None, 4), name="ids")
        pos = t.compat.v1.placeholder(t.float32, (None, 4), name="pos")
        img = t.compat.v1.placeholder(t.float32, (None, 4), name="img")
        table = t.constant(np.arange(30, dtype=np.float32).reshape(10, 3))
        t.identity(t.reduce_sum(t.gather(table, ids), -1) + t.math.log(pos) + img, name="out")

    model = graph_model(build, {"ids": (None, 4), "pos": (None, 4), "img": (None, 4)}, ["out"])
    base = random_inputs(model.inputs, graph_def=model.graph_def)
    for rung in LADDER:
        feeds = random_inputs(model.inputs, graph_def=model.graph_def, values=rung)
        assert np.array_equal(feeds["ids"], base["ids"]) and np.array_equal(feeds["pos"], base["pos"])
        assert np.array_equal(feeds["img"], scaled(base["img"], rung))
    assert scaled(base["img"], "uniform [0, 1]").min() >= 0 and scaled(base["img"], "uniform [0, 1]").max() <= 1
    found = degenerate({"a": np.array([[1.0, 0.0], [1.0, 1e-30]], np.float32), "b": np.zeros((2, 3)),
                        "c": np.array([[0.3, 0.7], [0.3, 0.7]]), "d": np.array([[0.3], [0.9]]), "e": np.array([1, 0]),
                        "f": np.array([[0.25] * 4, [0, 0, 0, 1.0]]), "g": np.array([[0.25] * 4, [0.1, 0.2, 0.3, 0.4]]),
                        "h": np.array([[1.0], [1e-5]]), "i": np.array([[1.0], [1e-3]]),
                        "j": np.array([[0.5, 0.5], [0.5, 0.5 + 1e-6]], np.float32),
                        "k": np.array([[12.0] * 3, [-3.0] * 3])})  # one value per row, varying: information
    assert set(found) == {"a", "b", "c", "f", "h"}, found


def test_the_rung_is_used_for_the_artifact_and_recorded(tmp_path, capsys):
    """The TFLite artifact (LiteRT) is verified on the chosen rung at batch 1; manifest, report.md and
    the printed summary say which floats were made up and why."""
    import json

    from tfopt.report.console import print_convert

    k = _keras("keras3")
    k.utils.set_random_seed(3)
    path = _save(k, _model(k, "mlp", "sigmoid", seed=3, scale=300.0), str(tmp_path), "model")
    out = str(tmp_path / "out")
    result = tfopt.convert(path, out, to=["tflite"], report_runs=1)
    at = result.verified_at
    assert at.values != "standard normal" and at.shapes() == {next(iter(at.feeds)): [1, 8, 8, 3]}
    assert all(a.max_abs_err <= ARTIFACT["fp32"] for a in result.artifacts)
    with open(os.path.join(out, "manifest.json")) as f:
        assert json.load(f)["verification"]["values"]["floats"] == at.values
    for name in ("report.md", "report.html"):  # the one rendering, in both
        with open(os.path.join(out, name)) as f:
            assert f"made-up floats {at.values}" in f.read(), name
    print_convert(out, result)
    printed = capsys.readouterr().out
    assert f"made-up floats {at.values} (standard normal saturates '" in printed.splitlines()[0]


# y = sigmoid(a * sum(x^2) - b) over an image of unknown height and width: E[x^2] is 1 (standard normal),
# 1/3 (uniform [0, 1]), 0.01 (x 0.1), so the head saturates at 64x64 where it does not at 8x8.
REALISTIC = [(0.005, 7.0, "uniform [0, 1]"), (0.02, 5.0, "normal x 0.1"), (0.0001, 0.0, None)]


@pytest.mark.parametrize(("a", "b", "rung"), REALISTIC, ids=["uniform", "x0.1", "unchanged"])
def test_the_rung_is_rechecked_at_the_realistic_size(tmp_path, a, b, rung):
    """The realistic size does not inherit the search size's rung blindly: where its outputs saturate,
    the ladder is climbed again there, and the record, the summary, report.md and report.html say so."""
    from tests.helpers import graph_pb

    def build(t):
        x = t.compat.v1.placeholder(t.float32, [None, None, None, 1], name="image")
        energy = t.reduce_sum(x * x, axis=[1, 2, 3])[:, None] * t.constant([[1.0, 1.1, 1.2]])
        t.sigmoid(a * energy - b, name="y")

    pb = graph_pb(tmp_path / "energy.pb", build)
    out = str(tmp_path / "out")
    result = tfopt.convert(pb, out, to=["onnx"], outputs=["y"], report_runs=1)
    at = result.verified_at
    assert at.values == "standard normal" and at.realistic is not None and at.realistic.size >= 64
    assert at.realistic.values == (rung or "standard normal") and not at.realistic.saturated
    recorded = at.as_dict().get("realistic_values")
    assert (recorded or {}).get("floats") == rung
    words = f"at the realistic size: made-up floats {rung}"
    assert (words in at.summary()) == (rung is not None)
    for name in ("report.md", "report.html"):
        with open(os.path.join(out, name)) as f:
            assert (words in f.read()) == (rung is not None), name
