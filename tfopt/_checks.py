"""Each option's rule, once: the range of every numeric option and the rules that pair options.

The CLI's argument types only parse (an integer, a number, a byte size); the entry points check
(:func:`tfopt.conversion.checks.check_options` for ``convert``, :func:`tfopt.freeze`/
:func:`tfopt.optimize`, ``tfopt verify``'s and ``tfopt debug reduce``'s), so the CLI and the API
refuse the same value with the same message, once, before any work is done.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from tfopt.errors import OptionError

# option -> (lowest allowed, integer only): the one statement of each numeric option's range
RANGES: dict[str, tuple[float, bool]] = {
    "--calibration-samples": (1, True), "--report-runs": (1, True), "--threads": (1, True), "--opset": (7, True),
    "--external-threshold": (1, True), "--finetune-epochs": (1, True), "--cluster": (2, True),
    "--max-steps": (1, True),
    "--atol": (0, False), "--rtol": (0, False), "--accuracy-control": (0, False), "--auto-keep-float": (0, False),
    "--adaround-budget": (0, False), "--verify-timeout": (0, False),
}


def range_problem(value: Any, low: float, *, integer: bool = False) -> str | None:
    """Why ``value`` is not a finite number (an integer if asked) ``>= low``, or ``None``."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if number and math.isfinite(value) and (not integer or float(value).is_integer()) and value >= low:
        return None
    return f"must be {'an integer' if integer else 'a number'} >= {low:g}"


def at_least(option: str, value: Any, low: float, *, integer: bool = False) -> Any:
    """Return ``value`` (``None`` passes: not set) when it is ``>= low``, else raise (for a
    library argument that is no option; an option's range is :data:`RANGES`').

    Raises:
        OptionError: naming the option, the value and the allowed range.
    """
    if value is None:
        return None
    problem = range_problem(value, low, integer=integer)
    if problem:
        raise OptionError(f"{option} {value}: {problem}")
    return value


def check_ranges(values: Mapping[str, Any]) -> None:
    """``{option: value}`` against :data:`RANGES`; ``None`` values are not set and pass.

    Raises:
        OptionError: ``--OPTION VALUE: must be an integer >= LOW`` (or ``a number``).
    """
    for option, value in values.items():
        low, integer = RANGES[option]
        at_least(option, value, low, integer=integer)


def check_metric(metric: str | None, eval_data: str | None) -> None:
    """``--metric`` is ``module:function`` and scores against ``--eval-data``'s labels.

    Raises:
        OptionError: without ``--eval-data``, or not of the form ``module:function``.
    """
    if metric and not eval_data:
        raise OptionError(f"--metric {metric}: needs --eval-data DATA.npz holding the labels it scores against")
    if metric and (":" not in metric or metric.startswith(":") or metric.endswith(":")):
        raise OptionError(f"--metric '{metric}': expected 'package.module:function'")
