"""The report's artifact table and compression summary, shared by the terminal, Markdown and HTML."""

from __future__ import annotations

from typing import Any

from tfopt.targets import precision_name


def rows(report: dict[str, Any]) -> list[list[str]]:
    """One row of :data:`HEADER` cells per artifact of ``report``."""
    out = []
    for a in report["artifacts"]:
        acc = a.get("accuracy") or {}
        acc_text = f"{acc['top1']:.2f}%" if "top1" in acc else f"MAE {acc['mae']:.4g}" if "mae" in acc else "-"
        drop = "-" if a.get("accuracy_drop") is None else f"{a['accuracy_drop']:+.2f}"
        f = a["fidelity"]
        out.append([a["format"], precision_name(a["precision"]), f"{a['bytes']:,}",
                    f"{a['gzip_bytes']:,}" if a.get("gzip_bytes") else "-", f"{f['max_abs_err']:.3g}",
                    f"{f['cosine']:.6f}", f"{f['top1_agreement']:.1f}%", acc_text, drop,
                    f"{a['latency_ms']['median']:.2f}", f"{a['latency_ms']['p90']:.2f}",
                    kernels_text(a.get("int8_ops")) or "-"])
    return out


# The columns of :func:`rows`, in order.
HEADER = ["format", "precision", "bytes", "gzip bytes", "max abs err", "cosine", "top-1 agree", "accuracy",
          "drop (pts)", "latency ms", "p90 ms", "int8 kernels"]


def kernels_text(ops: dict[str, Any] | None) -> str:
    """What an int8 artifact's runtime executes, briefly: ``int8 6/6, act fused 3/4, 1 float island``
    (:func:`tfopt.quantizing.int8_ops.count_quantized_ops`: layers running int8 kernels; of the
    layers with an activation, those whose kernel applies it; groups of float ops between int8
    layers). "" when there is no count."""
    if not ops:
        return ""
    layers = len(ops.get("layers", [])) or ops.get("int8", 0) + ops.get("float", 0)
    text = f"int8 {ops.get('int8', 0)}/{layers}"
    if "fused" in ops:
        text += f", act fused {ops['fused']}/{ops['fused'] + ops['unfused']}"
        if ops.get("float_islands"):
            text += f", {ops['float_islands']} float island{'s' if ops['float_islands'] > 1 else ''}"
    return text


def fixed_batch_note(fixed_shapes: dict[str, list[int]]) -> str:
    """What an artifact whose converter fixed the open batch (``fixed_shapes``: input -> shape, -1
    open) takes: one sample per call."""
    taken = ", ".join(f"{k}:{'x'.join('?' if d < 0 else str(d) for d in v)}" for k, v in fixed_shapes.items())
    return (f"batch fixed in the file ({taken}): the converter cannot build it with an open batch; "
            "feed one sample per call (other dimensions stay open)")


# The rewrites an artifact's converter read its graph with (tfopt.emitters.rewrite_record's kinds), as the report
# says them; any other kind, ``lowered_<Op>``: that op as its formula for this converter.
REWRITES = {"split_reductions": "large float32 reduction{s} split into partial sums",
            "lowered_resizes": "resize{s} as TensorFlow's own weights (matrix products)",
            "lowered_for_builtins": "op{s} TFLite has no builtin for, as exact builtins"}


def rewrites_note(rewrites: dict[str, list[str]]) -> str:
    """What an artifact's converter read in place of the graph's ops (``rewrites``: kind -> report lines, each
    ``node (op: what)``), the nodes named."""
    parts = []
    for kind, lines in rewrites.items():
        what = REWRITES.get(kind, f"{kind.removeprefix('lowered_')}{{s}} as its formula").format(
            s="s" if len(lines) > 1 else "")
        parts.append(f"{len(lines)} {what} ({', '.join(line.split(' (', 1)[0] for line in lines)})")
    return "converted from a rewritten graph, the same function: " + "; ".join(parts)


def runtime_notes(report: dict[str, Any]) -> list[str]:
    """One line per artifact whose batch its converter fixed (:func:`fixed_batch_note`), per artifact whose
    converter read a rewritten graph (:func:`rewrites_note`), and per
    artifact whose runtime may run it at another precision by default (OpenVINO's
    CPU plugin: bf16 on CPUs with bf16): the call that reproduces the verified numbers, and the
    fidelity at the runtime's default, or why it is the same."""
    out = []
    for a in report["artifacts"]:
        if a.get("fixed_shapes"):
            out.append(f"{a['format']} {precision_name(a['precision'])}: {fixed_batch_note(a['fixed_shapes'])}")
        if a.get("rewrites"):
            out.append(f"{a['format']} {precision_name(a['precision'])}: {rewrites_note(a['rewrites'])}")
        d = a.get("runtime_default")
        if not d:
            continue
        head = f"{a['format']} {precision_name(a['precision'])}: verified with {d['reproduce']}"
        if d["fidelity"] is None:
            out.append(f"{head}; {d['why']}")
            continue
        f = d["fidelity"]
        run = f"hint {d['hint']}" if d["hint"] else "no hint, as a plain compile_model(xml, \"CPU\")"
        out.append(f"{head} (max abs err {a['fidelity']['max_abs_err']:.3g}); at the runtime's default ({run}, "
                   f"compiled as {d['compiled_precision']}; this CPU's default is {d['cpu_default_precision']}): "
                   f"max abs err {f['max_abs_err']:.3g}, cosine {f['cosine']:.6f}, top-1 agree {f['top1_agreement']:.1f}%"
                   + _default_inputs(report, d))
    return out


def _default_inputs(report: dict[str, Any], default: dict[str, Any]) -> str:
    """Which inputs the runtime-default error was measured on. Made-up inputs (centred at 0) can understate a
    lower precision's error by orders of magnitude: bf16 keeps 8 mantissa bits, so an input whose signal is a
    small deviation on a large offset (a normalised flux, 1 +- 0.001) loses it to the rounding of the input
    itself (stella's flare CNN: 7.2e-4 on made-up inputs, 0.56 on real light curves)."""
    source = ((report.get("verification") or {}).get("source")) or "made up"
    if default.get("compiled_precision") == "f32":
        return ""
    if source in ("calibration", "eval-data"):  # real inputs; "verify-shape" only fixes made-up inputs' shapes
        return f" (on the --{source} inputs)"
    return (" (on made-up inputs centred at 0: an input whose signal rides on an offset, such as 1 +- 0.001, loses "
            "it to the lower precision's rounding, which these inputs do not show; pass --calibration DATA with "
            "real inputs to measure the default on them)")


def compression_summary(c: dict[str, Any]) -> str:
    """One paragraph: what clustering/pruning did per layer, and whether it was fine-tuned."""
    what = " + ".join(x for x in (f"pruned to {100 * c['prune']:.0f}% zeros" if c.get("prune") else "",
                                  f"clustered to {c['cluster']} values ({c['cluster_init']})" if c.get("cluster") else "")
                      if x)
    done = [f"{r['layer']} ({r['unique']} values, {100 * r['sparsity']:.0f}% zeros)" for r in c["layers"] if r["actions"]]
    alone = [f"{r['layer']}: {r['left_alone']}" for r in c["layers"] if r["left_alone"]]
    tuned = (f"fine-tuned {c['finetune_epochs']} epoch(s)" if c["finetuned"]
             else "post-training only (no --finetune-data): accuracy and agreement above are against the uncompressed model")
    snapped = c.get("snapped_after_fold") or []  # tfopt.passes.cluster_weights
    after = (f"\n  snapped after BatchNorm folding: {len(snapped)} kernel(s) to at most {c['cluster']} values "
             f"({', '.join(d['node'] for d in snapped)})" if snapped else "")
    return (f"compression: {what}; {tuned}\n  changed: {', '.join(done) or 'nothing'}"
            + (f"\n  left alone: {'; '.join(alone)}" if alone else "") + after)


def conditioning_notes(report: dict[str, Any]) -> list[str]:
    """``the frozen model: the original differs from itself ...``, ``onnx/fp32: ...``: each stage's graph and artifact
    verified at a smaller made-up scale than the others, the original being ill-conditioned on made-up inputs
    (:func:`tfopt.verification.conditioning.record`)."""
    stages = ((report.get("verification") or {}).get("conditioning") or {}).items()
    return ([f"{what}: {record['note']}" for what, record in stages]
            + [f"{a['format']}/{a['precision']}: {a['conditioning']['note']}" for a in report["artifacts"]
               if a.get("conditioning")])
