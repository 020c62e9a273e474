"""The op sweep: tiny graphs, each exercising one commonly used TensorFlow op or TF1 pattern with
seeded ("trained-looking") variables, saved the three ways users save them and converted with
``tfopt.convert(..., to=tflite,onnx,openvino)`` at fp32 with verification, exactly as a user would.

Formats: ``savedmodel`` (a ``tf.Module`` saved by ``tf.saved_model.save`` with one signature, or for a
TF1 case a TF1 SavedModel with two signatures), ``checkpoint`` (TF1 ``.meta`` + ``.index``/``.data``)
and ``frozen`` (a ``.pb`` GraphDef from ``convert_variables_to_constants``). The cases themselves are
:mod:`tfopt.coverage.op_cases` (with the case record); a case is a body ``f(tf, inputs, weights) -> tensor | tuple`` that runs in
a ``tf.function`` and in a TF1 graph alike.

Each cell (case x format x target) is one of:

- ``ok``: built and verified in its runtime; ``max_abs_err`` against the original;
- ``typed``: a :class:`tfopt.errors.TfoptError` (a converter's limitation or a model tfopt refuses,
  explained); ``mismatch`` is the typed ``VerificationError`` (the artifact's numbers are wrong), but
  a ``MadeUpInputsError`` is ``typed`` (nothing was compared: the inputs tfopt made up do not run);
- ``internal``: any other exception: a tfopt bug whatever its cause;
- ``build``: the case could not even be saved (a bug of the case, never counted against tfopt).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Sequence
from typing import Any

from tfopt.coverage.corpus import TARGETS  # the three converters, as the corpus measures them
from tfopt.coverage.op_cases import OpCase, weight_values

FP32_BOUND = 1e-4  # what an fp32 artifact may differ from the original (the coverage matrix's bound)


def _outputs(result: Any) -> list[Any]:
    return list(result) if isinstance(result, (tuple, list)) else [result]


def save_savedmodel(case: OpCase, directory: str) -> str:
    """A ``tf.Module`` with ``tf.Variable`` weights, saved by ``tf.saved_model.save`` with one signature."""
    from tfopt._tf import tf as _tf

    tf = _tf()
    module = tf.Module()
    module.weights_ = [tf.Variable(w, name=f"w{i}") for i, w in enumerate(weight_values(case))]
    signature = [tf.TensorSpec(i.shape, tf.as_dtype(i.dtype), name=i.name) for i in case.inputs]

    def serve(*args: Any) -> dict[str, Any]:
        return {f"output_{k}": t for k, t in enumerate(_outputs(case.body(tf, list(args), module.weights_)))}

    module.serve = tf.function(serve, input_signature=signature)
    path = os.path.join(directory, "savedmodel")
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve})
    return path


def save_tf1(case: OpCase, directory: str) -> dict[str, str]:
    """One TF1 graph (placeholders, ``get_variable`` weights, outputs ``output_k``) saved as a TF1
    checkpoint, a frozen ``.pb`` and a TF1 SavedModel whose second signature serves the first output
    alone. Returns ``{format: path}``."""
    from tfopt._tf import tf as _tf

    tf = _tf()
    v1 = tf.compat.v1
    was_v2 = v1.control_flow_v2_enabled()
    if case.tf1:
        v1.disable_control_flow_v2()
    try:
        graph = tf.Graph()
        with graph.as_default():
            inputs = [v1.placeholder(tf.as_dtype(i.dtype), i.shape, name=i.name) for i in case.inputs]
            weights = [v1.get_variable(f"w{k}", initializer=w) for k, w in enumerate(weight_values(case))]
            outputs = [tf.identity(t, name=f"output_{k}")
                       for k, t in enumerate(_outputs(case.body(tf, inputs, weights)))]
            saver = v1.train.Saver() if weights else None
            with v1.Session(graph=graph) as session:
                session.run(v1.global_variables_initializer())
                paths = {"checkpoint": os.path.join(directory, "ckpt", "model.ckpt")}
                os.makedirs(os.path.dirname(paths["checkpoint"]))
                if saver is not None:
                    saver.save(session, paths["checkpoint"])
                else:
                    v1.train.export_meta_graph(paths["checkpoint"] + ".meta", graph=graph)
                frozen = v1.graph_util.convert_variables_to_constants(
                    session, graph.as_graph_def(), [t.op.name for t in outputs])
                paths["frozen"] = os.path.join(directory, "frozen.pb")
                with open(paths["frozen"], "wb") as f:
                    f.write(frozen.SerializeToString())
                paths["savedmodel"] = os.path.join(directory, "tf1_savedmodel")
                builder = v1.saved_model.Builder(paths["savedmodel"])
                info = v1.saved_model.utils.build_tensor_info
                ins = {i.name: info(t) for i, t in zip(case.inputs, inputs)}
                signatures = {
                    "serving_default": v1.saved_model.signature_def_utils.build_signature_def(
                        ins, {t.op.name: info(t) for t in outputs}, "tensorflow/serving/predict"),
                    "first_output": v1.saved_model.signature_def_utils.build_signature_def(
                        ins, {"first": info(outputs[0])}, "tensorflow/serving/predict")}
                builder.add_meta_graph_and_variables(session, ["serve"], signature_def_map=signatures)
                builder.save()
    finally:
        if case.tf1 and was_v2:
            v1.enable_control_flow_v2()
    return paths


def save_case(case: OpCase, directory: str) -> dict[str, str]:
    """``{format: path}`` for the formats the case is swept in. A TF1-pattern case's SavedModel is its
    TF1 SavedModel (two signatures); every other case's is a ``tf.Module`` saved by TF2."""
    paths: dict[str, str] = {}
    if {"checkpoint", "frozen"} & set(case.formats) or case.tf1:
        paths.update(save_tf1(case, directory))
    if "savedmodel" in case.formats and not case.tf1:
        paths["savedmodel"] = save_savedmodel(case, directory)
    return {f: paths[f] for f in case.formats if f in paths and (f != "checkpoint" or case.weights)}


def classify(exc: BaseException) -> dict[str, Any]:
    """A failure as a cell: ``typed``/``mismatch`` for tfopt's own errors, else ``internal``."""
    from tfopt.errors import MadeUpInputsError, TfoptError, VerificationError

    message = " ".join(str(exc).split())[:600]
    if isinstance(exc, VerificationError) and not isinstance(exc, MadeUpInputsError):
        return {"status": "mismatch", "error": type(exc).__name__, "message": message}
    if isinstance(exc, TfoptError):
        return {"status": "typed", "error": type(exc).__name__, "message": message}
    return {"status": "internal", "error": type(exc).__name__, "message": message}


def convert_cells(path: str, outdir: str, targets: Sequence[str] = TARGETS, **options: Any) -> dict[str, dict[str, Any]]:
    """``{target: cell}`` from one ``tfopt.convert(path, to=targets, **options)`` at fp32, verified (as a
    user's ``--to tflite,onnx,openvino``: a failing target does not hide the others). An ok cell holds the
    verification's ``max_abs_err`` and the report's ``scaled_err`` (the error in the bound's units)."""
    from tfopt import convert

    try:
        result = convert(path, outdir, to=list(targets), quantize=["fp32"], report_runs=1, **options)
    except Exception as exc:
        return {t: classify(exc) for t in targets}
    scaled = {a["format"]: a["fidelity"].get("scaled_err") for a in (result.report or {}).get("artifacts", [])}
    built = {a.format: a for a in result.artifacts}
    failed = dict(zip((f.format for f in result.failed), result.errors))
    cells: dict[str, dict[str, Any]] = {}
    for target in targets:
        if target in built:
            err = built[target].max_abs_err
            cells[target] = {"status": "ok", "max_abs_err": None if err is None else float(err),
                             "scaled_err": scaled.get(target)}
        elif target in failed:
            cells[target] = classify(failed[target])
        else:
            cells[target] = {"status": "internal", "error": "missing", "message": "neither built nor failed"}
    return cells


def sweep_case(case: OpCase, *, formats: Sequence[str] | None = None,
               targets: Sequence[str] = TARGETS) -> list[dict[str, Any]]:
    """Every cell of one case: ``{case, group, format, target, status, ...}`` rows."""
    rows: list[dict[str, Any]] = []
    wanted = [f for f in (formats or case.formats) if f in case.formats and (f != "checkpoint" or case.weights)]
    with tempfile.TemporaryDirectory() as tmp:
        try:
            paths = save_case(case, tmp)
        except Exception as exc:
            message = " ".join(f"{type(exc).__name__}: {exc}".split())[:400]
            return [{"case": case.name, "group": case.group, "format": f, "target": t, "status": "build",
                     "message": message} for f in wanted for t in targets]
        for fmt in wanted:
            start = time.perf_counter()
            cells = convert_cells(paths[fmt], os.path.join(tmp, f"out-{fmt}"), targets)
            seconds = round(time.perf_counter() - start, 1)
            rows += [{"case": case.name, "group": case.group, "format": fmt, "target": t, "seconds": seconds,
                      **cell} for t, cell in cells.items()]
    return rows


def within_bound(row: dict[str, Any], bound: float = FP32_BOUND) -> bool:
    """An ok cell within the fp32 bound (an unmeasured error counts as within: verification passed)."""
    return row["status"] != "ok" or row.get("max_abs_err") is None or row["max_abs_err"] <= bound


def counts(rows: Sequence[dict[str, Any]]) -> dict[str, int]:
    """Cells per status."""
    out: dict[str, int] = {}
    for row in rows:
        out[row["status"]] = out.get(row["status"], 0) + 1
    return out


def to_markdown(rows: Sequence[dict[str, Any]]) -> str:
    """One line per case x format (a cell per target), then one note per failing cell."""
    lines = ["| case | format | " + " | ".join(TARGETS) + " |", "|---|---|" + "---|" * len(TARGETS)]
    notes: list[str] = []
    by_key: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for row in rows:
        by_key.setdefault((row["case"], row["format"]), {})[row["target"]] = row
    for (case, fmt), cells in by_key.items():
        out = []
        for target in TARGETS:
            cell = cells.get(target)
            if cell is None:
                out.append("")
            elif cell["status"] == "ok":
                err = cell.get("max_abs_err")
                out.append("ok" if err is None else f"ok {err:.1e}")
            else:
                notes.append(f"{case}/{fmt}/{target}: **{cell['status']}** {cell.get('error', '')}: "
                             f"{cell.get('message', '')[:300]}")
                out.append(f"{cell['status']} [{len(notes)}]")
        lines.append(f"| {case} | {fmt} | " + " | ".join(out) + " |")
    total = counts(rows)
    lines += ["", "Cells: " + ", ".join(f"{k} {v}" for k, v in sorted(total.items())), ""]
    return "\n".join(lines + [f"{i}. {n}" for i, n in enumerate(notes, 1)]) + "\n"
