"""fleet.html: one self-contained page (inline CSS, inline SVG and a few lines of inline script; no
fonts, no images, no links out), so it opens from a CI artifact store or an air-gapped machine as
it is. A summary header, a chart of each model's status and time (seconds per task kind, stacked;
:mod:`tfopt.report.svg`), the table worst first with a colour per status, then each failure's
message and log tail."""

from __future__ import annotations

import html

from tfopt.fleet.result import FleetResult
from tfopt.fleet.rows import FAILED, HEADER, Row, cells, latency_line, rows, summary, summary_lines

# Status colours: red failed, orange gate-failed, grey cancelled/skipped, green ok, blue cached.
_CSS = (
    "body{font-family:system-ui,sans-serif;margin:2em;color:#222}"
    "table{border-collapse:collapse;font-size:14px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
    "td:nth-child(-n+4),th{text-align:left}th{background:#eee;position:sticky;top:0}"
    ".failed,.timeout{background:#fdd}.gate-failed{background:#ffe4c4}.cancelled,.skipped{background:#eee;color:#666}"
    ".ok{background:#efe}.cached{background:#eef4ff}"
    ".cards{display:flex;gap:1em;flex-wrap:wrap;margin:1em 0}.card{border:1px solid #ccc;border-radius:6px;"
    "padding:.5em 1em}.card b{font-size:1.4em;display:block}"
    "pre{background:#f6f6f6;padding:.5em;overflow-x:auto;font-size:12px}code{font-size:13px}"
)


def fleet_html(result: FleetResult) -> str:
    """The page's text."""
    s = summary(result)
    table = rows(result)
    cards = [("converted", s["models_converted"]), ("up-to-date", s["models_up_to_date"]),
             ("gate-failed", s["models_gate_failed"]), ("failed", s["models_failed"]),
             ("tasks run", s["tasks_run"]), ("tasks cached", s["tasks_cached"]), ("tasks failed", s["tasks_failed"]),
             ("tasks retried", s["tasks_retried"]), ("cache hits", s["cache_hits"]), ("seconds", f"{s['seconds']:.1f}")]
    head = "".join(f"<th>{html.escape(h)}</th>" for h in HEADER)
    body = "".join(_row(r) for r in table)
    problems = [r for r in table if r.message and (r.status in FAILED or r.status == "gate-failed")]
    details = "".join(
        f"<h3 class='{_cls(r)}'>{html.escape(r.model)} {html.escape(r.name)}: {html.escape(r.status)}</h3>"
        f"<p><code>{html.escape(r.message or '')}</code></p>"
        + (f"<pre>{html.escape(chr(10).join(r.log_tail))}</pre>" if r.log_tail else "") for r in problems)
    from tfopt.report import svg

    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>tfopt fleet report</title>"
        f"<style>{_CSS}{svg.STYLE}</style></head><body><h1>tfopt fleet report</h1>"
        f"<p>Output root <code>{html.escape(result.outroot)}</code>, executor <b>{html.escape(result.executor)}</b>, "
        f"exit code <b>{result.exit_code}</b>.</p>"
        "<div class='cards'>" + "".join(f"<div class='card'><b>{html.escape(str(v))}</b>{html.escape(k)}</div>"
                                        for k, v in cards) + "</div>"
        + "".join(f"<p>{html.escape(line)}</p>" for line in summary_lines(s)[:-1])
        + "<h2>Models: status and time</h2>" + model_chart(result)
        + f"<h2>Every model x target x precision, worst first</h2><p class='latency'><b>{html.escape(latency_line(s))}"
        f"</b></p><table><thead><tr>{head}</tr></thead>"
        f"<tbody>{body}</tbody></table>"
        + (f"<h2>Failures and tripped gates</h2>{details}" if details else "")
        + svg.SCRIPT + "</body></html>\n")


KIND_COLORS = {"prepare": "#1f77b4", "emit": "#ff7f0e", "finish": "#2ca02c"}


def model_chart(result: FleetResult) -> str:
    """One bar per model (by name: the page never depends on the order tasks finished in): its
    tasks' seconds stacked by kind, its status after it."""
    from tfopt.report import svg

    seconds: dict[str, dict[str, float]] = {m.name: {} for m in result.models}
    for task in result.tasks:
        kinds = seconds.setdefault(task.model, {})
        kinds[task.kind] = kinds.get(task.kind, 0.0) + task.seconds
    status = {m.name: m.status for m in result.models}
    bars = [svg.Bar(name, [(kind, kinds.get(kind, 0.0)) for kind in KIND_COLORS],
                    note=f"{status.get(name, 'failed')}, {sum(kinds.values()):.1f} s",
                    title=", ".join(f"{k} {kinds[k]:.1f} s" for k in KIND_COLORS if k in kinds) or "no task ran")
            for name, kinds in sorted(seconds.items())]
    if not bars:
        return "<p>no models</p>"
    return svg.bars(bars, svg.Axis("seconds in tasks (wall time of each task, summed)"), name="models",
                    colors=KIND_COLORS)


def _cls(row: Row) -> str:
    return html.escape(row.status, quote=True)


def _row(row: Row) -> str:
    return f"<tr class='{_cls(row)}'>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells(row)) + "</tr>"
