"""The README's examples run as written: the Python API block, the quick start's CLI command, and
every option the CLI synopsis shows exists in that command's --help."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest

from tfopt import examples
from tfopt.cli import main

README = os.path.join(os.path.dirname(__file__), os.pardir, "README.md")


def _section(title: str) -> str:
    with open(README, encoding="utf-8") as f:
        text = f.read()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else None]


def _blocks(title: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", _section(title), re.DOTALL)


def _train_dir(root) -> None:
    examples.train_tf1_checkpoint(str(root / "train_dir"), steps=10)
    x_train, _, x_test, y_test = examples.digits()
    np.savez(root / "calib.npz", images=x_train[:32])
    np.savez(root / "eval.npz", images=x_test[:32], labels=y_test[:32])


@pytest.mark.slow
def test_python_api_block_runs_as_written(tmp_path, monkeypatch, capsys):
    (block,) = _blocks("Python API", "python")
    _train_dir(tmp_path)
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "README.md", "exec"), {})
    assert os.path.exists(tmp_path / "model.pb") and os.path.exists(tmp_path / "deploy" / "report.json")


def test_python_api_freeze_and_inspect_lines_run(tmp_path, monkeypatch, capsys):
    """The block's load/freeze/optimize/save/inspect part (the fast half; the whole block is slow)."""
    (block,) = _blocks("Python API", "python")
    _train_dir(tmp_path)
    monkeypatch.chdir(tmp_path)
    exec(compile(block[:block.index("result = tfopt.convert(")], "README.md", "exec"), {})
    assert os.path.exists(tmp_path / "model.pb")


def test_quick_start_cli_command_runs(tmp_path, monkeypatch, capsys):
    (command,) = re.findall(r"^\$ tfopt (.+)$", _section("Quick start"), re.MULTILINE)
    examples.train_tf1_checkpoint(str(tmp_path / "demo_output" / "tf1_checkpoint"), steps=10)
    monkeypatch.chdir(tmp_path)
    assert main(command.split()) == 0
    assert "bound    is_training = False (training flag)" in capsys.readouterr().out


def _synopsis() -> list[tuple[str, set[str]]]:
    """(command, options shown for it) from the CLI section's synopsis."""
    out: list[tuple[str, set[str]]] = []
    for line in _blocks("CLI", "sh")[0].splitlines():
        if line.startswith("tfopt "):
            out.append((line.split()[1], set()))
        if out:
            out[-1][1].update(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", line))
    return out


@pytest.mark.parametrize(("command", "options"), _synopsis(), ids=lambda v: v if isinstance(v, str) else "")
def test_cli_synopsis_options_exist(command, options, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"] if command.isidentifier() else ["--help"])  # `tfopt --debug`, `tfopt ...`
    shown = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", capsys.readouterr().out))
    if command.isidentifier():
        shown |= {"--debug", "--verbose", "--log"}  # top-level options, valid before any command
    assert options <= shown, f"tfopt {command}: the README shows {sorted(options - shown)}"
