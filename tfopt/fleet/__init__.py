"""Fleet conversion: many models, one manifest, run on a local process pool or a Ray cluster.

The work splits into tasks (:mod:`tfopt.fleet.result`): one ``prepare`` task per model (load ->
freeze -> optimize -> statistics), one ``emit`` task per (model, target, precision) and one
``finish`` task per model (manifest, report, gates). Their outcomes form a
:class:`tfopt.fleet.result.FleetResult`, which :mod:`tfopt.fleet.report` writes as ``fleet.json``,
``fleet.md``, a self-contained ``fleet.html`` and one JUnit file; :mod:`tfopt.fleet.progress` draws
the progress line. Importing this package imports neither TensorFlow nor Ray.
"""
