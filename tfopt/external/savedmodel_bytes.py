"""A serving SavedModel's bytes that depend on the graph only, not on the writing process.

TensorFlow puts two process-dependent things in a SavedModel:

- ``fingerprint.pb`` holds a random ``uuid`` beside content hashes (``saved_model_checksum``,
  ``graph_def_program_hash``, ...). The uuid is rewritten from those hashes, so the same graph gives
  the same bytes and a different graph a different uuid; the rest of the fingerprint is TensorFlow's own.
- Every traced function is named ``__inference_<name>_<uid>`` (``__inference_serve_601``), the uid
  from a process-wide counter. A conversion made after others in one process (a notebook, a fleet
  worker) got other numbers than a fresh process. :func:`canonical_function_names` renumbers them
  ``0..n-1`` in the order of their uids: one save traces its functions in the same order in any
  process. Every reference follows: the library's functions and gradients, calls by op name and
  ``func`` attributes (main graph and bodies), and the object graph's concrete functions.
  The library is then sorted by the new names, and ``fingerprint.pb`` written again from the renamed
  ``saved_model.pb``.
"""

from __future__ import annotations

import hashlib
import os
import re

_TRACED = re.compile(r"(__inference_.*)_(\d+)")


def canonical_bytes(directory: str) -> None:
    """Make the SavedModel in ``directory`` process-independent (module docstring), in place."""
    if canonical_function_names(directory):
        from tensorflow.python.saved_model.fingerprinting_utils import write_fingerprint

        write_fingerprint(directory)
    deterministic_fingerprint(directory)


def canonical_function_names(directory: str) -> bool:
    """Renumber the traced functions of ``directory``'s ``saved_model.pb``; whether anything changed."""
    from tensorflow.core.protobuf import saved_model_pb2

    from tfopt.graphdef.function_names import rename_functions

    path = os.path.join(directory, "saved_model.pb")
    saved = saved_model_pb2.SavedModel()
    with open(path, "rb") as source:
        saved.ParseFromString(source.read())
    changed = False
    for meta in saved.meta_graphs:
        traced = sorted((int(m.group(2)), m.group(1), f.signature.name) for f in meta.graph_def.library.function
                        if (m := _TRACED.fullmatch(f.signature.name)))
        names = {old: f"{base}_{k}" for k, (_, base, old) in enumerate(traced) if old != f"{base}_{k}"}
        if not names:
            continue
        changed = True
        rename_functions(meta.graph_def, names)
        library = sorted(meta.graph_def.library.function, key=lambda f: f.signature.name)  # TensorFlow's order
        del meta.graph_def.library.function[:]  # followed the old names
        meta.graph_def.library.function.extend(library)
        objects = meta.object_graph_def
        for old, new in names.items():
            if old in objects.concrete_functions:
                objects.concrete_functions[new].CopyFrom(objects.concrete_functions[old])
                del objects.concrete_functions[old]
        for node in objects.nodes:
            kind = node.WhichOneof("kind")
            if kind == "function":
                node.function.concrete_functions[:] = [names.get(n, n) for n in node.function.concrete_functions]
            elif kind == "bare_concrete_function":
                name = node.bare_concrete_function.concrete_function_name
                node.bare_concrete_function.concrete_function_name = names.get(name, name)
    if changed:
        with open(path, "wb") as f:
            f.write(saved.SerializeToString(deterministic=True))
    return changed


def deterministic_fingerprint(directory: str) -> None:
    """Replace fingerprint.pb's random uuid with one derived from its content hashes."""
    path = os.path.join(directory, "fingerprint.pb")
    if not os.path.exists(path):
        return
    from tensorflow.core.protobuf import fingerprint_pb2

    fingerprint = fingerprint_pb2.FingerprintDef()
    with open(path, "rb") as f:
        fingerprint.ParseFromString(f.read())
    if "uuid" not in fingerprint.DESCRIPTOR.fields_by_name:
        return
    content = fingerprint.__class__()
    content.CopyFrom(fingerprint)
    content.ClearField("uuid")
    # TF's uuid is a 128-bit number in decimal; keep that form.
    fingerprint.uuid = str(int.from_bytes(hashlib.sha256(content.SerializeToString(deterministic=True)).digest()[:16],
                                          "big"))
    with open(path, "wb") as f:
        f.write(fingerprint.SerializeToString(deterministic=True))
