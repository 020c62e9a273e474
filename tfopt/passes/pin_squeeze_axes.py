"""Give a ``Squeeze`` without axes the axes its input's static shape says are 1.

``tf.squeeze(x)`` with no axis removes every dimension of size 1 *at run time*, so on an input of
shape ``[?, 1]`` (logits of a one-unit head, a TF1 habit) TensorFlow cannot tell the output's rank:
``[batch]`` for a batch of 2, a scalar for a batch of 1. Converters need a rank: ONNX requires one
on graph outputs (its checker refuses the file), OpenVINO's CPU plugin refuses a dynamic-rank
``Squeeze``, and everything downstream of it loses its shapes. So, on the portable graph::

    Squeeze(x)  with  shape(x) = (d_0, ..., d_{r-1}),  r known,  some d_i unknown
      =>  Squeeze(x, axis = [i : d_i == 1])

which is the same computation for every input whose unknown dimensions are not 1; at an unknown
dimension of size 1 (a batch of one) the result keeps that axis, where TensorFlow would drop it too
(``[1]`` instead of ``[]``). Under the same reading, an input with no dimension known to be 1
(``tf.squeeze`` of a ``[?, 4]`` one-hot charge state: ionmob's CCS head) has nothing to remove::

    Squeeze(x)  with  no d_i == 1  =>  Identity(x)

(an empty axis list would mean "all" again, so the node becomes an ``Identity``; at a batch of one
it keeps ``[1, 4]`` where TensorFlow gives ``[4]``). Left alone (reported): an input of unknown
rank, and a fully known shape (TensorFlow already knows the rank).
"""

from __future__ import annotations

from tfopt._tf import GraphFacts
from tfopt.graph import Model
from tfopt.passes.base import Pass, PassResult, Skip, copy_graph


class PinSqueezeAxes(Pass):
    """pin the axes of a Squeeze without axes to the dimensions known to be 1 (a rank converters can use)."""

    name = "pin_squeeze_axes"

    def run(self, model: Model) -> PassResult:
        bare = [n.name for n in model.graph_def.node if n.op == "Squeeze" and not n.attr["squeeze_dims"].list.i]
        if not bare:
            return PassResult(model, False)
        facts = GraphFacts(model.graph_def)
        graph_def = copy_graph(model.graph_def)
        skips: list[Skip] = []
        changed = False
        for node in (n for n in graph_def.node if n.name in bare):
            shape = facts.shape(node.input[0])
            if shape is None:
                skips.append(Skip(node.name, "Squeeze without axes on a tensor of unknown rank: its output rank "
                                             "stays unknown (give the inputs' shapes with --inputs NAME:SHAPE)"))
                continue
            if None not in shape:
                continue
            ones = [i for i, d in enumerate(shape) if d == 1]
            if ones:
                node.attr["squeeze_dims"].list.i.extend(ones)
            else:  # nothing known to be 1: nothing to remove, the rank is the input's
                node.op = "Identity"
                del node.attr["squeeze_dims"]
            changed = True
        return PassResult(model.replace(graph_def=graph_def) if changed else model, changed, skips)
