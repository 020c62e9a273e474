"""Calibration data: one source feeding TFLite, ONNX Runtime and OpenVINO/NNCF alike.

Sources:

* ``data.npz`` - arrays keyed by input name, first axis = samples;
* ``data.npy`` - one array, for a single-input model;
* ``package.module:fn`` - a callable returning an iterable of ``{input name: array}`` (or arrays,
  for a single-input model), one sample or batch each;
* a directory of images (png/jpg/bmp/gif), for a single image input: decoded, resized to the
  input's static height x width, then ``(x - mean) / scale`` (per channel or scalar);
* ``data.tfrecord`` - tf.train.Examples whose features are the model's inputs, parsed with the
  model's own input specs as the feature spec (``FixedLenFeature(shape[1:], dtype)`` per input).

Every sample is checked against the model's inputs (names, rank, static dimensions, dtype) and
split into batch-1 samples, which is what the converters' calibrators consume.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from tfopt._checks import at_least
from tfopt.errors import OptionError, did_you_mean
from tfopt.graph import Model, TensorSpec
from tfopt.verification.nonfinite import check_finite

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


def load_calibration(source: str, inputs: Sequence[TensorSpec], *, samples: int = 100,
                     mean: Sequence[float] = (0.0,), scale: Sequence[float] = (1.0,),
                     allow_nonfinite: bool = False) -> list[dict[str, np.ndarray]]:
    """Read ``source`` and return up to ``samples`` batch-1 samples keyed by input name.

    Raises:
        OptionError: missing file, unknown format, wrong names/shapes/dtypes, no samples, or NaN/Inf
            values (unless ``allow_nonfinite``; the message names the input and the count).
    """
    at_least("--calibration-samples", samples, 1, integer=True)
    names = [s.name for s in inputs]
    if ":" in source and not os.path.exists(source):
        batches = _from_callable(source, names)
    elif not os.path.exists(source):
        raise OptionError(f"--calibration {source}: no such file")
    elif os.path.isdir(source):
        batches = [_from_images(source, inputs, samples, mean, scale)]
    elif source.endswith((".tfrecord", ".tfrecords", ".tfr")):
        batches = [_from_tfrecord(source, inputs, samples)]
    elif source.endswith(".npz"):
        with np.load(source, allow_pickle=False) as data:
            batches = [{k: data[k] for k in data.files}]
    elif source.endswith(".npy"):
        if len(names) != 1:
            raise OptionError(f"--calibration {source}: a .npy holds one array, the model has inputs "
                              f"{names}; use a .npz keyed by input name")
        batches = [{names[0]: np.load(source, allow_pickle=False)}]
    else:
        raise OptionError(f"--calibration {source}: expected a .npz (keyed by input name), a .npy, a .tfrecord, "
                          "a directory of images or package.module:function")
    out: list[dict[str, np.ndarray]] = []
    for batch in batches:
        checked = _check(batch, inputs, source)
        n = len(next(iter(checked.values())))
        for i in range(n):
            out.append({k: v[i:i + 1] for k, v in checked.items()})
            if len(out) >= samples:
                break
        if len(out) >= samples:
            break
    if not out:
        raise OptionError(f"--calibration {source}: holds no samples")
    # Counted on the samples used: NaN in calibration makes quantization ranges and the report's
    # measurements meaningless, and a NaN-vs-NaN comparison must not pass for agreement.
    check_finite({s.name: np.concatenate([x[s.name] for x in out]) for s in inputs}, f"--calibration {source}",
                 allow=allow_nonfinite)
    return out


def _from_images(directory: str, inputs: Sequence[TensorSpec], samples: int,
                 mean: Sequence[float], scale: Sequence[float]) -> dict[str, np.ndarray]:
    from tfopt._tf import tf

    if len(inputs) != 1 or inputs[0].shape is None or len(inputs[0].shape) != 4 or None in inputs[0].shape[1:]:
        raise OptionError(f"--calibration {directory}: an image directory needs one input of static shape "
                          f"?xHxWxC; the model has {', '.join(s.describe() for s in inputs)}")
    spec = inputs[0]
    _, height, width, channels = spec.shape or (None, None, None, None)
    files = sorted(f for f in os.listdir(directory) if f.lower().endswith(IMAGE_SUFFIXES))[:samples]
    if not files:
        raise OptionError(f"--calibration {directory}: no {'/'.join(IMAGE_SUFFIXES)} files in the directory")
    t = tf()
    images = []
    for name in files:
        try:
            image = t.io.decode_image(t.io.read_file(os.path.join(directory, name)), channels=channels,
                                      expand_animations=False)
        except Exception as exc:
            raise OptionError(f"--calibration {os.path.join(directory, name)}: not a readable image ({exc})") from exc
        images.append(t.image.resize(t.cast(image, t.float32), (height, width)).numpy())
    stacked = (np.stack(images) - np.asarray(mean, np.float32)) / np.asarray(scale, np.float32)
    return {spec.name: stacked.astype(spec.dtype)}


def _from_tfrecord(path: str, inputs: Sequence[TensorSpec], samples: int) -> dict[str, np.ndarray]:
    from tfopt._tf import tf

    t = tf()
    features = {}
    for spec in inputs:
        if spec.shape is None or None in spec.shape[1:]:
            raise OptionError(f"--calibration {path}: input '{spec.name}' needs a static shape to parse TFRecords; "
                              "fix it with --inputs NAME:SHAPE")
        dtype = t.float32 if spec.dtype.startswith("float") else t.int64 if spec.dtype.startswith("int") else t.string
        features[spec.name] = t.io.FixedLenFeature(spec.shape[1:], dtype)
    rows: dict[str, list[np.ndarray]] = {s.name: [] for s in inputs}
    try:
        for record in t.data.TFRecordDataset(path).take(samples):
            parsed = t.io.parse_single_example(record, features)
            for name, value in parsed.items():
                rows[name].append(value.numpy())
    except Exception as exc:
        raise OptionError(f"--calibration {path}: cannot parse records with features "
                          f"{', '.join(s.describe() for s in inputs)} ({str(exc).splitlines()[0][:200]})") from exc
    return {s.name: np.stack(rows[s.name]).astype(s.dtype) if rows[s.name] else np.zeros((0,)) for s in inputs}


def _from_callable(spec: str, names: list[str]) -> Iterable[dict[str, Any]]:
    from tfopt._user_code import import_function

    for item in import_function(spec, "--calibration")():
        yield item if isinstance(item, dict) else {names[0]: item}


def _check(batch: dict[str, Any], inputs: Sequence[TensorSpec], source: str) -> dict[str, np.ndarray]:
    names = [s.name for s in inputs]
    for key in batch:
        if key not in names:
            raise OptionError(f"--calibration {source}: '{key}' is not a model input.{did_you_mean(key, names)} "
                              f"Inputs: {', '.join(names)}")
    out = {}
    counts = set()
    for spec in inputs:
        if spec.name not in batch:
            raise OptionError(f"--calibration {source}: no data for input '{spec.name}'")
        value = np.asarray(batch[spec.name])
        want = np.dtype(spec.dtype) if spec.dtype != "string" else np.dtype(object)
        if value.dtype != want:
            same_kind = (np.issubdtype(value.dtype, np.floating) and np.issubdtype(want, np.floating)) or \
                (np.issubdtype(value.dtype, np.integer) and np.issubdtype(want, np.integer))
            if not same_kind:
                raise OptionError(f"--calibration {source}: input '{spec.name}' is {spec.dtype}, the data is {value.dtype}")
            value = value.astype(want)
        if spec.shape is not None:
            if value.ndim != len(spec.shape):
                raise OptionError(f"--calibration {source}: input '{spec.name}' has rank {len(spec.shape)} "
                                  f"{_dims(spec.shape)}, the data has shape {value.shape}")
            for i, (want_dim, got) in enumerate(zip(spec.shape, value.shape)):
                if i > 0 and want_dim is not None and want_dim != got:
                    raise OptionError(f"--calibration {source}: input '{spec.name}' expects {_dims(spec.shape)}, "
                                      f"the data has shape {value.shape}")
        if value.shape[:1] == (0,):
            raise OptionError(f"--calibration {source}: input '{spec.name}' has no samples")
        counts.add(value.shape[0])
        out[spec.name] = value
    if len(counts) > 1:
        raise OptionError(f"--calibration {source}: inputs have different sample counts {sorted(counts)}")
    return out


def _dims(shape: Sequence[int | None]) -> str:
    return "x".join("?" if d is None else str(d) for d in shape)


def npz_arrays(path: str, specs: Sequence[TensorSpec], *, option: str = "--eval-data", rows: int | None = None,
               labels: bool = False) -> dict[str, np.ndarray]:
    """The one reader of "an ``.npz`` of inputs by name": each spec's array (its first ``rows``
    rows, in the spec's dtype), plus ``labels`` as stored when asked. ``option`` names the flag in
    the OptionError a missing file or array raises (the arrays the file does hold are listed)."""
    what = "inputs (by name) and 'labels'" if labels else "inputs (by name)"
    if not path.endswith(".npz") or not os.path.isfile(path):
        raise OptionError(f"{option} {path}: expected an existing .npz of the model's {what}")
    with np.load(path, allow_pickle=False) as data:
        missing = [s.name for s in specs if s.name not in data.files] + (
            ["labels"] if labels and "labels" not in data.files else [])
        if missing:
            raise OptionError(f"{option} {path}: missing {', '.join(missing)} (it holds "
                              f"{', '.join(data.files) or 'nothing'})")
        out = {s.name: data[s.name][:rows].astype(s.dtype) for s in specs}
        if labels:
            out["labels"] = data["labels"][:rows]
    return out


def eval_arrays(path: str, model: Model, *, allow_nonfinite: bool = False) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The inputs (by name) and ``labels`` of an ``.npz``; NaN/Inf refused unless ``allow_nonfinite``."""
    arrays = npz_arrays(path, model.inputs, labels=True)
    check_finite(arrays, f"--eval-data {path}", allow=allow_nonfinite)
    found = arrays.pop("labels")
    return arrays, found
