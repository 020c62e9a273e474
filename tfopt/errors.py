"""Typed errors. Every error names what is at fault and says what to do.

Exit codes are part of the CLI contract (documented in the README):

====  ======================  =====================================================
code  class                   meaning
====  ======================  =====================================================
1     TfoptError              unexpected internal failure (report it)
2     OptionError             a command-line option or API argument is wrong
3     ModelNotFoundError      the model path does not exist / holds no model
4     ModelFormatError        the model file is corrupt, truncated or incomplete
5     UnsafeModelError        the model needs code execution that was not allowed
6     GraphError              the graph cannot be frozen as asked (names a node)
7     VerificationError       the frozen model's outputs differ from the original (or the
                              original is stochastic: ``StochasticModelError`` names its random ops;
                              ill-conditioned on made-up inputs: ``IllConditionedError``; or a run did not end in
                              its bound: ``VerificationTimeoutError``)
8     OutputPathError         the output location cannot be written
9     ConversionError         a target converter cannot express the model (names the op)
10    GateFailure             a ``--fail-if`` gate tripped (the artifacts and report are written)
11    (partial result)        some targets failed; the others are written and verified, and
                              ``manifest.json``/``report.json`` list each failure (``"failed"``)
====  ======================  =====================================================

Code 11 is no exception: :func:`tfopt.convert` returns the result (``result.failed``) and the CLI
exits with :data:`PARTIAL_EXIT_CODE` (see :mod:`tfopt.conversion.stages`).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

PARTIAL_EXIT_CODE = 11  # some targets written and verified, others failed (each listed with its reason)


class TfoptError(Exception):
    """Base class. ``exit_code`` is what the CLI exits with."""

    exit_code = 1


class OptionError(TfoptError):
    exit_code = 2


class OutputMismatchError(OptionError):
    """``tfopt verify --reference MODEL``: the reference does not answer the conversion's outputs."""


class TargetError(OptionError):
    """:func:`tfopt.targets.register_target`: a target record that cannot be added (its name is
    taken, a role it needs is missing or malformed); the message names the record and each fault."""


class ModelNotFoundError(TfoptError):
    exit_code = 3


class ModelFormatError(TfoptError):
    exit_code = 4


class UnregisteredOpError(ModelFormatError):
    """The model uses an op this TensorFlow does not have (a custom op registered by a library its writer
    imported): the message names the file, the node, the op and ``--custom-objects``; ``op``, ``node``: those
    (``node`` empty where no graph at hand holds it). :mod:`tfopt.loaders.registered_ops` raises it."""

    def __init__(self, message: str, *, op: str = "", node: str = ""):
        super().__init__(message)
        self.op, self.node = op, node


class LambdaCodeError(ModelFormatError):
    """A Keras Lambda layer stores its Python function as bytecode this Python cannot rebuild
    (marshalled by another Python version); names every such layer and how to supply the function."""


class UnsafeModelError(TfoptError):
    exit_code = 5


class StoreFormatError(ModelFormatError):
    """A stored state (:mod:`tfopt.conversion.store_format`: a fleet cache entry) is malformed, of another format
    version, or holds what tfopt never writes (a pickle, an object array, an unknown class)."""


class GraphError(TfoptError):
    exit_code = 6


class StatefulModelError(GraphError):
    """The model's outputs read a variable its own call writes (a counter, a running statistic): a frozen
    graph holds one value of it and would answer differently. ``variables`` names each such variable."""

    def __init__(self, message: str, variables: Iterable[str] = ()):
        super().__init__(message)
        self.variables = list(variables)


class VerificationError(TfoptError):
    exit_code = 7


class StochasticModelError(VerificationError):
    """The original model draws random numbers: two runs on the same inputs differ, so nothing can be
    verified against it. ``random_ops`` names the random ops the outputs depend on."""

    def __init__(self, message: str, random_ops: Iterable[str] = ()):
        super().__init__(message)
        self.random_ops = list(random_ops)


class VerificationTimeoutError(VerificationError):
    """A run verification made did not end within its time bound (``--verify-timeout``): an artifact in its
    runtime (``tfopt convert`` records that target as failed and goes on) or the original model on its
    verification inputs. The message names what ran, the runtime, the bound and the way out."""


class MadeUpInputsError(VerificationError):
    """Nothing was compared: the original model gives no usable output on the inputs tfopt makes up, or
    tfopt cannot make an input fit what the graph does with it (values only the data can satisfy: ragged
    row lengths that must add up to a count the graph computes, a string format). Not a mismatch of any
    artifact; real inputs (``--calibration``/``--eval-data``) verify it."""


class IllConditionedError(VerificationError):
    """The original model disagrees with itself on made-up inputs (a batch vs its rows one at a time)
    about as much as an artifact differs from it, at every scale tried: nothing can be verified on
    them (:mod:`tfopt.verification.conditioning`). ``gap``: its self-disagreement (the bound's units)."""

    def __init__(self, message: str, gap: float = 0.0):
        super().__init__(message)
        self.gap = gap


class OutputPathError(TfoptError):
    exit_code = 8


class ConversionError(TfoptError):
    exit_code = 9


class ProtobufLimitError(ConversionError):
    """A form that needs the whole model in one protobuf asked of a model whose tensors are kept
    outside the graph (:mod:`tfopt.external`; a protobuf stops at 2 GB): a single GraphDef (``.pb``),
    or a precision a target's large-model form cannot write. The message offers what can."""


class ConverterCrashError(ConversionError):
    """A converter run in a child process (:func:`tfopt.emitters.large.run_converter_child`) was killed by a
    signal: a crash in its native code. ``signal_name`` (``SIGSEGV``...); the message names the target and
    precision, the likely cause when known and the fix. In ``tfopt convert`` that target fails alone."""

    def __init__(self, message: str, *, signal_name: str = "") -> None:
        super().__init__(message)
        self.signal_name = signal_name


class TensorPairingError(ConversionError):
    """A runtime runner cannot pair an artifact's inputs/outputs with the model's by name."""


class GateFailure(TfoptError):
    """A ``--fail-if`` gate tripped. Everything was written first: ``report`` is the report the gates
    read, ``result`` the :class:`~tfopt.conversion.convert.ConvertResult` (``tfopt convert`` only)."""

    exit_code = 10

    def __init__(self, message: str, *, report: dict[str, Any], result: Any = None):
        super().__init__(message)
        self.report: dict[str, Any] = report
        self.result: Any = result


def did_you_mean(name: str, candidates: Iterable[str], n: int = 3) -> str:
    """Return ``" Did you mean: a, b?"`` for the closest candidates, or ``""``."""
    close = difflib.get_close_matches(name, list(candidates), n=n, cutoff=0.5)
    return f" Did you mean: {', '.join(close)}?" if close else ""


def one_line(exc: BaseException, limit: int = 300) -> str:
    """``exc``'s message with its white space folded into single spaces, at most ``limit`` characters: how a
    message quotes the error that caused it (a converter's or a runtime's, often many lines long)."""
    return " ".join(str(exc).split())[:limit]


STAGES = ("loading", "freezing", "optimizing", "converting", "running", "verifying")


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Name the pipeline stage in every error raised inside: ``freezing: placeholder 'x' ...``.

    ``name`` starts with one of :data:`STAGES` (``"converting to onnx int8"``). The class, exit
    code and attributes stay; a message that already names a stage is left alone, and so is an
    :class:`OptionError`, which names the option at fault whatever stage found it, and an error
    whose class sets ``names_stage = False`` (an interrupt: the user stopped the run, no stage failed).
    """
    try:
        yield
    except TfoptError as exc:
        message = exc.args[0] if exc.args and isinstance(exc.args[0], str) else None
        if message is not None and not isinstance(exc, OptionError) and getattr(exc, "names_stage", True) \
                and not message.startswith(STAGES):
            exc.args = (f"{name}: {message}", *exc.args[1:])
        raise
