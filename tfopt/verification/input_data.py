"""The user's data files, read from disk once and checked once against the model's inputs.

An ``.npz`` of inputs by name (``--eval-data``, ``--finetune-data``, ``--calibration``, ``tfopt
debug reduce --data``) is read by :func:`read_npz` alone. Its arrays are then checked by
:func:`check_arrays`, the one set of rules every data source keeps (the messages name the option,
the file and the input):

* every model input has an array (other arrays in the file, ``labels`` among them, are not inputs);
* dtypes of the same kind are cast to the input's (float64 -> float32); another kind is refused;
* the rank and every static dimension after the first (the sample axis) match the input's;
* every input (and ``labels``) holds the same number of samples, at least one: on axis 0, or on
  each input's batch axis when the inputs disagree there
  (:func:`tfopt.verification.data_batches.sample_axes`: a time-major ``[time, batch, n]``).

:class:`LabeledData` is the result for a file of inputs plus ``labels``, with its NaN/Inf counted
(refused unless allowed). Stages that use it take the object and never check again.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tfopt.errors import OptionError, did_you_mean
from tfopt.graph import TensorSpec
from tfopt.verification.nonfinite import check_finite


def npz_problem(path: str) -> str | None:
    """Why ``path`` is no ``.npz`` file numpy can read, or ``None`` (the file's head is read, not its arrays)."""
    if not os.path.isfile(path):
        return "no such file"
    if not zipfile.is_zipfile(path):
        return "not a .npz (numpy.savez) file"
    return None


def read_npz(path: str, option: str) -> dict[str, np.ndarray]:
    """Every array of the ``.npz`` at ``path`` (the only ``numpy.load`` of a user's ``.npz``). Its
    form is judged before any work by :func:`npz_problem` (``check_options``), not again here: a file
    numpy cannot read as an archive is refused with the same words.

    Raises:
        OptionError: no such file, or not a ``.npz`` (``option`` names the flag).
    """
    try:
        data = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise OptionError(f"{option} {path}: no such file") from None
    except (OSError, ValueError, zipfile.BadZipFile):
        data = None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise OptionError(f"{option} {path}: not a .npz (numpy.savez) file")
    with data:
        return {k: _array(data, k, option, path) for k in data.files}


def _array(data: Any, key: str, option: str, path: str) -> np.ndarray:
    """``data[key]``; an object array (strings saved from a list of Python objects) needs pickle, never run."""
    try:
        return data[key]
    except ValueError as exc:
        raise OptionError(f"{option} {path}: array '{key}' is a numpy object array, which loads only through pickle "
                          "(not done); save strings as fixed-width bytes: np.array(words, dtype='S')") from exc


def check_arrays(arrays: Mapping[str, Any], specs: Sequence[TensorSpec], where: str, *,
                 only_inputs: bool = False, labels: bool = False) -> dict[str, np.ndarray]:
    """``{input name: array}`` checked against ``specs`` (see the module docstring), each in its
    input's dtype; ``labels`` kept as stored when asked (its rows counted with the inputs').

    Args:
        where: the option and source, for messages (``"--eval-data data.npz"``).
        only_inputs: refuse arrays that are no model input (a calibration source holds inputs only).

    Raises:
        OptionError: a missing or unknown array, another dtype kind, a shape the input cannot take,
            no samples, or different sample counts.
    """
    names = [s.name for s in specs]
    if only_inputs:
        for key in arrays:
            if key not in names:
                raise OptionError(f"{where}: '{key}' is not a model input.{did_you_mean(key, names)} "
                                  f"Inputs: {', '.join(names)}")
    missing = [n for n in names if n not in arrays] + (["labels"] if labels and "labels" not in arrays else [])
    if missing:
        raise OptionError(f"{where}: missing {', '.join(missing)} (it holds {', '.join(arrays) or 'nothing'})")
    out = {spec.name: _fit(np.asarray(arrays[spec.name]), spec, where) for spec in specs}
    if labels:
        out["labels"] = np.asarray(arrays["labels"])
    from tfopt.verification.data_batches import sample_axes

    axes = {**sample_axes(out, specs), "labels": 0}  # a time-major input holds its samples on axis 1
    counts = {v.shape[axes[k] or 0] if v.ndim else 0 for k, v in out.items()}
    if len(counts) > 1:
        raise OptionError(f"{where}: inputs have different sample counts {sorted(counts)}")
    return out


def _fit(value: np.ndarray, spec: TensorSpec, where: str) -> np.ndarray:
    want = np.dtype(spec.dtype) if spec.dtype != "string" else np.dtype(object)
    if value.dtype != want:
        same_kind = (np.issubdtype(value.dtype, np.floating) and np.issubdtype(want, np.floating)) or \
            (np.issubdtype(value.dtype, np.integer) and np.issubdtype(want, np.integer)) or \
            (value.dtype.kind == "S" and spec.dtype == "string")  # fixed-width bytes: strings without pickle
        if not same_kind:
            raise OptionError(f"{where}: input '{spec.name}' is {spec.dtype}, the data is {value.dtype}")
        value = value.astype(want)
    if spec.shape is not None:
        if value.ndim != len(spec.shape):
            raise OptionError(f"{where}: input '{spec.name}' has rank {len(spec.shape)} {dims(spec.shape)}, "
                              f"the data has shape {value.shape}")
        for i, (want_dim, got) in enumerate(zip(spec.shape, value.shape)):
            if i > 0 and want_dim is not None and want_dim != got:
                raise OptionError(f"{where}: input '{spec.name}' expects {dims(spec.shape)}, "
                                  f"the data has shape {value.shape}")
    if value.shape[:1] == (0,) or value.ndim == 0:
        raise OptionError(f"{where}: input '{spec.name}' has no samples")
    return value


def dims(shape: Sequence[int | None]) -> str:
    """``?x8x8x1``."""
    return "x".join("?" if d is None else str(d) for d in shape)


def verify_shapes(shapes: Mapping[str, Sequence[int]], specs: Sequence[TensorSpec]) -> dict[str, tuple[int, ...]]:
    """``--verify-shape`` shapes by input name, checked against ``specs`` (every dimension given, fitting).

    Raises:
        OptionError: an unknown input, a dimension left out, or a shape the input cannot take.
    """
    names = {s.name: s for s in specs}
    out: dict[str, tuple[int, ...]] = {}
    for name, shape in shapes.items():
        if name not in names:
            raise OptionError(f"--verify-shape {name}: not an input of the model.{did_you_mean(name, names)}")
        spec = names[name]
        if any(d is None or int(d) < 0 for d in shape):
            raise OptionError(f"--verify-shape {name}: give every dimension, e.g. {_example_shape(spec, 1)}")
        if spec.shape is not None and (len(shape) != len(spec.shape) or
                                       any(g is not None and g != d for g, d in zip(spec.shape, shape))):
            raise OptionError(f"--verify-shape {name}:{'x'.join(map(str, shape))} does not fit the input's shape "
                              f"{dims(spec.shape)}")
        out[name] = tuple(int(d) for d in shape)
    return out


def _example_shape(spec: TensorSpec, batch: int) -> str:
    shape = spec.shape or (batch,)
    return f"{spec.name}:" + "x".join(str(batch) if i == 0 and d is None else "N" if d is None else str(d)
                                      for i, d in enumerate(shape))

def npz_arrays(path: str, specs: Sequence[TensorSpec], *, option: str, rows: int | None = None) -> dict[str, np.ndarray]:
    """Each spec's array of an ``.npz`` of inputs by name (its first ``rows`` rows, on each input's
    batch axis), checked."""
    from tfopt.verification.data_batches import sample_axes, whole_batches

    checked = check_arrays(read_npz(path, option), specs, f"{option} {path}")
    return checked if rows is None else whole_batches(checked, 1, rows, sample_axes(checked, specs))[0]


@dataclass(frozen=True)
class LabeledData:
    """An ``.npz`` of inputs by name plus ``labels`` (``--eval-data``, ``--finetune-data``), read and
    checked once: ``inputs`` in the model's dtypes, ``nonfinite`` the NaN/Inf count per array (empty
    unless they were allowed)."""

    source: str
    option: str
    inputs: dict[str, np.ndarray]
    labels: np.ndarray
    nonfinite: dict[str, int] = field(default_factory=dict)
    axes: dict[str, int | None] = field(default_factory=dict)  # input -> its samples' axis (default 0: batch-major)

    @property
    def where(self) -> str:
        """``--eval-data data.npz``: how messages name it."""
        return f"{self.option} {self.source}"

    def rows(self, n: int) -> dict[str, np.ndarray]:
        """The inputs' first ``n`` rows (what every stage is verified on), on each input's batch axis."""
        from tfopt.verification.data_batches import whole_batches

        return whole_batches(self.inputs, 1, n, self.axes)[0]


def labeled(arrays: Mapping[str, Any], specs: Sequence[TensorSpec], *, source: str, option: str,
            nonfinite: Mapping[str, int]) -> LabeledData:
    """:class:`LabeledData` from arrays already read and counted (:func:`read_counted`), checked against ``specs``."""
    checked = check_arrays(arrays, specs, f"{option} {source}", labels=True)
    found = checked.pop("labels")
    from tfopt.verification.data_batches import sample_axes

    return LabeledData(source, option, checked, found, dict(nonfinite), sample_axes(checked, specs))


def read_counted(path: str, option: str, *, allow_nonfinite: bool = False) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """:func:`read_npz`, and the NaN/Inf count of every array (refused unless ``allow_nonfinite``):
    what can be judged before the model is loaded."""
    arrays = read_npz(path, option)
    return arrays, check_finite(arrays, f"{option} {path}", allow=allow_nonfinite)


def read_labeled(path: str, specs: Sequence[TensorSpec], *, option: str, allow_nonfinite: bool = False) -> LabeledData:
    """:func:`read_counted` and :func:`labeled`: the file's inputs and labels, read and checked once."""
    arrays, counts = read_counted(path, option, allow_nonfinite=allow_nonfinite)
    return labeled(arrays, specs, source=path, option=option, nonfinite=counts)
