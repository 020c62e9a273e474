"""The Ray executor, on a real local Ray instance with 2 CPUs (slow lane): the same fleet gives
byte-identical artifacts to the local executor, each task declaring CPUs and memory; a task that
kills its Ray worker fails its model only."""

from __future__ import annotations

import os

import pytest

from tests.fleet.fleet_models import build_fleet, files_of
from tfopt.fleet.run import run_fleet

pytestmark = pytest.mark.slow
GOOD = ["conv", "dense", "mlp"]


def test_ray_gives_the_local_executors_artifacts(tmp_path):
    pytest.importorskip("ray")
    manifest = build_fleet(tmp_path)
    local = run_fleet(manifest, str(tmp_path / "local"), jobs=2, only=GOOD)
    ray = run_fleet(manifest, str(tmp_path / "ray"), executor="ray", jobs=2, only=[*GOOD, "crash"])
    assert local.exit_code == 0, local
    assert ray.exit_code == 1 and ray.executor == "ray"
    assert {m.name: m.status for m in ray.models} == {**{n: "converted" for n in GOOD}, "crash": "failed"}
    for name in GOOD:
        assert files_of(str(tmp_path / "ray" / name)) == files_of(str(tmp_path / "local" / name)), name
    ran = [t for t in ray.tasks if t.status == "ok"]
    assert ran and all(t.worker.startswith("node ") and t.memory_mb > 0 for t in ran)
    [crash] = [t for t in ray.tasks if (t.model, t.kind) == ("crash", "prepare")]
    assert crash.status == "failed" and crash.retries == 1 and "died" in crash.error
    assert not os.path.exists(tmp_path / "ray" / "crash")
