"""The fleet report: OUTROOT/fleet.json, fleet.md, fleet.html and one JUnit XML file.

``fleet.json`` holds the whole :class:`~tfopt.fleet.result.FleetResult` (models with their report.json,
tasks) plus the summary and the rows as the tables show them; :func:`read_fleet_report` reads it back
into an equal FleetResult. Models are written sorted by name and tasks by (model, kind, target,
precision), so two runs of the same fleet write the same order whichever executor ran them and in
whatever order the tasks finished. Non-finite floats are spelled ``"nan"``/``"inf"`` as in report.json.

Each file is written atomically (:func:`tfopt._io.atomic_path`).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, fields
from typing import Any

from tfopt.fleet.html import fleet_html
from tfopt.fleet.junit import junit_xml
from tfopt.fleet.result import FleetResult, ModelRecord, TaskRecord
from tfopt.fleet.rows import FAILED, HEADER, cells, exit_code, rows, summary, summary_lines, task_order

__all__ = ["exit_code", "fleet_json", "fleet_markdown", "read_fleet_report", "write_fleet_report"]

FORMAT = "tfopt-fleet-report"
VERSION = 1


def write_fleet_report(result: FleetResult, *, junit: str | None = None) -> dict[str, str]:
    """Write the fleet report into ``result.outroot``.

    Args:
        result: what the fleet run produced.
        junit: where the JUnit XML goes (default: OUTROOT/fleet-junit.xml).

    Returns:
        ``{"json": path, "md": path, "html": path, "junit": path}``.

    Raises:
        OutputPathError: a file cannot be written (read-only or full disk).
    """
    from tfopt._io import atomic_path

    os.makedirs(result.outroot, exist_ok=True)
    paths = {"json": os.path.join(result.outroot, "fleet.json"), "md": os.path.join(result.outroot, "fleet.md"),
             "html": os.path.join(result.outroot, "fleet.html"),
             "junit": junit or os.path.join(result.outroot, "fleet-junit.xml")}
    texts = {"json": fleet_json(result), "md": fleet_markdown(result), "html": fleet_html(result),
             "junit": junit_xml(result)}
    for kind, path in paths.items():
        with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
            f.write(texts[kind])
    return paths


def fleet_json(result: FleetResult) -> str:
    from tfopt.verification.nonfinite import to_json

    body = {
        "format": FORMAT, "version": VERSION,
        "outroot": result.outroot, "executor": result.executor, "seconds": result.seconds,
        "exit_code": result.exit_code, "summary": summary(result),
        "rows": [{**dict(zip(HEADER, cells(r), strict=True)), "message": r.message} for r in rows(result)],
        "models": [asdict(m) for m in sorted(result.models, key=lambda m: m.name)],
        "tasks": [asdict(t) for t in sorted(result.tasks, key=task_order)],
    }
    return json.dumps(to_json(body), indent=1, sort_keys=True, allow_nan=False) + "\n"


def read_fleet_report(path: str) -> FleetResult:
    """A fleet.json (or the directory holding one) back as a FleetResult; unknown keys are ignored,
    so a newer writer's extra fields do not break an older reader."""
    if os.path.isdir(path):
        path = os.path.join(path, "fleet.json")
    with open(path, encoding="utf-8") as f:
        body = json.load(f)
    if body.get("format") != FORMAT:
        from tfopt.errors import OptionError

        raise OptionError(f"{path}: not a tfopt fleet report (format {body.get('format')!r}, expected {FORMAT!r})")
    return FleetResult(outroot=body["outroot"], executor=body["executor"],
                       models=[_record(ModelRecord, m) for m in body["models"]],
                       tasks=[_record(TaskRecord, t) for t in body["tasks"]],
                       seconds=body["seconds"], exit_code=body["exit_code"])


def _record(cls: Any, values: dict[str, Any]) -> Any:
    known = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in values.items() if k in known})


def fleet_markdown(result: FleetResult) -> str:
    table = rows(result)
    lines = ["# tfopt fleet report", "", f"Output root `{result.outroot}`, executor {result.executor}, "
             f"exit code {result.exit_code}.", ""]
    lines += [f"- {line}" for line in summary_lines(summary(result))]
    lines += ["", "## Every model x target x precision, worst first", "",
              "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(_md(c) for c in cells(r)) + " |" for r in table]
    problems = [r for r in table if r.message and (r.status in FAILED or r.status == "gate-failed")]
    if problems:
        lines += ["", "## Failures and tripped gates"]
        for r in problems:
            lines += ["", f"### {_md(r.model)} {_md(r.name)}: {r.status}", "", _md(r.message or "")]
            if r.log_tail:
                lines += ["", "```", *(line.replace("```", "'''") for line in r.log_tail), "```"]
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    """A table cell: pipes escaped, newlines folded (a cell is one line)."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")
