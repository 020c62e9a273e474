"""Terminal tables: what each pass did, and the report."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from tfopt.report.table import (
    HEADER,
    compression_summary,
    conditioning_notes,
    fixed_batch_note,
    kernels_text,
    runtime_notes,
)
from tfopt.report.table import rows as table_rows


def print_pass_table(passes: Sequence[Any], *, max_skips: int = 10) -> None:
    """One row per pass: nodes before -> after (its own changes), ops removed/added, then skips."""
    width = max((len(p.name) for p in passes), default=10)
    for p in passes:
        removed = ", ".join(f"-{n} {op}" for op, n in sorted(p.removed.items(), key=lambda kv: -kv[1]))
        added = ", ".join(f"+{n} {op}" for op, n in sorted(p.added.items(), key=lambda kv: -kv[1]))
        change = "; ".join(x for x in (removed, added) if x) or "no change"
        print(f"  {p.name:<{width}}  {p.nodes_before:>6} -> {p.nodes_after:<6} {change}")
    skips = [(p.name, s) for p in passes for s in p.skips]
    for name, skip in skips[:max_skips]:
        print(f"  skipped {name}: {skip}")
    if len(skips) > max_skips:
        print(f"  ... {len(skips) - max_skips} more skips (--json lists them all)")


def print_report(report: dict[str, Any]) -> None:
    rows = [HEADER, *table_rows(report)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER))]
    for row in rows:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths)))
    for note in runtime_notes(report):
        print(f"runtime  {note}")
    for note in conditioning_notes(report):  # verified at a smaller made-up scale: the original is ill-conditioned
        print(f"note     {note}")
    ref = report["reference"]
    print(f"original model: {ref['latency_ms']['median']:.2f} ms"
          + (f", top-1 {ref['accuracy']['top1']:.2f}%" if ref.get("accuracy") and "top1" in ref["accuracy"] else ""))
    if report.get("batching") and report.get("batch_rows", 1) > 1:
        print(f"measured on {report['batching']}")  # a graph that takes whole batches (towers)
    if report.get("nonfinite_inputs"):
        print("measured on inputs holding NaN/Inf (--allow-nonfinite): "
              + ", ".join(f"{name} {n}" for name, n in report["nonfinite_inputs"].items()))
    for gate in report.get("gates", []):
        if gate["failed"]:
            print(f"FAILED   {gate['format']}/{gate['precision']}: {gate['gate']} ({gate['metric']} = {gate['value']:.4g})")


def format_value(value: Any) -> str:
    import numpy as np

    arr = np.asarray(value)
    if arr.size == 1:
        return str(arr.item())
    return f"{arr.flat[0]} (filled to shape {'x'.join(map(str, arr.shape))})"


def format_bytes(n: int | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"


def print_convert(output: str, result: Any, *, as_json: bool = False, verified: bool = True) -> None:
    """What `tfopt convert` prints: the report table and the files written (or the manifest)."""
    if as_json:
        with open(os.path.join(output, "manifest.json")) as f:
            print(f.read())
        return
    at = getattr(result, "verified_at", None)
    if at is not None:
        print(f"verified at {at.summary()}")
    if result.report is not None:
        print_report(result.report)
        if result.report.get("compression"):
            print(compression_summary(result.report["compression"]))
        print_int8(result)
        for a in result.artifacts:
            print(f"wrote    {os.path.join(output, a.path)}")
        for fmt, precision, reason in result.skipped:
            print(f"skipped  {fmt} {precision}: {reason}")
        print_failed(result)
        print(f"wrote    {output}/manifest.json, report.json, report.md, report.html")
        return
    print(f"{'format':<11} {'precision':<9} {'bytes':>10}  {'max abs err':>11}  path")
    for a in result.artifacts:
        err = "-" if a.max_abs_err is None else f"{a.max_abs_err:.3g}"
        print(f"{a.format:<11} {a.precision:<9} {a.bytes:>10}  {err:>11}  {os.path.join(output, a.path)}")
        if getattr(a, "fixed_shapes", None):
            print(f"note     {a.format} {a.precision}: {fixed_batch_note(a.fixed_shapes)}")
    for fmt, precision, reason in result.skipped:
        print(f"skipped  {fmt} {precision}: {reason}")
    print_failed(result)
    print(f"wrote    {output}/manifest.json"
          + ("" if verified else " (not verified: --no-verify)"))


def print_failed(result: Any) -> None:
    """One block per requested artifact that failed (not written): the stage and the error, with
    the ``tfopt debug`` command it suggests."""
    for f in getattr(result, "failed", []):
        first, *rest = f.reason.splitlines() or [""]
        print(f"FAILED   {f.format} {f.precision} ({f.stage}, {f.error}, not written): {first}")
        for line in rest:
            print(f"         {line.strip()}")


def print_int8(result: Any) -> None:
    """One line per quantized artifact: who quantized it (tfopt's engine and its recipe, or the
    converter's own), how many layers run int8 kernels in its runtime, how many activations run in
    the layer's kernel (fused) or as a separate op, and the float islands between int8 layers; a note
    under an artifact in which no layer runs int8 (every layer inside a TF1 loop, or kept float)."""
    recipes = (getattr(result, "int8", None) or {}).get("recipe", {})
    for a in result.artifacts:
        ops = getattr(a, "int8_ops", None)
        if not ops:
            continue
        by = a.quantizer or "native"
        if by == "tfopt":
            by = f"tfopt engine ({recipes.get(a.format, '?')})"
        separate = [layer["name"].split(";")[0] for layer in ops.get("layers", []) if layer.get("activation") == "separate"]
        print(f"int8     {a.format} {a.precision}: {kernels_text(ops)}; quantized by {by}"
              + (f"; separate activation after {_listed(separate)}" if separate else ""))
        if not ops.get("int8"):  # asked for int8, got a float file: say so where it is seen
            print(f"note     {a.format} {a.precision}: no layer runs an int8 kernel, so the file is about as large and "
                  "as fast as fp32 (what stayed float and why: manifest.json, int8_engine and int8_ops)")
    for target, tried in ((getattr(result, "int8", None) or {}).get("candidates") or {}).items():
        print_candidates(target, tried, (result.int8.get("why") or {}).get(target, ""))
    for target, reason in (getattr(result, "engine_fallbacks", None) or {}).items():
        print(f"note     {target} int8: its converter could not express tfopt's int8 graph ({reason}); "
              "built with its own quantizer")


def _listed(names: list[str], most: int = 3) -> str:
    shown = ", ".join(names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def print_candidates(target: str, tried: Sequence[dict[str, Any]], why: str) -> None:
    """``--int8-recipe auto``: each candidate's drop against float (top-1 points, or its own unit),
    its latency, whether it passed the gates; the kept one marked, and why it was kept."""
    print(f"int8     {target} recipes tried (drop vs float, median latency):")
    for t in tried:
        drop = "-" if t.get("drop") is None else f"{t['drop']:.2f}"
        ms = "-" if t.get("latency_ms") is None else f"{t['latency_ms']:.3g} ms"
        mark = "*" if t.get("kept") else " "
        print(f"         {mark} {t['recipe']:<42} drop {drop:>6}  {ms:>10}"
              + ("" if t.get("passes_gates", True) else "  (fails a --fail-if gate)"))
    if why:
        print(f"         kept {why}")


def print_artifact_info(info: dict[str, Any], *, rows: int = 12) -> None:
    """`tfopt inspect ARTIFACT`: size, gzip size, and the largest weight tensors' unique values and zeros."""
    print(f"{info['format']}  {info['path']}")
    print(f"  {format_bytes(info['bytes'])}, gzip {format_bytes(info['gzip_bytes'])}; {info['weight_tensors']} weight "
          f"tensors, {info['weights']:,} weights, {100 * info['zeros']:.1f}% zeros")
    print(f"  {'weights':>9} {'unique':>7} {'zeros':>7}  tensor")
    for w in info["weight_table"][:rows]:
        size = 1
        for d in w["shape"]:
            size *= d
        print(f"  {size:>9,} {w['unique']:>7,} {100 * w['sparsity']:>6.1f}%  {w['name'][:90]}")
    if len(info["weight_table"]) > rows:
        print(f"  ... {len(info['weight_table']) - rows} more (--json lists them all)")


class ProgressPrinter:
    """Progress on stderr. Stage messages are lines; :class:`tfopt.terminal.progress.Step` events are a
    ``rich`` progress bar redrawn in place on a terminal. In a CI log (not a TTY) nothing is redrawn:
    one line when a stepped stage starts and one when it ends, no carriage returns."""

    def __init__(self, stream: TextIO | None = None, width: int = 24):
        self.stream = stream or sys.stderr
        self.width = width
        self.tty = self.stream.isatty()
        self._bar: Any = None  # (rich Progress, task id, label) while a bar is drawn

    def __call__(self, event: Any) -> None:
        from tfopt.terminal.progress import Step

        if not isinstance(event, Step):
            self.close()
            print(f"  ... {event}", file=self.stream, flush=True)
            return
        if not self.tty:
            if event.done in (1, event.total):
                print(f"  {event.done}/{event.total} {event.label}", file=self.stream, flush=True)
            return
        if self._bar is None or self._bar[2] != event.label:
            self.close()
            self._bar = (*self._start(event), event.label)
        bar, task, _ = self._bar
        bar.update(task, completed=event.done, total=event.total)
        if event.done >= event.total:
            self.close()

    def _start(self, event: Any) -> tuple[Any, Any]:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        console = Console(file=self.stream, force_terminal=True, highlight=False)
        bar = Progress(TextColumn("  "), BarColumn(bar_width=self.width), MofNCompleteColumn(),
                       TextColumn("{task.description}"), TimeElapsedColumn(), console=console, transient=False)
        bar.start()
        return bar, bar.add_task(event.label, total=event.total)

    def close(self) -> None:
        if self._bar is not None:
            self._bar[0].stop()
            self._bar = None
