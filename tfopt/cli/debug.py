"""``tfopt debug SUBCOMMAND``: find where an artifact departs from TensorFlow.

Each sub-command is a module in :data:`SUBCOMMANDS` with ``add_parser(debug_subparsers)`` (adding
one parser whose name is the sub-command's) and ``run(args) -> int``; a new one is one line here.
"""

from __future__ import annotations

import argparse
import importlib
from typing import Any

SUBCOMMANDS = [
    "tfopt.cli.debug_compare",
    "tfopt.cli.debug_reduce",
]


def add_parser(sub: Any) -> None:
    p = sub.add_parser("debug", help="find where an artifact first differs from TensorFlow",
                       description="Debug a conversion: `tfopt debug compare MODEL ARTIFACT...` compares every "
                                   "layer of each artifact with the TF graph; `tfopt debug reduce MODEL --target T` "
                                   "cuts the graph down to the smallest part that still fails to convert or mismatches.")
    debug_sub = p.add_subparsers(dest="debug_command", metavar="SUBCOMMAND")
    for name in SUBCOMMANDS:
        module = importlib.import_module(name)
        before = set(debug_sub.choices)
        module.add_parser(debug_sub)
        for added in set(debug_sub.choices) - before:
            debug_sub.choices[added].set_defaults(debug_run=module.run)
    p.set_defaults(debug_parser=p)


def run(args: argparse.Namespace) -> int:
    if getattr(args, "debug_run", None) is None:
        args.debug_parser.print_help()
        return 2
    code: int = args.debug_run(args)
    return code
