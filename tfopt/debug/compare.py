"""Layer-by-layer errors of artifacts against the TF graph, and where the error first jumps.

For each artifact and each TF node an artifact tensor is aligned to (:mod:`tfopt.runtimes.align`; the
group boundary the runtime executes, see :mod:`tfopt.debug.intermediates`), with ``e`` the
artifact's values minus TensorFlow's over every sample (NCHW tensors moved back to NHWC)::

    max_abs_err  = max |e|            mean_abs_err = mean |e|
    rel_err      = rms(e) / rms(tf)   cosine       = <got, tf> / (|got| |tf|)

When both layouts fit the shapes (a square tensor whose channels equal its height), the one with the
smaller error is taken.

**First jump** (rule, in TF's topological order): the first layer ``i`` with
``rel_err[i] >= floor`` and ``rel_err[i] >= FACTOR * max(rel_err[j] for j < i)`` (no earlier
layer: the floor alone). ``FACTOR`` = 4; the floor is :data:`FLOORS` of what is compared:
``conversion`` (a float artifact against TF, or the float artifact of a quantized one) 1e-3, float
kernels agree to ~1e-6; ``quantization`` (a quantized artifact against TF or against its float
artifact) 5e-2, several times the ~0.5-1 % one int8 rounding of a ReLU activation costs. Error made
early flows into every later layer, so a later jump must outgrow everything before it.

Tensors that an engine-built int8 artifact holds rescaled per channel by cross-layer equalization
(:mod:`tfopt.debug.rescaled`) are marked ``rescaled`` and skipped by the rule.

**Split**: a quantized artifact given with a float (fp32/fp16) artifact of the same target gets
``conversion`` (float artifact vs TF) and ``quantization`` (quantized vs float artifact, node by
node), each with its own first jump.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tfopt.debug.intermediates import Intermediates, compared, float_nodes, open_intermediates, tf_values
from tfopt.debug.rescaled import rescaled_nodes
from tfopt.errors import OptionError
from tfopt.graph import Model, node_map
from tfopt.runtimes.align import Alignment, align, boundaries
from tfopt.verification.deadline import artifact_ends

FACTOR = 4.0
FLOORS = {"conversion": 1e-3, "quantization": 5e-2}
RULE = ("first layer with rel_err >= floor and >= 4x the largest rel_err of the layers before it "
        "(floor: 1e-3 conversion, 5e-2 quantization)")


def errors(expected: np.ndarray, got: np.ndarray) -> dict[str, Any] | None:
    """The four error measures of ``got`` against ``expected`` (module docstring), or ``None``
    when no layout of ``got`` has ``expected``'s shape."""
    exp = expected.astype(np.float64)
    best: dict[str, Any] | None = None
    for layout, value in _layouts(got.astype(np.float64), exp.shape):
        e = value - exp
        rms = float(np.sqrt(np.mean(exp ** 2))) if exp.size else 0.0
        rel = float(np.sqrt(np.mean(e ** 2))) / (rms or 1.0) if exp.size else 0.0
        norm = float(np.linalg.norm(value) * np.linalg.norm(exp))
        row = {"max_abs_err": float(np.max(np.abs(e))) if e.size else 0.0,
               "mean_abs_err": float(np.mean(np.abs(e))) if e.size else 0.0, "rel_err": rel,
               "cosine": float(np.sum(value * exp)) / norm if norm else 1.0, "layout": layout}
        if best is None or row["rel_err"] < best["rel_err"]:
            best = row
    return best


def _layouts(got: np.ndarray, shape: tuple[int, ...]) -> list[tuple[str, np.ndarray]]:
    out = [("as is", got)] if got.shape == shape else []
    if got.ndim >= 3:
        moved = np.moveaxis(got, 1, -1)
        if moved.shape == shape:
            out.append(("NCHW->NHWC", moved))
    return out


def first_jump(rows: Sequence[Mapping[str, Any]], floor: float, factor: float = FACTOR) -> dict[str, Any] | None:
    """The first row meeting the jump rule (module docstring), with ``over``: its ratio to the max before.
    Rows marked ``rescaled`` (held rescaled by equalization, :mod:`tfopt.debug.rescaled`) are skipped."""
    worst = 0.0
    for row in rows:
        if row.get("rescaled"):
            continue
        rel = row["rel_err"]
        if rel >= floor and rel >= factor * worst:
            return {"node": row["node"], "index": row["index"], "rel_err": rel,
                    "over": rel / worst if worst else None}
        worst = max(worst, rel)
    return None


def layer_rows(expected: Mapping[str, np.ndarray], got: Mapping[str, np.ndarray], order: Mapping[str, int],
               meta: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per node in both ``expected`` and ``got``, in TF order."""
    rows = []
    for node in sorted(set(expected) & set(got), key=lambda n: order.get(n, -1)):
        measured = errors(expected[node], got[node])
        if measured is None:
            continue
        rows.append({"node": node, "index": order.get(node, -1), **meta.get(node, {}), **measured})
    return rows


def compare(model: Model, paths: Sequence[str], samples: Sequence[dict[str, np.ndarray]]) -> dict[str, Any]:
    """Compare every artifact in ``paths`` with ``model`` (the TF graph they were converted from).

    Returns:
        What ``compare.json`` holds: per artifact its layers, first jump, split, notes and the
        tensors it could not align.

    Raises:
        OptionError: an artifact is of no target whose record names ``intermediates``, or shares
            no tensor name with the model.
        TensorPairingError: its inputs or outputs cannot be paired with the model's by name.
        VerificationTimeoutError: the model or an artifact did not end on a sample within the bound in force
            (``--verify-timeout``: :mod:`tfopt.verification.deadline`).
    """
    from tfopt.targets import target_of_file

    opened: list[tuple[Intermediates, Alignment, dict[str, str]]] = []
    for path in paths:
        record = target_of_file(path)
        if record is None or record.intermediates is None:
            raise OptionError(f"{path}: not a {compared()} artifact (file or directory); "
                              "tfopt debug compare runs those")
        run_path = os.path.join(path, record.run_file) if os.path.isdir(path) else path
        inter = open_intermediates(record.name, run_path, model)
        alignment = align(model.graph_def, inter.tensors, inter.anchors)
        _check_same_model(path, inter, alignment)
        comparable = {t.key for t in inter.tensors if t.value} - inter.interior
        opened.append((inter, alignment, boundaries(alignment, comparable)))
    nodes = node_map(model.graph_def)
    wanted = sorted({n for _, _, b in opened for n in b} & set(float_nodes(model)))
    expected, seconds = tf_values(model, wanted, samples)
    for inter, _, _ in opened:  # its runtime keeps the tensors in process next, which no bound can stop
        artifact_ends(inter.target, inter.path, model, samples, seconds)
    order = opened[0][1].order if opened else {}
    meta = {n: {"op": nodes[n].op} for n in wanted}
    results = []
    got_by_path: dict[str, dict[str, np.ndarray]] = {}
    for inter, alignment, chosen in opened:
        keys = {n: k for n, k in chosen.items() if n in expected}
        values = inter.run(list(keys.values()), samples)
        got = {n: values[k] for n, k in keys.items()}
        got_by_path[inter.path] = got
        rows = layer_rows(expected, got, order, {n: {**meta[n], "tensor": _name(inter, keys[n]),
                                                     "how": alignment.tensors[keys[n]].how} for n in keys})
        rescaled = rescaled_nodes(model, inter.path, inter.target) if inter.quantized else set()
        for row in rows:
            if row["node"] in rescaled:
                row["rescaled"] = True
        if rescaled & {row["node"] for row in rows}:
            inter.notes.append(f"{inter.target}: built by tfopt's engine with cross-layer equalization: "
                               f"{len(rescaled & {row['node'] for row in rows})} tensor(s) between equalized layers "
                               "are rescaled per channel by design (exact at the next layer's output); they are "
                               "listed as 'rescaled' and do not decide the first jump")
        kind = "quantization" if inter.quantized else "conversion"
        results.append({"path": inter.path, "target": inter.target, "quantized": inter.quantized,
                        "precision": inter.precision, "notes": inter.notes, "layers": rows,
                        "first_jump": first_jump(rows, FLOORS[kind]),
                        "aligned": len(alignment.tensors), "compared": len(rows),
                        "unaligned": [{"tensor": name, "reason": why} for _, name, why in alignment.unaligned]})
    for result in results:
        if result["quantized"]:
            result["split"] = _split(result, results, got_by_path, expected, order, meta)
    return {"rule": RULE, "factor": FACTOR, "floors": FLOORS, "artifacts": results,
            "tf_layers": [{"node": n, "index": order.get(n, -1), "op": nodes[n].op}
                          for n in sorted(expected, key=lambda n: order.get(n, -1))]}


def _split(result: dict[str, Any], results: list[dict[str, Any]], got: Mapping[str, Mapping[str, np.ndarray]],
           expected: Mapping[str, np.ndarray], order: Mapping[str, int],
           meta: Mapping[str, Mapping[str, Any]]) -> dict[str, Any] | None:
    partner = next((r for r in results if r["target"] == result["target"] and not r["quantized"]), None)
    if partner is None:
        return None
    conversion = [r for r in partner["layers"] if r["node"] in got[result["path"]]]
    quantization = layer_rows(got[partner["path"]], got[result["path"]], order, meta)
    rescaled = {r["node"] for r in result["layers"] if r.get("rescaled")}
    for row in quantization:
        if row["node"] in rescaled:
            row["rescaled"] = True
    return {"float_artifact": partner["path"],
            "conversion": {"layers": conversion, "first_jump": first_jump(conversion, FLOORS["conversion"])},
            "quantization": {"layers": quantization, "first_jump": first_jump(quantization, FLOORS["quantization"])}}


def _name(inter: Intermediates, key: str) -> str:
    tensor = next((t for t in inter.tensors if t.key == key), None)
    return tensor.names[0] if tensor is not None and tensor.names else key


def _check_same_model(path: str, inter: Intermediates, alignment: Alignment) -> None:
    named = [a for a in alignment.tensors.values() if a.how == "name"]
    if not named and alignment.unaligned:
        raise OptionError(f"{path}: none of the artifact's {len(inter.tensors)} tensor names is a node of the "
                          "model's TF graph: it was converted from a different model (or renamed); pass the model "
                          "it was converted from")
