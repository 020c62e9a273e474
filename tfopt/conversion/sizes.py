"""Each artifact's gzip size, computed in a background thread while the next artifacts are built.

The manifest's ``gzip_bytes`` is gzip level 9 of every file of the artifact (:func:`tfopt._io.gzip_size`):
~3 CPU s for the 9 artifacts of MobileNetV2 (fp32 + fp16 + int8 x 3 targets), a third of a second
per 10 MB whatever the level. zlib's deflate releases the GIL, so on a machine with a second core
that time overlaps the converters' own work instead of adding to the run's wall time; the number is
the same (the same function on the same file, which nothing writes once it is built). An artifact
that then fails verification is removed; its size is dropped with it.

Once every artifact is built the main thread has nothing left but to wait: :meth:`BackgroundSizes.settle`
then measures, newest first, the artifacts the thread has not started, while the thread finishes the
older ones, so the last artifacts' sizes take both cores instead of one after the other (the same
function on the same files: the same numbers).
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from tfopt.report.build import artifact_sizes


class BackgroundSizes:
    """``measure(artifact, format, path)`` starts one artifact's sizes; ``settle(kept)`` writes
    ``bytes`` and ``gzip_bytes`` into the artifacts of ``kept`` (waiting for them). A context manager:
    leaving it waits for the thread (a failed run does not leave it reading files being removed)."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tfopt-gzip-size")
        self._pending: list[tuple[Any, str, str, Future[tuple[int, int]]]] = []

    def measure(self, artifact: Any, fmt: str, path: str) -> None:
        self._pending.append((artifact, fmt, path, self._pool.submit(artifact_sizes, fmt, path)))

    def settle(self, kept: list[Any]) -> None:
        """Sizes into every artifact of ``kept``; an artifact measured but not kept (it failed) is
        waited for and forgotten (its file may have been removed under the thread). What the thread
        has not started is measured here, newest first (module doc), while it finishes the rest; a
        failed one not started is not measured at all."""
        ids = {id(a) for a in kept}
        for artifact, fmt, path, future in reversed(self._pending):
            if future.cancel() and id(artifact) in ids:  # cancel() is False once the thread has started it
                artifact.bytes, artifact.gzip_bytes = artifact_sizes(fmt, path)
        for artifact, _, _, future in self._pending:
            if future.cancelled():
                continue
            if id(artifact) in ids:
                artifact.bytes, artifact.gzip_bytes = future.result()
            else:
                future.exception()
        self._pending.clear()

    def __enter__(self) -> BackgroundSizes:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
