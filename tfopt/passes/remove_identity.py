"""Remove Identity, IdentityN and Snapshot nodes.

Pattern: ``x -> Identity(name=n) -> consumers``  =>  ``x -> consumers``. For ``IdentityN`` the
consumer of ``n:k`` reads ``n.input[k]``. Control edges ``^n`` become ``^x``; the Identity's own
control inputs move onto each consumer, so no ordering is lost.

An output Identity is removed by renaming its producer to the output's name (the interface name
stays; see ``_output_renames``). Not removed: model inputs, other outputs, and Identities next to
v1 control flow (Switch/Merge/Enter/Exit/NextIteration), whose node identity carries frame and
deadness semantics.
"""

from __future__ import annotations

from typing import Any

from tfopt.graph import (
    CONTROL_FLOW_V1_OPS,
    Model,
    consumers,
    is_control,
    node_map,
    remove_nodes,
    rename_node,
    set_inputs,
    tensor_node,
    tensor_port,
)
from tfopt.passes.base import Pass, PassResult, copy_graph, protected_nodes

IDENTITY_OPS = frozenset({"Identity", "IdentityN", "Snapshot"})
FRAME_OPS = CONTROL_FLOW_V1_OPS - {"Switch", "RefSwitch", "Merge", "RefMerge"}


class RemoveIdentity(Pass):
    """remove Identity/IdentityN/Snapshot nodes."""

    name = "remove_identity"

    def run(self, model: Model) -> PassResult:
        graph_def = copy_graph(model.graph_def)
        nodes = node_map(graph_def)
        users = consumers(graph_def)
        keep = protected_nodes(model)
        removable = {
            n.name for n in graph_def.node
            if n.op in IDENTITY_OPS and n.name not in keep
            and any(not is_control(r) for r in n.input)
            and not any(nodes[tensor_node(r)].op in CONTROL_FLOW_V1_OPS for r in n.input
                        if not is_control(r) and tensor_node(r) in nodes)
            and not any(u.op in FRAME_OPS for u, _ in users.get(n.name, []))
        }
        if not removable and not self._output_renames(model, nodes, users, keep):
            return PassResult(model, False)

        def resolve(ref: str) -> list[str]:
            """The edge(s) replacing ``ref`` once every removable Identity is gone."""
            src = tensor_node(ref)
            if src not in removable:
                return [ref]
            node = nodes[src]
            data = [r for r in node.input if not is_control(r)]
            moved = [c for r in node.input if is_control(r) for c in resolve(r)]
            if is_control(ref):
                return ["^" + tensor_node(resolve(data[0])[0]), *moved]
            target = data[tensor_port(ref) if node.op == "IdentityN" else 0]
            return [*resolve(target)[:1], *moved, *resolve(target)[1:]]

        for node in graph_def.node:
            if node.name in removable:
                continue
            data: list[str] = []
            controls: list[str] = []
            for ref in node.input:
                first, *extra = resolve(ref)
                (controls if is_control(first) else data).append(first)
                controls.extend(extra)
            set_inputs(node, [*data, *controls])
        remove_nodes(graph_def, removable)
        # Renames are decided on what is left: an output's producer may have been an Identity.
        for identity, producer in self._output_renames(model, node_map(graph_def), consumers(graph_def), keep).items():
            _take_name(graph_def, identity, producer)
        _dedupe_controls(graph_def)
        return PassResult(model.replace(graph_def=graph_def), True)

    @staticmethod
    def _output_renames(model: Model, nodes: dict[str, Any], users: dict[str, Any],
                        keep: set[str]) -> dict[str, str]:
        """Output Identities whose producer can take the output's name: ``{identity: producer}``.

        ``out = Identity(softmax)`` => ``softmax`` renamed ``out``: the interface name stays, the
        node goes. Only when the producer feeds nothing else, is not itself an input or output,
        and the output reads its first port.
        """
        renames: dict[str, str] = {}
        for spec in model.outputs:
            node = nodes.get(spec.node)
            if node is None or node.op != "Identity" or len(node.input) != 1 or is_control(node.input[0]):
                continue
            src = tensor_node(node.input[0])
            producer = nodes.get(src)
            if (producer is None or tensor_port(node.input[0]) != 0 or src in keep or src in renames.values()
                    or producer.op in CONTROL_FLOW_V1_OPS or len(users.get(src, [])) != 1):
                continue
            renames[node.name] = src
        return renames


def _take_name(graph_def: Any, identity: str, producer: str) -> None:
    """Delete ``identity`` and give its name to ``producer`` (rewiring every reference)."""
    remove_nodes(graph_def, {identity})
    rename_node(graph_def, producer, identity)


def _dedupe_controls(graph_def: object) -> None:
    """Drop ``^x`` when ``x`` is also a data input (or listed twice): it adds nothing."""
    for node in graph_def.node:  # type: ignore[attr-defined]
        data_sources = {tensor_node(r) for r in node.input if not is_control(r)}
        seen: set[str] = set()
        new = []
        for ref in node.input:
            if is_control(ref):
                src = tensor_node(ref)
                if src in data_sources or src in seen:
                    continue
                seen.add(src)
            new.append(ref)
        if len(new) != len(node.input):
            set_inputs(node, new)


