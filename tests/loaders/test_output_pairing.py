"""Multi-output models pair every output with its own name, whatever order the names come in.

``tf.function`` flattens a returned dict by sorted key while a Keras model lists its outputs in
its own order: a model whose output names are not sorted (``['b', 'a']``) used to get its outputs
swapped. Generated here: 1-5 heads of distinct widths, names in a seeded random order, from Keras 3,
Keras 2 (tf_keras) and a SavedModel with a dict signature; each output is checked by value against
the original's own head of that name (computed without tfopt's pairing).
"""

from __future__ import annotations

import os
import string

import numpy as np
import pytest

import tfopt
from tfopt._tf import tf
from tfopt.conversion.manifest import manifest_model
from tfopt.runtimes import runner_for
from tfopt.runtimes.tensorflow import GraphRunner

FEATURES = 4


def _heads(n: int, seed: int) -> list[tuple[str, int]]:
    """``n`` (name, width) pairs: distinct widths, names in an order that is never sorted (n > 1)."""
    rng = np.random.default_rng(seed)
    names = [str(c) for c in rng.choice(list(string.ascii_lowercase), n, replace=False)]
    if n > 1 and names == sorted(names):
        names.reverse()
    widths = [int(w) for w in rng.permutation(np.arange(2, 2 + 2 * n, 2))]
    return list(zip(names, widths))


def _case_id(flavour: str, n: int, seed: int) -> str:
    return f"{flavour}-{n}out-" + "_".join(f"{name}{w}" for name, w in _heads(n, seed))


def _keras_model(k, heads, *, as_dict=False):
    x = k.Input((FEATURES,), name="x")
    hidden = k.layers.Dense(6, activation="tanh", name="trunk")(x)
    outputs = [k.layers.Dense(w, name=name)(hidden) for name, w in heads]
    return k.Model(x, dict(zip([name for name, _ in heads], outputs)) if as_dict else outputs)


def _keras_file(flavour, heads, directory):
    """Save the model; return the path and ``expect(x) -> {name: array}`` computed head by head."""
    if flavour.startswith("keras3"):
        import keras as k
        path = os.path.join(directory, "heads.keras")
    else:
        import tf_keras as k
        path = os.path.join(directory, "heads.h5")
    model = _keras_model(k, heads, as_dict=flavour.endswith("dict"))
    model.save(path)
    # One sub-model per head, selected by its layer's name: independent of any output ordering.
    single = {name: k.Model(model.inputs, model.get_layer(name).output) for name, _ in heads}
    return path, lambda x: {name: np.asarray(m(x, training=False)) for name, m in single.items()}


def _savedmodel(heads, directory):
    from tests.model_fns import NamedHeads

    module = NamedHeads(heads, seed=len(heads))
    path = os.path.join(directory, "sm")
    tf().saved_model.save(module, path, signatures=module.__call__)
    weights = {name: v.numpy() for name, v in module.heads.items()}
    return path, lambda x: {name: x @ w for name, w in weights.items()}


def _build(flavour, n, seed, directory):
    heads = _heads(n, seed)
    return _savedmodel(heads, directory) if flavour == "savedmodel" else _keras_file(flavour, heads, directory)


def _assert_by_name(got, expected, atol, where):
    assert set(got) == set(expected), where
    for name, want in expected.items():
        assert got[name].shape == want.shape, f"{where}: output '{name}'"
        np.testing.assert_allclose(got[name], want, atol=atol, rtol=0, err_msg=f"{where}: output '{name}'")


FREEZE_CASES = [(f, n, seed) for f in ("keras3", "keras2", "savedmodel") for n in (1, 2, 3, 5) for seed in (n, 10 + n)
                if not (n == 1 and seed > 10)] + [("keras3-dict", n, 20 + n) for n in (2, 4)]


@pytest.mark.parametrize(("flavour", "n", "seed"), FREEZE_CASES,
                         ids=[_case_id(*c) for c in FREEZE_CASES])
def test_frozen_outputs_carry_their_own_names(tmp_path, flavour, n, seed):
    path, expect = _build(flavour, n, seed, str(tmp_path))
    frozen, _ = tfopt.freeze(path)
    x = np.random.default_rng(seed).standard_normal((3, FEATURES)).astype(np.float32)
    widths = dict(_heads(n, seed))
    assert {s.name: s.shape[-1] for s in frozen.outputs} == widths  # each spec describes its own tensor
    _assert_by_name(GraphRunner(frozen)({"x": x}), expect(x), 1e-5, "frozen graph")


def test_tf2_checkpoint_module_heads_keep_their_names(tmp_path):
    """The issue's heads N, D, S (sorted: D, N, S) from a tf.Module restored from an object checkpoint."""
    from tests.model_fns import ISSUE_HEADS, NamedHeads

    trained = NamedHeads(ISSUE_HEADS, seed=5)  # named_heads() builds seed 0: only a real restore matches
    prefix = tf().train.Checkpoint(model=trained).save(str(tmp_path / "ckpt"))
    frozen, _ = tfopt.freeze(prefix, model_fn="tests.model_fns:named_heads")
    assert [s.name for s in frozen.outputs] == [name for name, _ in ISSUE_HEADS]
    x = np.random.default_rng(0).standard_normal((2, FEATURES)).astype(np.float32)
    expected = {name: x @ v.numpy() for name, v in trained.heads.items()}
    _assert_by_name(GraphRunner(frozen)({"x": x}), expected, 1e-5, "frozen graph")


E2E_CASES = [("keras2", 3, 7), ("savedmodel", 4, 5)]


@pytest.mark.slow
@pytest.mark.parametrize(("flavour", "n", "seed"), E2E_CASES, ids=[_case_id(*c) for c in E2E_CASES])
def test_every_target_pairs_outputs_by_name(tmp_path, flavour, n, seed):
    """Through every target, each artifact's output of a name equals the original head of that name."""
    path, expect = _build(flavour, n, seed, str(tmp_path))
    out = str(tmp_path / "out")
    result = tfopt.convert(path, out, to=["tflite", "onnx", "openvino"])
    model = manifest_model(out)
    x = np.random.default_rng(seed).standard_normal((2, FEATURES)).astype(np.float32)
    assert {a.format for a in result.artifacts} >= {"tflite", "onnx", "openvino"}
    for artifact in result.artifacts:
        runner = runner_for(artifact.format, os.path.join(out, artifact.path), model)
        try:
            got = runner({"x": x})
        finally:
            runner.close()
        _assert_by_name(got, expect(x), 1e-4, f"{artifact.format} {artifact.precision}")
