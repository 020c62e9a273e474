"""The content-addressed cache: entries written atomically, read back only when every file's hash
matches, a corrupt entry removed (a miss, so it is rebuilt)."""

from __future__ import annotations

import os
import pathlib

import pytest

from tfopt.fleet.cache import VERSION, Cache


def _put(cache, key="ab" * 32):
    with cache.put("optimize", key, meta={"note": "x"}) as tmp:
        os.makedirs(os.path.join(tmp, "sub"))
        with open(os.path.join(tmp, "sub", "graph.pb"), "wb") as f:
            f.write(b"graph bytes")
    return key


def test_an_entry_is_read_back_with_its_layout(tmp_path):
    cache = Cache(str(tmp_path / "c"))
    key = _put(cache)
    entry = cache.get("optimize", key)
    assert entry == str(tmp_path / "c" / VERSION / "optimize" / key[:2] / key)
    assert pathlib.Path(entry, "sub", "graph.pb").read_bytes() == b"graph bytes"
    assert cache.meta("optimize", key) == {"note": "x"}
    assert os.listdir(os.path.dirname(entry)) == [key]  # no temporary directory left


@pytest.mark.parametrize("damage", ["edit", "truncate", "delete", "add", "entry"])
def test_a_corrupt_entry_is_removed_and_missed(tmp_path, damage):
    cache = Cache(str(tmp_path / "c"))
    key = _put(cache)
    entry = cache.entry_dir("optimize", key)
    target = os.path.join(entry, "sub", "graph.pb")
    if damage == "edit":
        pathlib.Path(target).write_bytes(b"graph bytez")
    elif damage == "truncate":
        pathlib.Path(target).write_bytes(b"")
    elif damage == "delete":
        os.remove(target)
    elif damage == "add":
        pathlib.Path(entry, "stray").write_text("?")
    else:
        pathlib.Path(entry, "entry.json").write_text("{not json")
    assert cache.get("optimize", key) is None
    assert not os.path.exists(entry) and cache.corrupt == [f"optimize/{key}"]
    _put(cache, key)  # rebuilt
    assert cache.get("optimize", key) is not None


def test_a_failed_write_leaves_nothing(tmp_path):
    cache = Cache(str(tmp_path / "c"))
    with pytest.raises(RuntimeError), cache.put("emit", "cd" * 32) as tmp:
        pathlib.Path(tmp, "half").write_text("x")
        raise RuntimeError("the emitter failed")
    assert cache.get("emit", "cd" * 32) is None
    assert os.listdir(os.path.join(str(tmp_path / "c"), VERSION, "emit", "cd")) == []
