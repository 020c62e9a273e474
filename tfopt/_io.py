"""Atomic, checked output: write to a temporary sibling, then rename. Never a half-written file."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator

from tfopt.errors import OutputPathError


def check_writable(path: str) -> None:
    """Raise :class:`OutputPathError` unless ``path``'s parent directory exists and is writable."""
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise OutputPathError(f"{path}: parent directory {parent} does not exist; create it first")
    if not os.access(parent, os.W_OK):
        raise OutputPathError(f"{path}: directory {parent} is not writable; choose another -o location")
    if os.path.isdir(path) and not os.access(path, os.W_OK):
        raise OutputPathError(f"{path}: existing directory is not writable")


@contextlib.contextmanager
def atomic_path(path: str, *, directory: bool = False) -> Iterator[str]:
    """Yield a temporary path next to ``path``; on success it replaces ``path`` atomically."""
    check_writable(path)
    parent = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path.rstrip(os.sep)) or "out"
    try:
        tmp_dir = tempfile.mkdtemp(prefix=f".{base}.tmp-", dir=parent)
    except OSError as exc:  # read-only file system, or permissions that os.access granted root
        raise OutputPathError(f"{path}: cannot write in {parent} ({exc.strerror}); choose another -o location") from exc
    tmp = os.path.join(tmp_dir, base)
    try:
        yield tmp
        if directory and os.path.isdir(path):
            old = os.path.join(tmp_dir, base + ".old")
            os.replace(path, old)
        os.replace(tmp, path)
    except OSError as exc:
        raise OutputPathError(f"{path}: cannot write ({exc.strerror}); choose another -o location") from exc
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def tree_size(path: str) -> int:
    if os.path.isdir(path):
        return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)
    return os.path.getsize(path)


def gzip_size(path: str) -> int:
    """Bytes after gzip: what a download or an app bundle costs (sparse or clustered weights only
    shrink here - a flatbuffer stores zeros as zeros)."""
    import gzip

    files = sorted(os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs) if os.path.isdir(path) else [path]
    total = 0
    for name in files:
        with open(name, "rb") as f:
            total += len(gzip.compress(f.read(), mtime=0))
    return total


def digest(path: str) -> str:
    import hashlib

    h = hashlib.sha256()
    files = sorted(os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs) if os.path.isdir(path) else [path]
    for name in files:
        with open(name, "rb") as f:
            h.update(f.read())
    return h.hexdigest()
