"""``tfopt debug``: TEMPORARY minimal registration of ``debug reduce`` (branch dbgreduce only; the
``dbgcompare`` branch's module replaces this one at the merge)."""

from __future__ import annotations

import argparse
from typing import Any

from tfopt.cli import debug_reduce


def add_parser(sub: Any) -> None:
    p = sub.add_parser("debug", help="find where an artifact breaks: reduce")
    debug_sub = p.add_subparsers(dest="debug_command", metavar="SUBCOMMAND", required=True)
    debug_reduce.add_parser(debug_sub)


def run(args: argparse.Namespace) -> int:
    return {"reduce": debug_reduce.run}[args.debug_command](args)
