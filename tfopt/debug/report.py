"""``tfopt debug compare``'s outputs: ``compare.json``, a self-contained HTML page (inline SVG from
:mod:`tfopt.report.svg`, no external assets) with every artifact's relative-error curve along TF's
layers, and a terminal table of the worst layers."""

from __future__ import annotations

import html
import json
import os
from collections.abc import Mapping
from typing import Any


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
    """The error curves (:mod:`tfopt.report.svg`): x = the layer's position in TF's topological order,
    y = its relative error (log scale), one line per curve; hover a point for its node."""
    from tfopt.report import svg as charts

    position = {row["node"]: i for i, row in enumerate(result["tf_layers"])}
    jumps = {id(a["layers"]): a["first_jump"] for a in result["artifacts"]}
    for a in result["artifacts"]:
        if a.get("split"):
            jumps[id(a["split"]["quantization"]["layers"])] = a["split"]["quantization"]["first_jump"]
    lines = []
    for label, rows in series(result):
        jump = (jumps.get(id(rows)) or {}).get("node")
        points = [charts.Point(position[r["node"]], float(r["rel_err"]),
                               title=f'#{position[r["node"]]} {r["node"]} ({r.get("op", "")}): rel err {r["rel_err"]:.3g}',
                               label="first jump" if r["node"] == jump else "")
                  for r in rows if r["node"] in position]
        lines.append(charts.Series(label, sorted(points, key=lambda p: p.x), line=True))
    return charts.scatter(lines, charts.Axis("TF layer, in topological order (hover a point for its node)",
                                             fmt=lambda v: f"{v:.0f}", integer=True),
                          charts.Axis("relative error vs TF", log=True), name="per-layer error", width=980)


def write_html(result: Mapping[str, Any], path: str) -> None:
    from tfopt._io import atomic_path
    from tfopt.report import svg as charts

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
            f"td,th{{border:1px solid #ccc;padding:2px 6px}}{charts.STYLE}</style></head><body><h1>tfopt debug compare</h1>"
            f"<p>rule: {html.escape(result['rule'])}</p>{svg(result)}{''.join(rows)}{charts.SCRIPT}</body></html>")
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
