"""Read back what ``tfopt convert`` recorded in ``outdir/manifest.json``."""

from __future__ import annotations

import json
import os

from tfopt.graph import Model, TensorSpec


def manifest_model(outdir: str) -> Model:
    """The inputs/outputs recorded in ``outdir/manifest.json`` (an empty graph): what
    :func:`tfopt.runtimes.runner_for` needs to run any artifact of that conversion.

    Args:
        outdir: a ``tfopt convert`` output directory.

    Returns:
        A :class:`Model` with an empty ``GraphDef`` and the recorded inputs and outputs, in order.
    """
    from tfopt._tf import graph_def_class

    with open(os.path.join(outdir, "manifest.json")) as f:
        manifest = json.load(f)

    def specs(key: str) -> list[TensorSpec]:
        return [TensorSpec(s["name"], s["tensor"], s["dtype"], None if s["shape"] is None else tuple(s["shape"]))
                for s in manifest[key]]

    return Model(graph_def=graph_def_class()(), inputs=specs("inputs"), outputs=specs("outputs"))
