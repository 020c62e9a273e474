"""Graph rewrite passes (one per module) and the runner they share."""

from tfopt.passes.base import Pass, PassResult, PassStats, Skip, run_passes

__all__ = ["Pass", "PassResult", "PassStats", "Skip", "run_passes"]
