"""TF2 SavedModels whose object graph TensorFlow 2 refuses while their signature's graph is fine.

The class: a ``tf.function`` of the object graph (not the serving signature) takes or returns a
``CompositeTensor`` whose ``TypeSpec`` is registered in the writer's Python only (a TensorFlow
Probability distribution, a TF-GNN ``GraphTensor``). ``tf.saved_model.load`` decodes every
function's structure and stops ("has not been registered"). The SavedModels are written in a child
process, as a writer's machine would, so this process never registers the type; tfopt loads their
MetaGraph's signatures, and every target matches the writer's own outputs.

A refusal the MetaGraph cannot get past either is a typed error naming the file: an asset (a lookup
table's vocabulary) missing from ``assets/``, an op this TensorFlow does not have.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import tfopt
from tests.loaders.registered_types import masked_type_source
from tfopt.errors import ModelFormatError

TOLERANCE = 1e-5  # fp32 everywhere: the same matmuls and tanh, summed in another order
WHERE = ("output", "input")  # where the unregistered TypeSpec appears in the object graph's function

WRITER = "import sys\nimport numpy as np\n" + masked_type_source('"writer_only"') + textwrap.dedent('''
    class Model(tf.Module):
        def __init__(self, where):
            rng = np.random.default_rng(0)
            self.w1 = tf.Variable(rng.normal(size=(6, 8)).astype(np.float32))
            self.b1 = tf.Variable(rng.normal(size=8).astype(np.float32))
            self.w2 = tf.Variable(rng.normal(size=(8, 3)).astype(np.float32) * 0.5)
            spec = MaskedSpec([None, 6])
            if where == "output":
                self.masked = tf.function(lambda x: Masked(x, x > 0), input_signature=[tf.TensorSpec([None, 6])])
            else:
                self.masked = tf.function(lambda m: tf.where(m.mask, m.values, 0.0), input_signature=[spec])

        @tf.function(input_signature=[tf.TensorSpec([None, 6], tf.float32)])
        def serve(self, features):
            hidden = tf.tanh(tf.matmul(features, self.w1) + self.b1)
            return {"scores": tf.nn.softmax(tf.matmul(hidden, self.w2)), "hidden": hidden}

    out, x = sys.argv[1], np.load(sys.argv[2])
    for where in sys.argv[3:]:
        model = Model(where)
        tf.saved_model.save(model, f"{out}/{where}", signatures={"serving_default": model.serve})
        np.savez(f"{out}/{where}.npz", **{k: v.numpy() for k, v in model.serve(tf.constant(x)).items()})
''')


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """The SavedModels (one per place of the TypeSpec) and the writer's outputs on ``x``."""
    root = tmp_path_factory.mktemp("tf2_metagraph")
    x = np.random.default_rng(1).normal(size=(5, 6)).astype(np.float32)
    np.save(root / "x.npy", x)
    (root / "writer.py").write_text(WRITER)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    subprocess.run([sys.executable, str(root / "writer.py"), str(root), str(root / "x.npy"), *WHERE],
                   check=True, env=env, capture_output=True, timeout=300)
    return str(root), x


@pytest.fixture(params=WHERE)
def saved(request, written):
    root, x = written
    return os.path.join(root, request.param), x, dict(np.load(os.path.join(root, f"{request.param}.npz")))


def test_tf2_refuses_it(saved):
    import tensorflow as tf

    with pytest.raises(ValueError, match=r"writer_only\.MaskedSpec' has not been registered"):  # the premise
        tf.saved_model.load(saved[0])


def test_loads_the_signature_from_the_metagraph(saved):
    path, x, expected = saved
    model = tfopt.load(path)
    assert model.provenance["format"] == "savedmodel-metagraph"
    assert "has not been registered" in model.provenance["tf2_refused"]
    assert model.provenance["signatures"] == ["serving_default"]  # the MetaGraph's initialiser is no signature
    assert [s.name for s in model.inputs] == ["features"]
    assert [s.name for s in model.outputs] == ["hidden", "scores"]
    got = model.reference({"features": x})
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], atol=1e-6, rtol=0, err_msg=name)


def test_converts_to_every_target_matching_the_writer(saved, tmp_path):
    path, x, expected = saved
    out = str(tmp_path / "out")
    result = tfopt.convert(path, out, to=["tflite", "onnx", "openvino"], quantize=["fp32"], report_runs=1)
    assert not result.failed, [f.reason for f in result.failed]
    assert sorted(a["format"] for a in result.report["artifacts"]) == ["onnx", "openvino", "tflite"]
    for artifact in result.report["artifacts"]:
        assert artifact["fidelity"]["max_abs_err"] <= TOLERANCE, artifact
    from tfopt.conversion.manifest import manifest_model
    from tfopt.runtimes import runner_for

    loaded = manifest_model(out)
    for artifact in result.artifacts:  # every output of every file against the writer's own run
        runner = runner_for(artifact.format, os.path.join(out, artifact.path), loaded)
        try:
            got = runner({"features": x})
        finally:
            getattr(runner, "close", lambda: None)()
        for name in expected:
            np.testing.assert_allclose(got[name], expected[name], atol=TOLERANCE, rtol=TOLERANCE,
                                       err_msg=f"{artifact.format}: {name}")


def test_a_missing_signature_is_named(saved):
    from tfopt.errors import OptionError

    with pytest.raises(OptionError, match=r"no signature 'predict'.*available: serving_default$"):
        tfopt.load(saved[0], signature="predict")


def test_a_missing_variables_file_is_named(written, tmp_path):
    broken = str(tmp_path / "broken")
    shutil.copytree(os.path.join(written[0], "output"), broken)
    for name in os.listdir(os.path.join(broken, "variables")):
        if name.startswith("variables.data-"):
            os.remove(os.path.join(broken, "variables", name))
    with pytest.raises(ModelFormatError, match=r"variables\.data-00000-of-00001: checkpoint data file is missing"):
        tfopt.load(broken)


def _vocabulary_model(path: str, vocabulary: str) -> None:
    import tensorflow as tf

    with open(vocabulary, "w", encoding="utf-8") as f:
        f.write("red\ngreen\nblue\n")
    init = tf.lookup.TextFileInitializer(vocabulary, tf.string, tf.lookup.TextFileIndex.WHOLE_LINE,
                                         tf.int64, tf.lookup.TextFileIndex.LINE_NUMBER)
    module = tf.Module()
    module.table = tf.lookup.StaticHashTable(init, -1)
    module.serve = tf.function(lambda words: {"ids": module.table.lookup(words)},
                               input_signature=[tf.TensorSpec([None], tf.string)])
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve})


def test_a_missing_vocabulary_asset_is_named(tmp_path):
    path = str(tmp_path / "lookup")
    _vocabulary_model(path, str(tmp_path / "colours.txt"))
    shutil.rmtree(os.path.join(path, "assets"))  # copied without its assets/
    with pytest.raises(ModelFormatError, match=r"lookup/assets/colours\.txt: asset file missing.*assets/ included"):
        tfopt.load(path)


def _rename_op(path: str, op: str, to: str) -> None:
    """A custom op registered by a library the writer imported: the file is the writer's, one op type
    renamed to one no TensorFlow has."""
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as f:
        proto.ParseFromString(f.read())
    renamed = 0
    for function in proto.meta_graphs[0].graph_def.library.function:
        for node in function.node_def:
            if node.op == op:
                node.op, renamed = to, renamed + 1
    assert renamed
    with open(os.path.join(path, "saved_model.pb"), "wb") as f:
        f.write(proto.SerializeToString())


def test_an_op_this_tensorflow_lacks_is_named(tmp_path):
    path = str(tmp_path / "custom_op")
    _vocabulary_model(path, str(tmp_path / "colours.txt"))
    _rename_op(path, "LookupTableFindV2", "WriterOnlyLookup")  # in the serving signature's function
    with pytest.raises(ModelFormatError, match=r"uses op 'WriterOnlyLookup'.*Install that library"):
        tfopt.load(path)


@pytest.mark.parametrize("op", ["Sqrt", "StringSplitV2"])
def test_an_op_only_other_functions_use_is_left_out(tmp_path, op):
    """The op this TensorFlow lacks is in a function of the object graph no signature calls (a
    preprocessing function): the library is cut to what the signature reaches, and every target
    matches the writer's own outputs."""
    import tensorflow as tf

    rng = np.random.default_rng(2)
    module = tf.Module()
    module.w = tf.Variable(rng.normal(size=(6, 4)).astype(np.float32))
    module.serve = tf.function(lambda features: {"y": tf.nn.sigmoid(tf.matmul(features, module.w))},
                               input_signature=[tf.TensorSpec([None, 6], tf.float32)])
    module.other = tf.function(lambda x: tf.sqrt(tf.abs(x)), input_signature=[tf.TensorSpec([None, 6], tf.float32)]) \
        if op == "Sqrt" else tf.function(lambda s: tf.strings.split(s).to_tensor(),
                                         input_signature=[tf.TensorSpec([None], tf.string)])
    path = str(tmp_path / "model")
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve})
    x = rng.normal(size=(3, 6)).astype(np.float32)
    expected = module.serve(tf.constant(x))["y"].numpy()
    _rename_op(path, op, "WriterOnlyOp")
    with pytest.raises(Exception, match="Op type not registered 'WriterOnlyOp'"):  # the premise
        tf.saved_model.load(path)
    out = str(tmp_path / "out")
    result = tfopt.convert(path, out, to=["tflite", "onnx", "openvino"], quantize=["fp32"], report_runs=1)
    assert not result.failed, [f.reason for f in result.failed]
    assert tfopt.load(path).provenance["format"] == "savedmodel-metagraph"
    from tfopt.conversion.manifest import manifest_model
    from tfopt.runtimes import runner_for

    loaded = manifest_model(out)
    for artifact in result.artifacts:
        runner = runner_for(artifact.format, os.path.join(out, artifact.path), loaded)
        try:
            got = runner({"features": x})["y"]
        finally:
            getattr(runner, "close", lambda: None)()
        np.testing.assert_allclose(got, expected, atol=TOLERANCE, rtol=TOLERANCE, err_msg=artifact.format)


def test_variables_past_the_threshold_stay_outside_the_graph(saved):
    """The MetaGraph's variables at or past ``--external-threshold`` (and whatever a GraphDef under 2 GB cannot
    hold) are memory-mapped files, each an ``ImmutableConst`` once frozen, as on every other load path: a
    variable-heavy SavedModel TensorFlow 2 refuses over 2 GB is converted through :mod:`tfopt.external`.
    The threshold stands for the 2 GB here (the same choice, ``choose_external``); the slow test is the real size."""
    import tensorflow as tf

    from tfopt.graph import op_histogram

    path, x, expected = saved
    frozen, _ = tfopt.freeze(path, external_threshold=100)  # w1 is 192 bytes; w2 (96) and b1 (32) stay inside
    ops = op_histogram(frozen.graph_def)
    assert ops.get("ImmutableConst") == 1 and "VarHandleOp" not in ops, ops
    assert [frozen.external[name].shape for name in frozen.external] == [(6, 8)]
    with tf.Graph().as_default() as graph:
        tf.graph_util.import_graph_def(frozen.graph_def, name="")
        with tf.compat.v1.Session(graph=graph) as session:
            got = session.run({s.name: s.tensor for s in frozen.outputs}, {frozen.inputs[0].tensor: x})
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], atol=TOLERANCE, rtol=TOLERANCE, err_msg=name)


BIG_WRITER = "import sys\nimport numpy as np\n" + masked_type_source('"writer_only_big"') + textwrap.dedent('''
    class Model(tf.Module):
        def __init__(self, rows):
            self.table = tf.Variable(tf.random.stateless_uniform([rows, 1024], seed=[1, 2]))
            self.w = tf.Variable(tf.random.stateless_normal([1024, 4], seed=[3, 4]))
            self.masked = tf.function(lambda m: tf.where(m.mask, m.values, 0.0), input_signature=[MaskedSpec([None, 4])])

        @tf.function(input_signature=[tf.TensorSpec([None], tf.int32)])
        def serve(self, ids):
            return {"y": tf.matmul(tf.gather(self.table, ids), self.w)}

    model, ids = Model(int(sys.argv[2])), np.load(sys.argv[3])
    tf.saved_model.save(model, sys.argv[1], signatures={"serving_default": model.serve})
    np.save(sys.argv[1] + ".npy", model.serve(tf.constant(ids))["y"].numpy())
''')


@pytest.mark.slow  # writes and converts a 2.25 GB table: 200 s on 2 cores (366 s with the machine busy), ~7 GB in this process
def test_a_refused_savedmodel_over_2gb_converts(tmp_path):
    """550,000 x 1,024 float32 (2.25 GB) in a SavedModel TensorFlow 2 refuses: before, freezing made the table a
    constant and stopped ("Cannot create a tensor proto whose content is larger than 2GB"); now it stays in its
    file, and the TFLite artifact (from the serving SavedModel) matches the writer's outputs."""
    rows = 550_000
    ids = np.array([0, 5, 123_456, rows - 1], np.int32)
    np.save(tmp_path / "ids.npy", ids)
    (tmp_path / "writer.py").write_text(BIG_WRITER)
    path = str(tmp_path / "big")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    subprocess.run([sys.executable, str(tmp_path / "writer.py"), path, str(rows), str(tmp_path / "ids.npy")],
                   check=True, env=env, capture_output=True, timeout=900)
    out = str(tmp_path / "out")
    result = tfopt.convert(path, out, to=["tflite"], quantize=["fp32"], report_runs=1)
    assert not result.failed, [f.reason for f in result.failed]
    assert result.report["artifacts"][0]["fidelity"]["max_abs_err"] <= TOLERANCE
    from tfopt.conversion.manifest import manifest_model
    from tfopt.runtimes import runner_for

    runner = runner_for("tflite", os.path.join(out, result.artifacts[0].path), manifest_model(out))
    try:
        got = runner({"ids": ids})["y"]
    finally:
        runner.close()
    np.testing.assert_allclose(got, np.load(path + ".npy"), atol=TOLERANCE, rtol=TOLERANCE)
