"""A partial result (issue 24, class 8): one requested target that cannot be built does not discard
the others. They are written and verified; the failure is recorded with its reason in the result,
``manifest.json`` and the report; the CLI exits 11; ``--all-or-nothing`` writes nothing.

The model class: a graph whose op TFLite's builtins lack and tfopt cannot lower exactly (``Erf``: the
converter refuses it without Select TF ops; ``Asin``, ``Sinh`` and ``Cosh`` are lowered since
``tfopt.emitters.tflite_lower``) while OpenVINO, ONNX and TensorFlow run it.
Numbers are compared with the original graph run by TensorFlow, within 1e-5 (fp32).
"""

from __future__ import annotations

import itertools
import json
import os

import numpy as np
import pytest

import tfopt
from tests.helpers import graph_pb
from tfopt.conversion.manifest import manifest_model
from tfopt.errors import PARTIAL_EXIT_CODE, ConversionError
from tfopt.runtimes import runner_for

ATOL = 1e-5  # fp32 artifacts of a 2-layer graph, against TensorFlow
TFLITE_LACKS = {"erf": "Erf"}  # no exact decomposition into TFLite builtins (tfopt.emitters.tflite_lower_math)


def _model(tmp_path, op: str, width: int, name: str) -> str:
    """``y = OP(tanh(x @ W)) + 0.5``; W depends on the width."""
    weights = np.random.default_rng(width).normal(scale=0.5, size=(width, width + 1)).astype(np.float32)

    def build(tf):
        x = tf.compat.v1.placeholder(tf.float32, [None, width], name=name)
        h = tf.tanh(tf.matmul(x, tf.constant(weights)))
        tf.identity(getattr(tf.math, op)(h) + 0.5, name="y")

    return graph_pb(tmp_path / f"{op}_{width}.pb", build)


def _original(path: str, feeds: dict[str, np.ndarray]) -> np.ndarray:
    """The source graph run by TensorFlow itself."""
    import tensorflow as tf

    graph_def = tf.compat.v1.GraphDef()
    with open(path, "rb") as f:
        graph_def.ParseFromString(f.read())
    with tf.Graph().as_default() as graph:
        tf.import_graph_def(graph_def, name="")
        with tf.compat.v1.Session(graph=graph) as session:
            return session.run("y:0", {f"{k}:0": v for k, v in feeds.items()})


def _assert_partial(out: str, source: str, built: list[str], op: str) -> None:
    """Only ``built`` is written, each equal to the original; manifest and report name TFLite's failure."""
    with open(os.path.join(out, "manifest.json")) as f:
        manifest = json.load(f)
    assert sorted(a["format"] for a in manifest["artifacts"]) == sorted(built)
    (failed,) = manifest["failed"]
    assert (failed["format"], failed["precision"], failed["stage"], failed["error"], failed["exit_code"]) == \
        ("tflite", "fp32", "converting", "ConversionError", ConversionError.exit_code)
    assert TFLITE_LACKS[op] in failed["reason"] and "--allow-tf-ops" in failed["reason"]
    assert "tfopt debug reduce" in failed["reason"]
    assert not any(name.endswith(".tflite") for name in os.listdir(out))
    with open(os.path.join(out, "report.json")) as f:
        assert json.load(f)["failed"] == manifest["failed"]
    with open(os.path.join(out, "report.md")) as f:
        assert "## Failed" in f.read()
    model = manifest_model(out)
    rng = np.random.default_rng(1)
    feeds = {s.name: rng.normal(size=(3, *s.shape[1:])).astype(np.float32) for s in model.inputs}
    want = _original(source, feeds)
    for artifact in manifest["artifacts"]:
        got = runner_for(artifact["format"], os.path.join(out, artifact["path"]), model)(feeds)
        np.testing.assert_allclose(got["y"], want, atol=ATOL, rtol=0, err_msg=artifact["format"])


ORDERS = list(itertools.permutations(["tflite", "openvino", "pb"]))


@pytest.mark.parametrize("order", ORDERS, ids=["-".join(o) for o in ORDERS])
def test_api_writes_every_target_that_builds(order, tmp_path):
    index = ORDERS.index(order)
    op, width, name = list(TFLITE_LACKS)[index % len(TFLITE_LACKS)], 3 + index, f"in_{index}"
    source = _model(tmp_path, op, width, name)
    out = str(tmp_path / "out")
    result = tfopt.convert(source, out, to=list(order), report_runs=1)
    assert result.partial and [(f.format, f.precision) for f in result.failed] == [("tflite", "fp32")]
    assert [a.format for a in result.artifacts] == [t for t in order if t != "tflite"]  # in the asked order
    _assert_partial(out, source, [t for t in order if t != "tflite"], op)


@pytest.mark.parametrize("order", [["pb", "openvino", "tflite"], ["tflite", "pb"]], ids=["tflite-last", "tflite-first"])
def test_api_all_or_nothing_writes_nothing(order, tmp_path):
    source = _model(tmp_path, "erf", 4, "x")
    with pytest.raises(ConversionError, match=r"Erf.*--allow-tf-ops"):
        tfopt.convert(source, str(tmp_path / "out"), to=order, all_or_nothing=True, report_runs=1)
    assert not (tmp_path / "out").exists()


def test_api_nothing_built_raises_the_failure(tmp_path):
    source = _model(tmp_path, "erf", 3, "x")
    with pytest.raises(ConversionError, match="Erf") as caught:
        tfopt.convert(source, str(tmp_path / "out"), to=["tflite"])
    assert caught.value.exit_code == ConversionError.exit_code and not (tmp_path / "out").exists()


@pytest.mark.parametrize("targets", ["tflite,onnx,openvino", "openvino,tflite"], ids=["issue-command", "two"])
def test_cli_exits_11_with_the_others_written(targets, tmp_path, capsys):
    from tfopt.cli import main

    source = _model(tmp_path, "erf", 5, "features")
    out = str(tmp_path / "out")
    assert main(["convert", source, "-o", out, "--to", targets, "--report-runs", "1"]) == PARTIAL_EXIT_CODE == 11
    captured = capsys.readouterr()
    assert "FAILED   tflite fp32" in captured.out and "Erf" in captured.out
    assert "1 of" in captured.err and "tflite fp32" in captured.err
    _assert_partial(out, source, [t for t in targets.split(",") if t != "tflite"], "erf")


def test_cli_all_or_nothing_exits_with_the_failure_and_writes_nothing(tmp_path, capsys):
    from tfopt.cli import main

    source = _model(tmp_path, "erf", 6, "x")
    out = tmp_path / "out"
    code = main(["convert", source, "-o", str(out), "--to", "openvino,tflite", "--all-or-nothing"])
    assert code == ConversionError.exit_code and not out.exists()
    assert "Erf" in capsys.readouterr().err


@pytest.mark.parametrize("failing", [("tflite", "int8"), ("onnx", "int8")])
def test_a_failed_artifacts_layer_table_goes_with_it(tmp_path, failing):
    """``layers.json`` (per-layer int8 errors, layers kept float) describes artifacts that exist: the
    failure of one (its file removed) drops its entries, the other target's stay."""
    from tfopt.conversion.parts import ConvertResult
    from tfopt.conversion.stages import plan, record_failure
    from tfopt.errors import VerificationError

    pb = _model(tmp_path, "tanh", 3, "x")
    p = plan(pb, str(tmp_path / "out"), to=["tflite", "onnx"])
    result = ConvertResult(str(tmp_path / "out"))
    for target in ("tflite", "onnx"):
        result.layer_errors[f"{target}/int8"] = [{"layer": f"{target}_dense", "output_error": 0.5}]
        result.keep_float[f"{target}/int8"] = [f"{target}_dense"]
    artifact = tmp_path / "artifact.bin"
    artifact.write_bytes(b"x")
    record_failure(p, result, *failing, "verifying", VerificationError("differs"), str(artifact), tfopt.load(pb))
    other = "onnx" if failing[0] == "tflite" else "tflite"
    assert not artifact.exists() and [(f.format, f.precision) for f in result.failed] == [failing]
    assert list(result.layer_errors) == [f"{other}/int8"] and list(result.keep_float) == [f"{other}/int8"]
