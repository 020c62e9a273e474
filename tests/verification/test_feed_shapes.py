"""Inputs by name as every message names them (refusals, time bounds, conditioning, the chosen inputs)."""

import numpy as np

from tfopt.verification.feed_shapes import feed_shapes


def test_names_shapes_in_order_and_scalars():
    feeds = {"x": np.zeros((2, 3, 4), np.float32), "mask": [[1, 0]], "step": np.int64(3), "empty": np.zeros((0, 5))}
    assert feed_shapes(feeds) == "x:2x3x4, mask:1x2, step:scalar, empty:0x5"
    assert feed_shapes({}) == ""
