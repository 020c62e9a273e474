"""Real signals on a real `python -m tfopt convert` (tfopt/terminal/signals.py): SIGINT exits 130 and SIGTERM
143, wherever they land; the previous OUTDIR is left byte for byte; no temp dir is left; a
SIGKILLed run's temp dir goes with the next run; two runs give byte-identical artifacts."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest

from tests.conversion.test_output_paths import build_savedmodel
from tfopt import cli
from tfopt._io import digest

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
TARGETS = "pb,savedmodel"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Run:
    """`tfopt convert MODEL -o OUT` in a subprocess, its stderr collected line by line."""

    def __init__(self, cwd: str, out: str = "out", env: dict[str, str] | None = None):
        environ = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
        self.proc = subprocess.Popen([sys.executable, "-m", "tfopt", "convert", "sm", "-o", out, "--to", TARGETS],
                                     cwd=cwd, env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.reader = threading.Thread(target=lambda: self.lines.extend(self.proc.stderr), daemon=True)
        self.reader.start()

    def wait_for(self, marker: str, timeout: float = 300) -> None:
        end = time.monotonic() + timeout
        while not any(marker in line for line in self.lines):
            assert self.proc.poll() is None, f"exited {self.proc.returncode} before {marker!r}: {self.lines[-5:]}"
            assert time.monotonic() < end, f"no {marker!r} in {timeout} s"
            time.sleep(0.01)

    def finish(self) -> tuple[int, str]:
        code = self.proc.wait(timeout=300)
        self.reader.join(timeout=10)
        return code, "".join(self.lines)


def debris(root: str) -> list[str]:
    return glob.glob(os.path.join(root, "**", ".*.tmp-*"), recursive=True)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    """A model and a finished OUTDIR from a first subprocess run (the 'previous output')."""
    root = tmp_path_factory.mktemp("signals")
    build_savedmodel(str(root / "sm"), width=64)
    run = Run(str(root))
    code, err = run.finish()
    assert code == 0, err
    return str(root)


@pytest.fixture
def work(first_run, tmp_path):
    """A copy of the model and the previous OUTDIR, plus their digests."""
    for name in ("sm", "out"):
        shutil.copytree(os.path.join(first_run, name), tmp_path / name, symlinks=True)
    return str(tmp_path), {name: digest(str(tmp_path / name)) for name in ("sm", "out")}


def interrupt(work, signum: int, marker: str, delay: float = 0.0, repeat: int = 1) -> tuple[int, str, float, bool]:
    """Send ``signum`` (``repeat`` times) ``delay`` s after ``marker``; returns the exit code, stderr,
    seconds from the signal to the exit, and whether the previous OUTDIR was replaced."""
    root, before = work
    inode = os.stat(os.path.join(root, "out")).st_ino
    run = Run(root)
    run.wait_for(marker)
    time.sleep(delay)
    for _ in range(repeat):
        run.proc.send_signal(signum)
        time.sleep(0.001)
    sent = time.monotonic()
    code, err = run.finish()
    replaced = os.stat(os.path.join(root, "out")).st_ino != inode
    assert digest(os.path.join(root, "sm")) == before["sm"], "the input changed"
    assert replaced or digest(os.path.join(root, "out")) == before["out"], "the previous OUTDIR changed in place"
    assert not debris(root), debris(root)
    return code, err, time.monotonic() - sent, replaced


CASES = {
    # id: (signal, progress line to wait for, seconds after it)
    "sigint-while-emitting": (signal.SIGINT, "... savedmodel fp32", 0.0),
}
SLOW_CASES = {
    f"{sig.name.lower()}-{label}-{delay}s-{rep}": (sig, marker, delay)
    for sig in (signal.SIGINT, signal.SIGTERM)
    for label, marker in (("load", "loading, freezing"), ("emit", "... pb fp32"), ("measure", "measuring every"))
    for delay in (0.0, 0.3)
    for rep in range(2)
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_signal_stops_the_run_and_leaves_the_previous_outdir(case, work):
    signum, marker, delay = case
    code, err, _, replaced = interrupt(work, signum, marker, delay)
    assert code == 128 + signum, err
    assert f"tfopt: interrupted ({signal.Signals(signum).name}); the previous output" in err, err
    assert not replaced


@pytest.mark.slow
@pytest.mark.parametrize("case", SLOW_CASES.values(), ids=SLOW_CASES.keys())
def test_signal_anywhere(case, work):
    """A swallowed interrupt would show as exit 0 with the OUTDIR replaced. A signal that lands after
    the rename (the run was done) must say so, also while the process winds down, or die of it."""
    signum, marker, delay = case
    code, err, _, replaced = interrupt(work, signum, marker, delay)
    if not replaced:
        assert code == 128 + signum and "the previous output, if any, is left as it was" in err, err
    else:
        # late in interpreter shutdown Python has put the default handlers back: killed by the signal
        assert code == -signum or (code == 128 + signum and ("after the output was written" in err
                                                              or "while exiting" in err)), err


def handlers_installed(pid: int) -> bool:
    """tfopt's SIGTERM handler is in place (Linux: the caught-signals mask in /proc)."""
    with open(f"/proc/{pid}/status") as f:
        mask = next(int(line.split()[1], 16) for line in f if line.startswith("SigCgt:"))
    return bool(mask & (1 << (signal.SIGTERM - 1)))


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads the signal mask from /proc")
def test_second_signal_stops_at_once(work):
    """SIGTERM during the model load (seconds without a safe point), then again: the watchdog removes
    the temp dir and exits without waiting (a second signal sent at once would merge with the first)."""
    root, before = work
    run = Run(root)
    end = time.monotonic() + 300
    while not handlers_installed(run.proc.pid):
        assert run.proc.poll() is None and time.monotonic() < end, run.lines
        time.sleep(0.01)
    run.proc.send_signal(signal.SIGTERM)
    run.wait_for("stopping at the next safe point")
    run.proc.send_signal(signal.SIGTERM)
    code, err = run.finish()
    assert code == 143, err
    assert "stopped without waiting for a safe point" in err, err  # os._exit: no TensorFlow teardown either
    assert {name: digest(os.path.join(root, name)) for name in before} == before and not debris(root)


def test_killed_runs_temp_dir_is_removed_by_the_next_run(work, capsys, monkeypatch):
    root, before = work
    run = Run(root)
    run.wait_for("... pb fp32")
    run.proc.kill()
    run.finish()
    left = debris(root)
    assert [os.path.basename(p).split("-")[1] for p in left] == [str(run.proc.pid)], left
    monkeypatch.chdir(root)
    assert cli.main(["convert", "sm", "-o", "out", "--to", TARGETS, "--json"]) == 0, capsys.readouterr().err
    assert not debris(root)
    assert digest(os.path.join(root, "sm")) == before["sm"]


def test_two_runs_are_byte_identical(first_run, tmp_path):
    """Every artifact (the SavedModel's fingerprint.pb too) and manifest.json; report.* hold timings."""
    shutil.copytree(os.path.join(first_run, "sm"), tmp_path / "sm")
    code, err = Run(str(tmp_path), out="again").finish()
    assert code == 0, err
    first, again = os.path.join(first_run, "out"), str(tmp_path / "again")
    names = sorted(os.path.relpath(os.path.join(d, f), again) for d, _, fs in os.walk(again) for f in fs)
    assert "savedmodel/fingerprint.pb" in names and "manifest.json" in names
    for name in names:
        if not name.startswith("report."):
            assert digest(os.path.join(first, name)) == digest(os.path.join(again, name)), name


@pytest.mark.slow
def test_no_safe_point_within_the_grace_period_stops_at_once(work):
    """TFOPT_INTERRUPT_GRACE=0: the watchdog does not wait for the main thread (a long C++ stage)."""
    root, before = work
    run = Run(root, env={"TFOPT_INTERRUPT_GRACE": "0"})
    run.wait_for("loading, freezing")
    run.proc.send_signal(signal.SIGINT)
    code, err = run.finish()
    assert code == 130, err
    assert {name: digest(os.path.join(root, name)) for name in before} == before and not debris(root)


def test_main_restores_the_callers_signal_handlers(tmp_path, capsys):
    """In-process callers (tests, notebooks) get their handlers and wakeup fd back."""
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    assert cli.main(["convert", str(tmp_path / "nope"), "-o", str(tmp_path / "out")]) == 3, capsys.readouterr().err
    assert {s: signal.getsignal(s) for s in handlers} == handlers
    assert signal.set_wakeup_fd(-1) == -1
