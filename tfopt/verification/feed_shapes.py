"""Inputs by name as the messages name them: ``input_1:1x10100x4, mask:1x10100, step:scalar``.

Every message that says what the original, an artifact or a stage ran on (a refusal, a time bound, an
ill-conditioned rung, the inputs verification chose, a runtime that does not run) names its feeds this
one way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np


def feed_shapes(feeds: Mapping[str, Any]) -> str:
    """``feeds`` (input name -> array, or anything ``np.shape`` reads) as ``name:AxB`` in their order,
    a 0-d value as ``name:scalar``."""
    return ", ".join(f"{name}:{'x'.join(map(str, np.shape(value))) or 'scalar'}" for name, value in feeds.items())
