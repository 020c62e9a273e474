"""What ``tfopt inspect`` says up front about a model too large for one GraphDef, and how tfopt stores it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tfopt.external.tensors import PROTOBUF_LIMIT


def storage(outside: Mapping[str, int], total: int) -> dict[str, Any] | None:
    """``{"over_limit", "external", "external_bytes", "message"}`` for a model with ``total`` bytes of
    weights of which ``outside`` (name -> bytes) stay outside the graph; ``None`` when none does."""
    if not outside:
        return None
    size = sum(outside.values())
    over = total >= PROTOBUF_LIMIT
    why = (f"over the 2 GB protobuf limit ({_human(total)} of weights)" if over else
           f"{len(outside)} tensor(s) at or above --external-threshold")
    message = (f"{why}: tfopt keeps {len(outside)} tensor(s) ({_human(size)}) outside the frozen graph, memory-mapped, "
               "and writes the model as a SavedModel whose large tensors are variables (--to savedmodel); "
               "TFLite, ONNX and OpenVINO are converted from that SavedModel; a single .pb cannot hold it")
    return {"over_limit": over, "external": sorted(outside), "external_bytes": size, "message": message}


def _human(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.2f} MB" if n >= 1e4 else f"{n} bytes"
