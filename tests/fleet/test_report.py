"""The fleet report: rows worst first, statuses, JUnit that parses with the right counts, a
self-contained HTML page, the markdown table, fleet.json round trip, exit codes.

Built from synthetic FleetResults whose model reports have report.json's shape (one test converts a
real model for a real row)."""

from __future__ import annotations

import copy
import json
import math
import os
import random
import re
import xml.etree.ElementTree as ET

import pytest

from tfopt.fleet.report import exit_code, read_fleet_report, write_fleet_report
from tfopt.fleet.result import FleetResult, ModelRecord, TaskRecord
from tfopt.fleet.rows import rows, summary
from tfopt.report.svg import SCRIPT

LOG_TAIL = ["Fatal Python error: Segmentation fault", "  File \"<converter>\", line 3 & <more>",
            "\x1b[31mred\x1b[0m and a NUL\x00 ]]> end"]


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def artifact(fmt, precision, *, drop=0.0, err=1e-7, size=10_000, latency=0.05):
    return {"format": fmt, "precision": precision, "path": f"model.{precision}.{fmt}", "bytes": size,
            "gzip_bytes": int(size * 0.8), "accuracy": {"top1": 93.75 - drop, "top5": 100.0}, "accuracy_drop": drop,
            "fidelity": {"max_abs_err": err, "mean_abs_err": err, "rel_err": err, "cosine": 1.0,
                         "top1_agreement": 100.0},
            "latency_ms": {"median": latency, "p90": latency * 2, "runs": 20, "threads": 2}}


def report(artifacts, gates=()):
    return {"artifacts": list(artifacts), "gates": list(gates), "samples": 64, "source": "model.keras",
            "reference": {"accuracy": {"top1": 93.75, "top5": 100.0}, "latency_ms": {"median": 0.9, "p90": 1.0}}}


def gate(text, fmt, precision, value, failed):
    return {"gate": text, "format": fmt, "precision": precision, "metric": "accuracy_drop", "value": value,
            "unit": "points", "failed": failed}


def model_tasks(name, emits, *, prepare="ok", finish="ok", **emit_fields):
    tasks = [TaskRecord(name, "prepare", status=prepare, seconds=2.0 if prepare != "cached" else 0.0,
                        peak_rss_mb=400.0, worker="pid 11")]
    tasks += [TaskRecord(name, "emit", target=t, precision=p, status=s, seconds=1.5 if s != "cached" else 0.0,
                         peak_rss_mb=350.0, **emit_fields.get(f"{t}/{p}", {})) for t, p, s in emits]
    return [*tasks, TaskRecord(name, "finish", status=finish, seconds=0.5)]


def fleet(root="/fleet/out"):
    """Six models: converted, gate-failed, one emit failed (another retried), up to date, prepare
    failed (emits skipped), a NaN fidelity."""
    models = [
        ModelRecord("alpha", "/m/alpha.keras", f"{root}/alpha", "converted",
                    report([artifact("tflite", "fp32", err=2e-7), artifact("onnx", "fp32", err=5e-7)])),
        ModelRecord("bravo", "/m/bravo", f"{root}/bravo", "gate-failed",
                    report([artifact("tflite", "int8", drop=3.1, err=0.02), artifact("onnx", "int8", drop=1.2, err=0.01)],
                           [gate("int8:accuracy_drop>2", "tflite", "int8", 3.1, True),
                            gate("int8:accuracy_drop>2", "onnx", "int8", 1.2, False)])),
        ModelRecord("charlie", "/m/charlie.pb", f"{root}/charlie", "failed", None,
                    error="onnx/fp32: converter crashed"),
        ModelRecord("delta", "/m/delta.keras", f"{root}/delta", "up-to-date",
                    report([artifact("openvino", "fp32", err=1e-6)])),
        ModelRecord("echo", "/m/echo", f"{root}/echo", "failed", None, error="LoadError: no such file"),
        ModelRecord("foxtrot", "/m/foxtrot", f"{root}/foxtrot", "converted",
                    report([artifact("tflite", "fp32", err="nan")])),
    ]
    tasks = (model_tasks("alpha", [("tflite", "fp32", "ok"), ("onnx", "none", "ok")])
             + model_tasks("bravo", [("tflite", "int8", "ok"), ("onnx", "int8", "ok")])
             + model_tasks("charlie", [("tflite", "fp32", "ok"), ("onnx", "fp32", "failed")], finish="skipped",
                           **{"tflite/fp32": {"retries": 1},
                              "onnx/fp32": {"retries": 1, "error": "worker died (signal 11)", "log_tail": LOG_TAIL}})
             + [TaskRecord("delta", "prepare", status="cached", cache_hits=["prepare"]),
                TaskRecord("delta", "emit", target="openvino", precision="fp32", status="cached",
                           cache_hits=["prepare", "emit"]),
                TaskRecord("delta", "finish", status="cached")]
             + [TaskRecord("echo", "prepare", status="failed", seconds=0.3, error="LoadError: no such file",
                           log_tail=["tfopt.errors.LoadError: /m/echo: no such file"]),
                TaskRecord("echo", "emit", target="tflite", precision="fp32", status="skipped"),
                TaskRecord("echo", "emit", target="onnx", precision="fp32", status="skipped")]
             + model_tasks("foxtrot", [("tflite", "fp32", "ok")]))
    return FleetResult(root, "local", models, tasks, seconds=12.5, exit_code=1)


def test_rows_worst_first_with_statuses():
    table = [(r.model, r.name, r.status) for r in rows(fleet())]
    assert table == [
        ("charlie", "onnx/fp32", "failed"), ("echo", "prepare", "failed"),  # failures, ties by model name
        ("bravo", "tflite/int8", "gate-failed"),
        ("echo", "onnx/fp32", "skipped"), ("echo", "tflite/fp32", "skipped"),
        ("bravo", "onnx/int8", "ok"),  # then by accuracy drop, descending
        ("foxtrot", "tflite/fp32", "ok"),  # NaN fidelity: the worst error among equal drops
        ("delta", "openvino/fp32", "cached"), ("alpha", "onnx/fp32", "ok"), ("alpha", "tflite/fp32", "ok"),
        ("charlie", "tflite/fp32", "ok"),  # no report for charlie: no error to rank it by
    ]


def test_row_values_come_from_the_report_and_the_task():
    by_name = {(r.model, r.name): r for r in rows(fleet())}
    onnx = by_name[("alpha", "onnx/fp32")]  # the task said "none": joined with the report's "fp32"
    assert (onnx.bytes, onnx.gzip_bytes, onnx.max_abs_err, onnx.latency_ms, onnx.seconds) == (10_000, 8000, 5e-7, 0.05, 1.5)
    crashed = by_name[("charlie", "onnx/fp32")]
    assert crashed.retries == 1 and crashed.message == "worker died (signal 11)" and crashed.log_tail == (*LOG_TAIL[:2], "red and a NUL ]]> end")
    assert by_name[("delta", "openvino/fp32")].cache_hits == ("prepare", "emit")
    assert by_name[("bravo", "tflite/int8")].message == "fail-if int8:accuracy_drop>2: accuracy_drop = 3.1"
    assert math.isnan(by_name[("foxtrot", "tflite/fp32")].max_abs_err)


def test_summary_counts():
    s = summary(fleet())
    assert (s["models_converted"], s["models_up_to_date"], s["models_gate_failed"], s["models_failed"]) == (2, 1, 1, 2)
    assert (s["tasks_run"], s["tasks_cached"], s["tasks_failed"], s["tasks_retried"], s["tasks_skipped"]) == (15, 3, 2, 2, 3)
    assert s["cache_hits"] == 3 and s["peak_rss_mb"] == 400.0


def test_a_failed_model_without_tasks_still_has_a_row():
    result = FleetResult("/o", "ray", [ModelRecord("lost", "/m/lost", "/o/lost", "failed", error="manifest: bad")])
    (row,) = rows(result)
    assert (row.model, row.name, row.status, row.message) == ("lost", "model", "failed", "manifest: bad")


@pytest.fixture
def written(tmp_path):
    result = fleet(str(tmp_path / "out"))
    return result, write_fleet_report(result)


def test_junit_parses_with_counts_and_failures(written):
    _, paths = written
    root = ET.parse(paths["junit"]).getroot()
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("skipped"), root.get("errors")) == ("11", "3", "2", "0")
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert sorted(suites) == ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"]
    assert [c.get("name") for c in suites["echo"].findall("testcase")] == ["prepare", "onnx/fp32", "tflite/fp32"]
    assert (suites["echo"].get("tests"), suites["echo"].get("failures"), suites["echo"].get("skipped")) == ("3", "1", "2")
    crash = suites["charlie"].find("testcase[@name='onnx/fp32']/failure")
    assert crash.get("message") == "worker died (signal 11)" and crash.get("type") == "failed"
    assert "Segmentation fault" in crash.text and "& <more>" in crash.text and "]]> end" in crash.text
    assert "\x1b" not in crash.text and "\x00" not in crash.text
    tripped = suites["bravo"].find("testcase[@name='tflite/int8']/failure")
    assert tripped.get("type") == "gate" and "accuracy_drop = 3.1" in tripped.get("message")
    assert suites["bravo"].find("testcase[@name='onnx/int8']/failure") is None
    assert float(suites["charlie"].get("time")) == pytest.approx(3.0)


def test_custom_junit_path(tmp_path):
    (tmp_path / "ci").mkdir()
    paths = write_fleet_report(fleet(str(tmp_path / "out")), junit=str(tmp_path / "ci" / "fleet.xml"))
    assert paths["junit"] == str(tmp_path / "ci" / "fleet.xml")
    assert ET.parse(paths["junit"]).getroot().tag == "testsuites"


def test_html_is_self_contained_and_escaped(tmp_path):
    result = fleet(str(tmp_path / "out"))
    result.models.append(ModelRecord("golf", "/m/golf", "/o/golf", "failed", error="<script>alert(1)</script>"))
    page = read(write_fleet_report(result)["html"])
    assert page.count("<script") == 1  # the charts' own few lines (tfopt.report.svg.SCRIPT), nothing else
    text = page.replace(SCRIPT, "")
    assert not re.search(r"https?:|<script|<link|<img|<iframe|\bsrc=|@import|url\(", text, re.IGNORECASE)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "<tr class='failed'><td>charlie</td><td>onnx</td>" in text
    assert "tasks cached" in text and "Segmentation fault" in text and "\x1b" not in text


def test_markdown_table(written):
    result, paths = written
    lines = read(paths["md"]).splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("| model |"))
    table = lines[header + 2: header + 2 + len(rows(result))]
    assert lines[header + 1] == "|" + "---|" * 12
    assert [line.split(" | ")[0:4] for line in table[:3]] == [
        ["| charlie", "onnx", "fp32", "failed"], ["| echo", "(prepare)", "-", "failed"],
        ["| bravo", "tflite", "int8", "gate-failed"]]
    assert all(line.count(" | ") == 11 for line in table)
    assert any(line.startswith("- models 6: 2 converted, 1 up-to-date, 1 gate-failed, 2 failed") for line in lines)


def test_json_round_trips(written):
    result, paths = written
    back = read_fleet_report(os.path.dirname(paths["json"]))
    result.tasks.sort(key=lambda t: (t.model, ["prepare", "emit", "finish"].index(t.kind), t.target or "",
                                     t.precision or ""))
    assert back == result
    body = json.loads(read(paths["json"]))
    assert body["summary"]["models_failed"] == 2 and body["rows"][0]["model"] == "charlie"


def test_output_does_not_depend_on_task_order(tmp_path):
    first, second = fleet(str(tmp_path / "out")), fleet(str(tmp_path / "out"))
    random.Random(0).shuffle(second.tasks)
    second.models.reverse()
    texts = []
    for result in (first, second):
        paths = write_fleet_report(result)
        texts.append({k: read(p) for k, p in paths.items()})
    assert texts[0] == texts[1]


def _with(result, model=None, task=None):
    result = copy.deepcopy(result)
    for m in result.models:
        if model and m.name == model[0]:
            m.status = model[1]
    for t in result.tasks:
        if task and (t.model, t.kind) == task[:2]:
            t.status = task[2]
    return result


def passing():
    models = [ModelRecord("a", "/m/a", "/o/a", "converted", report([artifact("tflite", "fp32")])),
              ModelRecord("b", "/m/b", "/o/b", "up-to-date", report([artifact("onnx", "fp32")]))]
    return FleetResult("/o", "local", models, model_tasks("a", [("tflite", "fp32", "ok")]))


@pytest.mark.parametrize(("change", "code"), [
    ({}, 0),
    ({"model": ("a", "gate-failed")}, 10),
    ({"model": ("a", "failed")}, 1),
    ({"task": ("a", "emit", "timeout")}, 1),
    ({"task": ("a", "emit", "cancelled")}, 130),
    ({"model": ("b", "cancelled")}, 130),
    ({"task": ("a", "emit", "skipped")}, 0),
], ids=["all-passed", "gate", "model-failed", "task-timeout", "interrupted-task", "interrupted-model", "skipped-only"])
def test_exit_code(change, code):
    assert exit_code(_with(passing(), **change)) == code


@pytest.mark.parametrize(("change", "code"), [
    ({}, 11), ({"model": ("b", "gate-failed")}, 11), ({"model": ("b", "failed")}, 1),
    ({"task": ("a", "emit", "cancelled")}, 130),
], ids=["partial", "partial-outranks-gate", "failed-outranks-partial", "interrupted"])
def test_a_partial_model_fails_its_row_and_exits_11(change, code):
    """A model whose report lists a failed target (its emit task ran and recorded the failure):
    that row is failed with the reason, the others as measured; the fleet exits 11 as convert does."""
    result = passing()
    a = result.models[0]
    a.status = "partial"
    a.report["failed"] = [{"format": "onnx", "precision": "fp32", "stage": "converting", "error": "ConversionError",
                           "exit_code": 9, "reason": "converting to onnx fp32: no\nhandler for Foo"}]
    result.tasks.insert(2, TaskRecord("a", "emit", target="onnx", precision="fp32", status="ok"))
    by_name = {(r.model, r.name): r for r in rows(result)}
    assert by_name[("a", "onnx/fp32")].status == "failed"
    assert by_name[("a", "onnx/fp32")].message == "converting to onnx fp32: no handler for Foo"
    assert by_name[("a", "tflite/fp32")].status == "ok" and summary(result)["models_partial"] == 1
    assert exit_code(_with(result, **change)) == code


def test_exit_code_gate_in_an_up_to_date_report():
    result = passing()
    result.models[1].report["gates"] = [gate("accuracy_drop>0", "onnx", "fp32", 0.5, True)]
    assert exit_code(result) == 10


def test_exit_code_of_the_synthetic_fleet_and_an_output_refusal():
    assert exit_code(fleet()) == 1
    assert exit_code(FleetResult("/o", "local", exit_code=2)) == 2
    assert exit_code(FleetResult("/o", "local", exit_code=143)) == 143  # SIGTERM, as run_fleet recorded it


def test_a_real_report_row(digits_model, tmp_path):
    """One row from a real conversion's report.json: the table shows what the report measured."""
    from tfopt.conversion.convert import convert

    out = str(tmp_path / "digits")
    convert(digits_model["path"], out, to=["tflite"], quantize=["fp32"], eval_data=digits_model["eval"], report_runs=3)
    with open(os.path.join(out, "report.json")) as f:
        real = json.load(f)
    result = FleetResult(str(tmp_path), "local", [ModelRecord("digits", digits_model["path"], out, "converted", real)],
                         model_tasks("digits", [("tflite", "fp32", "ok")]))
    (row,) = rows(result)
    (a,) = real["artifacts"]
    assert (row.status, row.bytes, row.gzip_bytes) == ("ok", a["bytes"], a["gzip_bytes"])
    assert row.max_abs_err == a["fidelity"]["max_abs_err"] < 1e-5 and row.accuracy_drop == a["accuracy_drop"]
    assert exit_code(result) == 0
    assert read_fleet_report(write_fleet_report(result)["json"]) == result


@pytest.mark.parametrize(("labels", "says", "names"), [
    ({"alpha": "isolated", "bravo": "isolated", "delta": "isolated", "foxtrot": "isolated (an earlier run)"},
     "measured in isolation", []),
    ({"alpha": "isolated", "bravo": "under load (3 parallel tasks)", "delta": "isolated",
      "foxtrot": "under load (1 parallel task)"},
     "measured UNDER LOAD", ["bravo under load (3 parallel tasks)", "foxtrot under load (1 parallel task)"]),
    ({"alpha": "under load (an earlier run)", "bravo": None, "delta": "isolated", "foxtrot": "isolated"},
     "measured UNDER LOAD", ["alpha under load (an earlier run)", "not known how it was taken for bravo"]),
], ids=["isolated", "under-load", "earlier-and-unknown"])
def test_every_report_says_how_latency_was_taken(labels, says, names, tmp_path, capsys):
    """fleet.json (summary), fleet.md, fleet.html and the console state how the latency column was taken."""
    from tfopt.cli.fleet import print_summary

    result = fleet(str(tmp_path))
    for model in result.models:
        model.latency = labels.get(model.name)
    paths = write_fleet_report(result)
    body = json.loads(read(paths["json"]))
    assert {k: v for k, v in body["summary"]["latency"].items() if k in labels} == labels
    print_summary(result)
    console = capsys.readouterr().out
    for text in (read(paths["md"]), read(paths["html"]), console):
        assert f"latency: {says}" in text
        for name in names:
            assert name in text
    assert read(paths["html"]).count(f"latency: {says}") == 1  # once, above the table
