"""What verification runs on: the data a user gave (:class:`VerifyData`) and the inputs every stage
is verified on (:class:`VerifyInputs`: their source, the made-up search's sizes, ties, value domains
and saturation rung, and the same inputs at a realistic size). :mod:`tfopt.verification.verify`
chooses them and compares outputs on them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tfopt.graph import TensorSpec
from tfopt.verification.feed_shapes import feed_shapes
from tfopt.verification.saturation import NORMAL, note, realistic_note, record, values_record
from tfopt.verification.testing import random_inputs


@dataclass(frozen=True)
class VerifyData:
    """Where verification inputs come from, in the order tried (see the module docstring).

    Attributes:
        eval_data: ``.npz`` of inputs by name (plus ``labels``, unused here), or a function of the input
            specs returning them read and checked (``convert`` reads each file once); ``eval_source``: its file.
        calibration: calibration samples (as :func:`tfopt.verification.calibration.load_calibration` returns),
            or a function of the input specs returning them (loaded once the frozen inputs are known).
        shapes: input name -> concrete shape (``--verify-shape NAME:1x10100x4``).
    """

    eval_data: str | Callable[[Sequence[TensorSpec]], Mapping[str, np.ndarray]] | None = None
    eval_source: str | None = None
    calibration: Sequence[Mapping[str, np.ndarray]] | Callable[[Sequence[TensorSpec]], Any] | None = None
    calibration_source: str | None = None
    shapes: Mapping[str, Sequence[int]] = field(default_factory=dict)


@dataclass
class VerifyInputs:
    """The inputs every stage is verified on, and where they came from."""

    feeds: dict[str, np.ndarray]
    source: str  # "eval-data", "calibration", "verify-shape" or "made up"
    tried: list[str] = field(default_factory=list)  # made-up shapes that gave no usable output
    realistic: VerifyInputs | None = None  # the same inputs at a realistic size, verified too
    size: int = 8  # the made-up size of the non-batch dimensions (integer lengths stay within it)
    ties: Any = None  # the search's DimTies (made-up inputs): products of dimensions are kept at other batches
    domains: dict[str, str] = field(default_factory=dict)  # input -> its made-up values' domain and why
    values: str = NORMAL  # the made-up floats' rung of tfopt.verification.saturation.LADDER
    saturated: dict[str, str] = field(default_factory=dict)  # outputs degenerate even at ``values``, and why
    saturated_before: dict[str, str] = field(default_factory=dict)  # outputs degenerate at standard normal
    saturated_fraction: dict[str, float] = field(default_factory=dict)  # output -> share saturated at ``values``
    # a stage's graph verified at a smaller made-up scale (the original ill-conditioned here): what -> its record
    conditioning: dict[str, dict[str, Any]] = field(default_factory=dict)  # (tfopt.verification.conditioning)
    one_row: str = ""  # made up at batch 1 because the original fails at every other batch tried, and why

    def sets(self) -> list[VerifyInputs]:
        """Every set of inputs to verify on: these, then the realistic size."""
        return [self] + ([self.realistic] if self.realistic is not None else [])

    def shapes(self) -> dict[str, list[int]]:
        return {k: list(np.shape(v)) for k, v in self.feeds.items()}

    def describe(self) -> str:
        """``input_1:1x10100x4, mask:1x10100``."""
        return feed_shapes(self.feeds)

    def with_batch(self, specs: Sequence[TensorSpec], batch: int, seed: int = 0, graph_def: Any = None) -> VerifyInputs:
        """Made-up inputs at the same non-batch dimensions with another batch size; given data as is.
        The batch is found from the shapes (:meth:`tfopt.verification.shapes.DimTies.from_shapes`: the
        search gave every dimension tied to it the batch size, on whatever axis). ``graph_def``: as
        for :func:`tfopt.verification.testing.random_inputs` (ids stay inside their table, masks 0/1)."""
        if self.source != "made up":
            return self
        from tfopt.verification.shapes import DimTies

        # the batch found by the search, wherever it is; a product tie (batch x words) only the search knows
        ties = self.ties if self.ties is not None else DimTies.from_shapes(specs, self.shapes())
        sizes = ties.other_sizes(self.shapes())
        shapes = {**ties.shapes(batch, {r: int(self.feeds[r[0]].shape[r[1]]) for r in ties.classes()}),
                  **{s.name: np.shape(self.feeds[s.name]) for s in specs if s.shape is None}}  # rank unknown: as is
        realistic = self.realistic.with_batch(specs, batch, seed, graph_def) if self.realistic else None
        return VerifyInputs(random_inputs(specs, seed=seed, shapes=shapes, graph_def=graph_def,
                                          dynamic_dim=min(sizes, default=self.size), values=self.values),
                            self.source, self.tried, realistic, self.size, self.ties, self.domains, self.values,
                            self.saturated, self.saturated_before, self.saturated_fraction, self.conditioning,
                            self.one_row)

    def realistic_rung(self) -> VerifyInputs | None:
        """The realistic size when its made-up floats are another rung, or saturate where these do not."""
        real = self.realistic
        return real if real and (real.values != self.values or bool(real.saturated) != bool(self.saturated)) else None

    def summary(self) -> str:
        """``img:2x8x8x3 (made up inputs); also at img:2x64x64x3 (a realistic size)``."""
        real = self.realistic
        also = f"; also at {real.describe()} (a realistic size)" if real is not None else ""
        if (r := self.realistic_rung()) is not None:  # (saturation.recheck)
            also += realistic_note(r.values, r.saturated, r.saturated_before, r.saturated_fraction)
        values = "".join(f"; values: {name} {why}" for name, why in self.domains.items())  # (input_domains)
        values += f"; {self.one_row}" if self.one_row else ""
        return f"{self.describe()} ({self.source} inputs){also}{values}" + \
            note(self.values, self.saturated, self.saturated_before, self.saturated_fraction)  # (saturation)

    def as_dict(self) -> dict[str, Any]:
        out = {"source": self.source, "shapes": self.shapes(), "tried": self.tried}
        if (real := self.realistic) is not None:
            out["realistic_shapes"] = real.shapes()
            if self.realistic_rung():  # (saturation.recheck)
                out["realistic_values"] = values_record(real.values, real.saturated, real.saturated_before,
                                                         real.saturated_fraction)
        if self.domains:
            out["domains"] = dict(self.domains)
        if self.conditioning:
            out["conditioning"] = dict(self.conditioning)
        if self.one_row:
            out["one_row"] = self.one_row
        return {**out, **record(self.values, self.saturated, self.saturated_before, self.saturated_fraction)}
