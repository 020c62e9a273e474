"""The user's data files of one conversion (``--calibration``, ``--eval-data``, ``--finetune-data``):
each read from disk once and checked once against the model's inputs, then handed to every stage
that uses it (freeze and optimize verification, the int8 engine's statistics and measurements, the
native keep-float search, OpenVINO's accuracy control, the quantization-aware fine-tune, the report).

NaN/Inf are counted as a file is read, before the model is loaded (refused unless
``--allow-nonfinite``); names, dtypes and shapes are checked against the first inputs they are
given (the frozen model's: optimizing never changes them). No stage checks the data again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tfopt.graph import TensorSpec
from tfopt.options import ConvertOptions
from tfopt.verification.input_data import LabeledData, labeled, read_counted


class InputData:
    """The data files of ``options``, read lazily and once each (see the module docstring).

    ``samples``: calibration samples read already (a prepared model read back from the fleet's
    cache holds them), so they are not read again.
    """

    def __init__(self, options: ConvertOptions, samples: Any = None):
        self._q, self._r, self._c = options.quantize, options.report, options.compress
        self._raw: dict[str, tuple[dict[str, Any], dict[str, int]]] = {}
        self._checked: dict[str, LabeledData] = {}
        self._samples = samples

    def count_nonfinite(self) -> None:
        """Read ``--eval-data`` now (before any work): NaN/Inf refused unless allowed."""
        if self._r.eval_data:
            self._read("--eval-data", self._r.eval_data, allow=self._r.allow_nonfinite)

    def _read(self, option: str, path: str, *, allow: bool) -> tuple[dict[str, Any], dict[str, int]]:
        if option not in self._raw:
            self._raw[option] = read_counted(path, option, allow_nonfinite=allow)
        return self._raw[option]

    def _labeled(self, option: str, path: str | None, specs: Sequence[TensorSpec], *, allow: bool) -> LabeledData | None:
        if not path:
            return None
        if option not in self._checked:
            arrays, counts = self._read(option, path, allow=allow)
            self._checked[option] = labeled(arrays, specs, source=path, option=option, nonfinite=counts)
            del self._raw[option]  # the checked arrays are what is kept
        return self._checked[option]

    def eval(self, specs: Sequence[TensorSpec]) -> LabeledData | None:
        """``--eval-data``'s inputs and labels, or ``None`` without it."""
        return self._labeled("--eval-data", self._r.eval_data, specs, allow=self._r.allow_nonfinite)

    def finetune(self, specs: Sequence[TensorSpec]) -> LabeledData | None:
        """``--finetune-data``'s inputs and labels (NaN/Inf always refused: they would train the model)."""
        return self._labeled("--finetune-data", self._c.finetune_data, specs, allow=False)

    def calibration(self, specs: Sequence[TensorSpec]) -> Any:
        """The calibration samples (a list of batch-1 ``{input: array}``), or ``None`` without ``--calibration``."""
        from tfopt.verification.calibration import load_calibration

        q = self._q
        if self._samples is None and q.calibration:
            self._samples = load_calibration(q.calibration, specs, samples=q.calibration_samples, mean=q.mean,
                                             scale=q.scale, allow_nonfinite=self._r.allow_nonfinite)
        return self._samples
