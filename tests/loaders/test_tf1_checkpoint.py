"""TF1 checkpoints: .meta / prefix / directory, stale state paths, auto outputs, old graphs."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

import tfopt
from tests.conftest import saver_predict
from tfopt._tf import tf
from tfopt.loaders.training_nodes import is_training_node
from tfopt.runtimes.tensorflow import GraphRunner

TRAINING_OPS = {"VariableV2", "VarHandleOp", "Assign", "AssignVariableOp", "ApplyAdam", "ResourceApplyAdam",
                "SaveV2", "RestoreV2", "ScalarSummary", "Switch", "Merge", "If", "StatelessIf"}


def _paths(ckpt):
    return {"meta": ckpt.meta, "prefix": ckpt.prefix, "directory": ckpt.directory}


@pytest.mark.parametrize("form", ["meta", "prefix", "directory"])
@pytest.mark.parametrize("outputs", [None, ["probs"]], ids=["auto-outputs", "explicit-outputs"])
def test_freeze_matches_saver_restore(tf1_ckpt, digits_test, form, outputs):
    x, _ = digits_test
    options = {"outputs": outputs} if outputs else {}
    frozen, report = tfopt.freeze(_paths(tf1_ckpt)[form], **options)

    got = GraphRunner(frozen)({"images": x})["probs"]
    np.testing.assert_allclose(got, saver_predict(tf1_ckpt, x), atol=1e-5, rtol=0)
    ops = {n.op for n in frozen.graph_def.node}
    assert not ops & TRAINING_OPS, f"training/control-flow ops left: {ops & TRAINING_OPS}"
    assert not [n.name for n in frozen.graph_def.node if is_training_node(n)]
    assert [s.name for s in frozen.inputs] == ["images"]
    assert [s.name for s in frozen.outputs] == ["probs"]
    assert report.bindings["is_training"] == (False, "training flag")
    assert report.verification and report.verification[0].max_abs_err <= 1e-5


def test_resource_variables_and_functional_cond(tf1_ckpt_resource, digits_test):
    x, _ = digits_test
    frozen, _ = tfopt.freeze(tf1_ckpt_resource.prefix)
    got = GraphRunner(frozen)({"images": x})["probs"]
    np.testing.assert_allclose(got, saver_predict(tf1_ckpt_resource, x), atol=1e-5, rtol=0)
    ops = {n.op for n in frozen.graph_def.node}
    assert not ops & TRAINING_OPS
    assert "ReadVariableOp" not in ops
    assert len(frozen.graph_def.library.function) == 0  # the inlined branch's functions are gone


def test_empty_prefix_files(tf1_ckpt, tmp_path, digits_test):
    """Files named `.meta`, `.index`, `.data-00000-of-00001` (saver.save(sess, dir + '/'))."""
    d = tmp_path / "bare"
    d.mkdir()
    for suffix in (".meta", ".index", ".data-00000-of-00001"):
        shutil.copy(tf1_ckpt.prefix + suffix, d / suffix)
    (d / "checkpoint").write_text('model_checkpoint_path: "/nonexistent/box/"\n')
    x, _ = digits_test
    frozen, _ = tfopt.freeze(str(d))
    np.testing.assert_allclose(GraphRunner(frozen)({"images": x})["probs"], saver_predict(tf1_ckpt, x), atol=1e-5)


def test_old_meta_graph_that_tensorflow_cannot_import(tf1_ckpt, tmp_path, digits_test):
    """Stale `_output_shapes` and a retired op in the gradient subgraph: TF's import fails, tfopt cuts them."""
    from tensorflow.core.protobuf import meta_graph_pb2

    meta = meta_graph_pb2.MetaGraphDef()
    with open(tf1_ckpt.meta, "rb") as f:
        meta.ParseFromString(f.read())
    for node in meta.graph_def.node:
        if node.name.startswith("gradients/"):
            shape = node.attr["_output_shapes"].list.shape
            del shape[:]
            shape.add().dim.extend([type(shape.add().dim.add())(size=7)] * 5)
            if node.op == "ReluGrad":
                node.op = "ReluGradV0Legacy"
    prefix = str(tmp_path / "old.ckpt")
    for suffix in (".index", ".data-00000-of-00001"):
        shutil.copy(tf1_ckpt.prefix + suffix, prefix + suffix)
    with open(prefix + ".meta", "wb") as f:
        f.write(meta.SerializeToString())

    with tf().Graph().as_default(), pytest.raises(Exception, match=r"_output_shapes|not registered"):
        tf().compat.v1.train.import_meta_graph(prefix + ".meta")
    x, _ = digits_test
    frozen, _ = tfopt.freeze(prefix)
    np.testing.assert_allclose(GraphRunner(frozen)({"images": x})["probs"], saver_predict(tf1_ckpt, x), atol=1e-5)


def test_two_float_sinks_are_both_chosen_and_listed(tf1_ckpt, tmp_path, caplog):
    """A second forward sink: both float heads are converted; the choice is not certain, so the
    candidates and their reasons are recorded and the warning names --outputs."""
    from tensorflow.core.protobuf import meta_graph_pb2

    meta = meta_graph_pb2.MetaGraphDef()
    with open(tf1_ckpt.meta, "rb") as f:
        meta.ParseFromString(f.read())
    extra = meta.graph_def.node.add(name="embedding_out", op="Identity", input=["logits"])
    extra.attr["T"].type = 1
    prefix = str(tmp_path / "two.ckpt")
    for suffix in (".index", ".data-00000-of-00001"):
        shutil.copy(tf1_ckpt.prefix + suffix, prefix + suffix)
    with open(prefix + ".meta", "wb") as f:
        f.write(meta.SerializeToString())
    with caplog.at_level("WARNING", logger="tfopt"):
        model = tfopt.load(prefix)
    assert sorted(s.name for s in model.outputs) == ["embedding_out", "probs"]
    chosen_from = model.provenance["outputs_chosen_from"]
    assert chosen_from["probs"] == "consumed by nothing (a sink of the forward graph)"  # each says why
    assert "--outputs" in caplog.text and "embedding_out" in caplog.text
    model = tfopt.load(prefix, outputs=["probs"])
    assert [s.name for s in model.outputs] == ["probs"] and "outputs_chosen_from" not in model.provenance


def test_inspect_reports_training_baggage(tf1_ckpt):
    info = tfopt.inspect(tf1_ckpt.directory)
    assert info["format"] == "tf1-checkpoint"
    assert info["training_flags"] == ["is_training"]
    assert info["output_candidates"] == ["probs"]
    assert [i["name"] for i in info["inputs"]] == ["images"]
    assert info["ops"]["ApplyAdam"] == 6 and info["training_nodes"] > 100  # one per trainable variable
    # 6 trainable + 2 moving statistics + 12 Adam slots + 2 beta powers + global_step
    assert info["variables"] == 23 and info["variable_bytes"] > 3 * 4 * (72 + 1280)
    assert os.path.samefile(info["meta"], tf1_ckpt.meta)


def test_outputs_exclude_what_only_the_training_flag_computes():
    """tf.layers BatchNorm's momentum cond has constant branches: its ``pred_id`` (Identity of the
    training flag) is a sink but no prediction (musicnn 0.1.0 lists nine of them). A sink that mixes
    the flag with real inputs stays a candidate."""
    from tfopt.loaders.training_nodes import output_candidates

    tf_ = tf()
    graph = tf_.Graph()
    with graph.as_default():
        x = tf_.compat.v1.placeholder(tf_.float32, [None, 3], name="x")
        flag = tf_.compat.v1.placeholder(tf_.bool, [], name="is_training")
        tf_.identity(x * 2.0, name="probs")
        tf_.multiply(x, tf_.cast(flag, tf_.float32), name="gated")
    graph_def = graph.as_graph_def()
    # what a TF1 cond with constant branches leaves once its state updates are gone
    pred_id = graph_def.node.add(name="momentum/cond_1/pred_id", op="Identity", input=["is_training"])
    pred_id.attr["T"].type = 10  # DT_BOOL
    assert sorted(output_candidates(graph_def)) == ["gated", "probs"]
