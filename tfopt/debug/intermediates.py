"""Intermediate tensors of the TF graph and of an artifact, on the same samples.

Each target whose record names an ``intermediates`` function (:mod:`tfopt.targets`; for the
built-in ones ``run_tflite``, ``run_onnx``, ``run_openvino``) opens an artifact as an
:class:`Intermediates`: its tensors (for :mod:`tfopt.runtimes.align`), the model inputs and outputs
its runtime paired by name (the alignment's anchors), whether it is quantized, and a ``run`` that
returns the values of the tensors asked for. Keeping a tensor must not change what is measured:
each module says in :attr:`Intermediates.notes` what keeping them changed (a disabled delegate or
fusion, measured on the final outputs and on the executed op count where the runtime tells it), and
never keeps a tensor that its runtime fuses into a larger kernel (the group is compared at its
boundary instead; see each module).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tfopt.errors import OptionError
from tfopt.graph import Model
from tfopt.runtimes.align import ArtifactTensor


@dataclass
class Intermediates:
    """An artifact opened for ``tfopt debug compare``.

    Attributes:
        target: its target name (:mod:`tfopt.targets`).
        path: the file run.
        tensors: its op outputs in topological order.
        anchors: tensor key -> TF node, for the inputs and outputs its runtime paired with the model's.
        quantized: it holds int8/int16 kernels (QDQ, FakeQuantize or quantized tensors).
        interior: tensor keys its runtime fuses into a larger kernel: not kept, not compared.
        run: ``run(keys, samples) -> {key: values over all samples}`` (batch-1 samples, concatenated).
        notes: what keeping the tensors changed, and the precision the runtime ran at.
    """

    target: str
    path: str
    tensors: list[ArtifactTensor]
    anchors: dict[str, str]
    quantized: bool
    run: Callable[[Sequence[str], Sequence[dict[str, np.ndarray]]], dict[str, np.ndarray]]
    interior: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)
    precision: str | None = None


def open_intermediates(target: str, path: str, model: Model) -> Intermediates:
    """The :class:`Intermediates` of one artifact of ``target`` (its record's ``intermediates``).

    Raises:
        OptionError: ``target``'s runtime cannot keep intermediate tensors (a TensorFlow artifact:
            ``pb``, ``savedmodel`` is the TF graph itself).
    """
    from tfopt.targets import TABLE

    record = TABLE.get(target)
    if record is None or record.intermediates is None:
        raise OptionError(f"{path}: tfopt debug compare runs {compared()} artifacts, not {target}; "
                          "a TensorFlow artifact (a .pb, a SavedModel) is the TF graph itself")
    opened: Intermediates = record.call("intermediates", path, model)
    opened.target = target  # a record may reuse another's opener (a second ONNX target): named as asked
    return opened


def compared() -> str:
    """The targets ``tfopt debug compare`` runs, as a phrase (``"tflite, onnx or openvino"``)."""
    from tfopt.targets import with_role

    names = [t.name for t in with_role("intermediates")]
    return " or ".join(filter(None, (", ".join(names[:-1]), names[-1])))


def tf_values(model: Model, nodes: Sequence[str],
              samples: Sequence[dict[str, np.ndarray]]) -> tuple[dict[str, np.ndarray], float]:
    """The first output of each of ``nodes`` in TensorFlow, over ``samples`` (concatenated), and the longest
    call's seconds. Each call is held to the bound in force (``--verify-timeout``:
    :class:`tfopt.verification.deadline.BoundedReference`, a ``While`` stopped at it).

    Raises:
        VerificationTimeoutError: a call did not end within the bound.
    """
    from tfopt._tf import graph_session, run_options, tf
    from tfopt.verification.deadline import BoundedReference

    t = tf()
    graph = t.Graph()
    with graph.as_default():
        t.graph_util.import_graph_def(model.graph_def, name="")
    fetch = [f"{n}:0" for n in nodes]
    with graph_session(graph, model.graph_def) as session:
        original = BoundedReference(lambda x: dict(zip(fetch, session.run(
            fetch, {s.tensor: x[s.name] for s in model.inputs}, options=run_options()))), model.graph_def, model.inputs)
        runs = [list(original(x).values()) for x in samples]
    return concat(runs, nodes), original.seconds


def float_nodes(model: Model) -> list[str]:
    """Nodes whose first output is a floating-point tensor computed from the inputs (not constants)."""
    from tfopt._tf import tf

    t = tf()
    graph = t.Graph()
    with graph.as_default():
        t.graph_util.import_graph_def(model.graph_def, name="")
    out = []
    for op in graph.get_operations():
        if op.type in ("Const", "Placeholder") or not op.outputs or not op.outputs[0].dtype.is_floating:
            continue
        out.append(op.name)
    return out


def concat(runs: Sequence[Sequence[Any]], keys: Sequence[str]) -> dict[str, np.ndarray]:
    """``{key: values of every run, concatenated on the batch axis}`` (scalars become ``[runs, 1]``)."""
    return {k: np.concatenate([np.asarray(r[i]).reshape(1, -1) if np.ndim(r[i]) == 0 else np.asarray(r[i])
                               for r in runs]) for i, k in enumerate(keys)}


def output_change(before: dict[str, np.ndarray], after: dict[str, np.ndarray]) -> float:
    """The largest absolute difference between two runs' final outputs."""
    return max((float(np.max(np.abs(before[k].astype(np.float64) - after[k].astype(np.float64))))
                for k in before if k in after and before[k].shape == after[k].shape), default=0.0)
