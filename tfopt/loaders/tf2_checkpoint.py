"""TF2 object checkpoints (``tf.train.Checkpoint``, ``ckpt-N.index`` + ``.data-*``).

An object checkpoint stores values keyed by the *Python object graph* that saved them, so the
model's code is needed: ``model_fn="package.module:build"`` returns a Keras model or a
``tf.Module``. The checkpoint's root attribute holding the model (``model``, ``net``, ...) is read
from the stored object graph; every model variable must be matched or loading fails naming them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from tfopt._tf import tf
from tfopt._user_code import import_function
from tfopt.errors import GraphError, ModelFormatError, OptionError
from tfopt.graph import Model
from tfopt.loaders._checkpoint_keras import built_input_shape, checkpoint_values, is_keras_model, model_variables
from tfopt.loaders._concrete import model_from_concrete, named_leaves
from tfopt.loaders.keras import model_from_keras
from tfopt.loaders.tf1_checkpoint import _prefix_from_state, check_checkpoint_files, open_reader

FORMAT = "tf2-checkpoint"


def detect(path: str) -> bool:
    if os.path.isdir(path):
        return _prefix_from_state(path) is not None or any(f.endswith(".index") for f in os.listdir(path))
    return path.endswith(".index") or os.path.exists(path + ".index")


def _prefix(path: str) -> str:
    if os.path.isdir(path):
        state = _prefix_from_state(path)
        if state is not None:
            return state
        indexes = sorted(f for f in os.listdir(path) if f.endswith(".index"))
        return os.path.join(path, indexes[-1][: -len(".index")])
    return path[: -len(".index")] if path.endswith(".index") else path


def build_from_model_fn(spec: str) -> Any:
    return import_function(spec, "--model-fn")()


def load(path: str, options: Any) -> Model:
    prefix = _prefix(path)
    check_checkpoint_files(prefix)
    if not options.model_fn:
        raise OptionError(f"{path}: a TF2 object checkpoint stores values, not the model's code. Pass "
                          "--model-fn package.module:function returning the Keras model or tf.Module")
    model, attr, keras = _built_and_restored(options.model_fn, prefix)
    provenance = {"format": FORMAT, "path": path, "checkpoint": prefix, "model_fn": options.model_fn,
                  "checkpoint_attribute": attr, **({"keras": keras} if keras else {})}
    if getattr(model, "inputs", None) and hasattr(model, "layers"):
        return model_from_keras(model, provenance, external_threshold=options.external_threshold)
    if is_keras_model(model) and built_input_shape(model) is not None:
        return _model_from_subclassed(model, provenance, options.external_threshold)
    return _model_from_module(model, options.signature, provenance, options.external_threshold)


def _built_and_restored(spec: str, prefix: str) -> tuple[Any, str, str]:
    """``(model, root attribute, "keras2" or "")``: the model built by ``spec`` with the process's Keras,
    restored; when that model does not match (a checkpoint written by Keras 2 code), built again with
    its module's Keras names bound to tf-keras and restored.

    Raises:
        GraphError: neither build matches the checkpoint (the first build's reasons are named).
    """
    model = build_from_model_fn(spec)
    try:
        return model, _restore(model, prefix), ""
    except GraphError as first:
        if not is_keras_model(model):
            raise
        try:
            import tf_keras  # noqa: F401  (Keras 2 is optional)
        except ImportError:
            raise first from None
        from tfopt.loaders._keras2_scope import keras2_names

        with keras2_names([spec.partition(":")[0]]):
            model2 = build_from_model_fn(spec)
        try:
            return model2, _restore(model2, prefix), "keras2"
        except GraphError:
            raise first from None


def _restore(model: Any, prefix: str) -> str:
    """Restore into ``model`` under whichever root attribute matches; return that attribute."""
    t = tf()
    from tensorflow.core.protobuf import trackable_object_graph_pb2

    reader = open_reader(prefix)
    try:
        graph = trackable_object_graph_pb2.TrackableObjectGraph()
        graph.ParseFromString(reader.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))
    except Exception as exc:
        raise ModelFormatError(f"{prefix}: not a readable TF2 object checkpoint ({str(exc).splitlines()[0][:200]})") from exc
    names = [c.local_name for c in graph.nodes[0].children]
    preferred = sorted(names, key=lambda n: (n not in ("model", "net", "network", "module"), n))
    failures = []
    for name in [*preferred, None]:
        if name == "save_counter":  # Checkpoint's own bookkeeping, never the model
            continue
        ckpt = t.train.Checkpoint(root=model) if name is None else t.train.Checkpoint(**{name: model})
        status = None
        try:
            status = ckpt.restore(prefix)  # a variable of another shape raises here already
            status.assert_existing_objects_matched()
            status.expect_partial()  # optimizer slots and the step counter are not needed
            stored, have = checkpoint_values(reader, name), model_variables(model)
            if have < stored:  # a partial restore (e.g. a model that built fewer variables) is no restore
                raise AssertionError(f"the model has {have} variables, the checkpoint stores {stored} under it")
            return name or "<root>"
        except (AssertionError, ValueError) as exc:
            if status is not None:
                status.expect_partial()
            failures.append(f"as '{name or '<root>'}': {str(exc).splitlines()[0][:300]}")
    raise GraphError(f"{prefix}: the model built by --model-fn does not match the checkpoint "
                     f"(root attributes: {', '.join(names) or 'none'}). Unmatched: " + "; ".join(failures[:3]))


def _model_from_subclassed(model: Any, provenance: dict[str, Any], external_threshold: int | None) -> Model:
    """A subclassed Keras model's inference call traced at the shape it was built with (batch open)."""
    t = tf()
    spec = t.TensorSpec(built_input_shape(model), t.float32, name="input_0")

    @t.function(input_signature=[spec], autograph=False)
    def serve(x: Any) -> dict[str, Any]:
        return dict(named_leaves(model(x, training=False)))

    def call(feeds: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v.numpy() for k, v in serve(t.constant(feeds["input_0"])).items()}

    return model_from_concrete(serve.get_concrete_function(), input_names=["input_0"], call=call,
                               provenance={**provenance, "traced_at": spec.shape.as_list()}, keepalive=model,
                               external_threshold=external_threshold)


def _model_from_module(module: Any, signature: str, provenance: dict[str, Any],
                       external_threshold: int | None = None) -> Model:
    t = tf()
    attr = "__call__" if signature == "serving_default" else signature
    method = getattr(module, attr, None)
    if method is None or not hasattr(method, "get_concrete_function") or method.input_signature is None:
        raise OptionError(f"--model-fn returned a {type(module).__name__} whose '{attr}' is not a "
                          "tf.function with an input_signature; decorate it, or choose a method with --signature")
    fn = method.get_concrete_function()
    flat_specs = t.nest.flatten(fn.structured_input_signature)
    input_names = [s.name or f"input_{i}" for i, s in enumerate(flat_specs)]

    def call(feeds: Mapping[str, Any]) -> dict[str, Any]:
        out = method(*[t.constant(feeds[n]) for n in input_names])
        return {name: x.numpy() for name, x in named_leaves(out)}

    return model_from_concrete(fn, input_names=input_names, call=call, provenance=provenance, keepalive=module,
                                external_threshold=external_threshold)
