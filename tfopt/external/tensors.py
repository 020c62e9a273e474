"""Tensors kept outside the GraphDef: one raw file each, memory-mapped, never copied into a protobuf.

A GraphDef is a protobuf and cannot exceed 2 GB. A weight chosen by :func:`choose_external` is
written once (streamed, a slice at a time) to ``<directory>/<n>.bin`` as its raw C-order bytes and
appears in the graph as ``ImmutableConst(dtype, shape, memory_region_name=<path>)``: TensorFlow
memory-maps the file when the graph runs, so every session (verification, calibration, the
report) reads the same pages, and no folding pass ever sees the value (it is not a ``Const``).
The file holds no header because ``ImmutableConst`` maps it from byte 0 (mmap is page-aligned,
which satisfies its alignment check).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import weakref
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tfopt.errors import GraphError

EXTERNAL_OP = "ImmutableConst"
DEFAULT_THRESHOLD = 1 << 30  # a single tensor this large always stays outside
GRAPH_BUDGET = 1 << 30  # what the GraphDef may hold in constants: half the protobuf limit, a wide margin
PROTOBUF_LIMIT = 2 << 30
CHUNK_BYTES = 64 << 20  # how much of a tensor is in flight while it is written
EXTERNAL_DTYPES = frozenset({"float16", "float32", "float64", "bfloat16", "int8", "uint8", "int16", "uint16",
                             "int32", "uint32", "int64", "uint64", "complex64", "bool"})


def storable_bytes(shape: Sequence[int | None] | None, dtype: Any) -> int:
    """The bytes of a tensor of ``shape`` (``None``: unknown rank; a dimension ``None`` or negative: unknown) and
    ``dtype`` (a ``tf.DType``) that may stay outside the graph: 0 when it cannot (a dtype outside
    :data:`EXTERNAL_DTYPES`, an unknown size), so :func:`choose_external` never picks it."""
    if shape is None or any(d is None or d < 0 for d in shape) or dtype.name not in EXTERNAL_DTYPES:
        return 0
    return int(np.prod(np.asarray(shape, dtype=np.int64))) * int(dtype.size)


def choose_external(sizes: Mapping[str, int], threshold: int | None = None) -> set[str]:
    """The names of the tensors to keep outside the GraphDef.

    Every tensor of at least ``threshold`` bytes (default :data:`DEFAULT_THRESHOLD`), then the largest
    of the rest until what stays inside is at most :data:`GRAPH_BUDGET` (many medium tensors can sum
    past the limit too). Ties break by name, so the choice is deterministic.

    Args:
        sizes: tensor name -> bytes, for the tensors that may go outside (numeric, non-empty).
        threshold: ``--external-threshold``; ``None`` for the default.
    """
    limit = DEFAULT_THRESHOLD if threshold is None else threshold
    chosen = {n for n, s in sizes.items() if s >= limit and s > 0}
    inside = sum(s for n, s in sizes.items() if n not in chosen)
    for name, size in sorted(sizes.items(), key=lambda kv: (-kv[1], kv[0])):
        if inside <= GRAPH_BUDGET:
            break
        if name not in chosen:
            chosen.add(name)
            inside -= size
    return chosen


@dataclass(frozen=True)
class ExternalTensor:
    """One tensor outside the graph: the node that stands for it and its file."""

    name: str
    path: str
    dtype: str
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize

    def read(self) -> np.ndarray:
        """The values, memory-mapped read-only (nothing is read until it is used)."""
        return np.memmap(self.path, dtype=self.dtype, mode="r", shape=self.shape)

    def chunks(self) -> Iterator[tuple[int, np.ndarray]]:
        """``(first row, rows)`` slices of the values along the first axis, about :data:`CHUNK_BYTES`
        each, read from the file (not mapped: only one slice is ever resident)."""
        rows = self.shape[0] if self.shape else 1
        row_bytes = max(1, self.nbytes // max(1, rows))
        step = max(1, CHUNK_BYTES // row_bytes)
        with open(self.path, "rb") as f:
            for start in range(0, rows, step):
                count = min(step, rows - start)
                block = np.empty((count, *self.shape[1:]) if self.shape else (), dtype=self.dtype)
                f.readinto(block.data.cast("B"))
                yield start, block


class ExternalTensors:
    """Node name -> :class:`ExternalTensor`, with the directory that holds their files.

    Args:
        directory: where the files go; ``None`` makes a temporary directory owned by this object
            and deleted with it (the files live as long as a model refers to them).
        shared: the directory is shared storage nothing may be added to (a stored model's, in a
            cache entry whose files are hash-checked): what is derived from the tensors (a serving
            SavedModel) is then found in :attr:`savedmodels` or written to :meth:`scratch`.
    """

    def __init__(self, directory: str | None = None, *, shared: bool = False):
        self.shared = shared
        self.savedmodels: dict[str, str] = {}  # serving SavedModels of graphs over these tensors: key -> directory
        self._scratch: str | None = None
        if directory is None:
            directory = tempfile.mkdtemp(prefix="tfopt-external-")
            self._cleanup: Any = weakref.finalize(self, shutil.rmtree, directory, True)
        else:
            os.makedirs(directory, exist_ok=True)
            self._cleanup = None
        self.directory = directory
        self._tensors: dict[str, ExternalTensor] = {}

    def __contains__(self, name: object) -> bool:
        return name in self._tensors

    def __getitem__(self, name: str) -> ExternalTensor:
        return self._tensors[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._tensors)

    def __len__(self) -> int:
        return len(self._tensors)

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for t in self._tensors.values())

    def scratch(self) -> str:
        """Where files derived from these tensors may be written: the directory itself, or (when it is
        :attr:`shared`) a temporary directory owned by this object."""
        if not self.shared:
            return self.directory
        if self._scratch is None:
            self._scratch = tempfile.mkdtemp(prefix="tfopt-external-derived-")
            weakref.finalize(self, shutil.rmtree, self._scratch, True)
        return self._scratch

    def add(self, name: str, value: Any) -> ExternalTensor:
        """Write ``value`` (an array, or anything ``np.asarray`` reads without copying, e.g. an eager
        tensor) to this directory a slice at a time; returns its record."""
        array = np.asarray(value)
        dtype = array.dtype.name
        if dtype not in EXTERNAL_DTYPES or array.size == 0:
            raise GraphError(f"tensor '{name}' ({dtype}{list(array.shape)}) cannot be stored outside the graph: "
                             "only non-empty numeric tensors can; raise --external-threshold above its size")
        path = os.path.join(self.directory, f"{len(self._tensors)}.bin")
        # Written through the file, not a writable memory map: the pages of a map being written stay in
        # this process's resident memory until it is closed, a second copy of the table at its peak.
        flat_in = array.reshape(-1)
        step = max(1, CHUNK_BYTES // array.dtype.itemsize)
        with open(path, "wb") as out:
            for start in range(0, array.size, step):
                out.write(np.ascontiguousarray(flat_in[start:start + step]).data)
        record = ExternalTensor(name, path, dtype, tuple(int(d) for d in array.shape))
        self._tensors[name] = record
        return record

    def adopt(self, name: str, path: str, dtype: str, shape: tuple[int, ...]) -> ExternalTensor:
        """Record a file already written (a stored model's: :mod:`tfopt.external.store`)."""
        record = ExternalTensor(name, path, dtype, shape)
        self._tensors[name] = record
        return record

    def node(self, name: str) -> Any:
        """The ``ImmutableConst`` NodeDef that stands for ``name`` in the graph."""
        from tensorflow.core.framework import node_def_pb2

        from tfopt._tf import tf

        record = self._tensors[name]
        node = node_def_pb2.NodeDef(name=name, op=EXTERNAL_OP)
        node.attr["dtype"].type = tf().as_dtype(record.dtype).as_datatype_enum
        for d in record.shape:
            node.attr["shape"].shape.dim.add().size = d
        node.attr["memory_region_name"].s = record.path.encode()
        return node


def external_nodes(graph_def: Any) -> list[Any]:
    """The graph's nodes that stand for tensors outside it."""
    return [n for n in graph_def.node if n.op == EXTERNAL_OP]


def store_large(sizes: Mapping[str, int], read: Any, threshold: int | None,
                into: ExternalTensors | None = None) -> ExternalTensors | None:
    """Write the tensors :func:`choose_external` picks from ``sizes``, each read once by ``read(name)``
    (and dropped before the next is read: a large tensor is in memory once, then only in its file), into ``into``
    (a model's tensors already outside) or a new :class:`ExternalTensors`; ``into`` when none is large."""
    chosen = choose_external(sizes, threshold)
    if not chosen:
        return into
    external = into if into is not None else ExternalTensors()
    for name in sorted(chosen):
        external.add(name, read(name))
    return external
