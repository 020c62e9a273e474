"""report.json, report.md and a self-contained report.html (inline SVG charts, :mod:`tfopt.report.svg`)."""

from __future__ import annotations

import html
import json
import math
import os
from collections.abc import Callable
from typing import Any

from tfopt._io import atomic_path
from tfopt.report import svg
from tfopt.report.table import HEADER, compression_summary, conditioning_notes, runtime_notes
from tfopt.report.table import rows as table_rows
from tfopt.targets import precision_name
from tfopt.verification.nonfinite import to_json


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


def _batch_axes(report: dict[str, Any]) -> str:
    """``Batch axis: inputs x 1 (graph), ...; outputs y 0 (graph)``: the manifest's record of each
    input's and output's batch axis (:mod:`tfopt.conversion.manifest`); "" when it has none."""
    def part(kind: str) -> str:
        specs = report.get(kind) or []
        return f"{kind} " + ", ".join(f"`{s['name']}` {'-' if s.get('batch_axis') is None else s['batch_axis']}"
                                      + (f" ({s['batch_axis_source']})" if s.get("batch_axis_source") else "")
                                      for s in specs) if specs else ""
    parts = [p for p in (part("inputs"), part("outputs")) if p]
    return f"Batch axis: {'; '.join(parts)}." if parts and "batch_axis_source" in (report.get("inputs") or [{}])[0] else ""


def _markdown(report: dict[str, Any]) -> str:
    ref = report["reference"]
    lines = ["# tfopt report", "", f"Source: `{report.get('source')}` ({report.get('source_format')}); "
             f"{report.get('batching') or str(report['samples']) + ' samples'}; latency at batch 1, threads "
             f"{report['artifacts'][0]['latency_ms']['threads'] if report['artifacts'] else '-'}.", "",
             f"Original model: latency {ref['latency_ms']['median']:.2f} ms"
             + (f", top-1 {ref['accuracy']['top1']:.2f}%" if ref.get("accuracy") and "top1" in ref["accuracy"] else "")
             + (f"; inputs hold NaN/Inf: {report['nonfinite_inputs']}" if report.get("nonfinite_inputs") else ""),
             *(["", _batch_axes(report)] if _batch_axes(report) else []),
             "", "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(report)]
    if runtime_notes(report):
        lines += ["", "## Runtime precision", "", *(f"- {note}" for note in runtime_notes(report))]
    if _inputs_note(report):  # made-up floats other than standard normal, or saturated
        lines += ["", "## Verification inputs", "", _inputs_note(report)]
    if conditioning_notes(report):
        lines += ["", "## Ill-conditioned original", "", *(f"- {note}" for note in conditioning_notes(report))]
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
        f"padding:4px 8px;text-align:right}}th{{background:#eee}}{svg.STYLE}</style></head><body>"
        f"<h1>tfopt report</h1><p>Source: <code>{html.escape(str(report.get('source')))}</code>"
        + (f"; {html.escape(report['batching'])}" if report.get("batching") else "") + "</p>"
        f"<table><tr>{head}</tr>{rows}</table>" + _runtime_precision(report)
        + (f"<h2>Verification inputs</h2><p>{html.escape(_inputs_note(report))}</p>" if _inputs_note(report) else "")
        + ("<h2>Ill-conditioned original</h2><ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in conditioning_notes(report))
           + "</ul>" if conditioning_notes(report) else "")
        + _failed(report) + charts(report) + svg.SCRIPT + "</body></html>\n")


def _runtime_precision(report: dict[str, Any]) -> str:
    """The notes report.md and the summary print under "Runtime precision" (:func:`runtime_notes`:
    the call that reproduces the verified numbers, the fidelity at the runtime's default precision,
    a batch the converter fixed), so the HTML reader is told them too ("" for none)."""
    items = "".join(f"<li>{html.escape(note)}</li>" for note in runtime_notes(report))
    return f"<h2>Runtime precision</h2><ul>{items}</ul>" if items else ""


def _inputs_note(report: dict[str, Any]) -> str:
    """The made-up inputs' scale (:func:`tfopt.verification.saturation.recorded_note`; "" for none to tell)."""
    from tfopt.verification.saturation import recorded_note

    return recorded_note(report.get("verification") or {})


def _failed(report: dict[str, Any]) -> str:
    """The requested artifacts that failed (not written), each with its stage and reason."""
    items = "".join(f"<li><b>{html.escape(f['format'])}/{html.escape(f['precision'])}</b> ({html.escape(f['stage'])}, "
                    f"{html.escape(f['error'])}): <pre>{html.escape(f['reason'])}</pre></li>"
                    for f in report.get("failed") or [])
    return f"<h2>Failed (requested, not written)</h2><ul>{items}</ul>" if items else ""


def charts(report: dict[str, Any]) -> str:
    """Size against latency, quality against latency (one colour per target, one marker per
    precision; the original model's latency and accuracy as dashed lines), then each
    quantized target's per-layer error ranking."""
    artifacts = report["artifacts"]
    if not artifacts:
        return "<p>no artifacts</p>"
    targets = list(dict.fromkeys(a["format"] for a in artifacts))
    precisions = list(dict.fromkeys(precision_name(a["precision"]) for a in artifacts))
    shape = {p: svg.MARKERS[i % len(svg.MARKERS)] for i, p in enumerate(precisions)}
    ref = report["reference"]
    ref_latency = _number((ref.get("latency_ms") or {}).get("median"))
    quality = _quality(report)
    latency = svg.Axis("latency, ms (median, batch 1)", log=_spread([_latency(a) for a in artifacts]))

    def series(y: Callable[[dict[str, Any]], float]) -> list[svg.Series]:
        return [svg.Series(t, [svg.Point(_latency(a), y(a), title=_title(a), label=precision_name(a["precision"]),
                                         marker=shape[precision_name(a["precision"])])
                               for a in artifacts if a["format"] == t]) for t in targets]

    legend = [(p, shape[p]) for p in precisions]
    rules = [("x", ref_latency, "original")] if ref_latency is not None else []
    parts = ["<h2>Size vs latency</h2>",
             svg.scatter(series(lambda a: float(a["bytes"])), latency,
                         svg.Axis("size", log=_spread([float(a["bytes"]) for a in artifacts]), fmt=svg.size),
                         name="size vs latency", markers=legend, markers_title="precision", rules=rules)]
    if quality is not None:
        title, axis, value, ref_value = quality
        parts += [f"<h2>{'Fidelity' if axis.log else 'Accuracy'} vs latency</h2>",
                  svg.scatter(series(value), latency, axis, name=f"{title} vs latency", markers=legend, markers_title="precision",
                              rules=rules + ([("y", ref_value, "original")] if ref_value is not None else []))]
    return "".join(parts) + _layer_bars(report)


def _quality(report: dict[str, Any]) -> tuple[str, svg.Axis, Callable[[dict[str, Any]], float], float | None] | None:
    """The y of the second chart: the accuracy the report measured (with the original's), else the
    fidelity to the original (max abs error, log scale)."""
    ref = report["reference"].get("accuracy") or {}
    for key, title in (("top1", "top-1 accuracy, %"), ("score", "score (--metric)"), ("mae", "MAE (lower is better)")):
        if key in ref:
            return (title, svg.Axis(title), lambda a, k=key: _number((a.get("accuracy") or {}).get(k)) or math.nan,
                    _number(ref[key]))
    errors = [_number(a["fidelity"].get("max_abs_err")) or 0.0 for a in report["artifacts"]]
    if not any(e > 0 for e in errors):
        return None
    return ("max abs error vs the original", svg.Axis("max abs error vs the original", log=True),
            lambda a: _number(a["fidelity"].get("max_abs_err")) or 0.0, None)


def _layer_bars(report: dict[str, Any]) -> str:
    parts = []
    for key, ranking in (report.get("layer_errors") or {}).items():
        kept = set((report.get("keep_float") or {}).get(key, []))
        bars = [svg.Bar(r["layer"][-40:], [("kept in float" if r["layer"] in kept else "quantized",
                                            float(r["output_error"]))], note=f"{r['output_error']:.3g}",
                        title=f"{r['layer']} ({r['op']})") for r in ranking[:15]]
        parts.append(f"<h2>Per-layer quantization error: {html.escape(key)} (each layer quantized alone, worst first)"
                     "</h2>" + svg.bars(bars, svg.Axis("output error with only this layer quantized"),
                                        name=f"layer errors {key}",
                                        colors={"quantized": "#c53", "kept in float": "#3a7"}))
    return "".join(parts)


def _latency(artifact: dict[str, Any]) -> float:
    return _number(artifact["latency_ms"].get("median")) or math.nan


def _title(a: dict[str, Any]) -> str:
    f = a["fidelity"]
    return (f"{a['format']} {precision_name(a['precision'])}: {a['bytes']:,} bytes, "
            f"{_latency(a):.3f} ms, max abs err {_number(f.get('max_abs_err')) or 0:.3g}, "
            f"top-1 agreement {_number(f.get('top1_agreement')) or 0:.1f}%")


def _number(value: Any) -> float | None:
    """report.json spells non-finite floats "nan"/"inf"."""
    try:
        return None if value is None or isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        return None


def _spread(values: list[float]) -> bool:
    """Log scale when the values span more than 20x (int8 next to fp32: 4x is linear)."""
    finite = [v for v in values if math.isfinite(v) and v > 0]
    return bool(finite) and max(finite) > 20 * min(finite)
