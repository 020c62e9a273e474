"""Lower inference-mode ``FusedBatchNorm``/``V2``/``V3`` to a per-channel scale and shift.

    y = γ·(x − μ)/√(σ² + ε) + β
      = x·s + (β − μ·s),            s = γ/√(σ² + ε)

``FusedBatchNorm*(x, γ, β, μ, σ²)`` => ``AddV2(Mul(x, s), β − μ·s)``, the Add keeping the BN's
name. That is the form Keras 3 and ``tf.nn.batch_normalization`` already produce, so one pair of
passes folds both: ``fold_mul_into_weights`` (W' = W·s, b' = b·s) and ``fold_add_into_bias``
(b' = b + β − μ·s). A BatchNorm with no conv/matmul before it stays as the Mul + Add (two cheap
elementwise ops), and those passes report why it was not folded.

Not lowered (reported): training mode (statistics come from the batch), non-constant
parameters, channels-first layout, and a BN whose batch-statistics outputs are read.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tfopt._tf import const_value, make_const
from tfopt.graph import (
    DT_BFLOAT16,
    DT_DOUBLE,
    DT_FLOAT,
    DT_HALF,
    Model,
    attr_bytes,
    consumers,
    control_inputs,
    is_control,
    node_map,
    rewrite_node,
    tensor_port,
)
from tfopt.passes._linear import plain_const
from tfopt.passes.base import Pass, PassResult, Skip, copy_graph

BATCHNORM_OPS = frozenset({"FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3"})


class FoldBatchNorm(Pass):
    """lower inference FusedBatchNorm to a per-channel Mul + Add."""

    name = "fold_batchnorm"

    def run(self, model: Model) -> PassResult:
        if not any(n.op in BATCHNORM_OPS for n in model.graph_def.node):
            return PassResult(model, False)
        graph_def = copy_graph(model.graph_def)
        nodes = node_map(graph_def)
        users = consumers(graph_def)
        skips: list[Skip] = []
        changed = False
        for node in list(graph_def.node):
            if node.op not in BATCHNORM_OPS:
                continue
            reason = self._check(node, nodes, users)
            if reason:
                skips.append(Skip(node.name, f"BatchNorm not folded: {reason}"))
                continue
            gamma, beta, mean, var = (const_value(plain_const(nodes, node.input[i])) for i in range(1, 5))
            eps = node.attr["epsilon"].f
            scale = (gamma / np.sqrt(var.astype(np.float64) + eps)).astype(gamma.dtype)
            shift = (beta - mean * scale).astype(gamma.dtype)
            dtype = node.attr["T"].type
            scale_c, shift_c, mul = f"{node.name}/folded_scale", f"{node.name}/folded_shift", f"{node.name}/mul"
            graph_def.node.append(make_const(scale_c, scale.astype(_np(dtype)), dtype=dtype))
            graph_def.node.append(make_const(shift_c, shift.astype(_np(dtype)), dtype=dtype))
            mul_node = graph_def.node.add(name=mul, op="Mul", input=[node.input[0], scale_c])
            mul_node.attr["T"].type = dtype
            rewrite_node(node, "AddV2", inputs=[mul, shift_c, *control_inputs(node)], types={"T": dtype})
            changed = True
        return PassResult(model.replace(graph_def=graph_def) if changed else model, changed, skips)

    @staticmethod
    def _check(node: Any, nodes: dict[str, Any], users: dict[str, Any]) -> str | None:
        if node.attr["is_training"].b:
            return "training mode (is_training=True): statistics come from the batch"
        if attr_bytes(node, "data_format") not in (b"", b"NHWC", b"NDHWC"):
            return f"{attr_bytes(node, 'data_format').decode()} layout; only channels-last is folded"
        names = ["scale", "offset", "mean", "variance"]
        for i, label in enumerate(names, start=1):
            if plain_const(nodes, node.input[i]) is None:
                return f"{label} is not a constant"
        for user, idx in users.get(node.name, []):
            if not is_control(user.input[idx]) and tensor_port(user.input[idx]) > 0:
                return f"its batch statistics (output {tensor_port(user.input[idx])}) are read by '{user.name}'"
        return None


def _np(dtype_enum: int) -> type:
    return {DT_FLOAT: np.float32, DT_DOUBLE: np.float64, DT_HALF: np.float16,
            DT_BFLOAT16: np.float32}.get(dtype_enum, np.float32)
