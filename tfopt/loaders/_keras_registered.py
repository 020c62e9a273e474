"""Custom classes stored under a registered name (``Package>Class``), supplied by class name.

A class decorated with ``register_keras_serializable(package="Custom")`` (``"Custom"`` is the default
package) is stored as ``"Custom>Scale"``: tf-keras writes that as the layer's ``class_name``, Keras 3
as its ``registered_name``. Both look the stored string up, whole, in ``custom_objects``. The module a
user passes with ``--custom-objects`` often defines the class without the decorator (the package's
released code, not its training script), so it supplies ``Scale`` and the lookup of ``"Custom>Scale"``
fails: "Unknown layer: 'Custom>Scale'" (tf-keras), "Could not locate class 'Scale'" (Keras 3).

:func:`registered_aliases` maps each stored ``Package>Name`` whose ``Name`` the user supplied (and whose
whole name they did not) to that object. A class the module registers itself is found by Keras's own
registry either way; the alias names the same class.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

_KEYS = ("class_name", "registered_name")


def _stored_names(node: Any) -> Iterator[str]:
    """Every ``class_name``/``registered_name`` string anywhere in a parsed config."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _KEYS and isinstance(value, str):
                yield value
            else:
                yield from _stored_names(value)
    elif isinstance(node, list):
        for item in node:
            yield from _stored_names(item)


def registered_aliases(config: str, custom: dict[str, Any]) -> dict[str, Any]:
    """``{"Package>Name": custom["Name"]}`` for each registered name in the stored ``config`` (JSON)
    whose class name the user supplied and whose registered name they did not."""
    if not config or ">" not in config or not custom:
        return {}
    try:
        parsed = json.loads(config)
    except ValueError:
        return {}
    aliases: dict[str, Any] = {}
    for name in _stored_names(parsed):
        package, sep, short = name.rpartition(">")
        if sep and package and short in custom and name not in custom:
            aliases[name] = custom[short]
    return aliases
