"""The options of every stage, as typed objects, and the one map from flat keywords to them.

:class:`ConvertOptions` composes one object per stage (load, freeze, optimize, compress,
quantize, report). The CLI builds each from its own argument group; :func:`tfopt.convert` takes
the object, or keyword arguments that build the same object (:meth:`ConvertOptions.from_kwargs`);
the fleet manifest is checked against the same names. A keyword that is no option is an
:class:`~tfopt.errors.OptionError` naming it and the closest valid one.

Flat names are each field's name, plus the aliases in :data:`ALIASES` (the CLI's ``--set`` is the
field ``set``; ``set_values`` and ``format`` are older internal names). Tolerances default to
:mod:`tfopt.verification.tolerances`. Nothing here imports TensorFlow.

Each object's ``check()`` refuses a value outside its option's range (:data:`tfopt._checks.RANGES`,
the one statement of each rule, with the one message): the entry points call it once, before any
work, and the CLI's argument types only parse.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tfopt._checks import check_metric, check_ranges
from tfopt.errors import OptionError, did_you_mean
from tfopt.verification.tolerances import FREEZE_ATOL, FREEZE_RTOL, OPTIMIZE_ATOL, OPTIMIZE_RTOL


@dataclass
class LoadOptions:
    """How to read the model (each loader ignores what does not apply to it).

    Attributes:
        signature: SavedModel signature key.
        tags: SavedModel MetaGraph tags (``None``: the loader's default, ``serve``).
        outputs: output node/tensor names for graphs without a signature (TF1, GraphDef).
        unsafe: allow Keras Lambda layers / arbitrary code in the model file.
        custom_objects: module imported before the model loads (what it registers: ops, types, Keras objects).
        model_fn: ``package.module:fn`` building the model for a TF2 object checkpoint.
        input_format: skip detection (``savedmodel``, ``keras``, ``tf1-checkpoint``...).
        compress: a :class:`tfopt.loaders.compressing.Compression` applied to a Keras 2 model before
            freezing (built from :class:`CompressOptions` by ``convert``); other sources refuse it.
        external_threshold: variables of at least this many bytes stay outside the GraphDef when
            it is frozen (memory-mapped files: :mod:`tfopt.external`); ``None``: 1 GiB, plus the
            largest others until the GraphDef holds at most 1 GiB (a protobuf stops at 2 GB).
    """

    signature: str = "serving_default"
    tags: list[str] | None = None
    outputs: list[str] = field(default_factory=list)
    unsafe: bool = False
    custom_objects: str | None = None
    model_fn: str | None = None
    input_format: str | None = None
    compress: Any = None
    external_threshold: int | None = None

    def check(self) -> None:
        check_ranges({"--external-threshold": self.external_threshold})


@dataclass
class FreezeOptions:
    """What freezing binds, and how it is verified against the original model.

    Attributes:
        set: placeholder name -> value (strings are parsed by the placeholder's dtype).
        inputs: input name -> shape (``None`` keeps the graph's); when given, the only inputs.
        verify: run original and result on the same inputs; raise when they differ.
        verify_shape: input name -> the concrete shape to verify at (the result keeps its
            dynamic dimensions).
        atol, rtol: the freeze check's tolerances (:mod:`tfopt.verification.tolerances`).
        verify_timeout: seconds one verification run (the original model's, an artifact's in its runtime)
            may take, and one run of the native keep-float search; ``None``: derived from the original's own time (:mod:`tfopt.verification.deadline`);
            ``0``: no bound.
    """

    set: Mapping[str, Any] = field(default_factory=dict)
    inputs: Mapping[str, Sequence[int | None] | None] = field(default_factory=dict)
    verify: bool = True
    verify_shape: Mapping[str, Sequence[int]] = field(default_factory=dict)
    atol: float = FREEZE_ATOL
    rtol: float = FREEZE_RTOL
    verify_timeout: float | None = None

    def check(self) -> None:
        check_ranges({"--atol": self.atol, "--rtol": self.rtol, "--verify-timeout": self.verify_timeout})


@dataclass
class OptimizeOptions:
    """Which passes run (see :mod:`tfopt.passes.optimizing`) and the optimize check's tolerances."""

    passes: str | Sequence[str] = "default"
    skip: Sequence[str] = ()
    grappler: Sequence[str] | None = None
    atol: float = OPTIMIZE_ATOL
    rtol: float = OPTIMIZE_RTOL

    def check(self) -> None:
        check_ranges({"--atol": self.atol, "--rtol": self.rtol})


CLUSTER_INITS = ("kmeans++", "linear", "density", "random")  # TFMOT's centroid initialisations


@dataclass
class CompressOptions:
    """TFMOT clustering/pruning of a Keras 2 model before freezing (see :mod:`tfopt.loaders.compressing`)."""

    cluster: int | None = None
    cluster_init: str = "kmeans++"
    prune: float | None = None
    exclude: Sequence[str] = ()
    finetune_data: str | None = None
    finetune_epochs: int = 2

    def check(self) -> None:
        check_ranges({"--cluster": self.cluster, "--finetune-epochs": self.finetune_epochs})
        if self.cluster_init not in CLUSTER_INITS:
            raise OptionError(f"--cluster-init {self.cluster_init}: choose from {', '.join(CLUSTER_INITS)}")
        if self.prune is not None and not 0.0 < self.prune < 1.0:
            raise OptionError(f"--prune {self.prune}: sparsity is a fraction in (0, 1), e.g. 0.5")


@dataclass
class QuantizeOptions:
    """What to build, and how each target quantizes (see :func:`tfopt.conversion.convert.convert`).

    Attributes:
        to: target names (``None``: every target whose extra is installed).
        quantize: precisions (:class:`tfopt.targets.Precision` values; ``none`` = ``fp32``).
        calibration: ``.npz``/``.npy``/``.tfrecord``/image directory/``module:fn``.
        calibration_samples: samples read from it.
        mean, scale: image calibration: ``(pixel - mean) / scale``.
        int8_io: TFLite int8: integer inputs and outputs.
        allow_tf_ops: TFLite: keep unsupported ops as Select TF ops.
        opset: ONNX opset (``None``: tfopt's default).
        ov_preprocess: :class:`tfopt.emitters.openvino.Preprocess` baked into OpenVINO IRs.
        accuracy_control: OpenVINO int8 through NNCF accuracy control: the largest top-1 drop.
        keep_float: layers int8 artifacts keep in float.
        auto_keep_float: keep the worst layers in float until the drop is within this many points.
        quantizer: ``tfopt`` (int8 decided once in the TF graph, :mod:`tfopt.quantizing.engine.quantize`) or
            ``native`` (each converter's own post-training quantization).
        int8_recipe: the engine's recipe (``mse+equalize+bias_correction``...), or ``auto`` to
            search the candidates per target (:mod:`tfopt.quantizing.engine.plan`).
        calibration_method: ``minmax``, ``percentile[:P]``, ``entropy`` or ``mse`` (overrides the recipe's).
        per_tensor: one weight range per tensor instead of per output channel (for accelerators).
        adaround_budget: seconds AdaRound may spend (a recipe with ``+adaround``).
        all_or_nothing: a target that fails fails the run and nothing is written; by default the
            others are written and verified and the failure is recorded (``result.failed``).
    """

    to: Sequence[str] | None = None
    quantize: Sequence[str] = ("fp32",)
    calibration: str | None = None
    calibration_samples: int = 100
    mean: Sequence[float] = (0.0,)
    scale: Sequence[float] = (1.0,)
    int8_io: bool = False
    allow_tf_ops: bool = False
    opset: int | None = None
    ov_preprocess: Any = None
    accuracy_control: float | None = None
    keep_float: Sequence[str] = ()
    auto_keep_float: float | None = None
    quantizer: str = "tfopt"
    int8_recipe: str | None = None
    calibration_method: str | None = None
    per_tensor: bool = False
    adaround_budget: float | None = None
    all_or_nothing: bool = False

    def check(self) -> None:
        check_ranges({"--calibration-samples": self.calibration_samples, "--opset": self.opset,
                      "--accuracy-control": self.accuracy_control, "--auto-keep-float": self.auto_keep_float,
                      "--adaround-budget": self.adaround_budget})


@dataclass
class ReportOptions:
    """What the report measures and which gates it applies (see :mod:`tfopt.report`).

    Attributes:
        eval_data: ``.npz`` of inputs by name plus ``labels``: accuracy in the report.
        metric: ``module:fn`` scoring ``fn(first_output, labels) -> float``, higher is better.
        fail_if: gates (:mod:`tfopt.report.gates`); ``junit`` writes them as XML.
        report_runs: timed runs per artifact; ``threads``: threads for every runtime.
        allow_nonfinite: accept NaN/Inf in calibration/eval data (else an OptionError).
        seed: seeds made-up inputs (verification and the report).
    """

    eval_data: str | None = None
    metric: str | None = None
    fail_if: Sequence[str] = ()
    junit: str | None = None
    report_runs: int = 20
    threads: int | None = None
    allow_nonfinite: bool = False
    seed: int = 0

    def check(self) -> None:
        check_ranges({"--report-runs": self.report_runs, "--threads": self.threads})
        check_metric(self.metric, self.eval_data)


@dataclass
class ConvertOptions:
    """Every option of ``tfopt convert``, one object per stage, plus the output rule's ``overwrite``."""

    load: LoadOptions = field(default_factory=LoadOptions)
    freeze: FreezeOptions = field(default_factory=FreezeOptions)
    optimize: OptimizeOptions = field(default_factory=OptimizeOptions)
    compress: CompressOptions = field(default_factory=CompressOptions)
    quantize: QuantizeOptions = field(default_factory=QuantizeOptions)
    report: ReportOptions = field(default_factory=ReportOptions)
    overwrite: bool = False

    @classmethod
    def from_kwargs(cls, base: ConvertOptions | None = None, **kwargs: Any) -> ConvertOptions:
        """``base`` (default: all defaults) with each flat keyword set on its stage's object.

        Raises:
            OptionError: a keyword that is no option (naming the closest), or one given twice
                under two names (``set`` and ``set_values``).
        """
        groups = {name: dataclasses.replace(getattr(base or cls(), name)) for name in GROUPS}
        overwrite = base.overwrite if base is not None else False
        seen: dict[tuple[str, str], str] = {}
        for key, value in kwargs.items():
            if key == "overwrite":
                overwrite = bool(value)
                continue
            where = flat_field(key)
            if where in seen:
                raise OptionError(f"give '{seen[where]}' or '{key}', not both (they are the same option)")
            seen[where] = key
            setattr(groups[where[0]], where[1], value)
        return cls(**groups, overwrite=overwrite)

    def check(self) -> None:
        """Every stage's :meth:`check`."""
        for name in GROUPS:
            getattr(self, name).check()


GROUPS = {"load": LoadOptions, "freeze": FreezeOptions, "optimize": OptimizeOptions, "compress": CompressOptions,
          "quantize": QuantizeOptions, "report": ReportOptions}
# Other names for a field: the CLI's and older internal ones. atol/rtol are freezing's (the first
# check); the optimize check's are opt_atol/opt_rtol.
ALIASES = {"set_values": ("freeze", "set"), "format": ("load", "input_format"), "opt_atol": ("optimize", "atol"),
           "opt_rtol": ("optimize", "rtol")}
_SHADOWED = {("optimize", "atol"), ("optimize", "rtol")}  # reached by their alias only


def flat_names() -> dict[str, tuple[str, str]]:
    """Every flat keyword -> ``(stage, field)`` (``overwrite`` -> ``("", "overwrite")``)."""
    names: dict[str, tuple[str, str]] = {}
    for group, cls in GROUPS.items():
        for f in dataclasses.fields(cls):
            if (group, f.name) not in _SHADOWED:
                names.setdefault(f.name, (group, f.name))
    return {**names, **ALIASES, "overwrite": ("", "overwrite")}


def flat_field(key: str) -> tuple[str, str]:
    """``(stage, field)`` of a flat keyword; an :class:`OptionError` naming the closest otherwise."""
    names = flat_names()
    try:
        return names[key]
    except KeyError:
        raise OptionError(f"unknown option '{key}'.{did_you_mean(key, names)}") from None


def split(kwargs: Mapping[str, Any], *groups: str) -> tuple[Any, ...]:
    """One object per named stage, built from the flat ``kwargs``; a keyword of another stage is an error."""
    options = ConvertOptions.from_kwargs(**kwargs)
    for key in kwargs:
        if flat_field(key)[0] not in groups:
            allowed = sorted(k for k, (g, _) in flat_names().items() if g in groups)
            raise OptionError(f"'{key}' is not an option here; these are: {', '.join(allowed)}")
    return tuple(getattr(options, g) for g in groups)
