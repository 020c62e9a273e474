"""What the documentation's code blocks hold, for the tests that run them (tests/test_docs.py,
tests/test_readme.py): fenced blocks by language, `tfopt` command lines (continuations joined), the
anchors a Markdown page defines, and the links a page makes."""

from __future__ import annotations

import argparse
import glob
import os
import re
from dataclasses import dataclass

from markdown.extensions.toc import slugify

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
DOCS = os.path.join(ROOT, "docs")
SHELL = ("sh", "bash", "shell", "console")
OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


@dataclass(frozen=True)
class Block:
    page: str  # relative to the repository root
    line: int  # of the opening fence
    lang: str
    text: str

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


def pages() -> list[str]:
    """README.md and every page under docs/, relative to the repository root."""
    found = sorted(glob.glob(os.path.join(DOCS, "**", "*.md"), recursive=True))
    return ["README.md", *(os.path.relpath(p, ROOT) for p in found)]


def read(page: str) -> str:
    with open(os.path.join(ROOT, page), encoding="utf-8") as f:
        return f.read()


def blocks(page: str) -> list[Block]:
    """The fenced code blocks of a page (``` fences at any indentation)."""
    out: list[Block] = []
    for m in re.finditer(r"^[ \t]*```(\w*)[^\n]*\n(.*?)^[ \t]*```[ \t]*$", read(page), re.MULTILINE | re.DOTALL):
        line = read(page).count("\n", 0, m.start()) + 1
        out.append(Block(page, line, m.group(1), m.group(2)))
    return out


def all_blocks(*langs: str) -> list[Block]:
    return [b for p in pages() for b in blocks(p) if b.lang in langs]


@dataclass(frozen=True)
class Command:
    """One `tfopt ...` line of a shell block; ``output`` is what a console block shows after it."""
    block: Block
    text: str  # without the prompt, continuations joined
    output: tuple[str, ...] = ()

    @property
    def synopsis(self) -> bool:
        """A synopsis (`[--opt X]`, `MODEL ...`), not a command to run as written."""
        return "[" in self.text or "..." in self.text or re.search(r"\w\|\w", self.text) is not None


def commands(block: Block) -> list[Command]:
    """The `tfopt` lines of a shell block. A trailing backslash or (in a synopsis) an indented line
    continues the line before it; in a console block, `$ ` marks a command and the lines up to the
    next prompt are its output."""
    out: list[Command] = []
    console = block.lang == "console"
    lines = block.text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        text = line.removeprefix("$ ") if console else line
        if (console and not line.startswith("$ ")) or not text.startswith("tfopt "):
            continue
        while text.rstrip().endswith("\\") and i < len(lines):
            text = text.rstrip()[:-1].rstrip() + " " + lines[i].strip()
            i += 1
        output: list[str] = []
        while i < len(lines) and (not lines[i].startswith("$ ") if console else lines[i][:1].isspace()):
            if console:
                output.append(lines[i])
            else:
                text += " " + lines[i].strip()
            i += 1
        out.append(Command(block, text, tuple(output)))
    return out


def all_commands() -> list[Command]:
    return [c for b in all_blocks(*SHELL) for c in commands(b)]


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action.choices, dict):
            return dict(action.choices)
    return {}


def command_path(parser: argparse.ArgumentParser, words: list[str]) -> list[argparse.ArgumentParser]:
    """The parsers a command line walks through: tfopt, then each subcommand it names."""
    chain = [parser]
    for word in words:
        sub = subcommands(chain[-1])
        if word not in sub:
            break
        chain.append(sub[word])
    return chain


def options_of(chain: list[argparse.ArgumentParser]) -> set[str]:
    """Every option string accepted along a command's parsers (tfopt's own options come first)."""
    return {s for p in chain for a in p._actions for s in a.option_strings}


def anchors(page: str) -> set[str]:
    """The anchors a page defines: its headings' ids as MkDocs makes them (`toc`'s slugify), explicit
    `{#id}` attributes and `<a id=...>` tags."""
    text = re.sub(r"^```.*?^```", "", read(page), flags=re.MULTILINE | re.DOTALL)
    out = set()
    for m in re.finditer(r"^#{1,6} (.+?)(?: \{#([\w-]+)\})?$", text, re.MULTILINE):
        out.add(m.group(2) or slugify(re.sub(r"[`*]", "", m.group(1)), "-"))
    out |= set(re.findall(r"<a id=['\"]([\w-]+)['\"]", text))
    return out


def links(page: str) -> list[str]:
    """Relative link targets of a page (external links and images left out)."""
    text = re.sub(r"^```.*?^```", "", read(page), flags=re.MULTILINE | re.DOTALL)
    targets = re.findall(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)", text)
    return [t for t in targets if not re.match(r"[a-z]+:", t)]
