"""Build small GraphDef-backed Models from tf.compat.v1 code, for pass tests."""

from __future__ import annotations

import contextlib

from tfopt._tf import tf
from tfopt.graph import Model, TensorSpec, op_histogram


def graph_model(build, inputs: dict[str, tuple], outputs: list[str], *, v1_control_flow: bool = False) -> Model:
    """Run ``build(tf)`` in a fresh graph; inputs are float32 placeholders name -> shape."""
    import contextlib

    from tfopt.demos.examples import control_flow_v1

    t = tf()
    graph = t.Graph()
    with graph.as_default(), (control_flow_v1() if v1_control_flow else contextlib.nullcontext()):
        build(t)
    graph_def = graph.as_graph_def()
    return Model(graph_def=graph_def,
                 inputs=[TensorSpec(n, f"{n}:0", "float32", s) for n, s in inputs.items()],
                 outputs=[TensorSpec(n, f"{n}:0", "float32", None) for n in outputs])


def ops(model: Model) -> dict[str, int]:
    return op_histogram(model.graph_def)


def graph_pb(path, build) -> str:
    """Write the GraphDef of ``build(tf)`` (run in a fresh graph) to ``path``."""
    t = tf()
    graph = t.Graph()
    with graph.as_default():
        build(t)
    with open(path, "wb") as f:
        f.write(graph.as_graph_def().SerializeToString())
    return str(path)


@contextlib.contextmanager
def counting(owner, name: str):
    """``{realpath: calls}`` of ``owner.name`` (e.g. ``numpy.load``) while the block runs, by a counter
    wrapped around the real function: it observes, every call still happens."""
    import collections
    import os

    import pytest

    counts: collections.Counter[str] = collections.Counter()
    real = getattr(owner, name)

    def counted(file, *args, **kwargs):
        if isinstance(file, (str, os.PathLike)):
            counts[os.path.realpath(file)] += 1
        return real(file, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(owner, name, counted)
        yield counts


def reads(counts, *paths) -> list[int]:
    """How many times each of ``paths`` was counted by :func:`counting`."""
    import os

    return [counts[os.path.realpath(p)] for p in paths]
