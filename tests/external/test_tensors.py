"""Which tensors stay outside, how they are written, and the option's checks."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from tfopt.cli.args import byte_size
from tfopt.conversion.checks import check_options
from tfopt.errors import GraphError, OptionError
from tfopt.external import GRAPH_BUDGET, ExternalTensors, choose_external
from tfopt.external.tensors import storable_bytes

GB = 1 << 30


@pytest.mark.parametrize("sizes, threshold, chosen", [
    ({"a": 10, "b": 5000, "c": 4096}, 4096, {"b", "c"}),
    ({"a": 10, "b": 20}, None, set()),
    ({"table": 3 * GB, "w": 100}, None, {"table"}),  # one tensor a tensor proto cannot hold
    ({f"w{i}": GB // 4 for i in range(10)}, None, {f"w{i}" for i in range(6)}),  # many medium: fill to the budget
    ({"x": 600 << 20, "y": 700 << 20, "z": 100}, None, {"y"}),
], ids=["threshold", "small-model", "one-huge", "many-medium", "largest-first"])
def test_choose_external(sizes, threshold, chosen):
    got = choose_external(sizes, threshold)
    assert got == chosen
    assert sum(s for n, s in sizes.items() if n not in got) <= GRAPH_BUDGET


@pytest.mark.parametrize("dtype", ["float32", "int64", "float16", "int8"])
@pytest.mark.parametrize("shape", [(7,), (33, 5), (2, 3, 4)])
def test_written_once_and_memory_mapped(dtype, shape, monkeypatch):
    import tfopt.external.tensors as tensors

    monkeypatch.setattr(tensors, "CHUNK_BYTES", 16)  # several slices even for small tensors
    value = np.arange(np.prod(shape)).reshape(shape).astype(dtype)
    store = ExternalTensors()
    record = store.add("w", value)
    read = record.read()
    assert isinstance(read, np.memmap) and read.shape == shape and read.dtype == dtype
    np.testing.assert_array_equal(read, value)
    node = store.node("w")
    assert node.op == "ImmutableConst" and node.attr["memory_region_name"].s.decode() == record.path


def test_directory_removed_with_its_owner():
    import gc
    import os

    store = ExternalTensors()
    store.add("w", np.ones(4, "float32"))
    directory = store.directory
    del store
    gc.collect()
    assert not os.path.exists(directory)


def test_strings_cannot_go_outside():
    with pytest.raises(GraphError, match="--external-threshold"):
        ExternalTensors().add("s", np.array([b"a"], dtype=object))


@pytest.mark.parametrize("shape, dtype, size", [
    ((33, 5), "float32", 660), ((), "float64", 8), ((0, 4), "int8", 0), ((7,), "string", 0), ((7,), "resource", 0),
    ((None, 4), "float32", 0), ((-1, 4), "float32", 0), (None, "float32", 0),
], ids=["float32", "scalar", "empty", "string", "resource", "open-none", "open-negative", "unknown-rank"])
def test_storable_bytes(shape, dtype, size):
    """Every loader sizes a variable for :func:`choose_external` by this one rule (a TF1 checkpoint's reader, a
    MetaGraph's ``VarHandleOp`` attrs, a function's captured variables): what cannot go outside weighs 0."""
    from tfopt._tf import tf

    got = storable_bytes(shape, tf().as_dtype(dtype))
    assert got == size
    assert (choose_external({"v": got}, 1) == {"v"}) == (size > 0)  # a 0 is never picked


@pytest.mark.parametrize("bad", [0, -5, 1.5])
def test_threshold_checked_before_work(tmp_path, bad):
    with pytest.raises(OptionError, match="--external-threshold"):
        check_options(str(tmp_path / "missing.keras"), str(tmp_path / "out"), external_threshold=bad, to=["savedmodel"])


@pytest.mark.parametrize("text, value", [("4096", 4096), ("4KB", 4096), ("64MB", 64 << 20), ("1GiB", GB), ("1.5k", 1536)])
def test_cli_sizes(text, value):
    assert byte_size(text) == value


def test_cli_bad_sizes():
    """What is not a size fails parsing; a size below one byte parses and fails the options' one range rule."""
    with pytest.raises(argparse.ArgumentTypeError, match="not a size"):
        byte_size("abc")
    from tfopt.errors import OptionError
    from tfopt.options import LoadOptions

    for text in ("0", "-1MB"):
        with pytest.raises(OptionError, match="--external-threshold"):
            LoadOptions(external_threshold=byte_size(text)).check()
