"""The cache keys (see :mod:`tfopt.fleet.cache` for what each stage holds).

Each key is the sha256 of a JSON document (sorted keys) of what the stage's output depends on:

- ``optimize``: tfopt's version, the model's path and bytes (a directory: every file's relative
  name and bytes, in sorted order), the bytes of the calibration, eval and finetune data (a
  ``module:fn`` calibration: the spec and its module file's bytes), and the options the load,
  freeze, optimize and verification read: ``LoadOptions``, ``FreezeOptions``, ``OptimizeOptions``,
  ``CompressOptions``, the calibration's sample count, mean and scale, ``allow_nonfinite``, ``seed``.
  (The path is in the key because the graphs' provenance, and so ``manifest.json``'s ``source``, names it.)
- ``statistics``: the ``optimize`` key, ``QuantizeOptions`` but ``to`` and ``quantize`` (so a new
  ``--quantize`` precision reuses it), the targets the int8 engine builds for, and, for
  ``int8_recipe: auto`` (which measures candidates), the gates, metric and threads.
- ``emit``: the ``statistics`` key, the target and precision, ``QuantizeOptions`` but ``quantize``,
  and whether artifacts are verified.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from typing import Any

from tfopt.options import ConvertOptions


def tree_digest(path: str) -> str:
    """sha256 over a file's bytes, or over a directory's files (relative name, then bytes) in sorted order."""
    from tfopt.fleet.cache import file_sha256, tree_files

    if not os.path.isdir(path):
        return file_sha256(path)
    h = hashlib.sha256()
    for rel in tree_files(path):
        h.update(rel.encode() + b"\0" + file_sha256(os.path.join(path, rel)).encode())
    return h.hexdigest()


def data_digest(value: Any, base: str) -> Any:
    """What a data option contributes: its bytes' digest, a ``module:fn`` spec with its module's
    bytes (looked up next to the manifest), else the value itself."""
    if not isinstance(value, str):
        return value
    if os.path.exists(value):
        return tree_digest(value)
    module, sep, _ = value.partition(":")
    if sep:
        source = os.path.join(base, *module.split(".")) + ".py"
        return [value, tree_digest(source) if os.path.exists(source) else None]
    return value


def _json(value: Any) -> Any:
    return dataclasses.asdict(value) if dataclasses.is_dataclass(value) and not isinstance(value, type) else value


def digest_of(document: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(document, sort_keys=True, default=str).encode()).hexdigest()


def optimize_key(path: str, base: str, o: ConvertOptions) -> str:
    from tfopt._version import __version__

    q, r = o.quantize, o.report
    return digest_of({
        "stage": "optimize", "tfopt": __version__, "path": os.path.abspath(path),
        "model": tree_digest(path) if os.path.exists(path) else None,
        "data": {k: data_digest(v, base) for k, v in (("calibration", q.calibration), ("eval_data", r.eval_data),
                                                       ("finetune_data", o.compress.finetune_data))},
        "load": _json(o.load), "freeze": _json(o.freeze), "optimize": _json(o.optimize),
        "compress": {k: v for k, v in _json(o.compress).items() if k != "finetune_data"},
        "calibration": [q.calibration_samples, list(q.mean), list(q.scale)],
        "allow_nonfinite": r.allow_nonfinite, "seed": r.seed,
    })


def statistics_key(optimize: str, o: ConvertOptions, engine_targets: list[str]) -> str:
    q, r = o.quantize, o.report
    quantize = {k: v for k, v in _json(q).items() if k not in ("to", "quantize", "calibration")}
    searched = {"fail_if": list(r.fail_if), "metric": r.metric, "threads": r.threads} if q.int8_recipe == "auto" else None
    return digest_of({"stage": "statistics", "optimize": optimize, "quantize": quantize,
                      "engine_targets": engine_targets, "searched": searched})


def emit_key(statistics: str, o: ConvertOptions, target: str, precision: str) -> str:
    q = o.quantize
    quantize = {k: v for k, v in _json(q).items() if k not in ("quantize", "calibration")}
    return digest_of({"stage": "emit", "statistics": statistics, "target": target, "precision": precision,
                      "quantize": quantize, "verify": o.freeze.verify})
