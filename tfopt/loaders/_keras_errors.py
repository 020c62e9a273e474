"""What Keras raises while rebuilding a stored model, as typed errors that name the file, the layer
being rebuilt (when a frame shows it), and the fix.

Keras' own messages are matched for the cases tfopt can name precisely (safe mode, an unknown class or
function, a cut JSON config); anything else raised inside deserialization -- ``EOFError`` or
``SystemError`` from stored bytecode, ``ImportError``/``NameError`` from code the file refers to -- is
a :class:`~tfopt.errors.ModelFormatError`, never an internal error. Keras' traceback filtering is off
while loading so that the frames of the layer being rebuilt stay visible to :func:`at_layer`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tfopt.errors import ModelFormatError, OptionError, TfoptError, UnsafeModelError
from tfopt.loaders._keras_files import ARCHIVE, keras_kind


@contextmanager
def _unfiltered_tracebacks() -> Iterator[None]:
    """Keras (tf-keras through ``tf.debugging``, Keras 3 through ``keras.config``) cuts its own frames
    from tracebacks; keep them within the block, then restore each setting."""
    from tfopt._tf import tf

    debugging = tf().debugging
    was_tf = debugging.is_traceback_filtering_enabled()
    debugging.disable_traceback_filtering()
    try:
        import keras

        was_keras = keras.config.is_traceback_filtering_enabled()
        keras.config.disable_traceback_filtering()
    except (ImportError, AttributeError):
        keras, was_keras = None, False
    try:
        yield
    finally:
        if was_tf:
            debugging.enable_traceback_filtering()
        if keras is not None and was_keras:
            keras.config.enable_traceback_filtering()


def guarded(path: str, loader: Any) -> Any:
    """Run ``loader``; whatever Keras raises while rebuilding the model becomes a typed error naming
    ``path`` (and the layer being rebuilt, when a frame shows it)."""
    try:
        with _unfiltered_tracebacks():
            return loader()
    except TfoptError:
        raise
    except (ValueError, TypeError, KeyError, OSError, AttributeError) as exc:
        msg = str(exc)
        name = None if "safe_mode" in msg else _unknown_name(msg)  # a name Keras cannot find, also inside a Lambda
        if name is not None:
            raise OptionError(f"{path}: the model uses '{name}', which Keras does not know. "
                              + _custom_object_fix(name)) from exc
        if "safe_mode" in msg or "Lambda" in msg:
            raise UnsafeModelError(
                f"{path}: the model contains a Lambda layer, which runs arbitrary Python when loaded. "
                "If you trust this file, pass --unsafe (unsafe=True)") from exc
        if isinstance(exc, json.JSONDecodeError):  # the archive's config.json (or an .h5's model_config) is cut
            inner = f"{path}/config.json" if keras_kind(path) == ARCHIVE else f"{path} (model_config)"
            raise ModelFormatError(f"{inner}: not valid JSON ({exc.msg}, char {exc.pos}); the file is truncated or "
                                   "half-written: save the model again") from exc
        raise ModelFormatError(f"{path}: cannot load Keras model{at_layer(exc)}: "
                               f"{msg.splitlines()[0][:300] if msg else type(exc).__name__}{_root_cause(exc)}") from exc
    except Exception as exc:  # EOFError, SystemError, ImportError, NameError... from deserializing stored code
        msg = str(exc).splitlines()[0][:300] if str(exc) else ""
        raise ModelFormatError(
            f"{path}: cannot load Keras model{at_layer(exc)}: Keras failed rebuilding it ({type(exc).__name__}"
            f"{': ' + msg if msg else ''}). The file may hold code or objects this Python/Keras cannot read "
            "(e.g. a Lambda saved by another Python version): load it where it was written and save it as a "
            "SavedModel (tf.saved_model.save), or supply the missing objects with --custom-objects") from exc


def _root_cause(exc: BaseException) -> str:
    """`` (caused by T: message)`` for the innermost exception ``exc`` was raised from (Keras wraps a
    layer's own error in "Error when deserializing class ..."), or ``""``."""
    inner, seen = exc, {id(exc)}
    while (nxt := inner.__cause__ or inner.__context__) is not None and id(nxt) not in seen:
        inner = nxt
        seen.add(id(inner))
    if inner is exc:
        return ""
    text = str(inner).splitlines()[0][:200] if str(inner) else ""
    return f" (caused by {type(inner).__name__}{': ' + text if text else ''})"


def at_layer(exc: BaseException) -> str:
    """`` at layer 'x'`` for the innermost frame of ``exc`` that was building or calling a named
    layer (a ``config`` dict being deserialized, or a Keras layer's own method), or ``""``."""
    tb, name = exc.__traceback__, ""
    while tb is not None:
        local = tb.tb_frame.f_locals
        for key in ("config", "cls_config", "layer_config"):
            if isinstance(local.get(key), dict) and isinstance(local[key].get("name"), str):
                name = local[key]["name"]
        owner = local.get("self")
        label = getattr(owner, "name", None)
        if isinstance(label, str) and any(c.__name__ == "Layer" for c in type(owner).__mro__):
            name = label
        tb = tb.tb_next
    return f" at layer '{name}'" if name else ""


# Keras names what it cannot find as "Unknown activation function: 'x'" (tf-keras), "Unknown layer:
# 'x'", "Could not locate class 'x'" (Keras 3). Older Keras 2 stored a Python lambda as '<lambda>'.
_UNKNOWN = re.compile(r"[Cc]ould not (?:locate|deserialize) (?:class|function) '?([\w.<>]+)'?"
                      r"|Unknown (?:\w+ )*?(?:function|layer|class|object|initializer|regularizer|constraint|loss|metric)"
                      r":? '?([\w.<>]+)'?|Unknown \w+:? '?([\w.<>]+)'?")


def _unknown_name(msg: str) -> str | None:
    """The name Keras says it does not know, as stored in the file (``'<lambda>'`` included)."""
    found = _UNKNOWN.search(msg)
    return None if found is None else next(g for g in found.groups() if g)


def _custom_object_fix(name: str) -> str:
    """How a user supplies ``name``: a module's public names, or a ``CUSTOM_OBJECTS`` dict for a
    stored name that is no Python identifier (a lambda saved as ``'<lambda>'``)."""
    if name.isidentifier() or all(part.isidentifier() for part in name.split(".")):
        return "Pass --custom-objects MODULE naming the module that defines it"
    package, sep, short = name.rpartition(">")
    if sep and package and short.isidentifier():  # register_keras_serializable(package=...), not a lambda
        return (f"'{name}' is the name class '{short}' was registered under (register_keras_serializable, "
                f"package '{package}'): pass --custom-objects MODULE naming the module that defines '{short}' "
                "(tfopt matches the registered name to it)")
    return (f"'{name}' is how Keras stored a Python lambda (an activation or loss written as `lambda x: ...`), "
            "so no function name can match it: write a module with "
            f"CUSTOM_OBJECTS = {{{name!r}: the_function}} (the function the lambda computed, e.g. from the "
            "training code) and pass --custom-objects MODULE")
