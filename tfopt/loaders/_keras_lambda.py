"""Keras 2 Lambda layers whose stored Python function this Python cannot rebuild, and the functions
a user supplies for them.

Keras 2 stores a Lambda's function as ``base64(marshal.dumps(function.__code__))`` with its defaults
and closure (``function_type: "lambda"``; also its ``output_shape``/``mask`` when those are
functions). Marshalled code belongs to the Python minor version that wrote it: Python 3.11 reads
Python 3.6's as "EOF read where object expected" (``EOFError``), others give "bad marshal data"
(``ValueError``) or a code object whose opcodes this interpreter does not have. No flag makes such
a function loadable; only its author has it in source form.

:func:`unreadable` finds those functions from the stored config before anything is deserialized;
:func:`check_readable` stops with :class:`~tfopt.errors.LambdaCodeError` naming every such layer and
the two ways out. A user supplies a function through the ``--custom-objects`` module's
``CUSTOM_OBJECTS`` dict, keyed by the Lambda layer's name, or by ``'<lambda>'`` (how Keras names a
Python lambda) for every Lambda whose stored function cannot be read here; :func:`lambda_shim`
then rebuilds those layers with the supplied function (called as ``function(inputs, **arguments)``
like Keras does) and without the stored shape function (TensorFlow infers the shape by tracing), so
no stored code runs and safe mode need not be lifted for them.
"""

from __future__ import annotations

import binascii
import codecs
import dis
import json
import marshal
import sys
import types
import zipfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from tfopt.errors import LambdaCodeError
from tfopt.loaders._keras_files import ARCHIVE, keras_kind

ANY_LAMBDA = "<lambda>"  # the key that supplies one function for every unreadable Lambda
_PARTS = (("function", "function_type"), ("output_shape", "output_shape_type"), ("mask", "mask_type"))
_MODULE_KEYS = ("module", "output_shape_module", "mask_module")


@dataclass(frozen=True)
class StoredLambda:
    """One Lambda layer of a stored config: its name, ``arguments`` and, per stored function part
    (``function``/``output_shape``/``mask``), why this Python cannot rebuild it (absent when it can)."""

    name: str
    arguments: dict[str, Any]
    problems: dict[str, str] = field(default_factory=dict)
    modules: tuple[str, ...] = ()  # the modules Keras 2 recorded as defining its functions


def code_problem(stored: Any) -> str:
    """Why the marshalled function ``stored`` (``[code, defaults, closure]`` or the base64 code
    alone) cannot be rebuilt here, or ``""``. Nothing is run: the code object is only read and its
    instructions decoded."""
    code = stored[0] if isinstance(stored, (list, tuple)) and stored else stored
    if not isinstance(code, str):
        return f"the stored code is a {type(code).__name__}, not base64 text"
    try:
        raw = codecs.decode(code.encode("ascii"), "base64")  # as Keras 2 decodes it (func_load)
    except (UnicodeEncodeError, binascii.Error):
        raw = code.encode("raw_unicode_escape")  # how Keras 2 falls back (func_load)
    try:
        loaded = marshal.loads(raw)
    except (EOFError, ValueError, TypeError, SystemError, MemoryError) as exc:
        return f"marshal cannot read it here ({type(exc).__name__}: {exc})"
    if not isinstance(loaded, types.CodeType):
        return f"the stored bytes hold a {type(loaded).__name__}, not a code object"
    try:
        unknown = sorted({i.opname for i in dis.get_instructions(loaded) if i.opname.startswith("<")})
    except (ValueError, IndexError, KeyError) as exc:
        return f"its bytecode does not decode here ({type(exc).__name__}: {exc})"
    return f"its bytecode has opcodes this Python does not know ({', '.join(unknown)})" if unknown else ""


def stored_lambdas(layers: list[dict[str, Any]]) -> list[StoredLambda]:
    """Every Lambda among ``layers`` (the ``{"class_name", "config"}`` dicts of a stored config)."""
    found = []
    for layer in layers:
        if layer.get("class_name") != "Lambda":
            continue
        config = layer["config"]
        problems = {part: problem for part, kind in _PARTS if (problem := _problem(config, part, kind))}
        modules = tuple(sorted({m for key in _MODULE_KEYS if isinstance(m := config.get(key), str) and m}))
        found.append(StoredLambda(str(config.get("name", "?")), dict(config.get("arguments") or {}), problems, modules))
    return found


def _problem(config: dict[str, Any], part: str, kind: str) -> str:
    """Why ``config[part]`` (Keras 2: ``kind == "lambda"``; Keras 3: ``{"class_name": "__lambda__",
    "config": {"code": ...}}``) cannot be rebuilt here, or ``""``."""
    stored = config.get(part)
    if config.get(kind) == "lambda":
        return code_problem(stored)
    if isinstance(stored, dict) and stored.get("class_name") == "__lambda__":
        return code_problem((stored.get("config") or {}).get("code"))
    return ""


def supplied(lambdas: list[StoredLambda], custom: Mapping[str, Any]) -> dict[str, Callable[..., Any]]:
    """Layer name -> the function the user supplied for it (by its name, or ``'<lambda>'`` for a
    layer whose stored function cannot be read here)."""
    chosen = {}
    for layer in lambdas:
        fn = custom.get(layer.name)
        if fn is None and "function" in layer.problems:
            fn = custom.get(ANY_LAMBDA)
        if callable(fn):
            chosen[layer.name] = fn
    return chosen


def check_readable(path: str, lambdas: list[StoredLambda], given: Mapping[str, Any], keras_version: str, *,
                   can_supply: bool = True) -> None:
    """Stop before loading when a Lambda's stored function cannot be rebuilt and was not supplied
    (``can_supply=False``: Keras 3, which takes no replacement for a built-in layer's function).

    Raises:
        LambdaCodeError: naming the file, every such layer with its ``arguments``, the writer, and the fix.
    """
    missing = [layer for layer in lambdas if layer.problems and layer.name not in given]
    if not missing:
        return
    python = ".".join(map(str, sys.version_info[:2]))
    by_problem: dict[str, list[str]] = {}
    for layer in missing:
        shown = f"'{layer.name}'" + (f" ({', '.join(f'{k}={v!r}' for k, v in layer.arguments.items())})"
                                     if layer.arguments else "")
        for part, why in layer.problems.items():
            by_problem.setdefault(f"{part}: {why}", []).append(shown)
    listed = "; ".join(f"{', '.join(names)} -- {why}" for why, names in by_problem.items())
    writer = f"Keras {keras_version}" if keras_version else "an older Keras"
    example = ", ".join(f"{layer.name!r}: fn" for layer in missing[:2]) + (", ..." if len(missing) > 2 else "")
    supply = ("Either supply the functions: write a module with CUSTOM_OBJECTS = {" + example + "} keyed by "
              f"layer name (or {{{ANY_LAMBDA!r}: fn}} for all of them), each fn computing what the layer did and "
              "called as fn(inputs, **arguments), and pass --custom-objects MODULE (no --unsafe needed for them); "
              "or load" if can_supply else
              "Rebuild the model in code with the functions (Lambda(fn, ...)) and load its weights "
              "(model.load_weights on this file); or load")
    raise LambdaCodeError(
        f"{path}: {len(missing)} Lambda layer(s) store their Python function as bytecode that Python {python} "
        f"cannot rebuild (written by {writer} in another Python version; --unsafe cannot help): {listed}. "
        f"{supply} the model in the Python and Keras that wrote it and save it as a SavedModel "
        "(tf.saved_model.save), then convert that")


SUPPLIED_KEY = "tfopt_supplied_lambda:"  # + layer name: where a supplied function is found in custom_objects


@contextmanager
def with_supplied(path: str, given: Mapping[str, Callable[..., Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(path to load, custom objects)`` for a ``.keras`` archive written by Keras 2 (tf-keras's zip
    format, which asks no ``custom_objects`` entry for its own Lambda class): a temporary copy whose
    config names each supplied function (``function_type: "function"``, found under
    :data:`SUPPLIED_KEY` + layer name) and drops the stored shape function; other files as they are."""
    if not given or keras_kind(path) != ARCHIVE:
        yield path, {}
        return
    from tfopt.loaders._keras_archive import archive_copy

    def point(stored: str, rewritten: str) -> None:
        with open(stored, "rb") as f:
            config = json.load(f)
        _name_supplied(config, given)
        with open(rewritten, "w") as f:
            json.dump(config, f)

    with archive_copy(path, "config.json", point) as copy:
        yield copy, {SUPPLIED_KEY + name: fn for name, fn in given.items()}


def _name_supplied(node: Any, given: Mapping[str, Any]) -> None:
    """Point every supplied Lambda of a stored config (nested models included) at its supplied function."""
    if isinstance(node, dict):
        config = node.get("config")
        if node.get("class_name") == "Lambda" and isinstance(config, dict) and config.get("name") in given:
            config.update(function=SUPPLIED_KEY + config["name"], function_type="function")
            config.pop("module", None)
            if config.get("output_shape_type") == "lambda":  # stored code: TF infers the shape instead
                config.update(output_shape=None, output_shape_type="raw")
        for value in node.values():
            _name_supplied(value, given)
    elif isinstance(node, list):
        for value in node:
            _name_supplied(value, given)


def lambda_shim(given: Mapping[str, Callable[..., Any]]) -> dict[str, Any]:
    """``{"Lambda": ...}`` for tf-keras's ``custom_objects``: rebuilds the layers named in ``given``
    with the supplied function; every other Lambda loads as Keras stores it."""
    if not given:
        return {}
    import tf_keras

    class Lambda:  # only its from_config is used: it returns tf-keras's own Lambda
        @classmethod
        def from_config(cls, config: dict[str, Any], custom_objects: Any = None) -> Any:
            fn = given.get(config.get("name", ""))
            if fn is not None:
                config = {**config, "function": fn, "function_type": "raw"}
                config.pop("module", None)
                if config.get("output_shape_type") == "lambda":  # stored code: TF infers the shape instead
                    config.update(output_shape=None, output_shape_type="raw")
            return tf_keras.layers.Lambda.from_config(config, custom_objects=custom_objects)

    return {"Lambda": Lambda}


def writer_version(path: str) -> str:
    """The Keras version that wrote ``path`` as the file records it, or ``""``."""
    try:
        if keras_kind(path) == ARCHIVE:
            with zipfile.ZipFile(path) as zf:
                return str(json.loads(zf.read("metadata.json")).get("keras_version", ""))
        import h5py

        with h5py.File(path, "r") as f:
            stored = f.attrs.get("keras_version", b"")
        return stored.decode() if isinstance(stored, bytes) else str(stored)
    except (OSError, zipfile.BadZipFile, KeyError, ValueError):
        return ""
