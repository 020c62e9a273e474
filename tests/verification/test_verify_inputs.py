"""Verification inputs that fit the model: made-up sizes the original model answers, --verify-shape,
and errors that blame the inputs, not freezing or a converter, when it answers nothing."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import tfopt
from tfopt.graph import TensorSpec
from tfopt.verification.testing import assert_equivalent, compare


def _cropping(crop):
    """SpliceAI's shape: dilated residual 1-D convs over (batch, length, 4), then Cropping1D of
    ``crop`` each side - empty output for any length <= 2 * crop."""
    import keras

    x = keras.Input((None, 4), name="seq")
    h = keras.layers.Conv1D(8, 3, dilation_rate=4, padding="same", activation="relu")(x)
    h = keras.layers.Add()([h, keras.layers.Conv1D(8, 1)(x)])
    h = keras.layers.Conv1D(8, 3, dilation_rate=8, padding="same")(h)
    h = keras.layers.Cropping1D(crop)(h)
    return keras.Model(x, keras.layers.Conv1D(3, 1, activation="softmax")(h))


def _audio():
    """(batch, 40 mel bands, time, 1), six 1x2 MaxPools on time, global average: NaN below 64 frames."""
    import keras

    x = keras.Input((40, None, 1), name="spec")
    h = x
    for _ in range(6):
        h = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(h)
        h = keras.layers.MaxPooling2D((1, 2))(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    return keras.Model(x, keras.layers.Dense(5)(h))


MODELS = {"cropping": (lambda: _cropping(100), "seq", [1, 256, 4]),
          "audio-pooling": (_audio, "spec", [1, 40, 64, 1])}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    import keras

    root = tmp_path_factory.mktemp("dyn")
    paths = {}
    for name, (build, _, _) in {**MODELS, "never": (lambda: _cropping(9000), "seq", None)}.items():
        keras.utils.set_random_seed(0)
        build().export(str(root / name), verbose=False)
        paths[name] = str(root / name)
    return paths


@pytest.mark.parametrize("name", list(MODELS))
def test_convert_searches_a_length_the_model_answers(name, saved, tmp_path):
    import importlib.util

    if not all(importlib.util.find_spec(m) for m in ("tf2onnx", "openvino")):  # not imported: see test_converting
        pytest.skip("the onnx and openvino extras are needed")
    _, input_name, shape = MODELS[name]
    out = str(tmp_path / "out")
    result = tfopt.convert(saved[name], out, to=["tflite", "onnx", "openvino"], report_runs=1)
    assert result.verified_at.shapes() == {input_name: shape}
    for artifact in result.artifacts:
        assert artifact.max_abs_err <= 1e-4, artifact
    with open(os.path.join(out, "manifest.json")) as f:
        manifest = json.load(f)
    assert manifest["verification"]["shapes"] == {input_name: shape}
    assert manifest["verification"]["source"] == "made up" and manifest["verification"]["tried"]
    assert manifest["inputs"][0]["shape"].count(None) == 2  # the artifacts keep their dynamic dims
    with open(os.path.join(out, "report.json")) as f:
        assert json.load(f)["verification"]["shapes"] == {input_name: shape}


def test_freeze_prints_the_shape_it_verified_at(saved, tmp_path, capsys):
    from tfopt.cli import main

    assert main(["freeze", saved["cropping"], "-o", str(tmp_path / "f.pb")]) == 0
    assert "verified at seq:2x256x4 (made up inputs)" in capsys.readouterr().out


def test_verify_shape_is_used_as_given(saved):
    _, report = tfopt.freeze(saved["cropping"], verify_shape={"seq": [1, 10100, 4]})
    assert report.verified_at.shapes() == {"seq": [1, 10100, 4]} and report.verified_at.source == "verify-shape"
    _, _, report, opt_report = tfopt.optimize(saved["cropping"], verify_shape={"seq": [1, 300, 4]})
    assert report.verified_at.describe() == "seq:1x300x4" and opt_report.verification["portable"]


def test_verify_shape_the_original_cannot_answer_is_an_input_problem(saved):
    with pytest.raises(tfopt.OptionError, match=r"--verify-shape: the original model's output .* is empty "
                                                 r"\(shape \(1, 0, \d+\)\) at seq:1x100x4"):
        tfopt.freeze(saved["cropping"], verify_shape={"seq": [1, 100, 4]})
    with pytest.raises(tfopt.OptionError, match=r"does not fit the input's shape \?x\?x4"):
        tfopt.freeze(saved["cropping"], verify_shape={"seq": [1, 100, 3]})


def test_no_usable_size_names_the_input_and_the_option(saved):
    with pytest.raises(tfopt.VerificationError) as err:
        tfopt.freeze(saved["never"])
    message = str(err.value)
    assert "not freezing or conversion" in message and "--verify-shape seq:2xNx4" in message
    assert "is empty" in message and "seq:2x16384x4" in message


def test_calibration_data_comes_before_made_up_inputs(saved, tmp_path):
    calib = str(tmp_path / "calib.npz")
    np.savez(calib, spec=np.random.default_rng(0).normal(size=(3, 40, 128, 1)).astype(np.float32))
    result = tfopt.convert(saved["audio-pooling"], str(tmp_path / "out"), to=["tflite"], calibration=calib,
                           report_runs=1)
    assert result.freeze_report.verified_at.source == "calibration"
    assert result.verified_at.shapes() == {"spec": [3, 40, 128, 1]}

    from tfopt.report.build import verify_outdir

    # 8 frames: the original itself answers NaN (Eigen) or refuses to pool (oneDNN): the data is at fault
    short = str(tmp_path / "short.npz")
    np.savez(short, spec=np.ones((2, 40, 8, 1), np.float32), labels=np.zeros(2, np.int64))
    with pytest.raises(tfopt.OptionError, match=r"--eval-data .*short.npz: the original model('s output .* holds "
                                                r"NaN| does not run on these inputs \(spec:1x40x8x1\))"):
        verify_outdir(str(tmp_path / "out"), saved["audio-pooling"], eval_data=short, runs=1)


def test_a_comparison_of_empty_outputs_is_not_a_pass():
    empty = {"y": np.zeros((1, 0, 3), np.float32)}
    assert not compare(empty, empty)[0].ok
    with pytest.raises(tfopt.VerificationError, match="nothing was compared"):
        assert_equivalent(empty, empty)


def test_random_inputs_take_explicit_shapes():
    from tfopt.verification.testing import random_inputs

    spec = TensorSpec("x", "x:0", "float32", (None, None, 4))
    assert random_inputs([spec], shapes={"x": (1, 5, 4)})["x"].shape == (1, 5, 4)
    assert random_inputs([spec], dynamic_dim=16)["x"].shape == (2, 16, 4)


def test_errors_name_the_stage_once_and_keep_their_class(tmp_path):
    from tfopt.errors import GraphError, OptionError, stage

    with pytest.raises(tfopt.ModelNotFoundError, match=r"^loading: .*nope"):
        tfopt.freeze(str(tmp_path / "nope"))
    with pytest.raises(GraphError, match=r"^freezing: placeholder 'p'") as err, stage("converting"), stage("freezing"):
        raise GraphError("placeholder 'p' is neither an input nor bound")
    assert err.value.exit_code == 6
    # an option is at fault, whatever stage found it
    with pytest.raises(OptionError, match=r"^--verify-shape x"), stage("freezing"):
        raise OptionError("--verify-shape x: not an input")


def test_float_ids_into_a_keras2_embedding_are_whole_numbers_inside_the_table(tmp_path):
    """Keras 2 declared an Embedding's input float32 and casts it (shakkala's GRU models): made-up
    standard-normal floats would be negative ids the reference run's gather rejects."""
    import tf_keras

    ids = tf_keras.Input((6,), dtype="float32", name="ids")
    model = tf_keras.Model(ids, tf_keras.layers.Flatten()(tf_keras.layers.Embedding(3, 2)(ids)))
    model.save(tmp_path / "emb.h5")
    _, report = tfopt.freeze(str(tmp_path / "emb.h5"))
    assert report.verified_at.source == "made up"
    feeds = report.verified_at.feeds["ids"]
    assert feeds.dtype == np.float32 and np.array_equal(feeds, np.round(feeds)) and 0 <= feeds.min() <= feeds.max() < 3
    assert all(d.max_abs_err == 0 for d in report.verification)
