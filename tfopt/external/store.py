"""External tensors in a stored prepared model (:mod:`tfopt.conversion.store`, the fleet's cache).

The graph is stored with each ``ImmutableConst`` naming its file relative to the store directory
(``external/<file>``), and the file is hard-linked there (copied once only across file systems):
every task that reads the entry maps the same file, nothing is copied into an ``.npz`` per task.
Reading re-roots the names to the directory read from, accepting only plain file names (a stored
graph never points outside its own directory).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from typing import Any

from tfopt.errors import StoreFormatError
from tfopt.external.tensors import EXTERNAL_OP, ExternalTensors

SUBDIR = "external"


def store_external(graph_def: Any, directory: str) -> tuple[Any, list[dict[str, Any]]]:
    """``(graph to write, records)``: a copy of ``graph_def`` whose external tensors name their files
    relative to ``directory`` (linked there), and one record per tensor; the graph itself when it has none."""
    nodes = [n for n in graph_def.node if n.op == EXTERNAL_OP]
    if not nodes:
        return graph_def, []
    out = type(graph_def)()
    out.CopyFrom(graph_def)
    os.makedirs(os.path.join(directory, SUBDIR), exist_ok=True)
    records = []
    for node in out.node:
        if node.op != EXTERNAL_OP:
            continue
        source = node.attr["memory_region_name"].s.decode()
        file = hashlib.sha256(source.encode()).hexdigest()[:16] + ".bin"  # one file per source, shared by graphs
        target = os.path.join(directory, SUBDIR, file)
        if not os.path.exists(target):
            try:
                os.link(source, target)
            except OSError:  # another file system: one copy, still never per task
                shutil.copyfile(source, target)
        node.attr["memory_region_name"].s = f"{SUBDIR}/{file}".encode()
        records.append({"node": node.name, "file": file})
    return out, records


def load_external(graph_def: Any, directory: str, records: list[dict[str, Any]]) -> ExternalTensors | None:
    """Point the stored graph's external tensors at ``directory``'s files (in place); their
    :class:`ExternalTensors` (which does not own the files), or ``None`` when there are none.

    Raises:
        StoreFormatError: a record names a missing file, a path instead of a file name, or no node.
    """
    from tfopt.graph import dtype_name, node_map, shape_of

    if not records:
        return None
    nodes = node_map(graph_def)
    external = ExternalTensors(os.path.join(directory, SUBDIR), shared=True)  # a cache entry: hash-checked
    for record in records:
        name, file = str(record["node"]), str(record["file"])
        path = os.path.join(directory, SUBDIR, file)
        node = nodes.get(name)
        if os.path.basename(file) != file or not os.path.isfile(path) or node is None or node.op != EXTERNAL_OP:
            raise StoreFormatError(f"{directory}: external tensor '{name}' ({file}) is not stored there; delete "
                                   "the entry (a cache entry is rebuilt)")
        node.attr["memory_region_name"].s = path.encode()
        shape = shape_of(node.attr["shape"].shape) or ()
        external.adopt(name, path, dtype_name(node.attr["dtype"].type), tuple(int(d or 0) for d in shape))
    return external
