"""Range checks shared by the CLI's argument types and the public API, so both refuse the same
values with the same words before any work is done."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from tfopt.errors import OptionError


def range_problem(value: Any, low: float, *, integer: bool = False) -> str | None:
    """Why ``value`` is not a finite number (an integer if asked) ``>= low``, or ``None``."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if number and math.isfinite(value) and (not integer or float(value).is_integer()) and value >= low:
        return None
    return f"must be {'an integer' if integer else 'a number'} >= {low:g}"


def at_least(option: str, value: Any, low: float, *, integer: bool = False) -> Any:
    """Return ``value`` (``None`` passes: not set) when it is ``>= low``, else raise.

    Raises:
        OptionError: naming the option, the value and the allowed range.
    """
    if value is None:
        return None
    problem = range_problem(value, low, integer=integer)
    if problem:
        raise OptionError(f"{option} {value}: {problem}")
    return value


def check_ranges(checks: Mapping[str, tuple[Any, float]], *, integer: bool = False) -> None:
    """``{option: (value, lowest allowed)}``; ``None`` values are not set and pass."""
    for option, (value, low) in checks.items():
        at_least(option, value, low, integer=integer)
