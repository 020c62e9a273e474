"""MkDocs hooks (mkdocs.yml ``hooks:``): the pages' generated parts, written at build time so they
cannot drift from the code or the measurements.

A page asks for one with a marker line:

- ``<!-- generated:cli COMMAND -->``: that command's reference, from the argparse parser the CLI runs
  (``tfopt.cli.build_parser``); ``<!-- generated:cli -->`` gives every command, nested ones included.
- ``<!-- generated:exit_codes -->``: the exit codes as ``tfopt --help`` lists them, each with the
  error classes (``tfopt.errors``) that exit with it.
- ``<!-- generated:coverage -->``: the coverage matrix, ``tfopt.coverage.matrix.to_markdown`` (what
  ``scripts/coverage.py --markdown`` prints) over the stored rows ``docs/data/coverage.json``
  (``scripts/coverage.py --json PATH`` writes them).
- ``<!-- generated:corpus -->``: the real-model corpus table, ``tfopt.coverage.corpus.to_markdown`` (what
  ``scripts/corpus.py run --markdown`` prints) over ``docs/data/corpus.json`` (``run --json PATH``).

Neither import pulls in TensorFlow, so the build stays fast. Run with ``python scripts/docs_hooks.py
cli`` to print the CLI reference.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "docs", "data")
SPHINX_ROLE = re.compile(r":(?:func|mod|class|meth|attr|data|exc|obj):<code")
MARKER = re.compile(r"^<!-- generated:(\w+)(?: ([\w ]+?))? -->$", re.MULTILINE)


def on_page_markdown(markdown: str, **_kwargs: Any) -> str:
    """MkDocs hook: replace every marker line of a page by what it names."""
    return MARKER.sub(lambda m: generate(m.group(1), m.group(2)), markdown)


def on_page_content(html: str, **_kwargs: Any) -> str:
    """MkDocs hook: the docstrings' Sphinx roles (``:func:`x` ``) shown as the code they name."""
    return SPHINX_ROLE.sub("<code", html)


def generate(kind: str, arg: str | None = None) -> str:
    """The Markdown a marker stands for; an unknown marker is an error, so the strict build fails."""
    if kind == "cli":
        return cli_reference(arg.split() if arg else [])
    if kind == "exit_codes":
        return exit_codes()
    if kind in ("coverage", "corpus"):
        with open(os.path.join(DATA, f"{kind}.json"), encoding="utf-8") as f:
            rows = json.load(f)
        if kind == "coverage":
            from tfopt.coverage.matrix import to_markdown
            return to_markdown(rows)
        from tfopt.coverage.corpus import to_markdown as corpus_markdown
        return corpus_markdown(rows)
    raise ValueError(f"unknown docs marker <!-- generated:{kind} -->")


def exit_codes() -> str:
    """One row per code of the CLI's epilog (``exit codes: 0 ok, 1 internal error, ...``) with the
    ``tfopt.errors`` classes whose ``exit_code`` it is."""
    import inspect as pyinspect

    from tfopt import errors

    classes: dict[str, list[str]] = {}
    for name, cls in vars(errors).items():
        if pyinspect.isclass(cls) and issubclass(cls, errors.TfoptError):
            classes.setdefault(str(cls.exit_code), []).append(f"`{name}`")
    epilog = " ".join((_parser([]).epilog or "").split()).removeprefix("exit codes: ")
    rows = ["| code | meaning | raised as |", "|---|---|---|"]
    for item in re.split(r",\s+(?=\d+(?:/\d+)? )", epilog):
        code, meaning = item.split(" ", 1)
        raised = ", ".join(classes.get(code, [])) or ("result, not an exception" if code == str(errors.PARTIAL_EXIT_CODE)
                                                      else "–")
        rows.append(f"| `{code}` | {_escape(meaning)} | {raised} |")
    return "\n".join(rows) + "\n"


def _parser(path: list[str]) -> argparse.ArgumentParser:
    sys.path.insert(0, ROOT)
    from tfopt.cli import build_parser

    parser = build_parser()
    for name in path:
        parser = _subcommands(parser)[name]
    return parser


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action.choices, dict):  # the subparsers action: {name: parser}
            return dict(action.choices)
    return {}


def cli_reference(path: list[str]) -> str:
    """``tfopt PATH...``'s reference: usage, description, one table per option group, then each
    subcommand's (headings one level down per nesting)."""
    parser = _parser(path)
    out = [] if path else ["## `tfopt`", ""]
    _describe(parser, out)
    level = 3 if path else 2  # a command page puts its reference under an h2
    for sub in _subcommands(parser).values():
        out += [f"{'#' * level} `{sub.prog}`", ""]
        _describe(sub, out)
        for nested in _subcommands(sub).values():
            out += [f"{'#' * (level + 1)} `{nested.prog}`", ""]
            _describe(nested, out)
    return "\n".join(out) + "\n"


def _describe(parser: argparse.ArgumentParser, out: list[str]) -> None:
    out += ["```text", parser.format_usage().strip(), "```", ""]
    if parser.description:
        out += [_escape(parser.description), ""]
    for group in parser._action_groups:
        rows = [_row(parser, a) for a in group._group_actions if a.help != argparse.SUPPRESS]
        rows = [r for r in rows if r]
        if rows:
            out += [f"**{group.title}**", "", "| option | help |", "|---|---|", *rows, ""]
    if parser.epilog:
        out += ["```text", parser.epilog.strip(), "```", ""]


def _row(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    if isinstance(action.choices, dict) or isinstance(action, argparse._HelpAction):
        return ""
    metavar = action.metavar or (action.dest.upper() if action.option_strings else action.dest)
    if isinstance(metavar, tuple):
        metavar = " ".join(metavar)
    takes = action.nargs != 0
    if action.choices and not action.metavar:
        metavar = "{" + ",".join(map(str, action.choices)) + "}"
    names = ", ".join(action.option_strings) or action.dest
    flag = f"`{names} {metavar}`" if takes and action.option_strings else f"`{names}`"
    text = action.help or ""
    if "%" in text:
        params = {k: v for k, v in vars(action).items() if v is not argparse.SUPPRESS}
        params["prog"] = parser.prog
        if params.get("choices") is not None:
            params["choices"] = ", ".join(map(str, params["choices"]))
        text = text % params
    return f"| {flag.replace('|', '&#124;')} | {_escape(text)} |"


def _escape(text: str) -> str:
    """Argparse text in Markdown: one line; pipes, brackets and angle brackets shown as typed."""
    text = " ".join(text.split())
    for char, entity in (("|", "&#124;"), ("<", "&lt;"), (">", "&gt;"), ("[", "&#91;"), ("]", "&#93;")):
        text = text.replace(char, entity)
    return text


if __name__ == "__main__":
    print(generate(sys.argv[1] if len(sys.argv) > 1 else "cli", " ".join(sys.argv[2:]) or None))
