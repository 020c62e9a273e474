"""The plain (no tfopt) conversions of the corpus harness's "can the converter itself express it"
check (``scripts/corpus.py _plain``, one per child process): each backend's own converter, as its
documentation shows it, on the model the entry names. A TF2 object checkpoint goes through
:mod:`tfopt.coverage.corpus_plain_tf2` first."""

from __future__ import annotations

import os
import sys
from typing import Any


def plain_convert(target: str, model: str, fmt: str, out: str, inputs: list[str], outputs: list[str],
                  custom_objects: str | None = None, model_fn: str | None = None) -> None:
    """The backend's own converter, as its documentation shows it, on a SavedModel of the model (a
    Keras 2 file is re-saved as one with tf-keras; a TF2 object checkpoint is restored into the
    model ``model_fn`` builds and saved, :mod:`tfopt.coverage.corpus_plain_tf2`). A TF1 checkpoint goes TensorFlow's own way
    first, as TF1-era deployment guides show it: restore the meta graph, bind each bool placeholder
    (``is_training``) to False (no converter can run a training branch), drop the stale
    ``_output_shapes`` attributes TF 2.x refuses to import, freeze with
    ``convert_variables_to_constants``; then the backend's converter on that frozen GraphDef with
    the inputs and outputs tfopt found."""
    import subprocess
    import tempfile

    os.makedirs(out, exist_ok=True)
    keras_model = None
    if fmt == "savedmodel":
        source = model
    elif fmt == "keras2-h5":
        import importlib

        import tf_keras

        custom = {} if not custom_objects else {
            k: v for k, v in vars(importlib.import_module(custom_objects)).items() if callable(v)}
        source = os.path.join(tempfile.mkdtemp(), "saved")
        tf_keras.models.load_model(model, compile=False, custom_objects=custom).save(source, save_format="tf")
    elif fmt == "keras3":
        import keras

        source = os.path.join(tempfile.mkdtemp(), "saved")
        keras_model = keras.models.load_model(model, compile=False)
        keras_model.export(source)
    elif fmt == "tf2-checkpoint" and model_fn:
        source = os.path.join(tempfile.mkdtemp(), "saved")
        from tfopt.coverage.corpus_plain_tf2 import saved_from_checkpoint

        keras_model = saved_from_checkpoint(model, model_fn, source)
    elif fmt == "tf1-checkpoint":
        source = os.path.join(out, "frozen.pb")
        tf1_freeze(model, outputs, source)
    elif fmt == "graphdef":
        source = os.path.join(out, "bound.pb")
        bind_bools(model, source)
    else:
        raise SystemExit(f"no plain {target} conversion for a {fmt}")
    frozen = fmt in ("tf1-checkpoint", "graphdef")
    path = os.path.join(out, {"tflite": "model.tflite", "onnx": "model.onnx", "openvino": "model.xml"}[target])
    if target == "tflite":
        with open(path, "wb") as f:
            f.write(plain_tflite(source, frozen, _nodes(inputs), _nodes(outputs), keras_model))
    elif target == "onnx":
        where = (["--graphdef", source, "--inputs", ",".join(inputs), "--outputs", ",".join(outputs)] if frozen
                 else ["--saved-model", source])
        subprocess.run([sys.executable, "-m", "tf2onnx.convert", *where, "--output", path], check=True)
    else:
        from tfopt._openvino import openvino

        ov = openvino()
        ov.save_model(ov.convert_model(source), path)
    with open(out + ".path", "w") as f:
        f.write(path)


def plain_tflite(source: str, frozen: bool, inputs: list[str], outputs: list[str], keras_model: Any = None) -> bytes:
    """TensorFlow's TFLite converter as its guide shows it; when that fails, again with the batch
    (axis 0 of each input that leaves it open) fixed to 1, as the guide does for a model whose
    recurrent loop needs static shapes: a Keras model traced again at batch 1, a SavedModel's
    signature called at batch 1, a frozen graph with ``input_shapes``. Both failing: the first
    error (the cell is one the converter cannot express)."""
    import tensorflow as tf

    def convert(batch: int | None) -> bytes:
        if frozen:
            shapes = _frozen_input_shapes(source, inputs, batch) if batch else None
            converter = tf.compat.v1.lite.TFLiteConverter.from_frozen_graph(source, inputs, outputs,
                                                                            input_shapes=shapes)
        elif batch is None:
            converter = tf.lite.TFLiteConverter.from_saved_model(source)
        elif keras_model is not None:
            specs = [tf.TensorSpec([batch, *t.shape[1:]], t.dtype) for t in keras_model.inputs]
            function = tf.function(lambda *xs: keras_model(list(xs) if len(xs) > 1 else xs[0]))
            converter = tf.lite.TFLiteConverter.from_concrete_functions([function.get_concrete_function(*specs)],
                                                                        keras_model)
        else:
            loaded = tf.saved_model.load(source)
            serving = loaded.signatures["serving_default"]
            named = {k: tf.TensorSpec([batch, *s.shape[1:]] if s.shape.rank and s.shape[0] is None else s.shape,
                                      s.dtype, name=k)
                     for k, s in serving.structured_input_signature[1].items()}
            function = tf.function(lambda **kw: serving(**kw)).get_concrete_function(**named)
            converter = tf.lite.TFLiteConverter.from_concrete_functions([function], loaded)
        return bytes(converter.convert())

    try:
        return convert(None)
    except Exception as first:
        try:
            return convert(1)
        except Exception:
            raise first from None


def _frozen_input_shapes(path: str, inputs: list[str], batch: int) -> dict[str, list[int | None]] | None:
    """The placeholders' shapes with an open axis 0 set to ``batch`` (``None`` when none is open)."""
    import tensorflow as tf

    graph_def = tf.compat.v1.GraphDef()
    with open(path, "rb") as f:
        graph_def.ParseFromString(f.read())
    shapes: dict[str, list[int | None]] = {}
    for node in graph_def.node:
        if node.name in inputs and "shape" in node.attr and not node.attr["shape"].shape.unknown_rank:
            dims: list[int | None] = [d.size if d.size >= 0 else None for d in node.attr["shape"].shape.dim]
            shapes[node.name] = [batch, *dims[1:]] if dims and dims[0] is None else dims
    return shapes if len(shapes) == len(inputs) and any(s != [] for s in shapes.values()) else None


def _nodes(tensors: list[str]) -> list[str]:
    return [t.split(":")[0] for t in tensors]


def tf1_freeze(prefix_dir: str, outputs: list[str], path: str) -> None:
    """TensorFlow's TF1 freezing of the checkpoint in ``prefix_dir`` (its ``.meta``) to ``path``."""
    import glob

    import tensorflow as tf

    meta = sorted(glob.glob(os.path.join(prefix_dir, "*.meta")) + glob.glob(os.path.join(prefix_dir, ".meta")))[0]
    prefix = meta[: -len(".meta")]
    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as sess:
        meta_graph = tf.compat.v1.MetaGraphDef()
        with open(meta, "rb") as f:
            meta_graph.ParseFromString(f.read())
        for node in meta_graph.graph_def.node:  # stale shapes of an older TF: TF 2.x refuses the import
            node.attr.pop("_output_shapes", None)
        saver = tf.compat.v1.train.import_meta_graph(meta_graph, clear_devices=True)
        saver.restore(sess, prefix)
        graph_def = graph.as_graph_def()
        _bools_to_false(graph_def)  # is_training = False: bound as the user's code does
        frozen = tf.compat.v1.graph_util.convert_variables_to_constants(
            sess, graph_def, _nodes(outputs))
    frozen = tf.compat.v1.graph_util.extract_sub_graph(frozen, _nodes(outputs))
    with open(path, "wb") as f:
        f.write(frozen.SerializeToString())


def _bools_to_false(graph_def: Any) -> None:
    import tensorflow as tf

    for node in graph_def.node:
        if node.op == "Placeholder" and node.attr["dtype"].type == tf.bool.as_datatype_enum:
            node.op = "Const"
            dtype = node.attr["dtype"]
            node.attr.clear()
            node.attr["dtype"].CopyFrom(dtype)
            node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(False))


def bind_bools(path: str, dest: str) -> None:
    """A frozen GraphDef with its bool placeholders (``is_training``) bound to False, as TF1-era
    deployment guides do before a converter sees it."""
    import tensorflow as tf

    graph_def = tf.compat.v1.GraphDef()
    with open(path, "rb") as f:
        graph_def.ParseFromString(f.read())
    _bools_to_false(graph_def)
    with open(dest, "wb") as f:
        f.write(graph_def.SerializeToString())
