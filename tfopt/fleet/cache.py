"""A content-addressed cache of the fleet's intermediate results, shared between tasks and runs.

Layout (``DIR`` is ``--cache``, default ``OUTROOT/.tfopt-cache``; shared storage on a cluster)::

    DIR/v2/<stage>/<key[:2]>/<key>/entry.json     {"stage", "key", "files": {relative path: sha256}, "meta"}
    DIR/v2/<stage>/<key[:2]>/<key>/<the stage's files>
    DIR/v2/<stage>/<key[:2]>/.tmp-<key>-<pid>-<random>/   an entry being written

(``v1`` held pickles; its entries are never read.)

Stages and what their key hashes (sha256, see :mod:`tfopt.fleet.keys`):

- ``optimize``: the loaded, frozen and optimized graphs (portable and runtime), the freeze and
  optimize reports, the inputs verified on. Key: the model's bytes (a directory: every file, with
  its relative name, in sorted order), the data's bytes (calibration, eval, finetune), the load,
  freeze, optimize and compress options, the calibration options verification reads, tfopt's version.
- ``statistics``: the calibration samples and tfopt's int8 engine's fake-quant graph per target.
  Key: the ``optimize`` key, the quantize options but the list of targets and precisions (adding
  ``fp16`` reuses it), the targets the engine builds for.
- ``emit``: one artifact (its files, and its record ``emit.json``: size, digest, verification
  errors). Key: the ``statistics`` key, the target and precision, the options the emitter reads.
- ``serving``: the serving SavedModel of a model with tensors outside its graph, which the TFLite and
  OpenVINO converters read (:mod:`tfopt.fleet.serving`). Key: the ``optimize`` key, the graph's.
- ``recording``: for a model with tensors outside its graph, the original's outputs on the
  verification inputs and the report's part, recorded once by the prepare task, so no emit or
  finish task loads the original (:mod:`tfopt.fleet.recording`). Key: the ``statistics`` key, the
  report's seed, runs and ``allow_nonfinite``.
- ``emit-failed``: the record of an emit that failed (same key): read by the same run's ``finish``
  only, never served as an artifact; the next run re-tries it (:mod:`tfopt.fleet.tasks`).

Every file in an entry is data: JSON, ``.npz`` read with ``allow_pickle=False``, serialized
protobuf (``GraphDef``), or an artifact (``.tflite``, ``.onnx``, OpenVINO's ``.xml``/``.bin``),
copied out as bytes. Nothing read from a cache directory is unpickled or executed
(:mod:`tfopt.conversion.store_format`), so a cache shared across a cluster is as safe as the files in it:
an entry that passes the hash check but is not tfopt's format is removed and rebuilt. (Ray
pickles each task's spec and outcome, JSON-able dicts, between its own processes: that is Ray's
transport, not this cache.)

Writes are atomic: an entry is written into a temporary directory beside its place, and renamed
into place (a concurrent writer of the same key loses the race harmlessly: the entries are equal).
Reads check every file's sha256 against ``entry.json``; an entry that does not match (a truncated
or edited file, a missing one, an unreadable ``entry.json``) is removed and reported as a miss, so
it is rebuilt, never used.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
from collections.abc import Iterator
from typing import Any

VERSION = "v2"  # v1 entries held pickles: never read
ENTRY = "entry.json"


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def tree_files(root: str) -> list[str]:
    """Every file under ``root``, relative, sorted (``/``-separated)."""
    out = []
    for d, dirs, files in os.walk(root):
        dirs.sort()
        for f in files:
            out.append(os.path.relpath(os.path.join(d, f), root).replace(os.sep, "/"))
    return sorted(out)


class Cache:
    """The cache at ``root`` (created on first write)."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self.corrupt: list[str] = []  # entries found corrupt and removed by this process

    def entry_dir(self, stage: str, key: str) -> str:
        return os.path.join(self.root, VERSION, stage, key[:2], key)

    def get(self, stage: str, key: str) -> str | None:
        """The entry's directory when it is there and every file matches its hash, else None
        (a corrupt entry is removed first)."""
        path = self.entry_dir(stage, key)
        if not os.path.isdir(path):
            return None
        try:
            with open(os.path.join(path, ENTRY)) as f:
                entry = json.load(f)
            files: dict[str, str] = entry["files"]
            ok = entry.get("key") == key and set(files) == set(tree_files(path)) - {ENTRY} and all(
                file_sha256(os.path.join(path, rel)) == sha for rel, sha in files.items())
        except (OSError, ValueError, KeyError, TypeError):
            ok = False
        if ok:
            return path
        self.corrupt.append(f"{stage}/{key}")
        self.remove(stage, key)
        return None

    def meta(self, stage: str, key: str) -> dict[str, Any]:
        with open(os.path.join(self.entry_dir(stage, key), ENTRY)) as f:
            meta: dict[str, Any] = json.load(f).get("meta") or {}
        return meta

    def remove(self, stage: str, key: str) -> None:
        path = self.entry_dir(stage, key)
        trash = f"{path}.rm-{os.getpid()}-{secrets.token_hex(4)}"
        with contextlib.suppress(OSError):
            os.rename(path, trash)  # out of the way at once, then deleted
            shutil.rmtree(trash, ignore_errors=True)

    @contextlib.contextmanager
    def put(self, stage: str, key: str, meta: dict[str, Any] | None = None) -> Iterator[str]:
        """Write an entry: the caller fills the yielded directory; on success its ``entry.json`` is
        written and it is renamed into place. On an exception nothing is left behind."""
        final = self.entry_dir(stage, key)
        parent = os.path.dirname(final)
        os.makedirs(parent, exist_ok=True)
        tmp = os.path.join(parent, f".tmp-{key}-{os.getpid()}-{secrets.token_hex(4)}")
        os.makedirs(tmp)
        try:
            yield tmp
            files = {rel: file_sha256(os.path.join(tmp, rel)) for rel in tree_files(tmp)}
            with open(os.path.join(tmp, ENTRY), "w") as f:
                json.dump({"stage": stage, "key": key, "files": files, "meta": meta or {}}, f, indent=1,
                          sort_keys=True)
            if os.path.isdir(final):  # a corrupt one (get removes those) or an equal one written meanwhile
                self.remove(stage, key)
            try:
                os.rename(tmp, final)
            except OSError:  # another writer won the race: its entry is equal
                if not os.path.isdir(final):
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
