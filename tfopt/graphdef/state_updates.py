"""State updates no output reads: drop them before a frozen graph is built; refuse the ones an output reads.

A TF2 function may write its own variables: Keras 3's ``RNN.call`` draws the cells' dropout masks on every
call, ``training=False`` included, and each draw advances an int64 ``seed_generator_state`` with an
``AssignVariableOp``; a ``tf.random.Generator`` draw advances its state with ``RngReadAndSkip``; a counter
is ``AssignAddVariableOp``; any of them may sit in a ``While``/``If``/call body the variable is passed to.
TensorFlow's ``convert_variables_to_constants_v2`` turns the variable into a ``Const`` (in a body: the
arg's type becomes the value's) and leaves the write, which then cannot import or run ("expected resource").

Pattern, on the converted GraphDef, per variable ``v`` (a ``Const`` that was a captured variable), in the
main graph and in every body the main graph calls (:func:`~tfopt.graphdef.scopes.walk_scopes`):

    Assign{,Add,Sub}VariableOp(v, value), RngSkip(v, ...), an unread Stateful*Random*(v, ...)
        with no data path from any read of v to an output
      -> removed, with the ops that fed only it (``value``) and every control edge to it; a body keeps
         its signature (the arg that held v now carries v's value through, unread)
    RngReadAndSkip(v, alg, delta) -> key/counter -> StatelessRandom*V2 -> ... -> an output
      -> RandomUniformInt([3], 0, 2^31-1) -> key/counter -> ...      (a fresh state on every run)
    RngReadAndSkip(v, ...) whose draw no output reads -> removed with the ops it feeds

"Reads" is data liveness through calls (:class:`~tfopt.graphdef.scopes.Liveness`): control edges order ops
and carry no value. Outputs then compute what they computed before: an output depends on ``v`` only through
data edges from reads of ``v``, and none exists. A generator draw an output reads stays a draw: the frozen
graph samples on every run as the original does, so verification finds a stochastic model and names the
draw (:mod:`tfopt.verification.stochastic`), exactly as for ``tf.random.normal``; a frozen state would
instead repeat one noise pattern forever. When an output reads ``v`` itself (a counter, a running
statistic, a Keras ``SeedGenerator`` state), the frozen graph would hold one value of a variable the model
changes on every call: :class:`~tfopt.errors.StatefulModelError` names the variable and the op that writes it.
When that variable seeds a ``Stateless*Random*`` op (a ``SeedGenerator``: read, used as the seed, advanced), the
outputs are random on every call, as Keras 3's ``model.export`` of a random augmentation layer traces it
(``training`` unset is training for those layers): the error says so, and how to save the inference call.
A seed update whose draw no output reads (``training=False``: the draw is unused) is removed as any other.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from tfopt.errors import StatefulModelError
from tfopt.graph import DT_RESOURCE
from tfopt.graphdef.call_tidy import tidy_calls
from tfopt.graphdef.calls import library_of
from tfopt.graphdef.scopes import Liveness, Scope, join_path, walk_scopes

log = logging.getLogger(__name__)

STATE_UPDATE_OPS = frozenset({"AssignVariableOp", "AssignAddVariableOp", "AssignSubVariableOp"})
DRAW = "RngReadAndSkip"  # tf.random.Generator: returns the state, then advances it
GENERATOR_OPS = frozenset({DRAW, "RngSkip", "StatefulRandomBinomial", "StatefulStandardNormal",
                           "StatefulStandardNormalV2", "StatefulUniform", "StatefulUniformInt",
                           "StatefulUniformFullInt", "StatefulTruncatedNormal"})
WRITES = STATE_UPDATE_OPS | GENERATOR_OPS  # each writes the variable its input 0 holds
_RANDOM_SEEDED = re.compile(r"Stateless(Random|Multinomial|TruncatedNormal|Shuffle|ParameterizedTruncatedNormal)\w*")
_FRESH_STATE_MAX = 2**31 - 1  # a fresh state's words: any value keys Philox; a range every runtime's op draws


@dataclass(frozen=True)
class DroppedUpdate:
    """One removed state update: the op, the variable it wrote and the layer (name scope) it belongs to.

    ``node`` is the op's path: the call nodes from the main graph down, then the op (``model/while/x/Assign``).
    """

    op: str
    node: str
    variable: str

    def as_dict(self) -> dict[str, str]:
        return {"op": self.op, "node": self.node, "variable": self.variable, "layer": layer_of(self.node)}


@dataclass(frozen=True)
class _Write:
    scope: Scope
    node: Any
    variable: str  # the main graph's Const of the variable (an arg name when its origin is computed)

    @property
    def path(self) -> str:
        return join_path(self.scope.path, self.node.name)


def layer_of(node: str) -> str:
    """The name scope of ``node`` (Keras names an op ``model/layer/.../op``)."""
    return node.rpartition("/")[0] or node


def drop_unread_state_updates(graph_def: Any, outputs: Iterable[str], *,
                              variable_names: Mapping[str, str] | None = None) -> list[DroppedUpdate]:
    """Remove, in place, every state update on a frozen variable that no output reads (bodies included),
    and give each generator draw an output reads a fresh random state.

    Args:
        graph_def: the converter's GraphDef (variables already ``Const``).
        outputs: the output tensors (``name:port``).
        variable_names: ``Const`` node name -> the variable's name, for messages and the record.

    Returns:
        What was removed, one record per update, in graph order (bodies after the main graph).

    Raises:
        StatefulModelError: an output reads (through data edges) a variable the graph writes.
    """
    names = dict(variable_names or {})
    writes = _frozen_writes(graph_def)
    if not writes:
        return []
    liveness = Liveness(graph_def, opaque=lambda n: n.op == DRAW)  # a kept draw will not read its state
    read = liveness.of_outputs(outputs)
    stateful = [w for w in writes if w.variable in read]
    seeded = [(w, draws) for w in stateful for draws in [_seeded_draws(w)] if draws]
    if seeded:
        w, draws = seeded[0]
        raise StatefulModelError(
            f"the model's outputs are random: layer '{layer_of(w.path)}' seeds {draws[0]} from variable "
            f"'{names.get(w.variable, w.variable)}', which {w.node.op} '{w.path}' advances on every call, so "
            "each call draws new numbers and a frozen graph (one seed) would repeat one draw forever. The saved "
            "function runs the layer's training-time (random) branch: Keras 3's model.export traces the model "
            "with `training` unset, which random augmentation layers treat as training. Convert the .keras "
            "file, or export a function that calls the model with training=False "
            "(keras.export.ExportArchive().add_endpoint(..., lambda x: model(x, training=False), ...))",
            variables=[names.get(v.variable, v.variable) for v, _ in seeded])
    if stateful:
        lines = [f"{w.node.op} '{w.path}' writes variable '{names.get(w.variable, w.variable)}' "
                 f"(layer '{layer_of(w.path)}')" for w in stateful]
        raise StatefulModelError(
            "the model's outputs read a variable its own call changes, so a frozen graph (one value of it) "
            f"would answer differently on the next call: {'; '.join(lines)}. Freeze a model whose inference "
            "call does not write state that the outputs read (pass the value in as an input, or rebuild the "
            "layer without its update and save again)",
            variables=[names.get(w.variable, w.variable) for w in stateful])
    dropped: list[DroppedUpdate] = []
    edits: dict[str | None, tuple[set[str], list[str]]] = {}  # scope -> (nodes to remove, draws to refresh)
    for w in writes:
        live = liveness.live.get(w.scope.name, set())
        doomed, fresh = edits.setdefault(w.scope.name, (set(), []))
        if w.node.name in doomed or w.node.name in fresh:  # a body called from several places: one edit
            continue
        if w.node.op == DRAW and (w.node.name in live or _feeds(w.scope, w.node.name, live)):
            fresh.append(w.node.name)
            log.info("generator draw '%s' keeps drawing: its state '%s' is random on every run", w.path,
                     names.get(w.variable, w.variable))
            continue
        doomed |= _downstream(w.scope, w.node.name)
        dropped.append(DroppedUpdate(w.node.op, w.path, names.get(w.variable, w.variable)))
    library = library_of(graph_def)
    for name, (doomed, fresh) in edits.items():
        scope = Scope(graph_def, library[name] if name is not None else None)
        released = {old for draw in fresh for old in _fresh_state(scope, scope.by_name[draw])}
        _remove(scope, doomed, keep=liveness.live.get(name, set()), released=released)
    tidy_calls(graph_def, {name for name in edits if name is not None})
    return dropped


def _seeded_draws(write: _Write) -> list[str]:
    """The stateless random ops (``StatelessRandomUniformV2 'name'``) that read, in the write's own body,
    the (frozen) variable it writes: a seed state (Keras' ``SeedGenerator``: read, used as a seed, then advanced)."""
    scope = write.scope
    reached = _downstream(scope, scope.through_identity(write.node.input[0]))  # its reads are Identities now
    return sorted(f"{scope.by_name[n].op} '{join_path(scope.path, n)}'" for n in reached
                  if n in scope.by_name and _RANDOM_SEEDED.fullmatch(scope.by_name[n].op))


def _frozen_writes(graph_def: Any) -> list[_Write]:
    """Every write whose variable the converter froze: in the main graph its input 0 comes from a
    ``Const``; in a body from an arg no longer of resource type."""
    found = []
    for scope in walk_scopes(graph_def):
        for node in scope.nodes:
            if node.op not in WRITES or not scope.data_inputs(node):
                continue
            source = scope.through_identity(node.input[0])
            if scope.function is None:
                frozen = source in scope.by_name and scope.by_name[source].op == "Const"
            else:
                frozen = scope.is_arg(source) and scope.arg_type(source) != DT_RESOURCE  # a live resource, not a frozen variable
            if frozen:
                found.append(_Write(scope, node, scope.origin(node.input[0]) or source))
    return found


def _downstream(scope: Scope, name: str) -> set[str]:
    """``name`` and every node that reads its value, transitively (a write reads none)."""
    users = scope.consumers()
    found, stack = set(), [name]
    while stack:
        current = stack.pop()
        if current not in found:
            found.add(current)
            stack.extend(u.name for u in users.get(current, []) if any(
                r == current or (not r.startswith("^") and scope.source(r)[0] == current) for r in u.input))
    return found


def _feeds(scope: Scope, name: str, live: set[str]) -> bool:
    """Does ``name``'s value reach a node that must stay (a live one, or one the body returns)?"""
    return bool((_downstream(scope, name) - {name}) & (live | scope.returned()))


def _fresh_state(scope: Scope, node: Any) -> set[str]:
    """``RngReadAndSkip(state, alg, delta)`` -> ``RandomUniformInt([3], 0, 2^31-1)``, same name and consumers;
    returns the nodes that fed the old inputs."""
    from tfopt._tf import make_const

    old_inputs = scope.data_inputs(node)
    controls = [r for r in node.input if r.startswith("^")]
    refs = []
    for suffix, value, dtype in (("shape", [3], "int32"), ("minval", 0, "int64"), ("maxval", _FRESH_STATE_MAX, "int64")):
        const = make_const(_unique(scope, f"{node.name}/fresh_{suffix}"), value, dtype)
        scope.nodes.add().CopyFrom(const)
        scope.by_name[const.name] = scope.nodes[-1]
        refs.append(scope.ref(const.name))
    node.op = "RandomUniformInt"
    del node.input[:]
    node.input.extend(refs + controls)
    node.attr.clear()
    node.attr["T"].type, node.attr["Tout"].type = 3, 9  # int32 shape, int64 words
    node.attr["seed"].i = node.attr["seed2"].i = 0
    if scope.function is not None:  # the op's output arg is named differently
        for other in scope.nodes:
            other.input[:] = [r.replace(f"{node.name}:value:", f"{node.name}:output:") for r in other.input]
    return {scope.source(r)[0] for r in old_inputs}


def _unique(scope: Scope, base: str) -> str:
    name, i = base, 0
    while name in scope.by_name or name in scope.args:
        i += 1
        name = f"{base}_{i}"
    return name


def _remove(scope: Scope, doomed: set[str], *, keep: set[str], released: Iterable[str] = ()) -> None:
    """Remove ``doomed``, then every node left with no consumer but removed ones that fed a removed node
    (or is in ``released``: it fed an edge that is gone), never one in ``keep``, a model input, or one a
    body returns; then the edges to anything removed."""
    users = scope.consumers()
    protected = keep | scope.returned()
    removed: set[str] = set()
    frontier = set(doomed)
    candidates = set(released)
    while frontier or candidates:
        removed |= frontier
        candidates |= {scope.source(r.lstrip("^"))[0] for name in frontier for r in scope.by_name[name].input}
        candidates -= removed | protected
        frontier = {c for c in candidates if c in scope.by_name and scope.by_name[c].op != "Placeholder"
                    and all(u.name in removed for u in users.get(c, []))}
        candidates -= frontier
        if not frontier:
            break
    if not removed:
        return
    kept = [n for n in scope.nodes if n.name not in removed]
    for n in kept:
        live = [r for r in n.input if scope.source(r.lstrip("^"))[0] not in removed]
        if len(live) != len(n.input):
            del n.input[:]
            n.input.extend(live)
    del scope.nodes[:]
    scope.nodes.extend(kept)
    scope.by_name = {n.name: n for n in scope.nodes}
    if scope.function is not None:
        gone = [k for k, v in scope.function.control_ret.items() if v in removed]
        for k in gone:
            del scope.function.control_ret[k]
        outputs = [c for c in scope.function.signature.control_output if c not in gone]
        del scope.function.signature.control_output[:]
        scope.function.signature.control_output.extend(outputs)
