"""What a TFLite "Lowering tensor list ops is failed" error is about, named from the converter's error.

The converter lowers a ``TensorList`` to builtin ops only when its element shape is static. Two kinds of
graph hold one that is not, with different fixes:

* a loop writing a ``TensorArray`` (a recurrent layer, ``tf.map_fn``, a ``tf.while_loop``): its element
  shape is open where the batch is (tfopt's pinned retry fixes that, :mod:`tfopt.emitters.tflite_batch`)
  or where the data decides it;
* ``tf.vectorized_map`` (pfor; Keras 3's ``ops.vectorized_map``) over a function with an op pfor has no
  vectorised form for: pfor runs the function in its fallback ``while`` loop, whose list has no known
  element rank at any batch. Its node names carry pfor's ``pfor`` scope.

The converter's error carries each failing op and its location (``ConverterError.errors``: ``operator.name``
``tf.TensorListReserve``, ``location.call[].name`` ``<node>@<function>``); its text printed elsewhere
reads ``fused["TensorListReserve:", callsite("<node>@<function>"``. :func:`explain` reads the nodes from
either.
"""

from __future__ import annotations

import re

_LOCATION = re.compile(r'fused\["((?:Empty)?TensorList\w*):", (?:callsite\()?"([^"@]+)')
_FLEX = ("pass --allow-tf-ops to keep them as Select TF ops (the app then needs the Flex delegate; LiteRT's Python "
         "interpreter, which tfopt verifies in, has none, so that file is written with --no-verify only), or leave "
         "tflite out of --to")


def explain(exc: BaseException) -> str:
    """The error for a conversion that failed lowering TensorList ops (``exc``, the converter's): the
    list's node and where it comes from (module docstring), and the fix for that kind."""
    found = list(dict.fromkeys(_structured(exc) or _LOCATION.findall(str(exc))))
    pfor = [(op, node) for op, node in found if "pfor" in node.split("/")]
    if pfor:
        op, node = pfor[0]
        owner = re.split(r"/loop_body(?:/|$)|/pfor(?:/|$)", node)[0]
        return (f"TFLite cannot lower the TensorList of a tf.vectorized_map fallback loop (tf.{op} '{node}', in "
                f"'{owner}'): pfor found no vectorised form for the mapped function, ran it in a while loop, and "
                "that loop's list has no static element shape at any batch. Compute the function once on the "
                "mapped axis folded into the batch (reshape [n, k, ...] to [n * k, ...], call, reshape back) "
                f"instead of mapping it, as tfopt does for a Keras 3 TimeDistributed; or {_FLEX}")
    where = f" (tf.{found[0][0]} '{found[0][1]}')" if found else ""
    return (f"TFLite cannot lower the TensorList of a loop{where}: its element shape is dynamic (a recurrent "
            f"layer, tf.map_fn or a tf.while_loop writing a TensorArray). To convert it, {_FLEX}")


def _structured(exc: BaseException) -> list[tuple[str, str]]:
    """``(op, node)`` of each TensorList op in the converter's structured errors, in order."""
    out = []
    for error in getattr(exc, "errors", None) or []:
        op = getattr(getattr(error, "operator", None), "name", "").removeprefix("tf.")
        if not op.startswith(("TensorList", "EmptyTensorList")):
            continue
        calls = getattr(getattr(error, "location", None), "call", None) or []
        node = next((c.name.split("@")[0] for c in calls if getattr(c, "name", "")), "")
        if node:
            out.append((op, node))
    return out
