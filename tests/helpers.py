"""Build small GraphDef-backed Models from tf.compat.v1 code, for pass tests."""

from __future__ import annotations

import contextlib

import numpy as np

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


def as_served(model: Model, x: np.ndarray) -> np.ndarray:
    """``model``'s graph in a plain TensorFlow session (its first input fed ``x``, its first output read),
    as a user serving the written .pb runs it."""
    t = tf()
    graph = t.Graph()
    with graph.as_default():
        t.graph_util.import_graph_def(model.graph_def, name="")
    with t.compat.v1.Session(graph=graph) as session:
        return session.run(model.outputs[0].tensor, {model.inputs[0].tensor: x})


def saved_function(path, fn, input_signature) -> str:
    """``fn`` (its inputs' tensors -> a dict of outputs) saved as a SavedModel at ``path`` whose serving signature
    takes ``input_signature`` (the specs' names are the inputs' names)."""
    t = tf()
    module = t.Module()
    module.serve = t.function(fn, input_signature=input_signature)
    t.saved_model.save(module, str(path), signatures=module.serve.get_concrete_function())
    return str(path)


def loop_checkpoint(directory: str, x, cond, body, units: int, xs: np.ndarray) -> np.ndarray:
    """In the graph being built (``x``: its input placeholder): ``y``, the ``h`` of
    ``v1.while_loop(cond, body, [0, zeros([batch, units])])``; the variables initialised, ``y`` computed on
    ``xs`` by TensorFlow's own Session and the checkpoint saved as ``directory/model.ckpt`` by a ``Saver``.
    Returns ``y``."""
    import os

    t = tf()
    v1 = t.compat.v1
    h0 = t.zeros([t.shape(x)[0], units])
    _, h = v1.while_loop(cond, body, [0, h0])
    t.identity(h, name="y")
    with v1.Session(graph=x.graph) as sess:
        sess.run(v1.global_variables_initializer())
        y = sess.run("y:0", {x: xs})
        v1.train.Saver().save(sess, os.path.join(directory, "model.ckpt"))
    return y


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


# Run by keras2_builds: the builder script's ``main(*args)`` for each argument list, in this one process.
_BUILDS = "import json, runpy, sys\nmain = runpy.run_path(sys.argv[1])['main']\nfor args in json.loads(sys.argv[2]):\n" \
          "    main(*args)"


def keras2_builds(builder: str, root, together: list, args_of):
    """``get(key)``: the path the script ``builder`` writes for ``key`` (its ``main(*args_of(key, path))``),
    run on first request in a process of its own with ``TF_USE_LEGACY_KERAS=1`` (``tf.compat.v1.layers`` and
    ``rnn_cell`` need Keras 2), together with every key of ``together`` not yet written: one TensorFlow import
    for them all. Each builder's ``main`` makes its graph in a ``tf.Graph`` of its own and sets the global
    modes (eager, control flow v1/v2) it needs, so the graphs are those of a process each."""
    import json
    import os
    import subprocess
    import sys

    paths: dict = {}

    def get(key):
        if key not in paths:
            todo = [key, *(k for k in together if k not in paths and k != key)]
            paths.update({k: os.path.join(str(root), "-".join(map(str, k)) if isinstance(k, tuple) else str(k))
                          for k in todo})
            env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
            subprocess.run([sys.executable, "-c", _BUILDS, builder, json.dumps([args_of(k, paths[k]) for k in todo])],
                           check=True, env=env, capture_output=True)
        return paths[key]

    return get


def assert_artifacts_match(out: str, result, x, expected, tolerance: float) -> None:
    """Every artifact of ``result`` (written to ``out``) gives ``expected`` on the first input ``x``."""
    import os

    import numpy as np

    from tfopt.conversion.manifest import manifest_model
    from tfopt.runtimes import runner_for

    loaded = manifest_model(out)
    for artifact in result.artifacts:
        runner = runner_for(artifact.format, os.path.join(out, artifact.path), loaded)
        try:
            got = runner({loaded.inputs[0].name: x})[loaded.outputs[0].name]
        finally:
            getattr(runner, "close", lambda: None)()
        np.testing.assert_allclose(got, expected, atol=tolerance, rtol=tolerance, err_msg=artifact.format)


def converted_everywhere(model: Model, out: str, max_abs_err: float) -> list[dict]:
    """``model`` converted to every target at fp32: all written and verified by tfopt within
    ``max_abs_err``; the report's artifacts."""
    import tfopt

    result = tfopt.convert(model, out, to=["tflite", "onnx", "openvino"], quantize=["fp32"], report_runs=1)
    assert not result.failed, [f.reason for f in result.failed]
    artifacts = result.report["artifacts"]
    assert sorted(a["format"] for a in artifacts) == ["onnx", "openvino", "tflite"]
    assert all(a["fidelity"]["max_abs_err"] <= max_abs_err for a in artifacts), artifacts
    return artifacts


def engine_tflite(model: Model, samples: dict, recipe, path: str) -> tuple[list[tuple[str, str]], np.ndarray, np.ndarray]:
    """``model`` (one float input) quantized by the engine's ``recipe`` on ``samples`` and converted to TFLite
    int8 at ``path`` as tfopt converts it: ``(ops, int8 output, float output)``, the ops as ``(builtin op,
    type of its first input)`` in execution order, the outputs on the first 8 samples."""
    from ai_edge_litert.interpreter import Interpreter

    from tfopt.emitters.tflite import emit_tflite
    from tfopt.quantizing.engine.quantize import quantize_model
    from tfopt.runtimes.tensorflow import GraphRunner

    quantized, _ = quantize_model(model, samples, recipe)
    emit_tflite(quantized, path, precision="int8", calibration=[samples], quantization_aware=True)
    interpreter = Interpreter(path)
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    ops = [(op["op_name"], np.dtype(tensors[op["inputs"][0]]["dtype"]).name) for op in interpreter._get_ops_details()
           if op["op_name"] != "DELEGATE"]
    (name, x), (feed,), (fetch,) = next(iter(samples.items())), interpreter.get_input_details(), interpreter.get_output_details()
    interpreter.resize_tensor_input(feed["index"], [8, *x.shape[1:]])
    interpreter.allocate_tensors()
    interpreter.set_tensor(feed["index"], x[:8])
    interpreter.invoke()
    want = GraphRunner(model)({name: x[:8]})[model.outputs[0].name]
    return ops, interpreter.get_tensor(fetch["index"]), want


def tfmot_or_skip():
    """TFMOT as tfopt imports it (:func:`tfopt._tf.tfmot`: the process's ``tf.keras`` and
    ``TF_USE_LEGACY_KERAS`` left as they were), or the test skipped when it is not installed.
    ``pytest.importorskip`` would run TFMOT's import bare, which flips them for every later test."""
    import pytest

    from tfopt._tf import tfmot

    try:
        return tfmot()
    except ImportError as exc:
        pytest.skip(f"TFMOT is not installed: {exc}", allow_module_level=True)
