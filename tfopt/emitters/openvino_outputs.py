"""Every output of an OpenVINO IR carries the name of the model output it computes.

OpenVINO's TensorFlow frontend names an output port after the tensor that computes it, and loses
that name in three ways, each seen on a Keras layer model:

1. the frontend replaces the output's op (a loop's ``TensorListStack``, an ``If`` it folds to its
   taken branch: Keras 2 ``CenterCrop``): the port keeps no name at all;
2. the output is a pass-through of an input (``Identity`` chains, which the frontend collapses: a
   model that is ``Dropout`` alone at inference): its ``Result`` reads the ``Parameter`` directly,
   whose port carries the input's name only (and two such outputs would share one tensor);
3. the output is a constant (``Identity`` of a ``Const`` after freezing): the frontend drops it.

The frontend still names each ``Result`` after the TensorFlow tensor it returns (``"dropout:0"``),
so the output is found by that name, never by position. Then: a tensor of its own (1) gets the
output's name; a tensor that is an input's or a constant's, or that another output also returns
(2), is first copied (``x * 1``, exact) so that the name belongs to this output only; a dropped
constant (3) is added back from the frozen graph's value. An output found none of these ways is a typed error naming it.

The other way round, an op the frontend removes or collapses leaves its tensor's name on the port
it merged into: an identity ``Transpose`` (Keras 2's ``Tensordot`` on a 3-D input) on an input's
``Parameter`` (``{"model/dense/Tensordot/transpose:0", "grammemes:0"}``), the ``Reshape`` under a
collapsed ``Identity`` on an output. OpenVINO's ``get_any_name()`` (what its tools print and user
code keys on) is then whichever sorts first, here the internal one; :func:`model_names_only` leaves
each input and output port the model's own names.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tfopt._openvino import openvino
from tfopt._tf import tf
from tfopt.errors import ConversionError
from tfopt.graph import Model, TensorSpec, node_map, tensor_node, tensor_port

# Ops that forward their input unchanged at inference: the frontend keeps none of them.
_PASS_THROUGH = {"Identity", "Snapshot", "StopGradient", "PreventGradient"}


def unnamed_outputs(ov_model: Any, model: Model) -> list[TensorSpec]:
    """The model's outputs whose names no output of ``ov_model`` carries."""
    names = {name for port in ov_model.outputs for name in port.get_names()}
    return [spec for spec in model.outputs if not names & _aliases(spec)]


def name_outputs(ov_model: Any, model: Model) -> None:
    """Give every output of ``model`` that no port of ``ov_model`` names a port of its own that
    carries its tensor name (see the module docstring); changes ``ov_model`` in place.

    Raises:
        ConversionError: an output the IR computes nowhere that tfopt can find.
    """
    lost = unnamed_outputs(ov_model, model)
    if not lost:
        return
    ov = openvino()
    results = {result.get_friendly_name(): result for result in ov_model.get_results()}
    for spec in lost:
        result = next((results[n] for n in _aliases(spec) if n in results), None)
        if result is not None:
            _own_tensor(ov, ov_model, result, spec)
        else:
            _add_result(ov, ov_model, model, spec)
    ov_model.validate_nodes_and_infer_types()  # a Result's port takes its source's names here
    missing = unnamed_outputs(ov_model, model)
    if missing:  # only if a name set above did not reach the port: a frontend change
        raise ConversionError(f"openvino: the IR has no output named {', '.join(s.tensor for s in missing)}; "
                              "leave openvino out of --to or report this model")


def model_names_only(ov_model: Any, model: Model) -> None:
    """Each port of ``ov_model`` that carries a model input's or output's name keeps the model's names
    only (see the module docstring); in place, after :func:`name_outputs`. A name dropped here is a
    frontend-removed op's, equal in value to the port it merged into."""
    _names_only(ov_model, set().union(*(_aliases(spec) for spec in (*model.inputs, *model.outputs))))


def _names_only(ov_model: Any, own: set[str]) -> None:
    """Each input and output port of ``ov_model`` that carries a name in ``own`` keeps those names only."""
    for port in (*ov_model.inputs, *(result.input_value(0) for result in ov_model.get_results())):
        names = set(port.get_names())
        if names & own and names - own:
            port.get_tensor().set_names(names & own)
    ov_model.validate_nodes_and_infer_types()  # a Result's port takes its source's names here


def _aliases(spec: TensorSpec) -> set[str]:
    return {spec.tensor, spec.name, spec.node}


def _own_tensor(ov: Any, ov_model: Any, result: Any, spec: TensorSpec) -> None:
    source = result.input_value(0)
    copy = _shared(source) or bool(source.get_names())
    _give_names(ov, result, {spec.tensor}, copy=copy, friendly=spec.node)


def _shared(source: Any) -> bool:
    """``source`` is an input's or a constant's tensor, or more than one output returns it."""
    results = [t for t in source.get_target_inputs() if t.get_node().get_type_name() == "Result"]
    return len(results) > 1 or source.get_node().get_type_name() in ("Parameter", "Constant")


def _give_names(ov: Any, result: Any, names: set[str], *, copy: bool, friendly: str) -> None:
    """``result``'s tensor named ``names``: on a copy of its source (``x * 1``) when ``copy``, whose
    source then keeps its other names only; else added to the source's."""
    source = result.input_value(0)
    if copy:
        copy_ = _copy(ov, source)
        copy_.set_friendly_name(friendly)
        result.input(0).replace_source_output(copy_.output(0))
        copy_.output(0).get_tensor().set_names(names)  # only its own (a Result's rewiring may carry the input's over)
        source.get_tensor().set_names(set(source.get_names()) - names)
    else:
        source.get_tensor().add_names(names)
    result.output(0).get_tensor().set_names(names)  # a Result keeps names of its own, which win


def name_signature_ports(ov_model: Any, inputs: Sequence[tuple[str, str]], outputs: Sequence[tuple[str, str]]) -> None:
    """The names the frozen-graph path gives (:func:`name_outputs`) on an IR converted from a serving
    SavedModel (a model over 2 GB, :mod:`tfopt.emitters.large_worker`), in place. That frontend names a
    port by its signature key (``out``), not by the graph's tensor (``out:0``), and an output passing an
    input through shares the input's tensor (one port, both names). Each ``(name, tensor)`` input gets
    ``tensor`` beside its key; each output a tensor of its own (copied when it is an input's, a
    constant's or another output's) named ``{name, tensor}``; then every such port keeps those names only, as
    :func:`model_names_only` leaves them on the frozen-graph path.

    Raises:
        ConversionError: a signature key no port carries (a frontend change).
    """
    ov = openvino()
    keys = {name for name, _ in (*inputs, *outputs)}
    for name, tensor in inputs:
        port = next((p for p in ov_model.inputs if name in p.get_names()), None)
        if port is not None:  # an argument renamed for TensorFlow (serving_arg_name) keeps that name only
            port.get_tensor().add_names({tensor})
    for name, tensor in outputs:
        result = next((r for r in ov_model.get_results() if name in r.input_value(0).get_names()
                       or name in r.output(0).get_names()), None)
        if result is None:
            raise ConversionError(f"openvino: the IR converted from the serving SavedModel has no output named "
                                  f"'{name}'; leave openvino out of --to or report this model")
        source = result.input_value(0)
        copy = _shared(source) or bool((set(source.get_names()) & keys) - {name})
        _give_names(ov, result, {name, tensor}, copy=copy, friendly=tensor_node(tensor))
    ov_model.validate_nodes_and_infer_types()
    # as model_names_only on the frozen-graph path: no name of an op the frontend removed beside the model's
    _names_only(ov_model, {n for name, tensor in (*inputs, *outputs) for n in (name, tensor, tensor_node(tensor))})


def _copy(ov: Any, source: Any) -> Any:
    """``x * 1`` (exact for every number, inf and NaN included): a tensor of its own, equal to
    ``x``. Not a same-type ``Convert``: the CPU plugin (2026.4) that removes it then reads a stale
    input on a dynamic-shape ``Parameter`` (measured: the previous call's values)."""
    kind = source.get_element_type()
    if kind.is_real() or kind.is_integral_number():
        return ov.opset13.multiply(source, ov.opset13.constant(np.ones((), kind.to_dtype())))
    return ov.opset13.convert(source, kind)  # bool


def _add_result(ov: Any, ov_model: Any, model: Model, spec: TensorSpec) -> None:
    """An output the frontend dropped: a constant (its frozen value) or an input passed through."""
    nodes = node_map(model.graph_def)
    ref = spec.tensor
    while nodes[tensor_node(ref)].op in _PASS_THROUGH:
        ref = nodes[tensor_node(ref)].input[0]
    node = nodes[tensor_node(ref)]
    if node.op == "Const" and tensor_port(ref) == 0:
        value = ov.opset13.constant(tf().make_ndarray(node.attr["value"].tensor))
    else:
        ports = [p for p in ov_model.inputs if {ref, tensor_node(ref)} & p.get_names()]
        if len(ports) != 1:
            raise ConversionError(f"openvino: the frontend dropped output '{spec.name}' ({spec.tensor}, computed by "
                                  f"{node.op} '{node.name}'), and tfopt cannot find it in the IR; leave openvino "
                                  "out of --to or report this model")
        value = _copy(ov, ports[0])
    value.set_friendly_name(spec.node)
    value.output(0).get_tensor().set_names({spec.tensor})
    result = ov.opset13.result(value)
    result.set_friendly_name(spec.tensor)
    ov_model.add_results([result])
