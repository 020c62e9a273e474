"""Where tfopt may write (tfopt/conversion/output_paths.py): never the input, never a directory it did not write,
checked before the model loads; stale temp dirs of killed runs go; a full disk is exit 8."""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess

import pytest

import tfopt
from tfopt import cli
from tfopt._io import digest
from tfopt._tf import tf

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def build_savedmodel(path: str, width: int = 2) -> str:
    """y = x @ w, w a [3, width] variable: a real SavedModel in well under a second."""
    t = tf()
    module = t.Module()
    module.w = t.Variable(t.reshape(t.range(3 * width, dtype=t.float32), [3, width]) / 100)

    @t.function(input_signature=[t.TensorSpec([None, 3], t.float32, name="x")])
    def serve(x):
        return {"y": t.matmul(x, module.w)}

    module.serve = serve
    t.saved_model.save(module, path, signatures={"serving_default": serve})
    return path


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return build_savedmodel(str(tmp_path_factory.mktemp("tiny") / "sm"))


@pytest.fixture
def proj(tmp_path, model_dir):
    """tmp/proj/sm (a copy of the tiny model) and tmp/d/notes.txt (a directory tfopt did not write)."""
    shutil.copytree(model_dir, tmp_path / "proj" / "sm")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "notes.txt").write_text("hi\n")
    (tmp_path / "afile").write_text("not a directory\n")
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "report.md").write_text("my own report\n")
    (tmp_path / "dir.pb").mkdir()
    os.symlink(tmp_path / "proj" / "sm", tmp_path / "link")
    return tmp_path


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def debris(root) -> list[str]:
    return glob.glob(os.path.join(str(root), "**", ".*.tmp-*"), recursive=True)


SM = "proj/sm"
REFUSED = {
    # id: (argv relative to tmp, exit code, message regex)
    "convert-onto-input": (["convert", SM, "-o", SM, "--to", "pb"], 2, r"-o .*proj/sm: would overwrite the input model"),
    "convert-into-parent": (["convert", SM, "-o", "proj", "--to", "pb"], 2,
                            r"would overwrite the input model .*replacing .*proj deletes the input inside it"),
    "convert-inside-input": (["convert", SM, "-o", SM + "/out", "--to", "pb"], 2, r"\(it is inside it\)"),
    "convert-symlink-to-input": (["convert", SM, "-o", "link", "--to", "pb"], 2, r"would overwrite the input model"),
    "convert-foreign-dir": (["convert", SM, "-o", "d", "--to", "pb"], 8,
                            r"-o .*d: directory exists and holds files tfopt did not write \(notes\.txt\).*--overwrite"),
    "convert-onto-file": (["convert", SM, "-o", "afile", "--to", "pb"], 8, r"afile: is an existing file"),
    "convert-junit-in-input": (["convert", SM, "-o", "out", "--to", "pb", "--junit", SM + "/j.xml"], 2,
                               r"--junit .*j\.xml: would overwrite the input model"),
    "convert-calibration-is-output": (["convert", SM, "-o", "d", "--to", "pb", "--calibration", "d/notes.txt"], 2,
                                      r"-o .*d: would overwrite the input model .*notes\.txt"),
    "freeze-foreign-dir": (["freeze", SM, "-o", "d"], 8, r"holds files tfopt did not write.*--overwrite"),
    "freeze-pb-onto-dir": (["freeze", SM, "-o", "dir.pb"], 8, r"dir\.pb: is a directory"),
    "freeze-into-parent": (["freeze", SM, "-o", "proj", "--output-format", "savedmodel"], 2, r"would overwrite the input"),
    "optimize-inside-input": (["optimize", SM, "-o", SM + "/variables/o.pb"], 2, r"would overwrite the input model"),
    "verify-report-dir-is-reference": (["verify", "x.pb", "--reference", SM, "--report-dir", SM], 2,
                                       r"--report-dir .*sm: would overwrite the input model"),
    "verify-report-dir-foreign-report": (["verify", "x.pb", "--reference", SM, "--report-dir", "r"], 8,
                                        r"--report-dir r: report\.md exists and tfopt did not write it.*--overwrite"),
    # before loading: the model path does not exist, yet the output is what is reported
    "checked-before-loading": (["convert", "proj/nope", "-o", "d", "--to", "pb"], 8, r"tfopt did not write"),
}


@pytest.mark.parametrize("case", REFUSED.values(), ids=REFUSED.keys())
def test_refused_outputs_touch_nothing(case, proj, capsys, monkeypatch):
    argv, code, message = case
    monkeypatch.chdir(proj)
    before = digest(str(proj))
    got, _, err = run(capsys, *argv)
    assert got == code, err
    assert err.count("\n") == 1 and re.search(message, err), err
    assert digest(str(proj)) == before  # input, notes.txt, everything: byte for byte
    assert (proj / "d" / "notes.txt").read_text() == "hi\n"
    assert not os.path.exists(proj / "out") and not debris(proj)


def test_overwrite_replaces_a_foreign_directory(proj, capsys, monkeypatch):
    monkeypatch.chdir(proj)
    code, _, err = run(capsys, "convert", SM, "-o", "d", "--to", "pb", "--overwrite")
    assert code == 0, err
    assert sorted(os.listdir(proj / "d")) == ["manifest.json", "model.pb", "report.html", "report.json", "report.md"]
    assert not debris(proj)


@pytest.mark.parametrize("argv", [["convert", SM, "-o", "out", "--to", "pb,savedmodel"], ["freeze", SM, "-o", "out"],
                                  ["freeze", SM, "-o", "out.pb"]], ids=["convert-dir", "freeze-savedmodel", "freeze-pb"])
def test_tfopts_own_output_is_replaced(argv, proj, capsys, monkeypatch):
    """A second run over the first one's output is normal use: no --overwrite needed."""
    monkeypatch.chdir(proj)
    before = digest(SM)
    for _ in range(2):
        code, _, err = run(capsys, *argv)
        assert code == 0, err
    assert digest(SM) == before and not debris(proj)


def test_api_refuses_like_the_cli(proj):
    model = tfopt.load(str(proj / SM))
    with pytest.raises(tfopt.OutputPathError, match="tfopt did not write"):
        tfopt.convert(model, str(proj / "d"), to=["pb"])
    with pytest.raises(tfopt.OptionError, match="would overwrite the input model"):
        tfopt.convert(str(proj / SM), str(proj / "proj"), to=["pb"])
    from tfopt.conversion.pipeline import save_model

    frozen, _ = tfopt.freeze(model)
    with pytest.raises(tfopt.OptionError, match="would overwrite the input model"):
        save_model(frozen, str(proj / SM / "frozen.pb"))
    with pytest.raises(tfopt.OutputPathError, match="--overwrite"):
        save_model(frozen, str(proj / "d"))
    assert (proj / "d" / "notes.txt").exists()


def test_stale_temp_dirs_of_dead_runs_are_removed(proj, capsys, monkeypatch):
    """Only tfopt's `.NAME.tmp-PID-*`, only when PID is gone; a previous output caught between the
    two renames (NAME.old inside) is put back first."""
    monkeypatch.chdir(proj)
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = proj / f".out.tmp-{dead.pid}-abc"
    (stale / "out.old").mkdir(parents=True)
    (stale / "out.old" / "manifest.json").write_text('{"tools": {"tfopt": "0"}}')
    alive = proj / f".out.tmp-{os.getppid()}-xyz"
    alive.mkdir()
    other = proj / ".out.tmp-notapid"
    other.mkdir()
    code, _, err = run(capsys, "convert", SM, "-o", "out", "--to", "pb")
    assert code == 0, err
    assert not stale.exists() and alive.exists() and other.exists()
    assert os.path.exists(proj / "out" / "model.pb")


@pytest.fixture
def tiny_disk(tmp_path):
    """A 200 kB tmpfs (needs root and mount rights; skipped otherwise)."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(mnt)], capture_output=True)
    if result.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.decode().strip()}")
    yield mnt
    subprocess.run(["umount", str(mnt)], check=True)


@pytest.mark.parametrize("target", ["pb", "savedmodel"])
def test_full_disk_is_exit_8_with_nothing_written(target, tiny_disk, tmp_path, capsys):
    big = build_savedmodel(str(tmp_path / "big"), width=40_000)  # 480 kB of weights > 200 kB disk
    code, _, err = run(capsys, "convert", big, "-o", tiny_disk / "out", "--to", target)
    assert code == 8, err
    assert re.search(r"out: cannot write \((no space left on the device|No space left on device)\)", err), err
    assert os.listdir(tiny_disk) == []



FLEET_REFUSED = {
    "outroot-inside-input": (["-o", "proj/sm/fleet"], r"tiny: -o .*fleet/tiny: would overwrite the input model|"
                                                      r"tiny: -o .*proj/sm/fleet: would overwrite the input model"),
    "outdir-not-tfopts": (["-o", "."], r"tiny: -o .*/tiny: directory exists and holds files tfopt did not write"),
}


@pytest.mark.parametrize("case", FLEET_REFUSED.values(), ids=FLEET_REFUSED.keys())
def test_fleet_script_checks_every_output_first(case, proj):
    """The fleet script refuses like the CLI, for every model, before converting any (exit 2)."""
    import sys

    (proj / "fleet.yaml").write_text("models:\n  - name: tiny\n    path: proj/sm\n    to: pb\n")
    (proj / "tiny").mkdir()
    (proj / "tiny" / "notes.txt").write_text("mine\n")
    before = digest(str(proj))
    script = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "scripts", "convert_fleet.py")
    result = subprocess.run([sys.executable, script, "fleet.yaml", *case[0]], cwd=proj, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 2, result.stdout + result.stderr
    assert re.search(case[1], result.stderr), result.stderr
    assert digest(str(proj)) == before and not os.path.exists(proj / "proj" / "sm" / "fleet")
