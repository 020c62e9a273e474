"""Which TF tensors an engine-built int8 artifact holds rescaled per channel, by design.

Cross-layer equalization (:mod:`tfopt.quantizing.engine.equalize`) divides output channel ``i`` of
``layer1`` by ``s_i`` and multiplies the matching input channel of ``layer2`` by it (high-bias
absorption also shifts it by ``c_i``): exact in float at ``layer2``'s output, but every tensor from
``layer1`` up to ``layer2``'s input (its bias, activation and clip) is ``y_i / s_i − c_i`` in the
artifact. Compared with the original TF graph those tensors show an error that is no error, so
:func:`rescaled_nodes` names them and :mod:`tfopt.debug.compare` reports them without letting them
decide the first jump.

The pairs come from the ``manifest.json`` tfopt wrote beside the artifact (``int8_engine``: the
recipe each target's int8 used and what its equalization paired).
"""

from __future__ import annotations

import json
import os
from typing import Any

from tfopt.graph import Model, consumers

MAX_CHAIN = 8  # nodes between layer1 and layer2 (BiasAdd, Relu/Relu6, Minimum, ... : a few)


def engine_record(path: str) -> dict[str, Any] | None:
    """``int8_engine`` of the manifest.json beside ``path`` (or one directory up: OpenVINO's IR
    directory), or None."""
    here = os.path.dirname(os.path.abspath(path if not os.path.isdir(path) else os.path.join(path, "x")))
    for directory in (here, os.path.dirname(here)):
        manifest = os.path.join(directory, "manifest.json")
        if os.path.isfile(manifest):
            try:
                with open(manifest) as f:
                    record = json.load(f).get("int8_engine")
            except (OSError, ValueError):
                return None
            return record if isinstance(record, dict) else None
    return None


def rescaled_nodes(model: Model, path: str, target: str) -> set[str]:
    """TF nodes whose values ``target``'s engine-built artifact at ``path`` holds rescaled (module doc)."""
    record = engine_record(path)
    if not record:
        return set()
    recipe = (record.get("recipe") or {}).get(target)
    step = ((record.get("engine") or {}).get(recipe) or {}).get("transforms", {}).get("equalize") if recipe else None
    if not step:
        return set()
    users = consumers(model.graph_def)
    out: set[str] = set()
    for pair in step.get("pairs", []):
        chain: list[str] = []
        node = pair["layer1"]
        while node != pair["layer2"] and len(chain) < MAX_CHAIN:
            chain.append(node)
            readers = {n.name for n, _ in users.get(node, [])}
            if len(readers) != 1:
                break
            node = readers.pop()
        if node == pair["layer2"]:
            out.update(chain)
    return out
