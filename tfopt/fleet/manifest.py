"""A fleet manifest (YAML): ``defaults`` merged under each of ``models``, paths made absolute.

    defaults:                      # options for every model: tfopt.convert keyword arguments,
      to: [tflite, onnx]           # or the CLI's option names (eval-data, fail-if, ...)
      quantize: [none, int8]
    models:
      - name: digits               # output goes to OUTROOT/digits
        path: models/digits.keras  # relative to the manifest's directory
        calibration: data/calib.npz
      - name: custom
        path: models/custom.keras
        custom_objects: my_layers  # a module next to the manifest, not a path

Paths are relative to the manifest's directory, which is also where the modules named by
``custom_objects``, ``model_fn``, ``metric`` or a ``module:fn`` calibration are imported from (as
the CLI imports them from the working directory). Every entry is validated through
:meth:`tfopt.options.ConvertOptions.from_kwargs`, the object ``tfopt convert`` builds: a key that is
no option is an :class:`~tfopt.errors.OptionError` naming the closest valid key.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any

from tfopt.errors import OptionError, did_you_mean

PATH_OPTIONS = ("path", "calibration", "eval_data", "finetune_data", "junit")
DATA_OPTIONS = ("calibration", "eval_data", "finetune_data")  # input files besides the model
LIST_OPTIONS = ("to", "quantize", "keep_float", "fail_if")


@dataclass
class FleetModel:
    """One manifest entry: ``options`` are ``tfopt.convert`` keywords (``path`` included, absolute)."""

    name: str
    options: dict[str, Any]
    base: str  # the manifest's directory: the tasks run there

    @property
    def path(self) -> str:
        return str(self.options["path"])

    def convert_kwargs(self) -> dict[str, Any]:
        """The keywords of :func:`tfopt.convert` (all but ``path``)."""
        return {k: v for k, v in self.options.items() if k != "path"}


def option_names() -> frozenset[str]:
    """The keys an entry may hold: ``name``, ``path`` and the flat names of
    :class:`tfopt.options.ConvertOptions` but ``overwrite`` (the fleet's flag) and ``compress``
    (what ``cluster``/``prune`` build)."""
    from tfopt.options import flat_names

    return frozenset({"name", "path", *flat_names()} - {"overwrite", "compress"})


def load_manifest(path: str) -> list[FleetModel]:
    """The models of the manifest at ``path``, options merged over ``defaults``.

    Raises:
        OptionError: naming the manifest and the entry: an unknown key (and the closest valid
            one), an invalid value, a missing ``name``/``path``, a name given twice, no models.
    """
    import yaml

    try:
        with open(path) as f:
            manifest = yaml.safe_load(f) or {}
    except OSError as exc:
        raise OptionError(f"fleet manifest {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise OptionError(f"fleet manifest {path}: not YAML: {exc}") from None
    if not isinstance(manifest, dict):
        raise OptionError(f"fleet manifest {path}: expected a mapping with 'defaults' and 'models'")
    base = os.path.dirname(os.path.abspath(path))
    defaults = checked(normalise(manifest.get("defaults") or {}), f"{path}: defaults")
    models: list[FleetModel] = []
    for index, entry in enumerate(manifest.get("models") or []):
        options = {**defaults, **checked(normalise(entry), f"{path}: models[{index}]")}
        name = options.pop("name", None)
        if not name or "path" not in options:
            raise OptionError(f"{path}: models[{index}] needs 'name' and 'path'")
        if any(m.name == name for m in models):
            raise OptionError(f"{path}: model name '{name}' appears twice")
        for key in PATH_OPTIONS:
            if isinstance(options.get(key), str) and ":" not in options[key]:  # module:fn stays as it is
                options[key] = os.path.normpath(os.path.join(base, options[key]))
        models.append(FleetModel(str(name), options, base))
    if not models:
        raise OptionError(f"{path}: no models")
    return models


def checked(options: dict[str, Any], where: str) -> dict[str, Any]:
    """``options``, or OptionError naming the first key that is no option (and the closest that is)."""
    from tfopt.options import ConvertOptions

    valid = option_names()
    for key in options:
        if key == "overwrite":
            raise OptionError(f"{where}: 'overwrite' is the fleet's --overwrite flag, not a manifest option")
        if key not in valid:
            raise OptionError(f"{where}: unknown option '{key}'.{did_you_mean(key, valid)}")
    try:  # the same objects tfopt convert builds: two names for one option are refused here too
        ConvertOptions.from_kwargs(**{k: v for k, v in options.items() if k not in ("name", "path")})
    except OptionError as exc:
        raise OptionError(f"{where}: {exc}") from None
    return options


def normalise(options: dict[str, Any]) -> dict[str, Any]:
    """CLI spellings (``eval-data``) to keywords; comma-separated strings to lists."""
    if not isinstance(options, dict):
        raise OptionError(f"a manifest entry must be a mapping, not {type(options).__name__}")
    out = {str(key).replace("-", "_"): value for key, value in options.items()}
    for key in LIST_OPTIONS:
        if isinstance(out.get(key), str):
            out[key] = [v for v in out[key].split(",") if v] if key != "fail_if" else [out[key]]
    return out


def fingerprint(options: dict[str, Any]) -> str:
    """The per-model stamp: options plus the bytes of every input file they name (a directory:
    every file in it). A model whose stamp matches its output's is up to date."""
    from tfopt._io import digest

    h = hashlib.sha256(json.dumps(options, sort_keys=True, default=str).encode())
    for key in ("path", "calibration", "eval_data"):
        value = options.get(key)
        if isinstance(value, str) and os.path.exists(value):
            h.update(digest(value).encode())
    return h.hexdigest()
