"""Graph rewrite passes (one per module), their registry and the default optimization order."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from tfopt.errors import OptionError, TfoptError, did_you_mean
from tfopt.passes.base import Pass, PassResult, PassStats, Skip, run_passes

__all__ = ["DEFAULT_PIPELINE", "Pass", "PassRegistry", "PassResult", "PassStats", "Skip", "registry",
           "run_passes", "select_passes"]


class PassRegistry:
    """Pass name -> pass class, in canonical order (the order passes run in, whatever the user lists)."""

    def __init__(self) -> None:
        self._factories: dict[str, type[Pass]] = {}
        self._docs: dict[str, str] = {}

    def register(self, cls: type[Pass]) -> None:
        """Register ``cls`` under its ``name``, summarised by its docstring's first line."""
        doc = (cls.__doc__ or "").strip().splitlines()
        if cls.name in self._factories or not doc:
            raise TfoptError(f"pass {cls.__name__}: needs a unique name (not '{cls.name}') and a docstring")
        self._factories[cls.name] = cls
        self._docs[cls.name] = doc[0].rstrip(".")

    def names(self) -> list[str]:
        return list(self._factories)

    def doc(self, name: str) -> str:
        return self._docs[name]

    def build(self, names: Iterable[str]) -> list[Pass]:
        wanted = set(names)
        return [self._factories[n]() for n in self._factories if n in wanted]

    def check(self, names: Iterable[str], option: str) -> None:
        for name in names:
            if name not in self._factories:
                raise OptionError(f"{option}: unknown pass '{name}'.{did_you_mean(name, self._factories)} "
                                  f"Passes: {', '.join(self._factories)}")


def _register_builtin(reg: PassRegistry) -> None:
    from tfopt.passes.cluster_weights import ClusterWeights
    from tfopt.passes.fold_add_into_bias import FoldAddIntoBias
    from tfopt.passes.fold_batchnorm import FoldBatchNorm
    from tfopt.passes.fold_constants import FoldConstants
    from tfopt.passes.fold_mul_into_weights import FoldMulIntoWeights
    from tfopt.passes.fold_pad import FoldPad
    from tfopt.passes.fuse_activation import FuseActivation
    from tfopt.passes.pin_squeeze_axes import PinSqueezeAxes
    from tfopt.passes.prune_dead import PruneDead
    from tfopt.passes.remove_identity import RemoveIdentity

    # The order, and why:
    # remove_identity first: Keras puts an Identity between each weight and its conv, and every
    #   fold below needs the weight Const to feed the conv directly.
    # fold_constants: BatchNorm parameters computed from constants (rsqrt(var + eps)·γ) and
    #   shape arithmetic become plain constants the folds can read.
    # fold_batchnorm lowers FusedBatchNorm to Mul + Add; fold_mul_into_weights and
    #   fold_add_into_bias then absorb those (and Keras 3's own decomposed BatchNorm).
    # fold_pad after them: it only looks at Pad -> Conv, which no earlier pass creates.
    # pin_squeeze_axes: a Squeeze without axes on [?, 1] gets axis 1 (on [?, 4]: an Identity), so converters
    #   see a rank.
    # prune_dead last: the folds leave the old constants unread.
    # fuse_activation after the fixed point, for TensorFlow-runtime artifacts only.
    # cluster_weights (lossy, --cluster N only) after the optimize check: it snaps the folded kernels.
    reg.register(RemoveIdentity)
    reg.register(FoldConstants)
    reg.register(FoldBatchNorm)
    reg.register(FoldMulIntoWeights)
    reg.register(FoldAddIntoBias)
    reg.register(FoldPad)
    reg.register(PinSqueezeAxes)
    reg.register(PruneDead)
    reg.register(FuseActivation)
    reg.register(ClusterWeights)


registry = PassRegistry()
_register_builtin(registry)
DEFAULT_PIPELINE = tuple(registry.names())


def select_passes(spec: str | Sequence[str] = "default", skip: Sequence[str] = ()) -> list[str]:
    """Pass names for ``--passes default|none|a,b,c`` minus ``--skip``, in canonical order."""
    if isinstance(spec, str):
        names = list(DEFAULT_PIPELINE) if spec == "default" else [] if spec == "none" else \
            [s.strip() for s in spec.split(",") if s.strip()]
    else:
        names = list(spec)
    registry.check(names, "--passes")
    registry.check(skip, "--skip")
    return [n for n in registry.names() if n in names and n not in skip]
