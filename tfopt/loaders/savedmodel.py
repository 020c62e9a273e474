"""SavedModel directories: one signature, frozen through its ConcreteFunction."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from tfopt._tf import tf
from tfopt.errors import ModelFormatError, OptionError
from tfopt.graph import Model
from tfopt.loaders import tf1_savedmodel, tf2_metagraph
from tfopt.loaders._concrete import model_from_concrete

FORMAT = "savedmodel"


def detect(path: str) -> bool:
    return os.path.isdir(path) and any(
        os.path.exists(os.path.join(path, f)) for f in ("saved_model.pb", "saved_model.pbtxt")
    )


def tag_sets(path: str) -> list[list[str]]:
    """The MetaGraph tag sets stored in ``saved_model.pb`` or ``.pbtxt`` (empty when it cannot be read)."""
    proto = tf1_savedmodel.read_saved_model(path)
    return [] if proto is None else [sorted(mg.meta_info_def.tags) for mg in proto.meta_graphs]


def _check_tags(path: str, tags: list[str]) -> None:
    have = tag_sets(path)
    if have and sorted(set(tags)) not in [sorted(set(h)) for h in have]:
        shown = "; ".join(" ".join(h) or "(no tags)" for h in have)
        raise OptionError(f"{path}: no MetaGraph with tags '{' '.join(tags)}' (--tags); available tag sets: {shown}")


def load(path: str, options: Any) -> Model:
    t = tf()
    tags = options.tags or None
    if tags:
        _check_tags(path, tags)
    extra: dict[str, Any] = {}
    try:
        obj = t.saved_model.load(path, tags=tags)
    except Exception as exc:
        refused, proto = _first_line(exc), tf1_savedmodel.read_saved_model(path)
        error = tf2_metagraph.refusal_error(path, proto, str(exc)) if proto is not None else None
        if error is not None:
            raise error from exc
        # TF1's builder wrote the whole MetaGraph: load it as a TF1 checkpoint's (tf1_savedmodel)
        if tf1_savedmodel.is_tf1(proto):
            return tf1_savedmodel.load(path, options, refused)
        if proto is None or _missing(path):
            raise ModelFormatError(f"{path}: cannot load SavedModel ({refused}). {_missing_hint(path)}") from exc
        # a TF2 SavedModel whose object graph TF2 cannot rebuild: its MetaGraph's signatures (tf2_metagraph)
        obj, extra = tf2_metagraph.load_signatures(path, tags, str(exc), proto), {"tf2_refused": refused}
    signatures = tf2_metagraph.signatures(obj) if extra else dict(obj.signatures)
    if not signatures and tf1_savedmodel.is_tf1(tf1_savedmodel.read_saved_model(path)):
        return tf1_savedmodel.load(path, options, "the SavedModel has no signature")
    if options.signature not in signatures:
        have = ", ".join(sorted(signatures)) or "none"
        raise OptionError(f"{path}: no signature '{options.signature}' (--signature); available: {have}")
    fn = signatures[options.signature]
    kwargs_spec = fn.structured_input_signature[1]
    input_names = sorted(kwargs_spec)  # signature functions take keyword args, flattened by sorted key

    provenance = {"format": tf2_metagraph.FORMAT if extra else FORMAT, "path": path, "signature": options.signature,
                  "signatures": sorted(signatures), **extra}
    call = _SignatureReference(fn, input_names)
    model = model_from_concrete(fn, input_names=input_names, call=call, provenance=provenance, keepalive=obj,
                                external_threshold=options.external_threshold)
    if extra:  # the MetaGraph's variables are graph resources TensorFlow's converter leaves: tfopt freezes them
        model = tf2_metagraph.with_variables(model, obj, options.external_threshold)
    # A SignatureDef's outputs are a protobuf map: no order of their own. Sorted keys keep it stable.
    return model.replace(outputs=sorted(model.outputs, key=lambda s: s.name))


def _missing(path: str) -> list[str]:
    """The parts of a SavedModel directory ``path`` lacks: ``saved_model.pb``, ``variables/``."""
    missing = [] if any(os.path.isfile(os.path.join(path, f)) for f in tf1_savedmodel.GRAPH_FILES) else ["saved_model.pb"]
    return missing + ([] if os.path.isdir(os.path.join(path, "variables")) else ["variables/"])


def _missing_hint(path: str) -> str:
    """What is missing from ``path``, or, for a complete directory, what else to try."""
    missing = _missing(path)
    if missing:
        return f"The directory lacks {' and '.join(missing)}: copy the whole SavedModel directory."
    return ("The directory holds saved_model.pb and variables/; choose another MetaGraph with --tags, or freeze the "
            "graph to a .pb and convert it with --outputs NODE and --set NAME=VALUE.")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


class _SignatureReference:
    """Runs the signature's function on feeds keyed by input name (the original model)."""

    def __init__(self, fn: Any, input_names: Sequence[str]):
        self._fn, self._input_names = fn, list(input_names)

    def __call__(self, feeds: Mapping[str, Any]) -> dict[str, Any]:
        t = tf()
        out = self._fn(**{k: t.constant(feeds[k]) for k in self._input_names})
        return {k: v.numpy() for k, v in out.items()}

    def fed_at(self, graph_def: Any, tensors: Mapping[str, str], keep: Sequence[str]) -> Any:
        """The function pruned to take ``tensors`` (input name -> a tensor of its graph, an iterator's
        output) and the inputs ``keep`` as feeds. A TF1 SavedModel's signature is a pruned
        ``WrappedFunction`` and prunes again; a TF2 ``tf.function`` cannot (None)."""
        if not hasattr(self._fn, "prune"):
            return None
        graph, given = self._fn.graph, dict(zip(self._input_names, self._fn.inputs))
        names = [n for n in self._input_names if n in keep] + list(tensors)
        try:
            feeds = [given[n] if n in given else graph.get_tensor_by_name(tensors[n]) for n in names]
            pruned = self._fn.prune(feeds, self._fn.structured_outputs)
        except (KeyError, ValueError, TypeError):
            return None

        def call(values: Mapping[str, Any]) -> dict[str, Any]:
            t = tf()
            out = pruned(*[t.constant(values[n]) for n in names])
            return {k: v.numpy() for k, v in out.items()}
        return call
