"""tf2onnx's nodes and graphs hashed by creation number, in the processes that run tf2onnx for tfopt (its child,
:mod:`tfopt.emitters.onnx_worker`, and the large-model converter's, :mod:`tfopt.emitters.large_worker`).

tf2onnx's optimizers walk sets of node objects, whose order follows their hashes: by address, a different order
(and a different graph) in each process. Hashed by creation number, the sets iterate in one order, and with a
fixed string hash seed the same graph converts to the same file (the reasoning is :mod:`tfopt.emitters.onnx_worker`'s).
"""

from __future__ import annotations

import itertools
from typing import Any


def stable_hashes(*classes: Any) -> None:
    """Hash tf2onnx's nodes and graphs by creation number instead of address, so the sets of them
    its optimizers walk iterate in one order. Only in the child: the user's process is untouched.
    A ``copy.deepcopy`` (tf2onnx copies the graph before each optimizer) keeps the number."""
    counter = itertools.count()
    for cls in classes:
        original = cls.__init__

        def __init__(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> None:
            self._tfopt_serial = next(counter)
            _original(self, *args, **kwargs)

        cls.__init__ = __init__
        cls.__hash__ = _serial_hash


def _serial_hash(self: Any) -> int:
    return int(self._tfopt_serial)
