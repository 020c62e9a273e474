"""Freeze: variables to constants, training-only nodes pruned, then verified against the original.

The pass list, in order, and why:

1. ``bind_placeholders`` - training flags (bound to False) and ``--set`` values become constants
   first: every later decision about control flow depends on them.
2. ``strip_training_ops`` - asserts, NoOps, gradient guards and control edges from update ops go,
   so Identities stop carrying control inputs.
3. ``remove_identity`` - brings each Switch predicate next to its constant.
4. ``resolve_switch`` / ``inline_cond`` - the untaken v1 / v2 branches disappear. Inlining comes
   before freezing: a branch function reads variables through resource arguments, which only
   become plain reads once its body is in the graph. ``inline_calls`` does the same for the
   top-level function calls TensorFlow's own freezing leaves (Keras 3's ``jit_compile`` convs).
   ``remove_dropout`` - dropout whose rate is bound to 0 (keep probability 1) is the identity; it
   goes once its rate is a constant (after binding, and after the branches that set it resolve).
5. ``freeze_variables`` - TF1 variables become checkpoint constants.
6. ``prune_dead`` - only what the outputs need remains (and the functions it calls).

Run to a fixed point: removing a branch exposes new Identities and dead nodes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tfopt.errors import GraphError, OptionError, StochasticModelError, did_you_mean
from tfopt.freezing.bind_placeholders import BindPlaceholders
from tfopt.freezing.freeze_variables import FreezeVariables
from tfopt.freezing.inline_calls import InlineCalls
from tfopt.freezing.inline_cond import InlineCond
from tfopt.freezing.remove_dropout import RemoveDropout, dropout_knobs
from tfopt.freezing.resolve_switch import ResolveSwitch
from tfopt.freezing.strip_training_ops import StripTrainingOps
from tfopt.graph import (
    PLACEHOLDER_OPS,
    VARIABLE_OPS,
    Model,
    TensorSpec,
    op_histogram,
    placeholder_spec,
    with_input_shapes,
)
from tfopt.loaders.pipeline_inputs import needed_by, pipeline_fed
from tfopt.loaders.training_nodes import is_training_flag, is_training_node
from tfopt.passes.base import PassStats, run_passes
from tfopt.passes.prune_dead import PruneDead
from tfopt.passes.remove_identity import RemoveIdentity
from tfopt.verification.testing import DEFAULT_ATOL, DEFAULT_RTOL, OutputDiff


@dataclass
class FreezeReport:
    """What freezing did: bindings, per-pass stats, node counts and the verification result."""

    bindings: dict[str, tuple[Any, str]] = field(default_factory=dict)  # name -> (value, why)
    passes: list[PassStats] = field(default_factory=list)
    nodes_before: int = 0
    nodes_after: int = 0
    ops_before: dict[str, int] = field(default_factory=dict)
    ops_after: dict[str, int] = field(default_factory=dict)
    training_nodes_left: list[str] = field(default_factory=list)
    # state updates no output reads, dropped while loading (op, node, variable, layer): Keras 3 RNN dropout seeds
    state_updates_dropped: list[dict[str, str]] = field(default_factory=list)
    verification: list[OutputDiff] = field(default_factory=list)
    verified_at: Any = None  # tfopt.verification.verify_inputs.VerifyInputs: the inputs every later stage is verified on too

    def removed_ops(self) -> dict[str, int]:
        return {op: n - self.ops_after.get(op, 0) for op, n in self.ops_before.items()
                if n > self.ops_after.get(op, 0)}

    def as_dict(self) -> dict[str, Any]:
        return {
            "bindings": {k: {"value": _jsonable(v), "reason": why} for k, (v, why) in self.bindings.items()},
            "nodes_before": self.nodes_before, "nodes_after": self.nodes_after,
            "removed_ops": self.removed_ops(), "passes": [p.as_dict() for p in self.passes],
            "training_nodes_left": self.training_nodes_left,
            "state_updates_dropped": self.state_updates_dropped,
            "verification": [d.__dict__ for d in self.verification],
            "verified_at": self.verified_at.as_dict() if self.verified_at is not None else None,
        }


def freeze_passes(bindings: Mapping[str, Any]) -> list[Any]:
    return [BindPlaceholders(bindings), StripTrainingOps(), RemoveIdentity(), ResolveSwitch(), InlineCond(),
            InlineCalls(), RemoveDropout(), FreezeVariables(), PruneDead()]


def freeze(model: Model, *, set_values: Mapping[str, Any] | None = None,
           inputs: Mapping[str, Sequence[int | None] | None] | None = None, verify: bool = True,
           atol: float = DEFAULT_ATOL, rtol: float = DEFAULT_RTOL, seed: int = 0,
           verify_shape: Mapping[str, Sequence[int]] | None = None, verify_data: Any = None) -> tuple[Model, FreezeReport]:
    """Freeze a loaded model.

    Args:
        model: from :func:`tfopt.load`.
        set_values: placeholder name -> value (strings are parsed by the placeholder's dtype).
        inputs: input name -> shape (``None`` keeps the graph's shape). When given, these are
            the only inputs: every other placeholder must be bound.
        verify: run the original and the frozen model on the same seeded inputs and raise
            :class:`~tfopt.errors.VerificationError` when they differ beyond ``atol``/``rtol``.
        verify_shape: input name -> a concrete shape to verify at (``--verify-shape``); the frozen
            model keeps its dynamic dimensions.
        verify_data: a :class:`tfopt.verification.verify_inputs.VerifyData` (eval data, calibration, ``--verify-shape``);
            without one the inputs are made up at a size the original model answers (see
            :mod:`tfopt.verification.verify`). The inputs used are ``report.verified_at``.

    Returns:
        The frozen model and a :class:`FreezeReport`.

    Raises:
        OptionError: an unknown placeholder in ``set_values``/``inputs`` or a value of the wrong dtype.
        GraphError: a placeholder that is neither an input nor bound; a variable left unfrozen.
        VerificationError: outputs differ, or no made-up input gives the original a usable output.
    """
    report = FreezeReport(nodes_before=len(model.graph_def.node), ops_before=op_histogram(model.graph_def),
                          state_updates_dropped=list(model.provenance.get("state_updates_dropped", [])))
    placeholders = {n.name: n for n in model.graph_def.node if n.op in PLACEHOLDER_OPS}
    bindings = _parse_bindings(set_values or {}, placeholders, report)
    requested = dict(inputs or {})
    for name in requested:
        if name not in placeholders:
            raise OptionError(f"--inputs: '{name}' is not a placeholder of the graph.{did_you_mean(name, placeholders)} "
                              f"The model's inputs: {', '.join(s.describe() for s in model.inputs) or 'none'}")
    for name, node in placeholders.items():
        if name not in bindings and name not in requested and is_training_flag(node, model.graph_def):
            bindings[name] = np.bool_(False)
            report.bindings[name] = (False, "training flag")
    for name, value in dropout_knobs(model.graph_def, outputs=[s.tensor for s in model.outputs]).items():
        if name not in bindings and name not in requested:
            from tfopt.graph import dtype_name

            bindings[name] = parse_value(name, value, dtype_name(placeholders[name].attr["dtype"].type))
            report.bindings[name] = (value, "dropout keep probability" if value == 1.0 else "dropout rate")
    new_inputs = _choose_inputs(model, placeholders, bindings, requested)
    staged = model.replace(inputs=new_inputs, bindings={**model.bindings, **bindings})
    staged = staged.replace(graph_def=with_input_shapes(staged.graph_def, requested))

    frozen, report.passes = run_passes(staged, freeze_passes(bindings))
    _check_frozen(frozen)
    report.nodes_after = len(frozen.graph_def.node)
    report.ops_after = op_histogram(frozen.graph_def)
    report.training_nodes_left = [n.name for n in frozen.graph_def.node if is_training_node(n)]
    frozen = frozen.replace(variable_values=None,
                            provenance={**model.provenance, "frozen": True})
    if verify:
        from tfopt.verification.verify import choose_inputs, reference_runner, verify_against_reference
        from tfopt.verification.verify_inputs import VerifyData

        if verify_shape:
            verify_data = VerifyData(**{**(verify_data.__dict__ if verify_data else {}), "shapes": dict(verify_shape)})
        original = reference_runner(model)
        report.verified_at = choose_inputs(lambda feeds: original({**feeds, **bindings}), frozen.inputs, verify_data,
                                           outputs=[s.name for s in frozen.outputs], seed=seed,
                                           graph_def=frozen.graph_def)
        try:
            report.verification = verify_against_reference(model, frozen, bindings, atol=atol, rtol=rtol,
                                                            inputs=report.verified_at, as_written=True)
        except StochasticModelError as exc:
            hint = _knob_hint(model)
            if not hint:
                raise
            from tfopt.verification.stochastic import GENERIC_HINT

            raise StochasticModelError(str(exc).replace(GENERIC_HINT, hint), exc.random_ops) from exc
    return frozen, report


def _parse_bindings(values: Mapping[str, Any], placeholders: Mapping[str, Any], report: FreezeReport) -> dict[str, Any]:
    from tfopt.graph import dtype_name, shape_of

    out = {}
    for name, raw in values.items():
        if name not in placeholders:
            raise OptionError(f"--set {name}=...: no placeholder '{name}' in the graph.{did_you_mean(name, placeholders)}")
        node = placeholders[name]
        value = parse_value(name, raw, dtype_name(node.attr["dtype"].type))
        shape = shape_of(node.attr["shape"].shape) if "shape" in node.attr else None
        if shape:  # non-scalar: the constant must have the placeholder's shape, not broadcast
            if None in shape:
                raise OptionError(f"--set {name}={raw}: '{name}' has shape {shape} with unknown dimensions; "
                                  "a bound value must have a fully known shape (or make it an input)")
            value = np.full(shape, value, dtype=value.dtype)
        out[name] = value
        report.bindings[name] = (out[name], "--set")
    return out


def parse_value(name: str, raw: Any, dtype: str) -> Any:
    """Parse ``raw`` (a CLI string or a Python value) as a scalar of ``dtype``."""
    text = str(raw).strip()
    try:
        if dtype == "bool":
            if isinstance(raw, (bool, np.bool_)):
                return np.bool_(raw)
            if text.lower() in ("true", "1"):
                return np.bool_(True)
            if text.lower() in ("false", "0"):
                return np.bool_(False)
            raise ValueError(text)
        if dtype.startswith(("int", "uint")):
            return np.array(int(text), dtype=dtype)
        if dtype.startswith(("float", "bfloat")):
            return np.array(float(text), dtype="float32" if dtype == "bfloat16" else dtype)
        if dtype == "string":
            return np.array(text.encode(), dtype=object)
    except ValueError:
        pass
    raise OptionError(f"--set {name}={text}: '{name}' is {dtype}, and '{text}' is not a {dtype} value")


def _choose_inputs(model: Model, placeholders: Mapping[str, Any], bindings: Mapping[str, Any],
                   requested: Mapping[str, Any]) -> list[TensorSpec]:
    # A fed PlaceholderWithDefault (an iterator's output, or one named in --inputs) cuts what is behind it.
    cut = pipeline_fed(model.graph_def) | {n for n in requested if placeholders[n].op == "PlaceholderWithDefault"}
    needed = needed_by(model.graph_def, [s.tensor for s in model.outputs], cut)
    known = {s.name: s for s in model.inputs}
    by_node = {s.node: s for s in model.inputs}
    if requested:
        chosen = [by_node.get(n) or known.get(n) or placeholder_spec(placeholders[n]) for n in requested]
        chosen = [_reshape(s, requested[s.node]) for s in chosen]
        from tfopt.graphdef.batch_axis import with_batch_axes  # a placeholder named in --inputs: its own axis

        chosen = with_batch_axes(model.graph_def, chosen, model.outputs)
    else:
        chosen = [s for s in model.inputs if s.node not in bindings]
    chosen_nodes = {s.node for s in chosen}
    for name, node in placeholders.items():
        if name in needed and name not in chosen_nodes and name not in bindings and node.op != "PlaceholderWithDefault":
            raise GraphError(f"placeholder '{name}' is needed by the outputs but is neither an input nor bound: "
                             f"add it to --inputs{_set_hint(node)}")
    return chosen


def _reshape(spec: TensorSpec, shape: Sequence[int | None] | None) -> TensorSpec:
    if shape is None:
        return spec
    if spec.shape is not None and len(spec.shape) != len(shape):
        raise OptionError(f"--inputs {spec.name}: rank {len(shape)} does not match the graph's rank {len(spec.shape)}")
    return dataclasses.replace(spec, shape=tuple(shape), batch_axis=None)  # a new shape: the axis read again


def _check_frozen(model: Model) -> None:
    inputs = {s.node for s in model.inputs}
    for node in model.graph_def.node:
        if node.op in VARIABLE_OPS:
            raise GraphError(f"variable '{node.name}' is still in the frozen graph (its readers could not be "
                             "converted); report this with the model attached")
        if node.op in PLACEHOLDER_OPS and node.name not in inputs and node.op != "PlaceholderWithDefault":
            raise GraphError(f"placeholder '{node.name}' is neither an input nor bound: add it to --inputs"
                             f"{_set_hint(node)}")


def _set_hint(node: Any) -> str:
    """``, or bind it with --set NAME=VALUE`` when ``--set`` can bind it (no unknown dimension)."""
    from tfopt.graph import shape_of

    shape = shape_of(node.attr["shape"].shape) if "shape" in node.attr else None
    if shape and None in shape:
        return f" (it has unknown dimensions {shape}, so --set cannot bind it)"
    return f", or bind it with --set {node.name}=VALUE"


def _knob_hint(model: Model) -> str:
    """How to turn dropout off, when a placeholder feeds a dropout mask tfopt did not bind."""
    hints = [f"--set {name}={value}" for name, value in dropout_knobs(model.graph_def, any_placeholder=True).items()]
    if not hints:
        return ""
    return (f"Dropout is active: turn it off by binding its placeholder: {', '.join(dict.fromkeys(hints))} "
            "(a keep probability to 1.0, a rate to 0.0)")


def _jsonable(value: Any) -> Any:
    arr = np.asarray(value)
    return arr.item() if arr.size == 1 else arr.tolist()
