"""The contents of the lookup tables a function reads, from the live tables (after their init ran).

A TF1 SavedModel's signature (a ``WrappedFunction``) holds its ``HashTableV2`` nodes in its graph; the
SavedModel's init op (``tables_initializer``, Estimator's ``main_op``) filled them when it was loaded.
A TF2 function captures a table's resource handle. Either way ``LookupTableExportV2`` reads back exactly
the keys and values the table holds, whatever filled it (constants, a vocabulary file, inserts), for
:func:`tfopt.graphdef.tables.inline_tables`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tfopt._tf import tf
from tfopt.errors import GraphError
from tfopt.graphdef.tables import Contents


def live_tables(fn: Any) -> Contents:
    """``contents(table node, key dtype, value dtype)`` for the tables of ConcreteFunction ``fn``."""
    captured = {p.name.split(":")[0]: v for v, p in fn.graph.captures if v.dtype == tf().resource}

    def contents(name: str, key_dtype: int, value_dtype: int) -> tuple[np.ndarray, np.ndarray]:
        t = tf()
        from tensorflow.python.ops import gen_lookup_ops

        kd, vd = t.as_dtype(key_dtype), t.as_dtype(value_dtype)
        try:
            if name in captured:  # TF2: the eager handle of a captured table
                keys, values = gen_lookup_ops.lookup_table_export_v2(captured[name], kd, vd)
            else:  # TF1: a table op of the function's graph, read through a pruned function
                with fn.graph.as_default():
                    handle = fn.graph.get_operation_by_name(name).outputs[0]
                    k, v = gen_lookup_ops.lookup_table_export_v2(handle, kd, vd)
                keys, values = fn.prune([], [k, v])()
        except Exception as exc:  # TF raises a zoo of types; the table is what the user needs
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise GraphError(f"lookup table '{name}': TensorFlow could not read its contents ({first}); "
                             "run the SavedModel's init op (tables_initializer) before saving, or feed the "
                             "looked-up ids instead of the keys") from exc
        return keys.numpy(), values.numpy()
    return contents
