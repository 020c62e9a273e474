"""Outputs whose size the data decides, when an artifact answers them at another size.

Non-max suppression, ``Where`` with one argument, ``Unique`` and the other ops of
:data:`tfopt.graphdef.dynamic_size.DATA_SIZED_OPS` return as many rows as the values select. A converter may lower such an op to a fixed-size kernel
that returns its maximum (``max_output_size`` indices, the rest padding) where TensorFlow returns
only the selected rows: the artifact's output is then longer than the original's on that axis, and
no tolerance can pair them. That is the op's form in the target, not a wrong number: the error names
the op and the two ways out (a fixed-size form in the model, or another target).
"""

from __future__ import annotations

import re
from typing import Any

from tfopt.graphdef.dynamic_size import DATA_SIZED_OPS  # the one list of ops whose output size values choose

_SHAPES = re.compile(r"^shape \(([\d, ]*)\) != \(([\d, ]*)\)")


def data_sized_nodes(graph_def: Any) -> list[str]:
    """``'name' (Op)`` of every data-sized op in the graph and in its function library."""
    found = [f"'{n.name}' ({n.op})" for n in graph_def.node if n.op in DATA_SIZED_OPS]
    for function in graph_def.library.function:
        found += [f"'{n.name}' ({n.op}, in {function.signature.name})" for n in function.node_def
                  if n.op in DATA_SIZED_OPS]
    return found


def padded_output_hint(graph_def: Any, problem: str, fmt: str) -> str:
    """Why an artifact's output is longer than the original's (``problem``: ``shape (5, 4) != (1, 4)``,
    the artifact's first) when the graph holds a data-sized op; "" otherwise."""
    match = _SHAPES.match(problem or "")
    if match is None:
        return ""
    got, want = ([int(d) for d in g.split(",") if d.strip()] for g in match.groups())
    if len(got) != len(want) or not any(g > w for g, w in zip(got, want)):
        return ""
    ops = data_sized_nodes(graph_def)
    if not ops:
        return ""
    return (f"; the output is longer in {fmt} than in TensorFlow, and the graph holds {', '.join(ops[:3])}, whose "
            f"output size the data decides: {fmt} returns it at its maximum size (padded), TensorFlow only the "
            f"rows selected. Give the model a fixed-size form (tf.image.non_max_suppression_padded with "
            f"pad_to_max_output_size=True, and its valid count) and slice after it, or leave {fmt} out of --to")
