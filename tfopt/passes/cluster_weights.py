"""Clustering that survives BatchNorm folding: snap each folded kernel to N shared values.

``--cluster N`` runs TFMOT on the Keras model, before freezing: each clustered kernel W holds N
values c₁…c_N. Folding the BatchNorm that follows (``fold_batchnorm`` + ``fold_mul_into_weights``)
then scales output channel k by its own factor sₖ = γₖ/√(σₖ² + ε):

    W'[…, k] = W[…, k]·sₖ  ∈  {cⱼ·sₖ}

so the deployed kernel holds up to N·C values (C output channels), not N, and gzip finds little
to share. This pass runs on the folded graph and clusters what is deployed, per kernel:

    Ŵ' = argmin over kernels with N values of  Σᵢ (W'ᵢ − Ŵ'ᵢ)²        (1-D k-means, ``_kmeans1d``)

The error it minimizes is the folded one, ‖(W − Ŵ)·s‖², in the units the layer's output sees;
clustering W before the fold minimizes ‖W − Ŵ‖², which weighs a channel the BatchNorm scales
by 10 like one it scales by 0.1.
The centroids are initialised the way the user chose (``--cluster-init``); with ``--prune``, zeros
stay zero and count as one of the N values. With ``--finetune-data``, TFMOT fine-tunes as before
and this snap runs on the fine-tuned, folded kernel.

With real inputs (the first 64 ``--calibration`` rows, else the first 64 ``--eval-data`` rows:
:data:`tfopt.conversion.pipeline.FIT_ROWS`), three steps follow the k-means snap;
without them none runs (reported), since made-up inputs have the wrong mean and the wrong
correlations:

1. Error-compensating assignment (:mod:`tfopt.passes._snap_assign`): each weight is re-assigned to
   one of k-means's N centroids input by input, each snap's error pushed onto the weights not yet
   snapped through H = XᵀX of the op's real inputs (GPTQ/OBQ), so that ‖X·(T − Ŵ')‖², the output
   error, is at most nearest-centroid rounding's per output channel.
2. Centroids fitted to the output (:mod:`tfopt.passes._snap_fit`): each kernel keeps those
   clusters, and their N values are refitted by least squares so that op(x; Ŵ') matches op(x; T)
   on the real activations x (T the kernel snapped), up to a per-channel constant.
3. Bias correction (:mod:`tfopt.passes._snap_bias`): bₖ += E[yₖ] − E[ŷₖ] per output channel, layer
   by layer with the layers above already snapped and corrected (the int8 engine's sequential
   correction, :mod:`tfopt.passes._bias_correction`), so what a snap shifts is put back below it.

With real inputs, T is the *original* folded kernel W_f·s when the original Keras model is at hand
(:class:`tfopt.loaders.compressing.Compressed`, post-training only): TFMOT's W already carries its own
clustering error, snapping W·s adds a second one, and the correction then puts back the mean of
both. A kernel no BatchNorm scaled (TFMOT's N values deployed as they are) is then snapped from W_f
too. sₖ comes from the deployed kernel (least squares per output channel, sₖ = Σ W'·W / Σ W²,
checked to reproduce W' to 1e-4). Without real inputs T = W' (measured on the fer mini-Xception at
16 clusters, 200 inputs: snapping W_f·s without the correction gave 65.0 % top-1 agreement against
68.0 % for W', within noise; with the parallel correction 75.5 %, with the refit and the sequential
correction on 8 rows 79.5 % in LiteRT; the assignment on 64 rows is measured in
:mod:`tfopt.passes._snap_assign`). After ``--finetune-data`` (the fine-tuned W is the
model) or when the check fails (another fold changed the kernel), T = W'.

The snap changes the model's numbers on purpose (``lossy``): it runs once, after the folds'
fixed point and the optimize check (which verifies the exact folds), on the portable graph;
the TF-runtime graph is fused again from its result, and artifacts are verified against it.
The report measures it against the uncompressed model, as it does TFMOT's clustering.

Which kernels: those TFMOT clustered, found by name (a conv/depthwise/matmul under the scope of a
clustered Keras layer) and shape (a SeparableConv2D's pointwise kernel, not its depthwise one).
Not snapped (reported): a layer excluded (``--exclude``) or left alone by TFMOT, a kernel TFMOT
did not cluster, a kernel that is not a constant (a graph input), one shared by two ops (the fold
left it alone, and snapping it for one op would change the other), and non-float kernels.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tfopt._tf import const_value, make_const
from tfopt.graph import FLOAT_TYPES, Model, consumers, is_control, node_map, tensor_node
from tfopt.loaders.compressing import Compressed
from tfopt.passes._kmeans1d import kmeans_1d
from tfopt.passes._linear import LINEAR_OPS, plain_const
from tfopt.passes._snap_assign import reassign
from tfopt.passes._snap_bias import channels_last, correct_biases
from tfopt.passes._snap_fit import fit_centroids
from tfopt.passes.base import Pass, PassResult, Skip, copy_graph


class ClusterWeights(Pass):
    """snap each clustered kernel to N shared values after BatchNorm folding (--cluster N)."""

    name = "cluster_weights"
    lossy = True

    def run(self, model: Model) -> PassResult:
        spec = model.provenance.get("compression") or {}
        n = spec.get("cluster")
        if not n:
            return PassResult(model, False)
        layers = {entry["layer"]: entry for entry in spec.get("layers", [])}
        graph_def = copy_graph(model.graph_def)
        nodes = node_map(graph_def)
        users = consumers(graph_def)
        skips: list[Skip] = []
        snapped: list[dict[str, Any]] = []
        deltas: list[tuple[Any, np.ndarray, np.ndarray]] = []  # op, target T, snap
        floats = model.keepalive.float_kernels if isinstance(model.keepalive, Compressed) and self.data and \
            not spec.get("finetuned") else None
        for node in list(graph_def.node):
            if node.op not in LINEAR_OPS:
                continue
            found = _kernel(node, nodes, users, layers)
            if isinstance(found, str):
                skips.append(Skip(node.name, f"kernel not snapped: {found}"))
                continue
            weights, layer = found
            deployed = const_value(weights)
            before = len(np.unique(deployed))
            value = _float_target(node, deployed, floats(layer) if floats else [])
            if before <= n and value is deployed:
                continue  # no BatchNorm folded into it: TFMOT's N values are what is deployed
            new = kmeans_1d(value, n, spec.get("cluster_init") or "kmeans++", keep_zero=bool(spec.get("prune")))
            new = new.astype(value.dtype)
            weights.CopyFrom(make_const(weights.name, new, dtype=weights.attr["dtype"].type))
            deltas.append((node, value, new))
            snapped.append({"node": node.name, "layer": layer, "unique_before": before,
                            "from": "deployed kernel" if value is deployed else "original kernel"})
        if not snapped:
            return PassResult(model, False, skips)
        self._correct(model, graph_def, deltas, snapped, skips)
        provenance = {**model.provenance, "compression": {**spec, "snapped_after_fold": snapped}}
        return PassResult(model.replace(graph_def=graph_def, provenance=provenance), True, skips)

    def _correct(self, model: Model, graph_def: Any, deltas: list[tuple[Any, np.ndarray, np.ndarray]],
                 snapped: list[dict[str, Any]], skips: list[Skip]) -> None:
        """With real inputs: refit each snapped kernel's centroids to its output
        (:mod:`tfopt.passes._snap_fit`), then add each op's mean output shift to its bias, producers
        first (:mod:`tfopt.passes._snap_bias`). Records each kernel's values and change."""
        kernels: dict[str, np.ndarray] = {}
        assigned: dict[str, str] = {}
        names = [op.name for op, _, _ in deltas]  # a new BiasAdd takes over its op's name
        if not self.data:
            skips.append(Skip(snapped[0]["node"], f"bias of {len(snapped)} snapped kernel(s) not corrected: no "
                              "--eval-data or --calibration (made-up inputs have the wrong mean); pass one"))
        else:
            todo = [(op, target, new) for op, target, new in deltas if channels_last(op)]
            skips.extend(Skip(op.name, "bias not corrected: channels-first op") for op, _, _ in deltas
                         if not channels_last(op))
            target = copy_graph(graph_def)
            _set_kernels(target, [(op, value) for op, value, _ in todo])
            keep_zero = bool((model.provenance.get("compression") or {}).get("prune"))
            todo, assigned = reassign(model.replace(graph_def=target), todo, self.data, keep_zero=keep_zero)
            kernels, means = fit_centroids(model.replace(graph_def=target), todo, self.data, keep_zero=keep_zero)
            _set_kernels(graph_def, list(zip([op for op, _, _ in todo], [kernels[op.name] for op, _, _ in todo])))
            corrected = correct_biases(model.replace(graph_def=graph_def), [op for op, _, _ in todo], means, self.data)
        for name, (_, value, new), entry in zip(names, deltas, snapped):
            final = kernels.get(name, new)
            rel = float(np.linalg.norm(final.astype(np.float64) - value) / (np.linalg.norm(value) or 1.0))
            entry.update({"unique_after": len(np.unique(final)), "relative_change": round(rel, 4),
                          "centroids": "fitted to the output" if name in kernels else "k-means",
                          "assignment": assigned.get(name, "nearest centroid")})
            if name in kernels:
                error, where = corrected[name]
                entry["bias_corrected"] = where
                entry["mean_error"] = round(float(np.abs(error).max()), 6)


def _set_kernels(graph_def: Any, kernels: list[tuple[Any, np.ndarray]]) -> None:
    """Each op's kernel Const in ``graph_def`` set to the value given (its dtype kept)."""
    nodes = node_map(graph_def)
    for op, value in kernels:
        weights = nodes[tensor_node(op.input[1])]
        weights.CopyFrom(make_const(weights.name, value, dtype=weights.attr["dtype"].type))


def _float_target(op: Any, deployed: np.ndarray, pairs: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """The original kernel folded as the deployed one is (W_f·s), or ``deployed`` when it cannot be
    derived (see the module docstring). Output channels are the last axis once the kernel is flattened
    to (-1, C) (Conv2D/3D, depthwise's in·mult, MatMul); a transposed MatMul and a transposed conv keep
    the deployed kernel."""
    if op.op == "Conv2DBackpropInput" or (op.op == "MatMul" and op.attr["transpose_b"].b):
        return deployed
    pair = next(((f, c) for f, c in pairs if c.shape == deployed.shape), None)
    if pair is None:
        return deployed
    channels = deployed.shape[-1] * (deployed.shape[-2] if op.op == "DepthwiseConv2dNative" else 1)
    original, clustered, folded = (np.asarray(a, np.float64).reshape(-1, channels) for a in (*pair, deployed))
    scale = (folded * clustered).sum(0) / np.maximum((clustered ** 2).sum(0), np.finfo(np.float64).tiny)
    if not np.allclose(clustered * scale, folded, rtol=1e-4, atol=1e-6 * (np.abs(folded).max() or 1.0)):
        return deployed
    return (original * scale).reshape(deployed.shape).astype(deployed.dtype)


def _kernel(op: Any, nodes: dict[str, Any], users: dict[str, list[Any]],
            layers: dict[str, dict[str, Any]]) -> tuple[Any, str] | str:
    """``(kernel Const, layer name)`` of a conv/matmul TFMOT clustered, or why it is not snapped."""
    layer = next((part for part in op.name.split("/") if part in layers), None)
    if layer is None:
        return "not in a Keras layer TFMOT saw"
    entry = layers[layer]
    if "clustered" not in entry.get("actions", []):
        return f"layer '{layer}' was not clustered ({entry.get('left_alone') or 'TFMOT left it alone'})"
    ref = op.input[1]
    weights = plain_const(nodes, ref)
    if weights is None:
        source = nodes.get(tensor_node(ref))
        what = "a graph input" if source is not None and source.op == "Placeholder" else \
            f"{source.op if source is not None else 'missing'} '{tensor_node(ref)}'"
        return f"its kernel is not a constant ({what})"
    readers = [u for u, i in users.get(weights.name, []) if not is_control(u.input[i])]
    if len(readers) > 1:
        return (f"kernel '{weights.name}' is shared by {len(readers)} ops; snapping it for one would change "
                "the others")
    if weights.attr["dtype"].type not in FLOAT_TYPES:
        return f"kernel '{weights.name}' is not float"
    shape = [d.size for d in weights.attr["value"].tensor.tensor_shape.dim]
    shapes = entry.get("clustered_shapes")
    if shapes is not None and shape not in [list(s) for s in shapes]:
        return f"TFMOT did not cluster this kernel of layer '{layer}' (shape {shape}; clustered: {shapes})"
    return weights, layer
