"""Atomic, checked output: write to a temporary sibling, then rename. Never a half-written file."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator

from tfopt.errors import OutputPathError
from tfopt.terminal import signals


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
    """Yield a temporary path next to ``path``; on success it replaces ``path`` atomically.

    The temporary directory is ``.NAME.tmp-PID-XXXX`` beside ``path``: removed on any error or
    interrupt; a killed run's is removed by the next run writing ``path`` (:func:`remove_stale`).
    Interrupts (:mod:`tfopt.terminal.signals`) are checked once more before the rename, so a stopped run never
    replaces ``path``. A full disk, from Python or from TensorFlow's writers, is an
    :class:`OutputPathError`.
    """
    check_writable(path)
    parent = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path.rstrip(os.sep)) or "out"
    remove_stale(path)
    try:
        tmp_dir = tempfile.mkdtemp(prefix=f"{_tmp_prefix(base)}{os.getpid()}-", dir=parent)
    except OSError as exc:  # read-only file system, or permissions that os.access granted root
        raise OutputPathError(f"{path}: cannot write in {parent} ({exc.strerror}); choose another -o location") from exc
    signals.register_temp(tmp_dir)
    tmp = os.path.join(tmp_dir, base)
    try:
        yield tmp
        signals.checkpoint()
        with signals.critical():  # a hard stop waits: the previous output or the new one, never neither
            if directory and os.path.isdir(path):
                os.replace(path, os.path.join(tmp_dir, base + ".old"))
            os.replace(tmp, path)
    except OSError as exc:
        raise OutputPathError(f"{path}: cannot write ({exc.strerror}); choose another -o location") from exc
    except Exception as exc:
        if _disk_full(exc):
            raise OutputPathError(f"{path}: cannot write (no space left on the device); free some space or "
                                  "choose another -o location; nothing was written") from exc
        raise
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        signals.unregister_temp(tmp_dir)


def _tmp_prefix(base: str) -> str:
    return f".{base}.tmp-"


def _disk_full(exc: BaseException) -> bool:
    """ENOSPC however a writer reports it (TensorFlow: an OpError whose message holds strerror)."""
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "No space left on device" in str(exc) or "Disk quota exceeded" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return False


def remove_stale(path: str) -> list[str]:
    """Remove temporary directories that killed tfopt runs left beside ``path``; return them.

    Only tfopt's own ``.NAME.tmp-PID-*`` names, and only when process PID is gone. A run killed
    between its two renames left the previous output as ``NAME.old`` inside: it is put back first.
    """
    parent = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path.rstrip(os.sep)) or "out"
    prefix = _tmp_prefix(base)
    removed: list[str] = []
    try:
        names = os.listdir(parent)
    except OSError:
        return removed
    for name in names:
        pid = name[len(prefix):].split("-")[0] if name.startswith(prefix) else ""
        if not pid.isdigit() or int(pid) == os.getpid() or _alive(int(pid)):
            continue
        debris = os.path.join(parent, name)
        old = os.path.join(debris, base + ".old")
        if os.path.exists(old) and not os.path.lexists(path):
            os.replace(old, path)
        shutil.rmtree(debris, ignore_errors=True)
        removed.append(debris)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def tree_size(path: str) -> int:
    if os.path.isdir(path):
        return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)
    return os.path.getsize(path)


READ_CHUNK = 16 << 20  # how much of a file is in memory while it is hashed or compressed


def _files(path: str) -> list[str]:
    """``path``, or a directory's files in sorted order."""
    return sorted(os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs) if os.path.isdir(path) else [path]


def _chunks(name: str) -> Iterator[bytes]:
    """The file's bytes, :data:`READ_CHUNK` at a time: an artifact over 2 GB is never held whole."""
    with open(name, "rb") as f:
        yield from iter(lambda: f.read(READ_CHUNK), b"")


def gzip_size(path: str) -> int:
    """Bytes after gzip: what a download or an app bundle costs (sparse or clustered weights only
    shrink here - a flatbuffer stores zeros as zeros). Each file is compressed as a stream, which
    gives the same bytes as ``gzip.compress(data, mtime=0)`` (deflate only emits a block once it has
    the input that follows), so neither the file nor its compressed form is ever held whole.

    A file over :data:`GZIP_EXACT_LIMIT` (a model's weights over 1 GiB) is estimated instead
    (:func:`_estimated_deflate`): level-9 deflate runs at a few MB/s on weights, minutes per GB."""
    total = 0
    for name in _files(path):
        size = os.path.getsize(name)
        total += GZIP_FRAME + (_estimated_deflate(name, size) if size > GZIP_EXACT_LIMIT else _deflate_size(_chunks(name)))
    return total


GZIP_EXACT_LIMIT = 1 << 30  # bytes: a larger file's gzip size is estimated from samples
GZIP_SAMPLES, GZIP_WINDOW = 64, 1 << 20  # the estimate compresses 64 evenly spaced 1 MiB windows (64 MiB)


def _deflate_size(blocks: Iterable[bytes]) -> int:
    """Bytes of raw deflate at gzip's level 9 of ``blocks`` joined, compressed as one stream."""
    import zlib

    stream = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)  # gzip.compress's level and raw deflate
    return sum(len(stream.compress(block)) for block in blocks) + len(stream.flush())


def _estimated_deflate(name: str, size: int) -> int:
    """Level-9 deflate bytes of a large file, estimated: :data:`GZIP_SAMPLES` windows of
    :data:`GZIP_WINDOW` bytes at evenly spaced offsets (the first at 0, the last ending the file),
    compressed as one stream as the whole file is; the file's size times their compressed / raw
    ratio. For weights the ratio varies little along the file (a table is one distribution)."""
    offsets = sorted({round(i * (size - GZIP_WINDOW) / (GZIP_SAMPLES - 1)) for i in range(GZIP_SAMPLES)})
    with open(name, "rb") as f:
        def windows() -> Iterator[bytes]:
            for offset in offsets:
                f.seek(offset)
                yield f.read(GZIP_WINDOW)

        packed = _deflate_size(windows())
    return round(size * packed / (len(offsets) * GZIP_WINDOW))


GZIP_FRAME = 18  # gzip's 10-byte header (no file name) and 8-byte trailer (CRC-32, length) around the deflate data


def digest(path: str) -> str:
    """sha256 over the file's bytes (a directory: its files' bytes in sorted order), read a chunk at a time."""
    import hashlib

    h = hashlib.sha256()
    for name in _files(path):
        for block in _chunks(name):
            h.update(block)
    return h.hexdigest()
