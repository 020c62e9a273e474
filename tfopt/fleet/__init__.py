"""``tfopt fleet``: a manifest of models converted on a local process pool or on Ray, with a
content-addressed cache between tasks and runs, crashes contained per task, and resumable runs.

The work splits into tasks: one ``prepare`` task per model (load -> freeze -> optimize ->
statistics), one ``emit`` task per (model, target, precision) and one ``finish`` task per model
(manifest, report, gates).

Modules: ``manifest`` (the YAML), ``plan`` (the task graph), ``tasks`` (what each task does),
``keys`` + ``cache`` (the content-addressed cache), ``resources`` (CPU and memory per task),
``schedule`` (retries, timeouts, interrupts), ``local`` and ``ray_executor`` (the executors),
``worker`` (one task in a process), ``run`` (:func:`run_fleet`), ``result`` (the records),
``report`` / ``rows`` / ``junit`` / ``html`` (``fleet.json``, ``fleet.md``, ``fleet.html``, one
JUnit file) and ``progress`` (the progress line). Importing this package imports neither
TensorFlow nor Ray.
"""
