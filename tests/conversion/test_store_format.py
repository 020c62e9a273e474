"""tfopt.conversion.store_format: values round-trip equal (types, dtypes, order kept) through JSON + .npz; a
file holding what tfopt never writes (a pickle, an object array, a class outside the list, a
dangling array reference, another version) raises StoreFormatError and runs nothing."""

from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest

from tfopt.conversion import store_format
from tfopt.errors import StoreFormatError
from tfopt.graph import TensorSpec
from tfopt.passes.base import PassStats, Skip
from tfopt.verification.shapes import DimTies
from tfopt.verification.testing import OutputDiff
from tfopt.verification.verify_inputs import VerifyInputs


class Payload:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return open, (self.marker, "w")


def _value(n: int):
    """A state of the kinds the cache stores, its sizes and dtypes varied by ``n``."""
    rng = np.random.default_rng(n)
    specs = [TensorSpec(f"in{i}", f"in{i}:0", "float32", (None, n + i)) for i in range(n)]
    feeds = {s.name: rng.normal(size=(1, n + i)).astype(np.float32) for i, s in enumerate(specs)}
    return {
        "specs": specs, "tuple": (n, "a", (1.5, None)), "set": {n, n + 1},
        "by_dim": {("in0", k): k * n for k in range(n)}, "$dollar": 1,
        "floats": [float("nan"), float("inf"), -float("inf"), 0.1 * n],
        "scalars": [np.float32(n / 3), np.int64(-n), np.bool_(n % 2), np.float16(n)],
        "arrays": [rng.normal(size=(n,) * k).astype(dt) for k in range(3) for dt in ("float32", "int8", "uint16")],
        "strings": np.array(["a" * n, "b"]), "bytes": bytes(range(n)), "dtype": np.dtype("int32"),
        "report": [PassStats(f"p{n}", 3, 2, {"Identity": 1}), Skip("node", "why"), OutputDiff("y", 0.5, 0.1, True)],
        "verified": VerifyInputs(feeds, "made up", ["1x2"], None, 8, DimTies(specs)),
        "samples": [dict(feeds) for _ in range(n)],
    }


def _equal(a, b):
    assert type(a) is type(b), (a, b)
    if isinstance(a, (np.ndarray, np.generic)):
        assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            _equal(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _equal(x, y)
    elif isinstance(a, float):
        assert a == b or (a != a and b != b)
    elif hasattr(a, "__dict__"):
        _equal(vars(a), vars(b))
    else:
        assert a == b


@pytest.mark.parametrize("n", [1, 2, 4])
def test_a_value_round_trips_equal(tmp_path, n):
    value = _value(n)
    written = store_format.save(value, str(tmp_path), "state")
    assert sorted(os.path.basename(p) for p in written) == ["state.json", "state.npz"]
    _equal(store_format.load(str(tmp_path), "state"), value)
    with open(tmp_path / "state.json", "rb") as f:
        assert f.read(1) == b"{"  # JSON, not a pickle (b"\x80")


@pytest.mark.parametrize("value", [np.array([object()], dtype=object), Payload("x"), {1: [Payload("x")]}],
                         ids=["object-array", "unknown-class", "nested-unknown-class"])
def test_what_cannot_be_read_back_is_not_written(tmp_path, value):
    with pytest.raises(StoreFormatError, match="cannot be stored"):
        store_format.save(value, str(tmp_path), "state")


def _document(value):
    return json.dumps({"format": store_format.FORMAT, "version": store_format.VERSION, "value": value})


@pytest.mark.parametrize("content", [
    "pickle", "pickle-npz", "not-json", "version",
    _document({"$object": "os:system", "state": {}}), _document({"$object": "builtins:eval", "state": {}}),
    _document({"$array": "a0"}), _document({"$tuple": [1], "x": 2}), _document({"$reduce": ["os", "system"]}),
    _document({"$dict": [[[1], 2]]}), "{" + '"format": "tfopt-store", "version": 1, "value": ' + "[" * 100000 + "]" * 100000 + "}",
    _document({"$object": "tfopt.graph:TensorSpec", "state": {"__class__": 1}}),
], ids=["pickle", "pickle-npz", "not-json", "version", "os.system", "eval", "dangling-array", "extra-key",
        "unknown-tag", "unhashable-key", "deep", "dunder-attribute"])
def test_a_foreign_file_is_a_typed_error_and_runs_nothing(tmp_path, content):
    marker = str(tmp_path / "pwned")
    if content == "pickle":
        (tmp_path / "state.json").write_bytes(pickle.dumps(Payload(marker)))
    elif content == "pickle-npz":
        (tmp_path / "state.json").write_text(_document({"$array": "a0"}))
        np.savez(tmp_path / "state.npz", a0=np.array([Payload(marker)], dtype=object), allow_pickle=True)
    elif content == "not-json":
        (tmp_path / "state.json").write_text("{")
    elif content == "version":
        (tmp_path / "state.json").write_text(json.dumps({"format": store_format.FORMAT, "version": 999, "value": 1}))
    else:
        (tmp_path / "state.json").write_text(content)
    with pytest.raises(StoreFormatError, match="state"):
        store_format.load(str(tmp_path), "state")
    assert not os.path.exists(marker)


def test_a_record_written_before_a_field_existed_reads_back_with_its_default(tmp_path):
    """A cache entry written by an earlier tfopt (the same version string) lacks a field added since
    (VerifyInputs.saturated_fraction): it reads back with the field's default, not an AttributeError later."""
    inputs = VerifyInputs({"x": np.zeros((1, 2), np.float32)}, "made up")
    store_format.save(inputs, str(tmp_path), "state")
    with open(tmp_path / "state.json") as f:
        document = json.load(f)
    del document["value"]["state"]["saturated_fraction"]
    with open(tmp_path / "state.json", "w") as f:
        json.dump(document, f)
    back = store_format.load(str(tmp_path), "state")
    assert back.saturated_fraction == {} and back.summary() == inputs.summary() and back.as_dict() == inputs.as_dict()
