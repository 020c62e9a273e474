"""Fleet progress: the line's text, one line per change off a terminal, one rewritten line on one."""

from __future__ import annotations

import io
from dataclasses import replace

from tfopt.fleet.progress import FleetProgress, ProgressPrinter

STEP = FleetProgress(models_total=24, models_done=3, models_failed=0, models_cached=1, tasks_total=96, tasks_done=17,
                     tasks_running=2, tasks_cached=40, tasks_failed=1, last="digits onnx int8 ok")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_line_text():
    assert str(STEP) == ("fleet: models 3/24 done (1 cached, 0 failed) · tasks 17/96 "
                         "(2 running, 40 cached, 1 failed) · digits onnx int8 ok")
    assert str(FleetProgress(models_total=2, tasks_total=6)).endswith("(0 running, 0 cached, 0 failed)")


def test_pipe_gets_one_line_per_change():
    out = io.StringIO()
    printer = ProgressPrinter(out)
    assert not printer.tty
    later = replace(STEP, tasks_done=18, last="digits tflite int8 ok")
    for step in (STEP, STEP, later):
        printer(step)
    printer.close()
    assert out.getvalue().splitlines() == [str(STEP), str(later)]
    assert "\r" not in out.getvalue() and "\x1b" not in out.getvalue()


def test_terminal_gets_one_rewritten_line():
    out = Terminal()
    with ProgressPrinter(out) as printer:
        assert printer.tty
        printer(STEP)
        printer(replace(STEP, models_done=4))
    text = out.getvalue()
    assert text.count("\r") == 2 and text.count("\n") == 1 and text.endswith("\n")
    assert text.split("\r")[-1].startswith("fleet: models 4/24 done")


def test_terminal_line_fits_the_width(monkeypatch):
    monkeypatch.setenv("COLUMNS", "40")
    out = Terminal()
    ProgressPrinter(out)(STEP)
    drawn = out.getvalue().removeprefix("\r").removesuffix("\x1b[K")
    assert len(drawn) == 39 and drawn.endswith("…")


def test_forced_mode_and_close_without_output():
    out = Terminal()
    printer = ProgressPrinter(out, tty=False)
    printer.close()
    printer(STEP)
    assert out.getvalue() == str(STEP) + "\n"
