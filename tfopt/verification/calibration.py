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

Every sample is checked against the model's inputs by :func:`tfopt.verification.input_data.check_arrays`
(the rules every data file keeps), NaN/Inf counted once, and split into batch-1 samples, which is
what the converters' calibrators consume, each input cut on its batch axis
(:func:`tfopt.verification.data_batches.sample_axes`: a time-major ``[time, batch, n]`` on axis 1). The result is read once per conversion and trusted after.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from tfopt.errors import OptionError
from tfopt.graph import TensorSpec
from tfopt.verification.data_batches import join_samples, rows_of, sample_axes
from tfopt.verification.input_data import check_arrays, npz_problem, read_npz
from tfopt.verification.nonfinite import check_finite

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
SUFFIXES = (".npz", ".npy", ".tfrecord", ".tfrecords", ".tfr")


def calibration_problem(source: str) -> str | None:
    """Why ``source`` is no calibration source, judged without reading its data (a file's head at
    most), or ``None``. A ``module:function`` is imported when the data is read: it may need TensorFlow."""
    if ":" in source and not os.path.exists(source):
        module, _, function = source.partition(":")
        return None if module and function else "expected 'package.module:function'"
    if not os.path.exists(source):
        return "no such file or directory"
    if os.path.isdir(source):
        return None
    if not source.endswith(SUFFIXES):
        return ("expected a .npz (keyed by input name), a .npy, a .tfrecord, a directory of images or "
                "package.module:function")
    if source.endswith(".npz"):
        return npz_problem(source)
    if source.endswith(".npy"):
        with open(source, "rb") as f:
            if f.read(6) != b"\x93NUMPY":
                return "not a .npy (numpy.save) file"
    return None


def load_calibration(source: str, inputs: Sequence[TensorSpec], *, samples: int = 100,
                     mean: Sequence[float] = (0.0,), scale: Sequence[float] = (1.0,),
                     allow_nonfinite: bool = False) -> list[dict[str, np.ndarray]]:
    """Read ``source`` and return up to ``samples`` batch-1 samples keyed by input name.

    ``samples`` (>= 1) and the source's form are :func:`tfopt.conversion.checks.check_options`' to
    refuse, before any work; here the data is read and checked against ``inputs``.

    Raises:
        OptionError: wrong names/shapes/dtypes, no samples, or NaN/Inf values (unless
            ``allow_nonfinite``; the message names the input and the count).
    """
    names = [s.name for s in inputs]
    if ":" in source and not os.path.exists(source):
        batches = _from_callable(source, names)
    elif os.path.isdir(source):
        batches = [_from_images(source, inputs, samples, mean, scale)]
    elif source.endswith((".tfrecord", ".tfrecords", ".tfr")):
        batches = [_from_tfrecord(source, inputs, samples)]
    elif source.endswith(".npz"):
        batches = [read_npz(source, "--calibration")]
    elif source.endswith(".npy"):
        if len(names) != 1:
            raise OptionError(f"--calibration {source}: a .npy holds one array, the model has inputs "
                              f"{names}; use a .npz keyed by input name")
        batches = [{names[0]: np.load(source, allow_pickle=False)}]
    else:
        raise OptionError(f"--calibration {source}: {calibration_problem(source)}")
    out: list[dict[str, np.ndarray]] = []
    for batch in batches:
        checked = check_arrays(batch, inputs, f"--calibration {source}", only_inputs=True)
        axes = sample_axes(checked, inputs)  # each input cut on its batch axis (time-major: axis 1)
        for i in range(rows_of(checked, axes)):
            out.append({k: np.take(v, [i], axis=axes[k]) if axes[k] is not None else v for k, v in checked.items()})
            if len(out) >= samples:
                break
        if len(out) >= samples:
            break
    if not out:
        raise OptionError(f"--calibration {source}: holds no samples")
    # Counted on the samples used: NaN in calibration makes quantization ranges and the report's
    # measurements meaningless, and a NaN-vs-NaN comparison must not pass for agreement.
    check_finite(join_samples(out, inputs), f"--calibration {source}",
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
