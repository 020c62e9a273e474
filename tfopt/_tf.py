"""The single place tfopt imports TensorFlow, on first use only.

Importing TensorFlow costs seconds; ``tfopt --help`` and ``tfopt inspect x.pb`` must not pay it.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

_TF: Any = None

# What ``import tensorflow`` imports eagerly so that Keras's optimizers register with the SavedModel
# registry (TensorFlow's own comment, b/196254385): Keras 3's package, which imports all of Keras
# (and scikit-learn, for its wrappers, when installed).
KERAS3_EAGER_IMPORT = "keras.src.optimizers"


def tf() -> Any:
    """Return the ``tensorflow`` module, importing it quietly the first time.

    Without Keras 3 (:func:`_without_keras3`): tfopt imports Keras where a Keras model needs it.
    """
    global _TF
    if _TF is None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        with _without_keras3():
            import tensorflow

        tensorflow.get_logger().setLevel("ERROR")
        _TF = tensorflow
    return _TF


def tfmot() -> Any:
    """Return ``tensorflow_model_optimization``, imported without changing the process's Keras.

    TFMOT's import sets ``os.environ["TF_USE_LEGACY_KERAS"] = "1"`` and then reads ``tf.keras``. In a
    process whose lazy ``tf.keras`` was not resolved yet, TensorFlow binds it to Keras 2 for good, and
    every child process inherits the variable: a custom-object module saying ``from tensorflow import
    keras`` then gets Keras 2 classes for a Keras 3 file loaded later in the same process (and so does
    the caller's own code after ``tfopt.convert(..., cluster=16)``). So ``tf.keras`` is resolved first,
    under the process's own setting (Keras 3 unless the user chose Keras 2: TFMOT then takes
    ``tf_keras`` itself), and the variable is put back as it was.

    Raises:
        ImportError: TFMOT is not installed.
    """
    if "tensorflow_model_optimization" in sys.modules:
        return sys.modules["tensorflow_model_optimization"]
    before = os.environ.get("TF_USE_LEGACY_KERAS")
    getattr(tf().keras, "version", None)  # resolves TensorFlow's lazy loader now
    try:
        import tensorflow_model_optimization
    finally:
        if before is None:
            os.environ.pop("TF_USE_LEGACY_KERAS", None)
        else:
            os.environ["TF_USE_LEGACY_KERAS"] = before
    return tensorflow_model_optimization


@contextlib.contextmanager
def _without_keras3() -> Iterator[None]:
    """``import tensorflow`` inside this block does not import Keras 3: 2.1 of its 6.3 CPU s on a
    2-core machine (Keras, and scikit-learn through Keras's wrappers). TensorFlow imports
    :data:`KERAS3_EAGER_IMPORT` inside ``try ... except ImportError: pass``; a ``None`` in
    ``sys.modules`` makes that import fail at once. Keras 3 registers nothing with TensorFlow's
    SavedModel registry (Keras 2, ``tf_keras`` under ``TF_USE_LEGACY_KERAS=1``, does: its import is
    left alone), so what TensorFlow loads is the same; ``tf.keras``, ``import keras`` and tfopt's
    Keras loaders import Keras 3 when they are used, as they would have."""
    if "tensorflow" in sys.modules or KERAS3_EAGER_IMPORT in sys.modules:
        yield
        return
    sys.modules[KERAS3_EAGER_IMPORT] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        if KERAS3_EAGER_IMPORT in sys.modules and sys.modules[KERAS3_EAGER_IMPORT] is None:
            del sys.modules[KERAS3_EAGER_IMPORT]


def graph_def_class() -> Any:
    from tensorflow.core.framework import graph_pb2

    return graph_pb2.GraphDef


def make_const(name: str, value: Any, dtype: Any = None) -> Any:
    """A ``Const`` NodeDef named ``name`` holding ``value``."""
    t = tf()
    from tensorflow.core.framework import node_def_pb2

    tensor = t.make_tensor_proto(value, dtype=dtype)
    node = node_def_pb2.NodeDef(name=name, op="Const")
    node.attr["dtype"].type = tensor.dtype
    node.attr["value"].tensor.CopyFrom(tensor)
    return node


def add_vector_slice(graph_def: Any, ref: str, begin: int, end: int, dtype: Any, name: str, *, shrink: bool = False,
                     unique: Callable[[str], str] = str) -> str:
    """Add ``ref[begin:end]`` of the vector ``ref`` (of ``dtype``: an enum or a ``tf.DType``), ``ref[begin]`` when
    ``shrink``, to ``graph_def``: a ``StridedSlice`` named ``unique(name)`` and its int32 bounds, ``unique(name +
    "/begin")``, ``/end``, ``/strides`` (``unique``: a fresh name in the graph; the names as they are by default).
    Returns the slice's name."""
    bounds = []
    for what, value in (("begin", begin), ("end", end), ("strides", 1)):
        graph_def.node.append(make_const(unique(f"{name}/{what}"), np.array([value], np.int32)))
        bounds.append(graph_def.node[-1].name)
    node = graph_def.node.add(name=unique(name), op="StridedSlice", input=[ref, *bounds])
    node.attr["T"].type = getattr(dtype, "as_datatype_enum", dtype)
    node.attr["Index"].type = tf().int32.as_datatype_enum
    for mask in ("begin_mask", "end_mask", "ellipsis_mask", "new_axis_mask", "shrink_axis_mask"):
        node.attr[mask].i = 0
    node.attr["shrink_axis_mask"].i = int(shrink)
    return node.name


def const_value(node: Any) -> np.ndarray:
    return tf().make_ndarray(node.attr["value"].tensor)


def constant_behind(nodes: Any, ref: str, max_bytes: int = 1024) -> Any:
    """The numeric value (an ``np.ndarray``) of the ``Const`` behind ``ref``, through ``Identity``; None
    when there is none, when it is a string constant (a table's keys), or when its packed content exceeds
    ``max_bytes`` (a weight, not a perm, an axis or a threshold)."""
    from tfopt.graph import tensor_node

    node = nodes.get(tensor_node(ref))
    while node is not None and node.op == "Identity" and node.input:
        node = nodes.get(tensor_node(node.input[0]))
    if node is None or node.op != "Const" or len(node.attr["value"].tensor.tensor_content) > max_bytes:
        return None
    value = np.asarray(const_value(node))
    return value if value.dtype.kind in "biuf" else None


class GraphFacts:
    """Static shapes, dtypes and statefulness, read by importing a GraphDef into ``tf.Graph`` once.

    Large constants (weights) are imported as placeholders of the same dtype and shape: shape
    inference needs only that, and importing megabytes of weights per pass would dominate.
    """

    SKELETON_BYTES = 1024

    def __init__(self, graph_def: Any):
        t = tf()
        skeleton = type(graph_def)()
        skeleton.CopyFrom(graph_def)
        for node in skeleton.node:
            tensor = node.attr["value"].tensor if node.op == "Const" else None
            if tensor is not None and len(tensor.tensor_content) > self.SKELETON_BYTES:
                shape = type(node.attr["value"].tensor.tensor_shape)()
                shape.CopyFrom(tensor.tensor_shape)
                dtype = node.attr["dtype"].type
                node.op = "Placeholder"
                node.attr.clear()
                node.attr["dtype"].type = dtype
                node.attr["shape"].shape.CopyFrom(shape)
        self.graph = t.Graph()
        with self.graph.as_default():
            t.graph_util.import_graph_def(skeleton, name="")

    def shape(self, tensor: str) -> tuple[int | None, ...] | None:
        from tfopt.graph import canonical_tensor

        s = self.graph.get_tensor_by_name(canonical_tensor(tensor)).shape
        return None if s.rank is None else tuple(s.as_list())

    def dtypes(self, node: str) -> list[Any]:
        return [o.dtype for o in self.graph.get_operation_by_name(node).outputs]

    @staticmethod
    def is_stateful(op_type: str) -> bool:
        from tensorflow.python.framework import op_def_registry

        op_def = op_def_registry.get(op_type)
        return op_def is None or op_def.is_stateful


# Grappler's optimizers (about 14 in a session's default pipeline) each copy the whole graph, its
# constants' bytes included, when a session first runs it: measured 20-50 s for a 9-node graph
# holding one 64 MB constant (4 s with them off), paid again by every new session (verification,
# calibration, debug). tfopt's passes already made the graph what it runs; a graph holding this
# much in constants runs as it is.
PLAIN_SESSION_CONST_BYTES = 16 << 20
# Per input: 4 Mi elements (16 MB of float32) at most in any run of a graph on made-up values (verification's
# runs of the original, the emitters' probes of a value the static shapes decide): one budget for every layer.
ELEMENT_BUDGET = 1 << 22


def constant_bytes(graph_def: Any) -> int:
    """The bytes of the graph's ``Const`` values (its functions' included)."""
    nodes = [*graph_def.node, *(n for f in graph_def.library.function for n in f.node_def)]
    return sum(len(n.attr["value"].tensor.tensor_content) for n in nodes if n.op == "Const")


def graph_session(graph: Any, graph_def: Any, *, rewrites: bool = True) -> Any:
    """A ``tf.compat.v1.Session`` over ``graph`` (imported from ``graph_def``), with grappler's
    meta-optimizer off when ``graph_def`` holds :data:`PLAIN_SESSION_CONST_BYTES` or more in constants,
    or when ``rewrites`` is False.

    ``rewrites=False`` runs the graph as written: once weights are constants, grappler folds
    ``conv(x, W)·s`` into ``conv(x, W·s)`` and fuses ops, which changes float32 rounding (4.5e-5 on a
    66-conv network). The setting is this session's ``ConfigProto``: nothing process-wide changes.
    """
    t = tf()
    config = t.compat.v1.ConfigProto()
    if not rewrites or constant_bytes(graph_def) >= PLAIN_SESSION_CONST_BYTES:
        config.graph_options.rewrite_options.disable_meta_optimizer = True
    return t.compat.v1.Session(graph=graph, config=config)


_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("tfopt_tf_deadline", default=None)
_WATCHED: dict[int, tuple[float, Any]] = {}  # call id -> (its deadline, the eager cancellation manager to start then)
_WATCH_LOCK = threading.Lock()
_WATCH_EVERY = 0.1  # seconds between the watchdog's looks: a run stops at most this late


@contextlib.contextmanager
def deadline(seconds: float | None) -> Iterator[None]:
    """Every TensorFlow run inside ends by ``seconds`` from now (``None``: no bound) with TensorFlow's
    ``CancelledError``/``DeadlineExceededError``: a ``tf.function`` call through an eager cancellation
    manager that one watchdog thread starts at the deadline, a ``Session.run`` through :func:`run_options`
    (its step is cancelled). Both stop a ``While`` loop between iterations (measured: a loop of 2**31 steps
    stops within 0.1 s of the bound, the watchdog's period), which a Python thread cannot do to native code. A call costs a few
    microseconds (no thread is started per call: the report times calls made through it)."""
    if not seconds:
        yield
        return
    from tensorflow.python.eager import cancellation

    manager = cancellation.CancellationManager()
    end = time.monotonic() + seconds
    token = _DEADLINE.set(end)
    key = id(manager)
    with _WATCH_LOCK:
        _WATCHED[key] = (end, manager)
    _watchdog()
    try:
        with cancellation.CancellationManagerContext(manager):
            yield
    finally:
        with _WATCH_LOCK:
            _WATCHED.pop(key, None)
        _DEADLINE.reset(token)


@functools.cache
def _watchdog() -> threading.Thread:
    """The one daemon thread that starts the cancellation of every :func:`deadline` past its end."""

    def watch() -> None:
        while True:
            time.sleep(_WATCH_EVERY)
            now = time.monotonic()
            with _WATCH_LOCK:
                late = [key for key, (end, _) in _WATCHED.items() if end <= now]
                for key in late:
                    _WATCHED.pop(key)[1].start_cancel()

    thread = threading.Thread(target=watch, name="tfopt-deadline", daemon=True)
    thread.start()
    return thread


def run_options() -> Any:
    """A ``RunOptions`` carrying the time left to the current :func:`deadline`, or ``None`` outside one."""
    end = _DEADLINE.get()
    if end is None:
        return None
    return tf().compat.v1.RunOptions(timeout_in_ms=max(1, int((end - time.monotonic()) * 1000)))
