"""The on-disk format of stored state (:mod:`tfopt.conversion.store`, the fleet's cache): JSON for
the structure, one ``.npz`` for the arrays, never pickle, so reading never runs code.

A value is written as a JSON document (``NAME.json``: ``{"format": FORMAT, "version": VERSION,
"value": ...}``) and, when it holds arrays, ``NAME.npz`` beside it. JSON's own types stand for
themselves (a dict with only ``str`` keys, none starting with ``$``, is a JSON object); the rest
are tagged objects with one ``$`` key:

- ``{"$tuple": [...]}``, ``{"$set": [...]}``, ``{"$dict": [[key, value], ...]}`` (other keys, in order),
- ``{"$float": "nan" | "inf" | "-inf"}`` (JSON has none), ``{"$bytes": BASE64}``,
- ``{"$array": "a3"}`` and ``{"$scalar": "a4"}``: member ``a3`` of the ``.npz`` (a NumPy scalar is
  a 0-d array, read back as ``array[()]``, so its dtype survives), ``{"$dtype": "float32"}``,
- ``{"$object": "tfopt.verification.verify_inputs:VerifyInputs", "state": {attribute: value}}``: an instance of one
  of the classes in :data:`CLASSES` (the only ones ever built), its attributes set without
  calling ``__init__`` (as unpickling does, but from a closed list); a dataclass field the state lacks
  (a cache entry written before the field was added, under the same version) gets its default factory's value.

Reading checks everything: the format and version, every tag, every class name against
:data:`CLASSES`, every array reference; the ``.npz`` is opened with ``allow_pickle=False`` (an
object array is refused). Anything else raises :class:`tfopt.errors.StoreFormatError`. Writing a
value of any other type raises it too (naming where in the value it is), so nothing is written
that could not be read back equal.
"""

from __future__ import annotations

import base64
import dataclasses
import importlib
import json
import math
import os
import zipfile
from typing import Any

import numpy as np

from tfopt.errors import StoreFormatError

FORMAT = "tfopt-store"
VERSION = 1

# The classes a stored value may hold ("module:qualified name"). Adding one is safe only when
# setting its attributes runs no code of the file's choosing (plain records: no __setattr__ hooks).
CLASSES = (
    "tfopt.freezing:FreezeReport",
    "tfopt.graph:TensorSpec",
    "tfopt.passes.optimizing:OptimizeReport",
    "tfopt.passes.base:PassStats",
    "tfopt.passes.base:Skip",
    "tfopt.verification.testing:OutputDiff",
    "tfopt.verification.verify_inputs:VerifyInputs",
    "tfopt.verification.shapes:DimTies",
    "tfopt.verification.derived_ties:DerivedTie",
    "tfopt.report.measure:RecordedReference",
)
_SCALARS = (type(None), bool, int, str)  # exactly these types: a subclass (a str Enum) is not JSON's


def save(value: Any, directory: str, name: str) -> list[str]:
    """Write ``value`` as ``directory/name.json`` (and ``name.npz`` when it holds arrays); the files written."""
    arrays: dict[str, np.ndarray] = {}
    document = {"format": FORMAT, "version": VERSION, "value": _encode(value, arrays, name)}
    path = os.path.join(directory, f"{name}.json")
    with open(path, "w") as f:
        json.dump(document, f, allow_nan=False)
    written = [path]
    if arrays:
        written.append(os.path.join(directory, f"{name}.npz"))
        savez: Any = np.savez  # its stub reads the members' dict as its own keyword arguments
        savez(written[-1], **arrays)
    return written


def load(directory: str, name: str) -> Any:
    """The value :func:`save` wrote. Raises StoreFormatError for a missing, malformed or foreign one."""
    path = os.path.join(directory, f"{name}.json")
    try:
        with open(path, "rb") as f:
            document = json.loads(f.read().decode("utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise StoreFormatError(f"{path}: not a stored tfopt value ({type(exc).__name__}: {exc}); "
                               "delete it (a cache entry is rebuilt)") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT or document.get("version") != VERSION:
        found = (document.get("format"), document.get("version")) if isinstance(document, dict) else type(document)
        raise StoreFormatError(f"{path}: format {found}, expected ({FORMAT!r}, {VERSION}); written by another "
                               "tfopt version or not by tfopt: delete it (a cache entry is rebuilt)")
    npz = os.path.join(directory, f"{name}.npz")
    reader = _Arrays(npz if os.path.exists(npz) else None, path)
    try:
        return _decode(document.get("value"), reader, name)
    except RecursionError:
        raise StoreFormatError(f"{path}: nested deeper than tfopt ever writes: delete it (a cache entry is "
                               "rebuilt)") from None
    finally:
        reader.close()


class _Arrays:
    """The ``.npz`` members, read on demand with ``allow_pickle=False``."""

    def __init__(self, path: str | None, json_path: str) -> None:
        self.path, self.json_path = path, json_path
        self._file: Any = None

    def get(self, member: Any, where: str) -> np.ndarray:
        if self.path is None or not isinstance(member, str):
            raise StoreFormatError(f"{self.json_path}: {where} names array {member!r}, but there is no such "
                                   "array: delete it (a cache entry is rebuilt)")
        try:
            if self._file is None:
                self._file = np.load(self.path, allow_pickle=False)
            return np.asarray(self._file[member])
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            raise StoreFormatError(f"{self.path}: array {member!r} ({where}) cannot be read safely "
                                   f"({type(exc).__name__}: {exc}): delete it (a cache entry is rebuilt)") from None

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def _encode(value: Any, arrays: dict[str, np.ndarray], where: str) -> Any:
    if type(value) is float:
        return value if math.isfinite(value) else {"$float": repr(value)}
    if type(value) in _SCALARS:
        return value
    if type(value) is list:
        return [_encode(v, arrays, f"{where}[{i}]") for i, v in enumerate(value)]
    if type(value) is tuple:
        return {"$tuple": [_encode(v, arrays, f"{where}[{i}]") for i, v in enumerate(value)]}
    if type(value) is set:
        return {"$set": [_encode(v, arrays, f"{where}{{}}") for v in sorted(value, key=repr)]}
    if type(value) is dict:
        if all(isinstance(k, str) and not k.startswith("$") for k in value):
            return {k: _encode(v, arrays, f"{where}[{k!r}]") for k, v in value.items()}
        return {"$dict": [[_encode(k, arrays, f"{where}.key"), _encode(v, arrays, f"{where}[{k!r}]")]
                          for k, v in value.items()]}
    if type(value) is bytes:
        return {"$bytes": base64.b64encode(value).decode("ascii")}
    if isinstance(value, (np.ndarray, np.generic)):
        if value.dtype.hasobject:
            raise StoreFormatError(f"{where}: an array of Python objects cannot be stored without pickle")
        member = f"a{len(arrays)}"
        arrays[member] = np.asarray(value)
        return {"$array" if isinstance(value, np.ndarray) else "$scalar": member}
    if isinstance(value, np.dtype):
        return {"$dtype": value.str}
    name = f"{type(value).__module__}:{type(value).__qualname__}"
    if name in CLASSES:
        return {"$object": name, "state": {k: _encode(v, arrays, f"{where}.{k}") for k, v in vars(value).items()}}
    raise StoreFormatError(f"{where}: a {name} cannot be stored (not JSON, an array, or one of "
                           f"tfopt.conversion.store_format.CLASSES)")


def _decode(value: Any, arrays: _Arrays, where: str) -> Any:
    if isinstance(value, (*_SCALARS, float)):
        return value
    if isinstance(value, list):
        return [_decode(v, arrays, f"{where}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, dict):
        raise _foreign(arrays, where, value)
    tags = [k for k in value if k.startswith("$")]
    if not tags:
        return {k: _decode(v, arrays, f"{where}[{k!r}]") for k, v in value.items()}
    tag, body = tags[0], value[tags[0]]
    if tag in ("$tuple", "$set", "$dict") and isinstance(body, list) and len(value) == 1:
        items = [_decode(v, arrays, f"{where}[{i}]") for i, v in enumerate(body)]
        if tag == "$tuple":
            return tuple(items)
        try:
            return set(items) if tag == "$set" else dict(items)
        except (TypeError, ValueError):
            raise _foreign(arrays, where, value) from None
    if tag == "$float" and body in ("nan", "inf", "-inf") and len(value) == 1:
        return float(body)
    if tag == "$bytes" and isinstance(body, str) and len(value) == 1:
        try:
            return base64.b64decode(body, validate=True)
        except ValueError:
            raise _foreign(arrays, where, value) from None
    if tag in ("$array", "$scalar") and len(value) == 1:
        array = arrays.get(body, where)
        return array if tag == "$array" else array[()]
    if tag == "$dtype" and isinstance(body, str) and len(value) == 1:
        try:
            return np.dtype(body)
        except TypeError:
            raise _foreign(arrays, where, value) from None
    if tag == "$object" and body in CLASSES and set(value) == {"$object", "state"} and isinstance(value["state"], dict):
        module, _, qualname = body.partition(":")
        cls = getattr(importlib.import_module(module), qualname)
        obj = object.__new__(cls)
        for k, v in value["state"].items():
            if not k.isidentifier() or k.startswith("__"):  # no __class__ / __dict__: attributes only
                raise _foreign(arrays, f"{where}.{k}", value)
            object.__setattr__(obj, k, _decode(v, arrays, f"{where}.{k}"))
        for f in dataclasses.fields(cls) if dataclasses.is_dataclass(cls) else ():
            if not hasattr(obj, f.name) and f.default_factory is not dataclasses.MISSING:
                object.__setattr__(obj, f.name, f.default_factory())  # written before the field existed
        return obj
    raise _foreign(arrays, where, value)


def _foreign(arrays: _Arrays, where: str, value: Any) -> StoreFormatError:
    shown = json.dumps(value)[:120] if not isinstance(value, (set, bytes)) else repr(value)[:120]
    return StoreFormatError(f"{arrays.json_path}: {where} holds {shown}, which tfopt never writes: "
                            "delete it (a cache entry is rebuilt)")
