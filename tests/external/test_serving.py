"""A model with tensors outside its graph leaves tfopt as a serving SavedModel whose large tensors are
variables; a single .pb is refused with the reason; ``inspect`` says how the model is stored."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.external.conftest import THRESHOLD, tf1_checkpoint
from tfopt._tf import tf
from tfopt.conversion.pipeline import freeze_model, optimize_model, save_model
from tfopt.errors import ProtobufLimitError
from tfopt.external import write_serving_savedmodel
from tfopt.loaders.inspect_model import inspect_model
from tfopt.verification.testing import compare, random_inputs
from tfopt.verification.tolerances import FREEZE_ATOL, FREEZE_RTOL


def largest_constant(directory: str) -> int:
    """The bytes of the largest constant anywhere in ``directory``'s saved_model.pb (graph and functions)."""
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(directory, "saved_model.pb"), "rb") as f:
        proto.ParseFromString(f.read())
    graph = proto.meta_graphs[0].graph_def
    nodes = [*graph.node, *(n for fn in graph.library.function for n in fn.node_def)]
    return max(len(n.attr["value"].tensor.tensor_content) for n in nodes if n.op == "Const")


def test_serving_savedmodel_round_trips(keras_file, tmp_path):
    _, runtime, _, _ = optimize_model(keras_file, external_threshold=THRESHOLD)
    out = write_serving_savedmodel(runtime, str(tmp_path / "serving"))
    assert largest_constant(out) < THRESHOLD  # the tables are variables, not constants of the graph
    loaded = tf().saved_model.load(out)
    serve = loaded.signatures["serving_default"]
    assert sorted(serve.structured_input_signature[1]) == sorted(s.name for s in runtime.inputs)
    assert len(loaded.weights) == len(runtime.external)
    for seed in (0, 3):
        feeds = random_inputs(runtime.inputs, seed=seed, graph_def=runtime.graph_def)
        got = {k: v.numpy() for k, v in serve(**{k: tf().constant(v) for k, v in feeds.items()}).items()}
        diffs = compare(runtime.reference(feeds), got, atol=FREEZE_ATOL, rtol=FREEZE_RTOL)
        assert diffs and all(d.ok for d in diffs), diffs


def test_savedmodel_target_and_pb_refused(tf2_savedmodel, tmp_path):
    frozen, _ = freeze_model(tf2_savedmodel, external_threshold=THRESHOLD)
    with pytest.raises(ProtobufLimitError, match=r"2 GB.*--to savedmodel"):
        save_model(frozen, str(tmp_path / "model.pb"))
    with pytest.raises(ProtobufLimitError):
        save_model(frozen, str(tmp_path / "model.pbtxt"))
    assert not os.path.exists(tmp_path / "model.pb")
    written = save_model(frozen, str(tmp_path / "served"))
    with open(os.path.join(written, "assets.extra", "tfopt.json")) as f:
        assert sorted(json.load(f)["external_tensors"]) == sorted(f"{n}:0" for n in frozen.external)
    from tfopt.loaders import load

    again = load(written)
    feeds = random_inputs(frozen.inputs, seed=5, graph_def=frozen.graph_def)
    diffs = compare(frozen.reference(feeds), again.reference(feeds), atol=FREEZE_ATOL, rtol=FREEZE_RTOL)
    assert diffs and all(d.ok for d in diffs), diffs


@pytest.mark.parametrize("threshold, large", [(THRESHOLD, True), (None, False)], ids=["over", "default"])
def test_inspect_says_how_it_is_stored(tmp_path, tf2_savedmodel, threshold, large):
    prefix = tf1_checkpoint(str(tmp_path), 400, resource=False)
    for path in (tf2_savedmodel, prefix + ".meta"):
        info = inspect_model(path, external_threshold=threshold, **({"outputs": ["probs"]} if path == prefix + ".meta" else {}))
        assert ("storage" in info) == large
        if large:
            assert "outside the frozen graph" in info["storage"]["message"]
            assert "savedmodel" in info["storage"]["message"]
            assert not info["storage"]["over_limit"]


@pytest.mark.slow
def test_cli_convert_writes_savedmodel_refuses_pb(tmp_path):
    """The whole command (flag, artifact, failure record, exit 11); the API tests above are the fast proof."""
    from tests.external.conftest import Table

    module, model = Table(300, 16, seed=2), str(tmp_path / "sm")
    tf().saved_model.save(module, model, signatures={"serving_default": module.serve})
    out = tmp_path / "out"
    run = subprocess.run([sys.executable, "-m", "tfopt", "convert", model, "-o", str(out), "--to", "savedmodel,pb",
                          "--external-threshold", "4KB", "--report-runs", "1"], capture_output=True, text=True)
    assert run.returncode == 11, run.stderr
    assert "ProtobufLimitError" in run.stdout + run.stderr and "--to savedmodel" in run.stdout + run.stderr
    assert "debug reduce" not in run.stdout + run.stderr  # the size is the reason: nothing to reduce
    assert os.path.exists(out / "savedmodel" / "saved_model.pb") and not os.path.exists(out / "model.pb")
    shown = subprocess.run([sys.executable, "-m", "tfopt", "inspect", model, "--external-threshold", "4KB"],
                           capture_output=True, text=True)
    assert shown.returncode == 0 and "large model:" in shown.stdout.splitlines()[1]


def test_stored_prepared_model_references_its_files(tf2_savedmodel, tmp_path):
    """The fleet's cache stores the graphs with their external files beside them (linked, not in the
    .npz), and a read-back graph runs from the stored files after the original ones are gone."""
    import shutil

    from tfopt.conversion.stages import Prepared
    from tfopt.conversion.store import load_prepared, save_graphs
    from tfopt.runtimes.tensorflow import GraphRunner

    portable, runtime, freeze_report, optimize_report = optimize_model(tf2_savedmodel, external_threshold=THRESHOLD)
    feeds = random_inputs(portable.inputs, seed=2, graph_def=portable.graph_def)
    expected = portable.reference(feeds)
    entry = str(tmp_path / "entry")
    save_graphs(Prepared(portable, runtime, freeze_report, optimize_report, False, None,
                         freeze_report.verified_at), entry)
    assert len(os.listdir(os.path.join(entry, "external"))) == len(portable.external)  # both graphs, one file each
    assert os.path.getsize(os.path.join(entry, "graphs.npz")) < portable.external.nbytes
    shutil.rmtree(portable.external.directory)  # the preparing process's files are gone
    back = load_prepared(entry, None)
    for model in (back.portable, back.runtime):
        assert sorted(model.external) == sorted(portable.external)
        diffs = compare(expected, GraphRunner(model)(feeds), atol=FREEZE_ATOL, rtol=FREEZE_RTOL)
        assert diffs and all(d.ok for d in diffs), diffs


@pytest.mark.slow
@pytest.mark.parametrize("target", ["tflite", "onnx", "openvino"])
def test_converters_read_the_serving_savedmodel(tmp_path, target):
    """A model with external tensors reaches each converter as its serving SavedModel
    (tfopt.emitters.large; onnx: as the frozen graph itself, tests/external/test_emit.py) and the
    artifact is verified in its runtime like any other."""
    from tests.external.conftest import recommender
    from tfopt.conversion.convert import convert

    pytest.importorskip({"tflite": "ai_edge_litert", "onnx": "tf2onnx", "openvino": "openvino"}[target])
    keras_file = str(tmp_path / "rec.keras")
    recommender(500, 8, 16).save(keras_file)
    result = convert(keras_file, str(tmp_path / "out"), to=[target], quantize=["none"],
                     external_threshold=THRESHOLD, report_runs=1)
    assert not result.failed
    (artifact,) = result.artifacts
    assert artifact.format == target and os.path.exists(tmp_path / "out" / artifact.path)
