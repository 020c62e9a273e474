"""The element rank of a TF1 ``TensorArrayV3``, written into the node for OpenVINO.

TF1's ``dynamic_rnn``, ``raw_rnn`` and ``map_fn`` keep their per-step values in ``TensorArrayV3``
containers, which TensorFlow creates with ``element_shape`` of unknown rank unless the author gave
one. OpenVINO's TensorFlow frontend turns such a container into a tensor of rank 1 + the element's
rank. It reads that rank from the attribute, or else from a ``TensorArrayScatterV3`` or
``TensorArrayWriteV3`` whose value it sees with a static rank. When neither tells it (a write of a
value computed inside the loop, a scatter of what another loop gathered), the container is left
untranslated and the conversion stops with "No conversion rule found for operations:
TensorArrayV3"; OpenVINO's own ``convert_model`` fails the same way.

TensorFlow itself knows those ranks: its static shapes of the values written and scattered, and
the ``element_shape`` that a ``TensorArrayGatherV3`` of the same container declares. Each container
whose attribute has unknown rank and whose ops agree on one rank gets ``element_shape`` of that rank
with every dimension unknown. TensorFlow checks elements only against the dimensions an
``element_shape`` fixes, so this changes nothing it computes. A container whose ops disagree, or
tell no rank, is left alone. Main graph only (TF1 control flow lives there, not in functions).
"""

from __future__ import annotations

from typing import Any

from tfopt.graph import consumers, is_control, tensor_port

_VALUE_INPUT = {"TensorArrayWriteV3": (2, 0), "TensorArrayScatterV3": (2, 1)}  # op -> (value input, rank offset)


def set_tensor_array_ranks(graph_def: Any) -> Any:
    """``graph_def`` (a copy when anything changes) with the element rank of every ``TensorArrayV3``
    whose attribute leaves it unknown, where the container's own ops agree on it."""
    arrays = [n for n in graph_def.node if n.op == "TensorArrayV3" and _unknown_rank(n)]
    if not arrays:
        return graph_def
    users = consumers(graph_def)
    ops = {n.name: _ops_of(n.name, users) for n in arrays}
    static = _static_ranks({node.input[_VALUE_INPUT[node.op][0]] for found in ops.values() for node in found
                            if node.op in _VALUE_INPUT}, graph_def)
    gathered_from = {node.name: name for name, found in ops.items() for node in found
                     if node.op == "TensorArrayGatherV3"}
    ranks: dict[str, int] = {}
    for _ in range(len(ops) + 1):  # a container's rank can follow from one whose rank was just learnt
        known = dict(static)
        known.update({gather: 1 + ranks[array] for gather, array in gathered_from.items() if array in ranks})
        learnt: dict[str, int] = {}
        for name, found in ops.items():
            told = {rank for rank in (_rank_told(node, known) for node in found) if rank is not None}
            if len(told) == 1:
                learnt[name] = told.pop()
        if learnt == ranks:
            break
        ranks = learnt
    if not ranks:
        return graph_def
    from tfopt._tf import tf
    from tfopt.passes.base import copy_graph

    out = copy_graph(graph_def)
    for node in out.node:
        if node.name in ranks:
            node.attr["element_shape"].shape.CopyFrom(tf().TensorShape([None] * ranks[node.name]).as_proto())
    return out


def _unknown_rank(node: Any) -> bool:
    return "element_shape" not in node.attr or node.attr["element_shape"].shape.unknown_rank


def _ops_of(array: str, users: dict[str, list[tuple[Any, int]]]) -> list[Any]:
    """The TensorArray ops that take the container's handle (output 0), directly or through the
    ``Enter`` nodes that carry it into (nested) loops."""
    found, todo, seen = [], [array], {array}
    while todo:
        name = todo.pop()
        for user, index in users.get(name, []):
            ref = user.input[index]
            if index != 0 or is_control(ref) or tensor_port(ref) != 0 or user.name in seen:
                continue  # the handle is input 0 of every TensorArray op and of Enter
            seen.add(user.name)
            if user.op == "Enter":
                todo.append(user.name)
            elif user.op.startswith("TensorArray"):
                found.append(user)
    return found


def _rank_told(node: Any, ranks: dict[str, int]) -> int | None:
    """The element rank ``node`` tells of its container: from the rank of the value it writes or
    scatters (``ranks``: by tensor, or by node for a gather of a container whose rank is known), or
    from a gather's own ``element_shape``."""
    if node.op in _VALUE_INPUT:
        index, offset = _VALUE_INPUT[node.op]
        value = node.input[index]
        rank = ranks.get(value, ranks.get(value.split(":")[0]) if tensor_port(value) == 0 else None)
        return None if rank is None or rank - offset < 0 else rank - offset
    if node.op == "TensorArrayGatherV3" and not _unknown_rank(node):
        return len(node.attr["element_shape"].shape.dim)
    return None


def _static_ranks(refs: set[str], graph_def: Any) -> dict[str, int]:
    """TensorFlow's static rank of each tensor ``refs`` names, where it knows one."""
    if not refs:
        return {}
    from tfopt._tf import tf

    graph = tf().Graph()
    with graph.as_default():
        tf().compat.v1.import_graph_def(graph_def, name="")
    out = {}
    for ref in refs:
        rank = graph.get_tensor_by_name(ref if ":" in ref else ref + ":0").shape.rank
        if rank is not None:
            out[ref] = rank
    return out
