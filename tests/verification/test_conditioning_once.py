"""The original's self-disagreement is measured once per set of made-up inputs in a conversion (issue 24, V2):
every artifact's verification and report check that fails on them asks it, and the answer is the same original's
on the same feeds. Recorded and shown: an artifact or a stage verified at a smaller scale says so in
manifest.json, report.json and report.md."""

from __future__ import annotations

import hashlib
import json
from collections import Counter

import numpy as np
import pytest

import tfopt
from tests.verification.test_conditioning import _logistic
from tfopt.verification import self_disagreement
from tfopt.verification.tolerances import ARTIFACT


def _key(feeds) -> str:
    digest = hashlib.sha1()
    for name in sorted(feeds):
        digest.update(name.encode() + np.ascontiguousarray(feeds[name]).tobytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """gain 1.5 (chaotic at standard normal, a fixed point at normal x 0.1) to two targets, every measurement of
    the original's self-disagreement counted by the feeds it was measured on."""
    measured: Counter[str] = Counter()
    measure = self_disagreement.disagreement

    def counted(run, feeds, *args, **kwargs):
        measured[_key(feeds)] += 1
        return measure(run, feeds, *args, **kwargs)

    tmp = tmp_path_factory.mktemp("once")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(self_disagreement, "disagreement", counted)
        result = tfopt.convert(_logistic(str(tmp / "m.pb"), 1.5), str(tmp / "out"), to=["onnx", "tflite"])
    return result, tmp / "out", measured


def test_measured_once_per_input_set(converted):
    result, _, measured = converted
    assert not result.failed and len(result.artifacts) == 2
    assert measured and max(measured.values()) == 1, measured  # 2 artifacts x (verification + report) before


def test_each_artifact_recorded_and_shown(converted):
    """Each artifact, verified at a smaller scale at conversion (manifest.json) or by the report (report.json's row),
    carries the record, and report.md shows its note."""
    _, out, _ = converted
    manifest = json.loads((out / "manifest.json").read_text())
    rows = {row["path"]: row for row in json.loads((out / "report.json").read_text())["artifacts"]}
    text = (out / "report.md").read_text()
    assert "## Ill-conditioned original" in text
    for artifact in manifest["artifacts"]:
        record = artifact["conditioning"]  # the report's own check recorded in the manifest too
        assert rows[artifact["path"]]["conditioning"] == record
        assert record["self_disagreement"] > ARTIFACT["fp32"] >= record["scaled_err"]
        assert f"- {artifact['format']}/{artifact['precision']}: {record['note']}" in text


def test_each_note_printed_in_the_summary(converted, capsys):
    """What ``tfopt convert`` prints carries the same notes as report.md (a user reading only the console
    learns which artifacts were verified at a smaller scale, and why)."""
    from tfopt.report.console import print_report

    result, out, _ = converted
    print_report(result.report)
    printed = capsys.readouterr().out
    for artifact in json.loads((out / "manifest.json").read_text())["artifacts"]:
        note = artifact["conditioning"]["note"]
        assert f"note     {artifact['format']}/{artifact['precision']}: {note}" in printed, printed
