"""report.json, report.md and a self-contained report.html (inline SVG charts, no scripts)."""

from __future__ import annotations

import html
import json
import os
from typing import Any

from tfopt._io import atomic_path
from tfopt.nonfinite import to_json
from tfopt.report.table import HEADER, compression_summary
from tfopt.report.table import rows as table_rows
from tfopt.targets import precision_name


def write_reports(outdir: str, report: dict[str, Any]) -> list[str]:
    paths = []
    text_json = json.dumps(to_json(report), indent=2, sort_keys=True, default=str, allow_nan=False)  # NaN -> "nan"
    for name, text in (("report.json", text_json),
                       ("report.md", _markdown(report)), ("report.html", _html(report))):
        path = os.path.join(outdir, name)
        with atomic_path(path) as tmp, open(tmp, "w") as f:
            f.write(text)
        paths.append(path)
    return paths


def _markdown(report: dict[str, Any]) -> str:
    ref = report["reference"]
    lines = ["# tfopt report", "", f"Source: `{report.get('source')}` ({report.get('source_format')}); "
             f"{report['samples']} samples; latency at batch 1, threads "
             f"{report['artifacts'][0]['latency_ms']['threads'] if report['artifacts'] else '-'}.", "",
             f"Original model: latency {ref['latency_ms']['median']:.2f} ms"
             + (f", top-1 {ref['accuracy']['top1']:.2f}%" if ref.get("accuracy") and "top1" in ref["accuracy"] else "")
             + (f"; inputs hold NaN/Inf: {report['nonfinite_inputs']}" if report.get("nonfinite_inputs") else ""),
             "", "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(report)]
    if report.get("failed"):
        lines += ["", "## Failed (requested, not written)", "", "| artifact | stage | error | reason |", "|---|---|---|---|"]
        lines += [f"| {f['format']}/{f['precision']} | {f['stage']} | {f['error']} | "
                  f"{' '.join(f['reason'].split()).replace('|', '/')} |" for f in report["failed"]]
    if report.get("passes"):
        lines += ["", "## Passes", "", "| pass | nodes before | nodes after | skipped |", "|---|---|---|---|"]
        lines += [f"| {p['name']} | {p['nodes_before']} | {p['nodes_after']} | {len(p['skips'])} |" for p in report["passes"]]
    for key, ranking in (report.get("layer_errors") or {}).items():
        kept = set((report.get("keep_float") or {}).get(key, []))
        lines += ["", f"## Per-layer quantization error: {key} (each layer quantized alone, worst first)", "",
                  "| layer | op | output error, alone | own tensor error, all quantized | kept in float |",
                  "|---|---|---|---|---|"]
        lines += [f"| `{r['layer']}` | {r['op']} | {r['output_error']:.4g} | "
                  f"{'-' if r.get('tensor_error') is None else format(r['tensor_error'], '.4g')} | "
                  f"{'yes' if r['layer'] in kept else ''} |" for r in ranking[:20]]
    if report.get("compression"):
        lines += ["", "## Compression", "", compression_summary(report["compression"]).replace("\n  ", "\n- "), "",
                  "| artifact | tensor | weights | unique | zeros |", "|---|---|---|---|---|"]
        for a in report["artifacts"]:
            lines += [f"| {a['format']}/{a['precision']} | `{w['name'][-60:]}` | {w['shape']} | {w['unique']} | "
                      f"{100 * w['sparsity']:.1f}% |" for w in a.get("weights", [])[:6]]
    if report.get("gates"):
        lines += ["", "## Gates", "", "| gate | artifact | value | result |", "|---|---|---|---|"]
        lines += [f"| `{g['gate']}` | {g['format']}/{g['precision']} | {g['value']} | {'FAIL' if g['failed'] else 'pass'} |"
                  for g in report["gates"]]
    return "\n".join(lines) + "\n"


def _html(report: dict[str, Any]) -> str:
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in table_rows(report))
    head = "".join(f"<th>{html.escape(h)}</th>" for h in HEADER)
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>tfopt report</title><style>"
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
        "padding:4px 8px;text-align:right}th{background:#eee}</style></head><body>"
        f"<h1>tfopt report</h1><p>Source: <code>{html.escape(str(report.get('source')))}</code></p>"
        f"<table><tr>{head}</tr>{rows}</table>" + _failed(report) +
        "<h2>Size vs latency (bubble area: accuracy or top-1 agreement)</h2>" + _scatter(report) +
        _layer_bars(report) + "</body></html>\n")


def _failed(report: dict[str, Any]) -> str:
    """The requested artifacts that failed (not written), each with its stage and reason."""
    items = "".join(f"<li><b>{html.escape(f['format'])}/{html.escape(f['precision'])}</b> ({html.escape(f['stage'])}, "
                    f"{html.escape(f['error'])}): <pre>{html.escape(f['reason'])}</pre></li>"
                    for f in report.get("failed") or [])
    return f"<h2>Failed (requested, not written)</h2><ul>{items}</ul>" if items else ""


def _layer_bars(report: dict[str, Any]) -> str:
    parts = []
    for key, ranking in (report.get("layer_errors") or {}).items():
        top = ranking[:15]
        worst = max((r["output_error"] for r in top), default=0.0) or 1.0
        bars = "".join(
            f"<rect x='260' y='{20 * i + 5}' width='{300 * r['output_error'] / worst:.1f}' height='14' fill='#c53'/>"
            f"<text x='255' y='{20 * i + 16}' font-size='11' text-anchor='end'>{html.escape(r['layer'][-40:])}</text>"
            f"<text x='{265 + 300 * r['output_error'] / worst:.1f}' y='{20 * i + 16}' font-size='11'>"
            f"{r['output_error']:.3g}</text>" for i, r in enumerate(top))
        parts.append(f"<h2>Per-layer quantization error: {html.escape(key)}</h2>"
                     f"<svg xmlns='http://www.w3.org/2000/svg' width='640' height='{20 * len(top) + 10}'>{bars}</svg>")
    return "".join(parts)


def _scatter(report: dict[str, Any]) -> str:
    points = report["artifacts"]
    if not points:
        return "<p>no artifacts</p>"
    width, height, pad = 640, 360, 50
    max_x = max(a["bytes"] for a in points) * 1.1
    max_y = max(a["latency_ms"]["median"] for a in points) * 1.1 or 1.0
    marks = []
    for a in points:
        x = pad + (width - 2 * pad) * a["bytes"] / max_x
        y = height - pad - (height - 2 * pad) * a["latency_ms"]["median"] / max_y
        quality = (a.get("accuracy") or {}).get("top1", a["fidelity"]["top1_agreement"]) / 100.0
        label = html.escape(f"{a['format']} {precision_name(a['precision'])}")
        marks.append(f"<circle cx='{x:.1f}' cy='{y:.1f}' r='{3 + 9 * quality:.1f}' fill='#3a7' fill-opacity='0.6'/>"
                     f"<text x='{x + 8:.1f}' y='{y - 8:.1f}' font-size='11'>{label}</text>")
    axes = (f"<line x1='{pad}' y1='{height - pad}' x2='{width - pad}' y2='{height - pad}' stroke='#333'/>"
            f"<line x1='{pad}' y1='{pad}' x2='{pad}' y2='{height - pad}' stroke='#333'/>"
            f"<text x='{width / 2}' y='{height - 10}' font-size='12'>bytes (max {max_x / 1.1:,.0f})</text>"
            f"<text x='5' y='{pad - 10}' font-size='12'>latency ms (max {max_y / 1.1:.2f})</text>")
    return f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}'>{axes}{''.join(marks)}</svg>"
