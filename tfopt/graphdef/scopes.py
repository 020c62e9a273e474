"""The main graph and the function bodies it calls, as one kind of scope; data liveness through calls.

A GraphDef names a tensor ``node:port``; a ``FunctionDef`` body names one ``node:output_arg:index`` and
its own inputs by their bare arg names, and returns tensors through ``ret``. :class:`Scope` hides the
difference, so an analysis written once runs on both. A scope entered from its caller (:meth:`Scope.calls`,
:meth:`Scope.enter`) is one call of the function: it knows what each argument was fed (the caller's scope
and input; for a ``While``, the initial value, the first iteration's), so a value can be followed out of
the body (:meth:`Scope.resolve`, :meth:`Scope.origin`) and named where it runs (``path``, ``where``).

:class:`Liveness` answers "which nodes does an output need, by data?" through functional control flow,
precisely per call output: for a call node and one of its outputs ``j`` it walks the callee back from
its ``j``-th return to the args it needs, and continues outside from the matching inputs:

    PartitionedCall / StatefulPartitionedCall / a function op:  inputs = args(f, j)
    If / Case (input 0 picks the branch):  inputs = {0} ∪ {a + 1 : a ∈ args(branch, j), every branch}
    While:  N = the least set with j ∈ N, args(cond, 0) ⊆ N (the trip count) and args(body, k) ⊆ N
            for every k ∈ N (iteration t+1 reads what iteration t returned); inputs = N

Dependence is a reachability, so the need for several outputs is the union of the needs for each:
each (call node, output) is walked once. Control edges order ops and carry no value: never followed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from tfopt.graph import is_control
from tfopt.graphdef.calls import argument_inputs, arguments, library_of, ref_node
from tfopt.graphdef.calls import call_sites as calls

# ops that hand their input 0 on unchanged (on some port): a resource reaches a write through them, also
# where TensorFlow lowered a Case/If to Switch ops in the main graph
_PASS_THROUGH = frozenset({"Identity", "IdentityN", "Switch", "_SwitchN", "RefSwitch", "Enter", "RefEnter"})

Users = dict[str, list[tuple[Any, int]]]


class Scope:
    """One body of code: the main graph (``function is None``) or a library function; one call of it when
    entered from the scope ``caller`` through its node ``call`` (:meth:`calls`, :meth:`enter`).

    Attributes:
        path: where it runs, for node paths: the call nodes from the main graph down, ``/``-joined.
        where: the same for messages: ``""`` for the main graph, else ``" in <function> (called by '<node>')"``
            followed by the caller's.
        feeds: argument name -> (the caller's scope, the caller's input that fed it); empty unless entered.
    """

    def __init__(self, graph_def: Any, function: Any = None, *, caller: Scope | None = None, call: Any = None):
        self.graph_def, self.function = graph_def, function
        self.nodes = graph_def.node if function is None else function.node_def
        # one walk's scopes share what they read of a function (its nodes by name, its users)
        self._memo: dict[tuple[str, str | None], Any] = caller._memo if caller is not None else {}
        self._library: dict[str, Any] | None = caller.library if caller is not None else None
        self.by_name: dict[str, Any] = self._memoized("by_name", lambda: {n.name: n for n in self.nodes})
        self.args = [] if function is None else [a.name for a in function.signature.input_arg]
        self.path, self.where = "", ""
        self.feeds: Mapping[str, tuple[Scope, str]] = {}
        if caller is not None:
            self.path = join_path(caller.path, call.name)
            self.where = f" in {self.name} (called by '{call.name}'){caller.where}"
            self.feeds = {a: (caller, ref) for a, ref in argument_inputs(call, function, self.library).items()}

    @property
    def name(self) -> str | None:
        return None if self.function is None else self.function.signature.name

    @property
    def library(self) -> dict[str, Any]:
        """Function name -> FunctionDef, read once per walk."""
        if self._library is None:
            self._library = library_of(self.graph_def)
        return self._library

    @property
    def users(self) -> Users:
        """Node or arg name -> [(consumer, input index)] (data and control), read once per walk: for walks
        that do not change the scope (:meth:`consumers` reads it afresh)."""
        return self._memoized("users", self._readers)

    def source(self, ref: str) -> tuple[str, int]:
        """``(node or arg name, port)`` of a data reference (an arg's port is 0)."""
        parts = ref.split(":")
        if self.function is None:
            return parts[0], int(parts[1]) if len(parts) > 1 else 0
        return parts[0], int(parts[2]) if len(parts) > 2 else 0

    def ref(self, node: str, output: str = "output", port: int = 0) -> str:
        """How a node in this scope names ``node``'s output (``output`` is the op's output arg name)."""
        return f"{node}:{port}" if self.function is None else f"{node}:{output}:{port}"

    def is_arg(self, name: str) -> bool:
        return self.function is not None and name in self.args and name not in self.by_name

    def returns(self) -> list[str]:
        """The refs this scope returns, in output order (a function's ``ret``; none for the main graph)."""
        if self.function is None:
            return []
        return [self.function.ret[a.name] for a in self.function.signature.output_arg]

    def arg_type(self, name: str) -> int | None:
        """The dtype enum of arg ``name`` (None in the main graph)."""
        if self.function is None:
            return None
        return next(a.type for a in self.function.signature.input_arg if a.name == name)

    def data_inputs(self, node: Any) -> list[str]:
        return [r for r in node.input if not is_control(r)]

    def through_identity(self, ref: str) -> str:
        """The node or arg a tensor comes from, through Identity chains (and Switch/Enter routing)."""
        name, _ = self.source(ref)
        while name in self.by_name and self.by_name[name].op in _PASS_THROUGH and self.data_inputs(self.by_name[name]):
            name, _ = self.source(self.data_inputs(self.by_name[name])[0])
        return name

    def consumers(self) -> dict[str, list[Any]]:
        """node or arg name -> the nodes that read it (data or control), as the scope is now."""
        return {name: [node for node, _ in users] for name, users in self._readers().items()}

    def returned(self) -> set[str]:
        """Nodes a function returns a value of or waits for (``ret`` and ``control_ret``)."""
        if self.function is None:
            return set()
        return {self.source(r)[0] for r in self.returns()} | set(self.function.control_ret.values())

    def calls(self) -> Iterator[Scope]:
        """One scope per function each node of this scope calls (a control-flow or call op), entered."""
        for node in self.nodes:
            for name, _ in calls(node, self.library):
                yield Scope(self.graph_def, self.library[name], caller=self, call=node)

    def enter(self, call: Any, index: int) -> list[tuple[Scope, str]]:
        """The scopes (and argument names) that data input ``index`` of ``call`` continues into."""
        return [(Scope(self.graph_def, fdef, caller=self, call=call), arg)
                for fdef, arg in arguments(call, index, self.library)]

    def resolve(self, ref: str) -> tuple[Scope, Any]:
        """The scope and node computing ``ref``, an argument followed out to the caller's input that fed
        it (a ``While`` argument: its initial value); the node is None where the graph holds none."""
        scope, name = self, ref_node(ref)
        while name in scope.feeds:
            scope, outer = scope.feeds[name]
            name = ref_node(outer)
        return scope, scope.by_name.get(name)

    def origin(self, ref: str) -> str | None:
        """The main-graph node that the value ``ref`` comes from, through Identity chains and call
        boundaries (None when it is computed in a body, or an argument no input fed)."""
        scope = self
        while True:
            name = scope.through_identity(ref)
            if not scope.is_arg(name):
                return name if scope.function is None else None
            if name not in scope.feeds:
                return None
            scope, ref = scope.feeds[name]

    def _readers(self) -> Users:
        out: Users = {}
        for node in self.nodes:
            for i, ref in enumerate(node.input):
                out.setdefault(ref_node(ref), []).append((node, i))
        return out

    def _memoized(self, what: str, make: Callable[[], Any]) -> Any:
        key = (what, self.name)
        if key not in self._memo:
            self._memo[key] = make()
        return self._memo[key]


def join_path(outer: str, name: str) -> str:
    """``name`` inside the call path ``outer``, their overlap once: a body's node names repeat the tail
    of the scope the call was made in (``model/rnn/while`` + ``rnn/while/cell/Assign`` ->
    ``model/rnn/while/cell/Assign``)."""
    head, tail = outer.split("/") if outer else [], name.split("/")
    overlap = max((k for k in range(1, min(len(head), len(tail)) + 1) if head[len(head) - k:] == tail[:k]), default=0)
    return "/".join(head + tail[overlap:])


def walk_scopes(graph_def: Any) -> Iterator[Scope]:
    """Every scope reachable from the main graph through known calls (each function once per call site),
    entered: :meth:`Scope.origin` names the main-graph node a value comes from."""

    def visit(scope: Scope) -> Iterator[Scope]:
        yield scope
        for callee in scope.calls():
            yield from visit(callee)

    yield from visit(Scope(graph_def))


class Liveness:
    """The nodes each scope needs so that the main graph's outputs get their values (module docstring).

    Args:
        graph_def: the graph; ``opaque(node)`` -> True for a node whose data inputs are not followed
            (its value will not be computed from them).
    """

    def __init__(self, graph_def: Any, *, opaque: Callable[[Any], bool] = lambda _: False):
        self.graph_def, self.opaque = graph_def, opaque
        self.library = library_of(graph_def)
        self.live: dict[str | None, set[str]] = {}
        self._args: dict[tuple[str, int], set[int]] = {}

    def of_outputs(self, outputs: Iterable[str]) -> set[str]:
        """Mark what ``outputs`` (main-graph refs) need; returns the main graph's live nodes."""
        self._walk(Scope(self.graph_def), list(outputs))
        return self.live.setdefault(None, set())

    def args_needed(self, function: str, output: int) -> set[int]:
        """Indices of ``function``'s args that its ``output``-th return needs."""
        key = (function, output)
        if key not in self._args:
            self._args[key] = set()  # TensorFlow functions do not recurse; this only guards a malformed library
            scope = Scope(self.graph_def, self.library[function])
            returns = scope.returns()
            needed = self._walk(scope, returns[output:output + 1])
            self._args[key] = {scope.args.index(a) for a in needed}
        return self._args[key]

    def _walk(self, scope: Scope, refs: list[str]) -> set[str]:
        live = self.live.setdefault(scope.name, set())
        seen: set[tuple[str, int]] = set()
        args: set[str] = set()
        stack = [r for r in refs if not is_control(r)]
        while stack:
            name, port = scope.source(stack.pop())
            if scope.is_arg(name):
                args.add(name)
                continue
            node = scope.by_name.get(name)
            called = list(calls(node, self.library)) if node is not None else []
            key = (name, port if called else 0)
            if node is None or key in seen:
                continue
            seen.add(key)
            live.add(name)
            if self.opaque(node):
                continue
            inputs = scope.data_inputs(node)
            needed = self._call_inputs(node, port) if called else range(len(inputs))
            stack.extend(inputs[i] for i in needed if i < len(inputs))
        return args

    def _call_inputs(self, node: Any, port: int) -> set[int]:
        called = list(calls(node, self.library))
        if node.op in ("While", "StatelessWhile"):
            body, cond = node.attr["body"].func.name, node.attr["cond"].func.name
            need: set[int] = set()
            pending = [port, *self.args_needed(cond, 0)]
            while pending:
                k = pending.pop()
                if k not in need:
                    need.add(k)
                    pending.extend(self.args_needed(body, k))
            return need
        offset = called[0][1]
        return set(range(offset)) | {a + offset for name, _ in called for a in self.args_needed(name, port)}
