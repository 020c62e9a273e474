"""A ``RaggedTensorToTensor`` whose row partitions mix types, as one whose partitions are all row splits.

``tf.RaggedTensor.to_tensor`` hands each ragged level to ``RaggedTensorToTensor`` in the form it was
built in: row splits (``from_row_splits``, ``from_row_lengths``), or value row ids
(``from_value_rowids``; the outermost also its number of rows, ``FIRST_DIM_SIZE``). tf2onnx converts
only all-splits or ``FIRST_DIM_SIZE`` + all-ids partitions ("Only ROW_SPLITS partition and VALUE_ROWIDS
types supported"); a nested level of the other form (``from_value_rowids`` inside ``from_row_splits``)
stops it. Every form is a row splits tensor ``s`` (``s[0] = 0``, ``s[r + 1] − s[r]`` the length of row ``r``):

    ROW_SPLITS      s = splits
    ROW_LENGTHS     s = concat([0], cumsum(lengths))
    VALUE_ROWIDS    s = concat([0], cumsum(unsorted_segment_sum(ones, ids, nrows)))   (ids sorted)

where a level's ``nrows`` is what the level above splits: ``FIRST_DIM_SIZE`` for the outermost, else the
last of the splits above (``s_above[-1]``). The op then reads the same partition in the same dense layout:
exact (integer arithmetic). This lowering runs before tf2onnx (:func:`tfopt.emitters.onnx._lower_for_tf2onnx`)
only where the partitions are mixed; TFLite's builtins and OpenVINO's frontend have no
``RaggedTensorToTensor`` in any form, so it is not theirs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tfopt.emitters.tflite_lowering import Lowering, Operand

WHAT = "row splits for every ragged level (value row ids and row lengths counted into splits)"


def _types(node: Any) -> list[str]:
    return [t.decode() for t in node.attr["row_partition_types"].list.s]


def check(node: Any, operands: Sequence[Operand]) -> str | None:
    """Only mixed partitions: the forms tf2onnx converts are left as they are."""
    types = _types(node)
    if all(t == "ROW_SPLITS" for t in types):
        return "RaggedTensorToTensor of row splits only: tf2onnx converts it"
    if len(types) >= 2 and types[0] == "FIRST_DIM_SIZE" and all(t == "VALUE_ROWIDS" for t in types[1:]):
        return "RaggedTensorToTensor of value row ids only: tf2onnx converts it"
    unknown = sorted(set(types) - {"ROW_SPLITS", "ROW_LENGTHS", "VALUE_ROWIDS", "FIRST_DIM_SIZE"})
    if unknown or "FIRST_DIM_SIZE" in types[1:]:
        return f"RaggedTensorToTensor with partitions {types}: not a form tfopt rewrites"
    return None


def row_splits(node: Any, inputs: Sequence[Any]) -> list[Any]:
    from tfopt._tf import tf

    t = tf()
    shape, values, default, *parts = inputs
    index = parts[0].dtype if parts else t.int64
    zero = t.zeros([1], index)
    types, splits, nrows = _types(node), [], None
    for kind, part in zip(types, parts, strict=True):
        part = t.cast(part, index)
        if kind == "FIRST_DIM_SIZE":
            nrows = t.reshape(part, [])
            continue
        if kind == "ROW_LENGTHS":
            split = t.concat([zero, t.cumsum(part)], axis=0)
        elif kind == "VALUE_ROWIDS":
            counts = t.math.unsorted_segment_sum(t.ones_like(part), part, nrows)
            split = t.concat([zero, t.cumsum(counts)], axis=0)
        else:
            split = part
        splits.append(split)
        nrows = split[-1]  # the rows of the level below: what this one splits
    return [t.raw_ops.RaggedTensorToTensor(shape=shape, values=values, default_value=default,
                                           row_partition_tensors=splits,
                                           row_partition_types=["ROW_SPLITS"] * len(splits))]


def lower_ragged_partitions(graph_def: Any) -> Any:
    """``graph_def`` (a copy when anything changes) with every mixed-partition ``RaggedTensorToTensor`` of
    the main graph and of the function bodies it reaches given row splits only (:func:`row_splits`)."""
    from tfopt.emitters.tflite_lower_bodies import lower_everywhere

    return lower_everywhere(graph_def, Lowering("RaggedTensorToTensor", check, row_splits, WHAT))
