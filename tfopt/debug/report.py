"""``tfopt debug compare``'s outputs: ``compare.json``, a self-contained HTML page (inline SVG, no
external assets) with every artifact's relative-error curve along TF's layers, and a terminal table
of the worst layers."""

from __future__ import annotations

import html
import json
import math
import os
from collections.abc import Mapping
from typing import Any

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
WIDTH, HEIGHT, PAD = 900, 360, 60
LOW, HIGH = -8, 1  # log10 range of the y axis (relative error)


def write_json(result: Mapping[str, Any], path: str) -> None:
    from tfopt._io import atomic_path

    with atomic_path(path) as tmp, open(tmp, "w") as f:
        json.dump(result, f, indent=1, sort_keys=True)


def series(result: Mapping[str, Any]) -> list[tuple[str, list[dict[str, Any]]]]:
    """``(label, rows)`` per curve: each artifact against TF, and each quantization split."""
    out = []
    for a in result["artifacts"]:
        out.append((f"{a['target']} {os.path.basename(a['path'])} vs TF", a["layers"]))
        split = a.get("split")
        if split:
            out.append((f"{a['target']} quantization (vs {os.path.basename(split['float_artifact'])})",
                        split["quantization"]["layers"]))
    return out


def svg(result: Mapping[str, Any]) -> str:
    """The error curves: x = TF topological position of the layer, y = log10(rel_err)."""
    layers = result["tf_layers"]
    position = {row["node"]: i for i, row in enumerate(layers)}
    n = max(len(layers) - 1, 1)

    def xy(i: int, rel: float) -> tuple[float, float]:
        y = min(max(math.log10(rel) if rel > 0 else LOW, LOW), HIGH)
        return PAD + i * (WIDTH - 2 * PAD) / n, HEIGHT - PAD - (y - LOW) * (HEIGHT - 2 * PAD) / (HIGH - LOW)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT + 20 * len(series(result))}" '
             'font-family="sans-serif" font-size="11">']
    for p in range(LOW, HIGH + 1):
        _, y = xy(0, 10.0 ** p)
        parts.append(f'<line x1="{PAD}" x2="{WIDTH - PAD}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>'
                     f'<text x="{PAD - 6}" y="{y + 4:.1f}" text-anchor="end">1e{p}</text>')
    parts.append(f'<text x="{WIDTH / 2}" y="{HEIGHT - 15}" text-anchor="middle">TF layers in topological order '
                 '(hover a point for its node)</text><text x="12" y="20">rel err</text>')
    for k, (label, rows) in enumerate(series(result)):
        color = COLORS[k % len(COLORS)]
        points = [(position[r["node"]], r) for r in rows if r["node"] in position]
        line = " ".join(f"{x:.1f},{y:.1f}" for x, y in (xy(i, r["rel_err"]) for i, r in points))
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{line}"/>')
        for i, r in points:
            x, y = xy(i, r["rel_err"])
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{color}"><title>'
                         f'{html.escape(r["node"])} ({r.get("op", "")}): rel err {r["rel_err"]:.3g}</title></circle>')
        ly = HEIGHT + 20 * k
        parts.append(f'<rect x="{PAD}" y="{ly - 9}" width="12" height="4" fill="{color}"/>'
                     f'<text x="{PAD + 18}" y="{ly - 4}">{html.escape(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def write_html(result: Mapping[str, Any], path: str) -> None:
    from tfopt._io import atomic_path

    rows = []
    for a in result["artifacts"]:
        jump = a["first_jump"]
        rows.append(f"<h2>{html.escape(a['target'])}: {html.escape(a['path'])}</h2><p>first jump: "
                    f"{html.escape(jump['node']) if jump else 'none'}"
                    + "".join(f"<br>{html.escape(n)}" for n in a["notes"]) + "</p>")
        split = a.get("split")
        if split:
            for part in ("conversion", "quantization"):
                j = split[part]["first_jump"]
                rows.append(f"<p>{part}: first jump {html.escape(j['node']) if j else 'none'}</p>")
        rows.append("<table><tr><th>#</th><th>TF node</th><th>op</th><th>artifact tensor</th><th>rel err</th>"
                    "<th>max abs</th><th>cosine</th></tr>" + "".join(
                        f"<tr><td>{r['index']}</td><td>{html.escape(r['node'])}</td><td>{r.get('op', '')}</td>"
                        f"<td>{html.escape(r.get('tensor', ''))}</td><td>{r['rel_err']:.3g}</td>"
                        f"<td>{r['max_abs_err']:.3g}</td><td>{r['cosine']:.6f}</td></tr>" for r in a["layers"])
                    + "</table>")
        if a["unaligned"]:
            rows.append("<p>not aligned:</p><ul>" + "".join(
                f"<li>{html.escape(u['tensor'])}: {html.escape(u['reason'])}</li>" for u in a["unaligned"]) + "</ul>")
    page = ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>tfopt debug compare</title><style>"
            "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;font-size:12px}"
            "td,th{border:1px solid #ccc;padding:2px 6px}</style></head><body><h1>tfopt debug compare</h1>"
            f"<p>rule: {html.escape(result['rule'])}</p>{svg(result)}{''.join(rows)}</body></html>")
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        f.write(page)


def table(result: Mapping[str, Any], worst: int = 5) -> str:
    """The worst ``worst`` layers of each curve, and its first jump."""
    lines = []
    for label, rows in series(result):
        lines.append(label)
        jump = next((a["first_jump"] for a in result["artifacts"] if a["layers"] is rows), None)
        for a in result["artifacts"]:
            split = a.get("split")
            if split and split["quantization"]["layers"] is rows:
                jump = split["quantization"]["first_jump"]
        lines.append(f"  first jump: {jump['node']} (rel err {jump['rel_err']:.3g})" if jump else "  first jump: none")
        lines.append(f"  {'#':>4}  {'rel err':>9}  {'max abs':>9}  {'cosine':>9}  TF node (op)")
        ranked = [r for r in rows if not r.get("rescaled")]  # rescaled by equalization: not an error
        for r in sorted(ranked, key=lambda r: -r["rel_err"])[:worst]:
            lines.append(f"  {r['index']:>4}  {r['rel_err']:9.3g}  {r['max_abs_err']:9.3g}  {r['cosine']:9.6f}  "
                         f"{r['node']} ({r.get('op', '')})")
        if len(ranked) < len(rows):
            lines.append(f"  ({len(rows) - len(ranked)} tensor(s) rescaled by equalization not ranked)")
    return "\n".join(lines)
