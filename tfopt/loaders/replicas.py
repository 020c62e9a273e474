"""Replicas: output candidates that compute the same function of the same variables (a training graph's towers).

A multi-GPU TF1 training graph builds the model once per device (``replicate_model_fn``,
``MirroredStrategy``, a hand-written tower loop), each copy on its own slice of the batch, all
reading one set of weights. Every copy leaves the same sinks, and converting them all gives one
model several times over (issue 24: address-net's two towers). Found by structure, names play no part:

- *mirrored variables*: variables assigned from one tensor (``Assign(v, init)`` and
  ``Assign(v_replica, Identity(init))``; a Saver restoring both from one ``RestoreV2`` output) hold
  one value; each stands for the first of them in graph order, its *primary*;
- every node gets a structural label by Weisfeiler-Lehman refinement over data edges:
  ``label_0(n) = (op, attributes but names, Const value)``, a variable's label its primary's name,
  a placeholder's its own name (two inputs are two inputs: a siamese net's twin heads are not
  replicas), a pipeline's next element (one GetNext per device) its op and nothing behind it (its
  port too once cut into an input: :func:`tfopt.loaders.pipeline_inputs.element_source`);
  ``label_{k+1}(n) = hash(label_k(n), label_k of each input with its port)``, where the
  port of a *slicing* op (``Split``, ``Unpack``: its outputs are interchangeable slices of one
  batch) and names (loop frames, tensor arrays, shared resources) are left out;
- two candidates are replicas when their labels, the multisets of labels of their ancestors and the
  primaries of the variables they read are all equal. The first (in graph order, reading the
  primaries) stands for the others.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import Any

from tfopt.graph import PLACEHOLDER_OPS, VARIABLE_OPS, ancestors, node_map, tensor_node, tensor_port
from tfopt.loaders.pipeline_inputs import element_source, is_pipeline_source

ASSIGN_OPS = frozenset({"Assign", "AssignVariableOp"})
SLICING_OPS = frozenset({"Split", "SplitV", "Unpack"})
# Attributes that name things (a loop frame, a shared resource) rather than say what is computed.
NAME_ATTRS = frozenset({"frame_name", "shared_name", "container", "tensor_array_name"})
ROUNDS = 12


def mirrored_variables(graph_def: Any) -> dict[str, str]:
    """Variable -> its primary (itself when no earlier variable is assigned from the same tensor)."""
    nodes = node_map(graph_def)
    sources: dict[str, set[str]] = {}
    for node in graph_def.node:
        if node.op in ASSIGN_OPS and len(node.input) > 1 and tensor_node(node.input[0]) in nodes \
                and nodes[tensor_node(node.input[0])].op in VARIABLE_OPS:
            ref = node.input[1]
            while tensor_node(ref) in nodes and nodes[tensor_node(ref)].op == "Identity":
                ref = nodes[tensor_node(ref)].input[0]
            sources.setdefault(tensor_node(node.input[0]), set()).add(ref)
    primary: dict[str, str] = {}
    first_of: dict[str, str] = {}  # assigned tensor -> the first variable assigned from it
    for node in graph_def.node:
        if node.op not in VARIABLE_OPS:
            continue
        found = [first_of[s] for s in sorted(sources.get(node.name, ())) if s in first_of]
        primary[node.name] = primary[found[0]] if found else node.name
        for s in sources.get(node.name, ()):
            first_of.setdefault(s, node.name)
    return primary


def _digest(*parts: Any) -> str:
    return hashlib.blake2b(repr(parts).encode(), digest_size=12).hexdigest()


def structural_labels(graph_def: Any, primary: dict[str, str], *, inputs_by_name: bool = True) -> dict[str, str]:
    """Each node's Weisfeiler-Lehman label after :data:`ROUNDS` refinements (module docstring); a
    placeholder labelled by its dtype and shape instead of its name when not ``inputs_by_name``."""
    labels: dict[str, str] = {}
    nodes = node_map(graph_def)
    for node in graph_def.node:
        if node.op in VARIABLE_OPS:
            labels[node.name] = _digest("variable", primary.get(node.name, node.name))
        elif (element := element_source(node, nodes)) is not None:  # an iterator's element, cut into an input
            labels[node.name] = _digest("pipeline", element[0].op, element[1])
        elif node.op in PLACEHOLDER_OPS:
            labels[node.name] = _digest("input", node.name if inputs_by_name else
                                        sorted((k, v.SerializeToString()) for k, v in node.attr.items()
                                               if k in ("dtype", "shape")))
        elif is_pipeline_source(node.op):
            labels[node.name] = _digest("pipeline", node.op)
        else:
            attrs = sorted((k, v.SerializeToString()) for k, v in node.attr.items()
                           if not k.startswith("_") and k not in NAME_ATTRS)
            labels[node.name] = _digest(node.op, attrs)
    edges = {n.name: [(tensor_node(r), 0 if nodes[tensor_node(r)].op in SLICING_OPS else tensor_port(r))
                      for r in n.input if not r.startswith("^") and tensor_node(r) in nodes]
             for n in graph_def.node if not is_pipeline_source(n.op)}
    edges |= {n.name: [] for n in graph_def.node if is_pipeline_source(n.op)}
    for _ in range(ROUNDS):
        labels = {name: _digest(labels[name], [(labels[src], port) for src, port in edges[name]])
                  for name in labels}
    return labels


def find_replicas(graph_def: Any, candidates: list[str], *, inputs_by_name: bool = True) -> dict[str, str]:
    """Candidate -> the candidate it replicates (absent when it replicates none), see the module docstring
    (``inputs_by_name``: see :func:`structural_labels`)."""
    if len(candidates) < 2 or not any(n.op in VARIABLE_OPS for n in graph_def.node):
        return {}
    primary = mirrored_variables(graph_def)
    labels = structural_labels(graph_def, primary, inputs_by_name=inputs_by_name)
    nodes = node_map(graph_def)
    order = {n.name: i for i, n in enumerate(graph_def.node)}
    keys: dict[str, tuple[Any, ...]] = {}
    mirrored: dict[str, bool] = {}
    for name in candidates:
        above = ancestors(graph_def, [name], follow_control=False)
        variables = {v for v in above if v in nodes and nodes[v].op in VARIABLE_OPS}
        if variables:
            keys[name] = (labels[name], frozenset(Counter(labels[a] for a in above if a in labels).items()),
                          frozenset(primary[v] for v in variables))
            mirrored[name] = any(primary[v] != v for v in variables)
    seen: dict[tuple[Any, ...], str] = {}
    out: dict[str, str] = {}
    # the copy that reads the primaries stands for the others; then the first in graph order
    for name in sorted(keys, key=lambda c: (mirrored[c], order.get(c, len(order)))):
        if keys[name] in seen:
            out[name] = seen[keys[name]]
        else:
            seen[keys[name]] = name
    return out
