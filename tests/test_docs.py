"""The documentation's code runs as written (README.md and every page under docs/):

- every ```python block runs; a block that converts (`tfopt.convert(`, `run_fleet(`) runs whole in
  the slow lane and up to that call in the fast one;
- every `$ tfopt ...` line of a ```console block runs on the TF1 checkpoint `make demo` trains and
  exits 0, printing the status lines the page shows, in that order;
- every other `tfopt ...` line of a shell block parses with the CLI's own argparse parser, and a
  synopsis line (`[--opt X]`, `...`) names only options its command accepts;
- every ```yaml fleet manifest (a `models:` key) loads with `tfopt fleet`'s own manifest reader.

`make docs` checks the links (`mkdocs build --strict`); tests/test_readme.py checks the README's.
"""

from __future__ import annotations

import os
import re
import shlex

import numpy as np
import pytest

from tests import doc_blocks
from tfopt.cli import build_parser, main
from tfopt.demos import examples

PYTHON = doc_blocks.all_blocks("python")
COMMANDS = doc_blocks.all_commands()
RUN = [c for c in COMMANDS if c.block.lang == "console"]
PARSE = [c for c in COMMANDS if c.block.lang != "console" and not c.synopsis]
SYNOPSES = [c for c in COMMANDS if c.block.lang != "console" and c.synopsis]
SLOW_CALL = re.compile(r"tfopt\.convert\(|run_fleet\(")


def _ids(commands: list[doc_blocks.Command]) -> list[str]:
    return [f"{c.block.id}:{' '.join(c.text.split()[:3])}" for c in commands]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """What the examples name: the demo's TF1 checkpoint, a training directory, calibration and
    evaluation data (the digits, as `make demo` uses them)."""
    root = tmp_path_factory.mktemp("docs")
    examples.train_tf1_checkpoint(str(root / "demo_output" / "tf1_checkpoint"), steps=10)
    examples.train_tf1_checkpoint(str(root / "train_dir"), steps=10)
    x_train, _, x_test, y_test = examples.digits()
    np.savez(root / "calib.npz", images=x_train[:32])
    np.savez(root / "eval.npz", images=x_test[:32], labels=y_test[:32])
    return root


def test_the_docs_have_examples_of_every_kind():
    """The collection below is not silently empty (a renamed fence would skip every check)."""
    assert PYTHON and RUN and PARSE and SYNOPSES and MANIFESTS
    pages = {c.block.page for c in RUN + PARSE}
    for command in ("inspect", "freeze", "optimize", "convert", "verify", "fleet", "debug"):
        assert f"docs/commands/{command}.md" in pages, f"no runnable example on the {command} page"


def _run_python(block: doc_blocks.Block, code: str, workdir, monkeypatch) -> None:
    monkeypatch.chdir(workdir)
    exec(compile(code, block.page, "exec"), {"__name__": "__docs__"})


@pytest.mark.parametrize("block", PYTHON, ids=[b.id for b in PYTHON])
def test_python_block_runs_up_to_its_conversion(block, workdir, monkeypatch, capsys):
    """The fast half of each block: everything before its first conversion (the whole block when
    it converts nothing)."""
    m = SLOW_CALL.search(block.text)
    code = block.text if m is None else block.text[:block.text.rfind("\n", 0, m.start()) + 1]
    _run_python(block, code, workdir, monkeypatch)


@pytest.mark.slow
@pytest.mark.parametrize("block", [b for b in PYTHON if SLOW_CALL.search(b.text)],
                         ids=[b.id for b in PYTHON if SLOW_CALL.search(b.text)])
def test_python_block_runs_whole(block, workdir, monkeypatch, capsys):
    _run_python(block, block.text, workdir, monkeypatch)


def _status_words(lines) -> list[str]:
    """The first word of each unindented line: tfopt's status column (loaded, bound, frozen, ...)."""
    return [line.split()[0] for line in lines if line.strip() and not line[0].isspace() and line.strip() != "..."]


@pytest.mark.parametrize("command", RUN, ids=_ids(RUN))
def test_console_command_runs(command, workdir, monkeypatch, capsys):
    monkeypatch.chdir(workdir)
    capsys.readouterr()
    assert main(shlex.split(command.text)[1:]) == 0
    printed = capsys.readouterr().out.splitlines()
    shown = _status_words(command.output)
    got = iter(_status_words(printed))
    assert all(word in got for word in shown), f"the page shows {shown}, tfopt printed {_status_words(printed)}"


@pytest.mark.parametrize("command", PARSE, ids=_ids(PARSE))
def test_shell_command_parses(command, capsys):
    try:
        args = build_parser().parse_args(shlex.split(command.text, comments=True)[1:])
    except SystemExit as exc:
        pytest.fail(f"{command.block.id}: `{command.text}` does not parse: {capsys.readouterr().err} ({exc})")
    assert args.command, command.text


@pytest.mark.parametrize("command", SYNOPSES, ids=_ids(SYNOPSES))
def test_synopsis_options_exist(command):
    chain = doc_blocks.command_path(build_parser(), command.text.split()[1:])
    shown = set(doc_blocks.OPTION.findall(command.text))
    unknown = shown - doc_blocks.options_of(chain)
    assert not unknown, f"{command.block.id}: `{' '.join(p.prog for p in chain[-1:])}` has no {sorted(unknown)}"


MANIFESTS = [b for b in doc_blocks.all_blocks("yaml", "yml") if re.search(r"^models:", b.text, re.MULTILINE)]


@pytest.mark.parametrize("block", MANIFESTS, ids=[b.id for b in MANIFESTS])
def test_fleet_manifest_loads(block, tmp_path):
    from tfopt.fleet.manifest import load_manifest

    (tmp_path / "fleet.yaml").write_text(block.text)
    models = load_manifest(str(tmp_path / "fleet.yaml"))
    assert [m.name for m in models] == re.findall(r"^\s*- name: (\S+)", block.text, re.MULTILINE)


def test_generated_parts_render():
    """Every marker the pages use names something the docs hook can generate (the build would
    fail on it too, but this says which page)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("docs_hooks", os.path.join(doc_blocks.ROOT, "scripts", "docs_hooks.py"))
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    for page in doc_blocks.pages():
        for m in hooks.MARKER.finditer(doc_blocks.read(page)):
            assert hooks.generate(m.group(1), m.group(2)).strip(), f"{page}: {m.group(0)} is empty"
    for command in doc_blocks.subcommands(build_parser()):
        assert f"`tfopt {command}`" in hooks.cli_reference([]), f"the CLI reference lacks tfopt {command}"
