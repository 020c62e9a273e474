"""``tfopt._io.gzip_size`` and ``digest`` read an artifact a chunk at a time: the same numbers as
compressing or hashing the whole file, and memory that does not grow with the file (a model over
2 GB is hashed and measured for the report without holding it, or its compressed form, whole)."""

from __future__ import annotations

import gzip
import hashlib
import subprocess
import sys

import numpy as np
import pytest

from tfopt._io import READ_CHUNK, digest, gzip_size

MB = 1 << 20


def _contents(kind: str, size: int) -> bytes:
    rng = np.random.default_rng(size)
    if kind == "zeros":
        return bytes(size)
    if kind == "floats":  # what a weight file mostly is: barely compressible
        return rng.standard_normal(size // 4).astype(np.float32).tobytes()
    return rng.integers(0, 4, size, dtype=np.uint8).tobytes()  # compressible, with matches across chunks


SMALL_CHUNK = 64 << 10  # the chunk boundaries are what is tested; level-9 gzip of 32 MB took a minute


@pytest.mark.parametrize("kind", ["zeros", "floats", "small-alphabet"])
@pytest.mark.parametrize("size", [0, 1, SMALL_CHUNK - 3, SMALL_CHUNK, 2 * SMALL_CHUNK + 5],
                         ids=["empty", "one-byte", "under-a-chunk", "one-chunk", "over-two-chunks"])
def test_same_numbers_as_the_whole_file(tmp_path, monkeypatch, kind, size):
    """Read SMALL_CHUNK at a time (the module's chunk size, set smaller here) across every boundary."""
    import tfopt._io

    monkeypatch.setattr(tfopt._io, "READ_CHUNK", SMALL_CHUNK)
    data = _contents(kind, size)
    path = tmp_path / "a.bin"
    path.write_bytes(data)
    assert gzip_size(str(path)) == len(gzip.compress(data, mtime=0))
    assert digest(str(path)) == hashlib.sha256(data).hexdigest()


def test_the_real_chunk_size_over_two_chunks(tmp_path):
    data = _contents("zeros", 2 * READ_CHUNK + 5)
    path = tmp_path / "a.bin"
    path.write_bytes(data)
    assert gzip_size(str(path)) == len(gzip.compress(data, mtime=0))
    assert digest(str(path)) == hashlib.sha256(data).hexdigest()


def test_directory_is_its_files_in_order(tmp_path):
    parts = {"b/x.bin": _contents("small-alphabet", 3 * MB), "a.xml": b"<net/>", "c.bin": _contents("zeros", MB)}
    for rel, data in parts.items():
        (tmp_path / rel).parent.mkdir(exist_ok=True)
        (tmp_path / rel).write_bytes(data)
    ordered = [parts[k] for k in sorted(parts)]  # os.walk joined paths, sorted: a.xml, b/x.bin, c.bin
    assert digest(str(tmp_path)) == hashlib.sha256(b"".join(ordered)).hexdigest()
    assert gzip_size(str(tmp_path)) == sum(len(gzip.compress(d, mtime=0)) for d in ordered)


PEAK = """
import sys
from tfopt._io import digest, gzip_size
def status(key):
    return int(next(l for l in open("/proc/self/status") if l.startswith(key)).split()[1]) * 1024
open("/proc/self/clear_refs", "w").write("5")  # the peak (VmHWM) restarts from here
before = status("VmRSS")
getattr(sys.modules[__name__], sys.argv[2])(sys.argv[1])
print(status("VmHWM") - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the peak from /proc/self/status")
@pytest.mark.parametrize("function", ["gzip_size", "digest"])
@pytest.mark.parametrize("size_mb", [96, 192])
def test_memory_does_not_grow_with_the_file(tmp_path, function, size_mb):
    path = tmp_path / "big.bin"
    with open(path, "wb") as f:  # zeros: quick to compress, and what matters here is only the size
        for _ in range(size_mb):
            f.write(bytes(MB))
    grown = int(subprocess.run([sys.executable, "-c", PEAK, str(path), function], check=True, capture_output=True,
                               text=True).stdout.split()[-1])
    assert grown < 3 * READ_CHUNK, f"{function} of a {size_mb} MB file grew the process by {grown / MB:.0f} MB"


@pytest.mark.parametrize("kind,within", [("floats", 0.002), ("small-alphabet", 0.02), ("zeros", 0.05)])
@pytest.mark.parametrize("size", [3 * MB + 7, pytest.param(5 * MB, marks=pytest.mark.slow)])  # 5 MB: more windows, slow lane
def test_a_file_over_the_limit_is_estimated_from_windows(tmp_path, monkeypatch, kind, size, within):
    """Over ``GZIP_EXACT_LIMIT`` (set to 1 MB here; windows of 16 KB): within ``within`` of the exact
    size (relative), for the three kinds of content; at or under it, exact as before."""
    import tfopt._io

    monkeypatch.setattr(tfopt._io, "GZIP_EXACT_LIMIT", MB)
    monkeypatch.setattr(tfopt._io, "GZIP_WINDOW", 16 << 10)
    data = _contents(kind, size)
    (tmp_path / "big.bin").write_bytes(data)
    (tmp_path / "small.bin").write_bytes(data[:MB])
    exact = len(gzip.compress(data, mtime=0))
    estimated = gzip_size(str(tmp_path / "big.bin"))
    assert abs(estimated - exact) <= within * exact, (estimated, exact)
    assert gzip_size(str(tmp_path / "small.bin")) == len(gzip.compress(data[:MB], mtime=0))
