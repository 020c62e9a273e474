"""tf2onnx in a child process with a fixed hash seed: the only way its output is reproducible.

Why a child process: tf2onnx's graph keeps each tensor's consumers in a ``set`` of node names
(``Graph._output_to_consumers``), and its optimizers walk those sets, and sets of node objects
(``Graph.extract_sub_graph_nodes`` returns ``list(set_of_nodes)`` and that becomes the node order),
to decide what to rewrite first. String hashes are salted per process (``PYTHONHASHSEED``) and
object hashes are addresses, so the same graph converted in two processes gave different graphs:
basic-pitch's came out with 225 to 230 nodes, with TFLite and OpenVINO byte-identical. Sorting
the ONNX graph afterwards cannot undo a different rewrite, and patching each set in tf2onnx would
chase its internals release by release. So the child fixes both hashes at their root:
``PYTHONHASHSEED=0`` for strings, and tf2onnx's ``Node``/``Graph`` hashed by creation number
instead of address (:func:`_stable_hashes`). A fixed seed alone was not enough (three runs with
``PYTHONHASHSEED=0``: tf2onnx's optimizers left 324, 330 and 326 nodes; with both: identical).
The patch lives only in the child, so the user's process and its tf2onnx are untouched, and the
child starts fresh each time, so nothing converted before can shift a counter. The cost is one
TensorFlow import in the child (a few seconds per ONNX conversion; every precision reuses one).

Protocol: the parent writes ``graph.pb`` (deterministic serialization) and ``job.json`` (input and
output tensors, opset) into a temporary directory and runs ``python -m tfopt.emitters.onnx_worker
DIR``; the child writes ``model.onnx``, or ``error.txt`` and exits 1. The child's own stderr
(TensorFlow's and tf2onnx's logging) is handed back for the stage log.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import tempfile
from typing import Any

HASH_SEED = "0"


def convert_in_child(graph_def: Any, inputs: list[str], outputs: list[str], opset: int) -> tuple[Any, str]:
    """``(ModelProto, child's stderr)``; raises ``RuntimeError(message)`` when tf2onnx fails."""
    import onnx

    import tfopt

    root = os.path.dirname(os.path.dirname(os.path.abspath(tfopt.__file__)))
    env = {**os.environ, "PYTHONHASHSEED": HASH_SEED,
           "PYTHONPATH": os.pathsep.join(x for x in (root, os.environ.get("PYTHONPATH")) if x)}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with tempfile.TemporaryDirectory(prefix="tfopt-onnx-") as tmp:
        with open(os.path.join(tmp, "graph.pb"), "wb") as f:
            f.write(graph_def.SerializeToString(deterministic=True))
        with open(os.path.join(tmp, "job.json"), "w") as f:
            json.dump({"inputs": inputs, "outputs": outputs, "opset": opset}, f)
        child = subprocess.run([sys.executable, "-m", "tfopt.emitters.onnx_worker", tmp], env=env,
                               capture_output=True, text=True, check=False)
        log = child.stdout + child.stderr
        result = os.path.join(tmp, "model.onnx")
        if child.returncode != 0 or not os.path.exists(result):
            error = os.path.join(tmp, "error.txt")
            if os.path.exists(error):
                with open(error) as f:
                    message = f.read().strip()
            else:
                tail = [line for line in log.splitlines() if line.strip()][-3:]
                message = f"the converter process exited with {child.returncode}: {' | '.join(tail)}"
            raise RuntimeError(message, log)
        return onnx.load_model(result), log


def _stable_hashes(*classes: Any) -> None:
    """Hash tf2onnx's nodes and graphs by creation number instead of address, so the sets of them
    its optimizers walk iterate in one order. Only in the child: the user's process is untouched.
    A ``copy.deepcopy`` (tf2onnx copies the graph before each optimizer) keeps the number."""
    counter = itertools.count()
    for cls in classes:
        original = cls.__init__

        def __init__(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> None:
            self._tfopt_serial = next(counter)
            _original(self, *args, **kwargs)

        cls.__init__ = __init__
        cls.__hash__ = _serial_hash


def _serial_hash(self: Any) -> int:
    return int(self._tfopt_serial)


def _main(tmp: str) -> int:
    """The child: convert ``tmp/graph.pb`` as ``tmp/job.json`` says."""
    from tfopt._tf import graph_def_class, tf

    tf()  # quiet TensorFlow's Python logger before tf2onnx imports it
    import tf2onnx

    _stable_hashes(tf2onnx.graph.Node, tf2onnx.graph.Graph)

    with open(os.path.join(tmp, "job.json")) as f:
        job = json.load(f)
    graph_def = graph_def_class()()
    with open(os.path.join(tmp, "graph.pb"), "rb") as f:
        graph_def.ParseFromString(f.read())
    tf2onnx.utils.INTERNAL_NAME = 1  # generated names count from here ("x__1")
    try:
        proto, _ = tf2onnx.convert.from_graph_def(graph_def, input_names=job["inputs"], output_names=job["outputs"],
                                                  opset=job["opset"])
    except Exception as exc:
        with open(os.path.join(tmp, "error.txt"), "w") as f:
            f.write((str(exc).splitlines() or [type(exc).__name__])[0][:400])
        return 1
    with open(os.path.join(tmp, "model.onnx"), "wb") as f:
        f.write(proto.SerializeToString(deterministic=True))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1]))
