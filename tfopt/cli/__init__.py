"""``tfopt`` command line: one module per command, each a thin layer over the public API.

Only ``argparse`` and tfopt's error types are imported at start-up; each command imports what it
needs, so ``tfopt --help`` and ``tfopt inspect model.pb`` never pay for TensorFlow's import.
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from collections.abc import Sequence
from typing import NoReturn

from tfopt.cli import convert, debug, fleet, freeze, inspect, verify
from tfopt.cli.args import EPILOG, parse_inputs, parse_set
from tfopt.errors import GateFailure, TfoptError
from tfopt.terminal import signals

__all__ = ["build_parser", "main", "parse_inputs", "parse_set"]


def build_parser() -> argparse.ArgumentParser:
    from tfopt._version import __version__

    parser = argparse.ArgumentParser(prog="tfopt", description="Freeze, optimize and verify TensorFlow models.",
                                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"tfopt {__version__}")
    _output_options(parser, None)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    inspect.add_parser(sub)
    freeze.add_parser(sub, "freeze")
    convert.add_parser(sub)
    verify.add_parser(sub)
    freeze.add_parser(sub, "optimize")
    fleet.add_parser(sub)
    debug.add_parser(sub)
    for command in sub.choices.values():  # also after the command: `tfopt convert ... --log run.log`
        _output_options(command, argparse.SUPPRESS)
    return parser


def _output_options(p: argparse.ArgumentParser, default: object) -> None:
    """Global options; a subcommand's copy defaults to SUPPRESS so it never resets the global one."""
    g = p.add_argument_group("output")
    g.add_argument("--debug", action="store_true", default=default if default else False,
                   help="show tracebacks and debug logs (implies --verbose)")
    g.add_argument("-v", "--verbose", action="store_true", default=default if default else False,
                   help="also show what TensorFlow and the converters print (captured, hidden by default)")
    g.add_argument("--log", metavar="FILE", default=default,
                   help="append everything the converters print to FILE, by stage")


COMMANDS = {"inspect": inspect.run, "freeze": freeze.run, "optimize": freeze.run, "convert": convert.run,
            "verify": verify.run, "fleet": fleet.run, "debug": debug.run}


def _with_child_hash_seed() -> None:
    """The ``tfopt convert`` process, started without ``PYTHONHASHSEED``, runs again (the same
    command, same process id) with the tf2onnx child's seed, so that its child can be a fork of it
    instead of a second TensorFlow import (:mod:`tfopt.emitters.onnx_worker`). A seed the user
    set is kept (the child is then a new process): the files are the same either way."""
    import os

    from tfopt.emitters.onnx_worker import HASH_SEED

    if "PYTHONHASHSEED" in os.environ or not hasattr(os, "execv") or not getattr(sys, "orig_argv", None):
        return
    os.environ["PYTHONHASHSEED"] = HASH_SEED
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if argv is None and args.command == "convert":
        _with_child_hash_seed()
        _exit_now(_run(args, argv))
    return _run(args, argv)


def _exit_now(code: int) -> NoReturn:
    """End the ``tfopt convert`` process once its command returned: the exit handlers run and the
    streams are flushed, then the process exits without the interpreter's teardown of every module
    it imported (TensorFlow, OpenVINO, ONNX Runtime: measured 1 to 4 s of a 2-core machine after
    the last file was written). Every file is closed by then (written atomically), the tf2onnx
    child has ended, and the exit code is the command's."""
    import atexit
    import contextlib
    import os

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing more to say
            stream.flush()
    os._exit(code)


def _run(args: argparse.Namespace, argv: Sequence[str] | None) -> int:
    # Converters log advice and deprecations at WARNING; the user sees tfopt's own messages only.
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.ERROR, format="%(name)s: %(message)s")
    logging.getLogger("tfopt").setLevel(logging.DEBUG if args.debug else logging.INFO if args.verbose else logging.WARNING)
    from tfopt.terminal.capture import Capture, print_captured_tail

    try:
        args.capture = Capture(verbose=args.verbose or args.debug, log=args.log)
    except OSError as exc:
        print(f"tfopt: error: --log {args.log}: {exc.strerror}", file=sys.stderr)
        return 2
    # SIGINT/SIGTERM stop the run at a safe point, never inside a finaliser (see tfopt.terminal.signals).
    with signals.handle_signals(restore=argv is not None):  # argv None: the tfopt process itself
        try:
            code = COMMANDS[args.command](args)
            if signals.received():  # too late to stop: the output is in place, but say so and exit 130/143
                print(f"tfopt: interrupted ({signals.name(signals.received())}) after the output was written",
                      file=sys.stderr)
                return 128 + signals.received()
            return code
        except TfoptError as exc:
            if signals.received() and not isinstance(exc, signals.Interrupted):
                exc = signals.Interrupted(signals.received())  # the interrupt, not what it broke, is the cause
            interrupted = isinstance(exc, signals.Interrupted)
            if args.debug and not interrupted:  # the traceback, and still the exit code CI reads
                traceback.print_exc(file=sys.stderr)
            print(f"tfopt: {'' if interrupted else 'error: '}{exc}", file=sys.stderr)
            if not interrupted and exc.exit_code != GateFailure.exit_code:  # a tripped gate is a verdict
                print_captured_tail(exc, sys.stderr)
            return exc.exit_code
        except KeyboardInterrupt:  # no handler installed (not the main thread)
            print("tfopt: interrupted", file=sys.stderr)
            return 130
        except Exception as exc:  # the last line of defence: one line, not a traceback
            if signals.received():
                print(f"tfopt: {signals.Interrupted(signals.received())}", file=sys.stderr)
                return 128 + signals.received()
            if args.debug:
                traceback.print_exc(file=sys.stderr)
            print(f"tfopt: internal error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''} "
                  "(rerun with --debug for the traceback, and please report it)", file=sys.stderr)
            print_captured_tail(exc, sys.stderr)
            return 1
        finally:
            args.capture.close()


if __name__ == "__main__":
    sys.exit(main())
