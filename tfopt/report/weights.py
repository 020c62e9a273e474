"""What an artifact's weights look like: per constant tensor, its unique values and its zeros.

This is where clustering and pruning show (or do not): a clustered kernel holds N distinct values,
a pruned one mostly zeros, and neither shrinks a flatbuffer or protobuf, only its gzip. Read from
the artifact itself: TFLite buffers, ONNX initializers, OpenVINO Constant ops, GraphDef Consts.
Tensors under ``MIN_SIZE`` elements (shapes, axes, scales) are left out.
"""

from __future__ import annotations

from typing import Any

import numpy as np

MIN_SIZE = 64


def weight_stats(fmt: str, path: str) -> list[dict[str, Any]]:
    """``[{name, shape, dtype, unique, sparsity}]`` for each weight tensor of the artifact, largest first."""
    from tfopt.targets import target

    rows = [{"name": name, "shape": list(array.shape), "dtype": str(array.dtype),
             "unique": len(np.unique(array)), "sparsity": round(float(np.mean(array == 0)), 4)}
            for name, array in target(fmt, "format").call("weights", path) if array.size >= MIN_SIZE and array.dtype.kind in "fiu"]
    return sorted(rows, key=lambda r: -int(np.prod(r["shape"])))

