"""The README stays a front page: at most 300 lines, its quick start and Python block run as written,
and every link it makes lands on a file and, for `page.md#anchor`, on a heading of that page (the
anchors MkDocs makes). Its shell examples are checked with the docs' (tests/test_docs.py)."""

from __future__ import annotations

import os
import re

import pytest

from tests import doc_blocks
from tfopt.cli import main
from tfopt.demos import examples

MAX_LINES = 300


def _section(title: str) -> str:
    text = doc_blocks.read("README.md")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else None]


def test_readme_fits_on_a_few_screens():
    assert len(doc_blocks.read("README.md").splitlines()) <= MAX_LINES


def test_quick_start_cli_command_runs(tmp_path, monkeypatch, capsys):
    assert "make demo" in _section("Quick start") and "make test" in _section("Quick start")
    (command,) = re.findall(r"^\$ tfopt (.+)$", _section("Quick start"), re.MULTILINE)
    examples.train_tf1_checkpoint(str(tmp_path / "demo_output" / "tf1_checkpoint"), steps=10)
    monkeypatch.chdir(tmp_path)
    assert main(command.split()) == 0
    assert "bound    is_training = False (training flag)" in capsys.readouterr().out


def test_python_block_runs(tmp_path, monkeypatch, capsys):
    (block,) = re.findall(r"```python\n(.*?)```", _section("Python API"), re.DOTALL)
    examples.train_tf1_checkpoint(str(tmp_path / "demo_output" / "tf1_checkpoint"), steps=10)
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "README.md", "exec"), {})
    assert os.path.exists(tmp_path / "model.pb")


def test_readme_shows_one_example_per_command():
    shown = {c.text.split()[1] for c in doc_blocks.all_commands() if c.block.page == "README.md"}
    assert {"inspect", "freeze", "optimize", "convert", "verify", "fleet", "debug"} <= shown


LINKS = doc_blocks.links("README.md")


@pytest.mark.parametrize("link", LINKS)
def test_readme_link_resolves(link):
    path, _, anchor = link.partition("#")
    target = os.path.normpath(os.path.join(doc_blocks.ROOT, path or "README.md"))
    assert os.path.exists(target), f"README links to {path}, which does not exist"
    if anchor:
        page = os.path.relpath(target, doc_blocks.ROOT)
        assert anchor in doc_blocks.anchors(page), f"{page} has no heading with the anchor #{anchor}"


def test_readme_links_into_the_docs():
    """The README is the way in: it links every concept and every command page."""
    linked = {os.path.normpath(link.partition("#")[0]) for link in LINKS}
    for page in ("getting-started", "concepts/freezing", "concepts/folding", "concepts/int8",
                 "concepts/verification", "commands/inspect", "commands/freeze", "commands/optimize",
                 "commands/convert", "commands/verify", "commands/fleet", "commands/debug", "known-limits"):
        assert f"docs/{page}.md" in linked, f"the README does not link docs/{page}.md"
