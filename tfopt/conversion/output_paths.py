"""Where tfopt may write: one rule for every command and the API, checked before any model loads.

1. **Never the input.** An output (``-o``, ``--report-dir``, ``--junit``) may not be an input
   (model, calibration, eval or fine-tune data), lie inside one, or be a directory that contains
   one - paths compared after resolving symlinks. :class:`OptionError` (exit 2).
2. **Never someone else's directory.** Output directories are replaced as a whole, so an existing
   non-empty one must be tfopt's own: it holds the *marker* (below). Anything else is refused with
   :class:`OutputPathError` (exit 8) unless ``overwrite`` (``--overwrite``) is given. An empty
   directory is fine. An existing *file* where a directory goes is always refused.
3. **Single files are replaced.** ``freeze -o model.pb`` (``.pb``/``.pbtxt``) and ``--junit
   results.xml`` replace an existing file atomically: re-freezing over the last result is the normal
   edit-run loop, the names are ones the user picked for tfopt's output, and rule 1 already
   protects the input. A directory where a file goes is refused.

The marker (:func:`written_by_tfopt`):

- ``tfopt convert``'s OUTDIR: ``manifest.json`` whose ``tools`` names ``tfopt`` (it records the
  tool versions; the fleet script's outputs are the same directories);
- ``tfopt freeze -o DIR``'s SavedModel: ``assets.extra/tfopt.json`` (``assets.extra`` is the
  SavedModel directory's place for files that loaders and TF Serving ignore);
- ``verify --report-dir DIR``: writes only ``report.json``, ``report.md`` and ``report.html`` and
  leaves the rest of DIR alone; it refuses to replace them unless ``report.json`` is a tfopt report
  (it has ``artifacts`` and ``stage_seconds``) or DIR is a convert OUTDIR.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable

from tfopt._io import check_writable
from tfopt.errors import OptionError, OutputPathError

MANIFEST = "manifest.json"
SAVEDMODEL_MARKER = os.path.join("assets.extra", "tfopt.json")
REPORT_FILES = ("report.json", "report.md", "report.html")
KINDS = ("dir", "file", "report-dir")


def written_by_tfopt(path: str) -> bool:
    """True when directory ``path`` holds tfopt's marker (see the module docstring)."""
    if os.path.isfile(os.path.join(path, SAVEDMODEL_MARKER)):
        return True
    manifest = _json(os.path.join(path, MANIFEST))
    return isinstance(manifest, dict) and isinstance(manifest.get("tools"), dict) and "tfopt" in manifest["tools"]


def check_output(path: str, *, inputs: Iterable[object] = (), kind: str = "dir", overwrite: bool = False,
                 option: str = "-o") -> None:
    """Raise unless tfopt may write ``path`` (rules in the module docstring); touches nothing.

    Args:
        path: the output: a directory replaced as a whole (``kind="dir"``), a single file
            (``"file"``), or a directory tfopt writes its report files into (``"report-dir"``).
        inputs: paths the run reads (``None`` and non-path entries are ignored).
        overwrite: replace an existing directory (or report files) tfopt did not write.
        option: the option named in messages (``-o``, ``--junit``, ``--report-dir``).

    Raises:
        OptionError: ``path`` is an input, inside one, or contains one.
        OutputPathError: the parent is missing or read-only, or ``path`` holds something tfopt
            would destroy (without ``overwrite``), or is a file where a directory goes (or back).
    """
    if kind not in KINDS:
        raise ValueError(f"kind {kind!r}: choose from {KINDS}")
    check_not_input(path, inputs, option=option)
    if kind == "report-dir" and not os.path.lexists(path):
        return  # created with its parents when the report is written
    check_writable(path)
    if not os.path.lexists(path):
        return
    if kind == "file":
        if os.path.isdir(path):
            raise OutputPathError(f"{option} {path}: is a directory; name a file (e.g. {path.rstrip(os.sep)}.pb)")
        return
    if not os.path.isdir(path):
        raise OutputPathError(f"{option} {path}: is an existing file and tfopt writes a directory there; "
                              "choose another path or remove the file")
    if overwrite:
        return
    if kind == "report-dir":
        clash = [f for f in REPORT_FILES if os.path.exists(os.path.join(path, f))]
        if clash and not (written_by_tfopt(path) or _is_report(os.path.join(path, "report.json"))):
            raise OutputPathError(f"{option} {path}: {clash[0]} exists and tfopt did not write it; pass --overwrite "
                                  "to replace the report files, or choose another directory")
        return
    entries = sorted(os.listdir(path))
    if entries and not written_by_tfopt(path):
        shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
        raise OutputPathError(f"{option} {path}: directory exists and holds files tfopt did not write ({shown}); "
                              f"it would be replaced as a whole: pass --overwrite to replace it, or choose another "
                              f"{option}")


def check_not_input(path: str, inputs: Iterable[object], *, option: str = "-o") -> None:
    """Rule 1 alone (``path`` need not exist): raise :class:`OptionError` when ``path`` is one of
    ``inputs``, lies inside one, or contains one (after resolving symlinks)."""
    out = os.path.realpath(path)
    for source in inputs:
        if not isinstance(source, (str, os.PathLike)) or (":" in os.fspath(source) and not os.path.lexists(source)):
            continue  # not a path: a loaded model without one, or calibration from module:function
        src = os.path.realpath(source)
        if out == src or _inside(out, src):
            raise OptionError(f"{option} {path}: would overwrite the input model {os.fspath(source)}"
                              f"{'' if out == src else ' (it is inside it)'}; choose an output path outside it")
        if _inside(src, out):
            raise OptionError(f"{option} {path}: would overwrite the input model {os.fspath(source)}: replacing "
                              f"{path} deletes the input inside it; choose an output path that does not contain it")


def check_convert_outputs(outdir: str, junit: str | None, sources: Iterable[object], *, overwrite: bool = False) -> None:
    """:func:`check_output` for ``convert``'s OUTDIR and ``--junit`` file; ``sources`` are paths or a
    loaded model (its provenance path)."""
    inputs = [model_path(s) for s in sources]
    check_output(outdir, inputs=inputs, overwrite=overwrite)
    if junit:
        check_output(junit, inputs=inputs, kind="file", option="--junit")


def model_path(model: object) -> str | None:
    """The path a model was loaded from (a path itself, or a loaded model's provenance)."""
    if isinstance(model, (str, os.PathLike)):
        return os.fspath(model)
    provenance = getattr(model, "provenance", None) or {}
    path = provenance.get("path")
    return path if isinstance(path, str) else None


def _inside(path: str, directory: str) -> bool:
    return path.startswith(directory.rstrip(os.sep) + os.sep)


def _is_report(path: str) -> bool:
    report = _json(path)
    return isinstance(report, dict) and "artifacts" in report and "stage_seconds" in report


def _json(path: str) -> object:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None
