"""The inputs and outputs ``tfopt convert`` records in ``outdir/manifest.json``, and reading them back.

Each record is the :class:`~tfopt.graph.TensorSpec` (name, tensor, dtype, shape) plus the axis that
holds its samples, so a deployer or CI script can batch each input without guessing:

    batch_axis         an input: the axis its graph's structure names (:mod:`tfopt.graphdef.batch_axis`,
                       a lone time-major ``[time, batch, n]``: 1; its RNN's state ``[1, batch, h]``
                       tied to it: 1), else 0, the axis tfopt cuts data on;
                       an output: where the inputs' batch axes arrive (:func:`output_batch_axes`);
                       ``null`` for a scalar, an unknown rank, or an output no trail reaches
    batch_axis_source  ``"graph"`` (the structure says), ``"default"`` (an input's axis 0 by convention),
                       ``null`` (no batch axis recorded)
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from typing import Any

from tfopt.graph import Model, TensorSpec


def spec_records(model: Model) -> dict[str, list[dict[str, Any]]]:
    """``{"inputs": [...], "outputs": [...]}``: ``model``'s specs with their batch axis (see the module doc)."""
    from tfopt.graphdef.batch_axis import output_batch_axes

    def record(spec: TensorSpec, axis: int | None, source: str | None) -> dict[str, Any]:
        return {**asdict(spec), "batch_axis": axis, "batch_axis_source": source if axis is not None else None}

    inputs = [record(s, s.batch_axis, "graph") if s.batch_axis is not None else
              record(s, 0 if s.shape else None, "default") for s in model.inputs]
    found = output_batch_axes(model.graph_def, model.inputs, model.outputs)
    return {"inputs": inputs, "outputs": [record(s, found.get(s.name), "graph") for s in model.outputs]}


def manifest_model(outdir: str) -> Model:
    """The inputs/outputs recorded in ``outdir/manifest.json`` (an empty graph): what
    :func:`tfopt.runtimes.runner_for` needs to run any artifact of that conversion.

    Args:
        outdir: a ``tfopt convert`` output directory.

    Returns:
        A :class:`Model` with an empty ``GraphDef`` and the recorded inputs and outputs, in order,
        each with the batch axis its graph's structure named (``batch_axis_source: "graph"``).
    """
    from tfopt._tf import graph_def_class

    with open(os.path.join(outdir, "manifest.json")) as f:
        manifest = json.load(f)

    def specs(key: str) -> list[TensorSpec]:
        return [TensorSpec(s["name"], s["tensor"], s["dtype"], None if s["shape"] is None else tuple(s["shape"]),
                           s.get("batch_axis") if s.get("batch_axis_source") == "graph" else None)
                for s in manifest[key]]

    return Model(graph_def=graph_def_class()(), inputs=specs("inputs"), outputs=specs("outputs"))
