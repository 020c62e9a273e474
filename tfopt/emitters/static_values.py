"""An input's value when the graph's constants and static shapes decide it: what a lowering's ``constants`` reach
its check and build as (:class:`tfopt.emitters.tflite_lowering.Lowering`), in the main graph and in a body.

TensorFlow's own evaluation (``try_evaluate_constant``: constants, and shape ops on static shapes) decides most
such values. In the main graph it leaves one common form undecided: a value computed from an input's *static*
dimensions while another of its dimensions is open, e.g. ``tf.image.resize``'s scale ``size / Shape(images)[1:3]``
of an image whose batch is open. There the value is computed by TensorFlow feeding zeros, each open dimension 1,
then 2, and kept only when both agree and a third run at a larger size (:func:`probe_size`: 61, or less where an
input would exceed :data:`tfopt._tf.ELEMENT_BUDGET`) agrees too (:func:`graph_static`): a value like
``maximum(batch, 2)`` or ``batch // 4`` is the same at the small sizes and only there. Only a value that reads the
inputs through their shapes (``Shape``/``ShapeN``/``Size``/``Rank``), no stateful op, no loop frame and no function
call (a ``While``, ``If`` or call body may loop) is evaluated so: a finite graph of such ops ends, so this run needs
no time bound.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from tfopt._tf import ELEMENT_BUDGET

SHAPE_READERS = ("Shape", "ShapeN", "Size", "Rank")
LOOP_FRAMES = ("Enter", "LoopCond")  # a TF1 loop; a TF2 one is a While node calling its bodies
# The size every open dimension takes in the one probe beyond the small ones (1, 2, 3): the first at which no
# input holds more than _tf.ELEMENT_BUDGET elements (primes: no common multiple with the small sizes' factors).
PROBE_SIZES = (61, 11, 5)


def static_value(tensor: Any) -> np.ndarray | None:
    """``tensor``'s value (a ``tf.Tensor`` of an imported graph or body) when its graph's constants and
    static shapes decide it (TensorFlow's ``try_evaluate_constant``), else ``None``."""
    from tensorflow.python.framework import tensor_util

    try:  # TensorFlow's own evaluation: constants, and shape ops on static shapes
        value = tensor_util.try_evaluate_constant(tensor)
    except Exception:  # an op it cannot evaluate: its simpler folding
        value = tensor_util.constant_value(tensor)
    return None if value is None else np.asarray(value)


def graph_static(graph_def: Any, facts: Any) -> Callable[[str], np.ndarray | None]:
    """``static(ref)`` of ``graph_def``'s main graph (``facts``: its :class:`tfopt._tf.GraphFacts`): the value of
    tensor ``ref`` when constants and the inputs' static dimensions decide it, else ``None`` (module docstring)."""
    from tfopt.graph import canonical_tensor

    def static(ref: str) -> np.ndarray | None:  # a large constant is a placeholder in facts: no value
        value = static_value(facts.graph.get_tensor_by_name(canonical_tensor(ref)))
        return value if value is not None else _by_static_shapes(graph_def, facts, ref)

    return static


def _by_static_shapes(graph_def: Any, facts: Any, ref: str) -> np.ndarray | None:
    """The value of ``ref`` computed feeding zeros for the inputs it reads through their shapes, each open dimension
    1 then 2, when both agree; ``None`` when it reads an input's values, a stateful op, a loop or a call."""
    from tfopt._tf import graph_session
    from tfopt.graph import ancestors, canonical_tensor, node_map

    nodes = node_map(graph_def)
    by_value = ancestors(graph_def, [ref], skip_edge=lambda node, _: node.op in SHAPE_READERS)
    if any((nodes[name].op != "Const" and facts.is_stateful(nodes[name].op)) or "Placeholder" in nodes[name].op
           or may_loop(nodes[name]) for name in by_value):
        return None
    fed = [nodes[name] for name in ancestors(graph_def, [ref]) if nodes[name].op in ("Placeholder", "PlaceholderWithDefault")]
    from tfopt._tf import tf

    shapes = {node.name: facts.shape(node.name) for node in fed}
    if any(shape is None for shape in shapes.values()):
        return None
    value = None
    with graph_session(facts.graph, graph_def, rewrites=False) as session:
        for unknown in (1, 2, probe_size(shapes.values())):  # the larger probe only once the small ones agree
            feed = {f"{node.name}:0": np.zeros([unknown if d is None else d for d in shapes[node.name] or ()],
                                               facts.dtypes(node.name)[0].as_numpy_dtype) for node in fed}
            try:
                found = np.asarray(session.run(canonical_tensor(ref), feed))
            except tf().errors.OpError:  # not computable on zeros (a large constant's value, an op's check)
                return None
            if value is not None and not np.array_equal(value, found):
                return None
            value = found
    return value


def probe_size(shapes: Iterable[Sequence[int | None] | None]) -> int:
    """The size of every open dimension (``None`` or negative) in the probe beyond the small sizes: the first of
    :data:`PROBE_SIZES` at which none of ``shapes`` holds more than :data:`tfopt._tf.ELEMENT_BUDGET` elements (the last
    when none fits)."""
    known = [s for s in shapes if s is not None]
    for size in PROBE_SIZES:
        if all(int(np.prod([size if d is None or d < 0 else d for d in s], dtype=np.int64)) <= ELEMENT_BUDGET
               for s in known):
            return size
    return PROBE_SIZES[-1]


def may_loop(node: Any) -> bool:
    """A loop frame, or a node that calls a function (a ``While``'s body, an ``If`` branch, a call: any may loop)."""
    return node.op in LOOP_FRAMES or any(v.HasField("func") or (v.HasField("list") and len(v.list.func))
                                         for v in node.attr.values())
