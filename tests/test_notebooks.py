"""The notebooks run top to bottom (nbclient, a real kernel) and are stored without outputs."""

from __future__ import annotations

import glob
import os

import pytest

NOTEBOOKS = sorted(glob.glob(os.path.join(os.path.dirname(__file__), "..", "notebooks", "*.ipynb")))


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 4


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[os.path.basename(p) for p in NOTEBOOKS])
def test_notebook_is_stored_without_outputs(path):
    import nbformat

    notebook = nbformat.read(path, as_version=4)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    """One IPython kernel for every notebook of the file: each notebook starts from an empty namespace
    (``%reset -f``, its first cell here), as in a new kernel; what the kernel keeps between them is
    the modules already imported (TensorFlow, tfopt, Keras: ~8 s of CPU a kernel). The kernel runs
    away from the repo (the notebooks write to their own temporary directories)."""
    from jupyter_client.manager import KernelManager

    manager = KernelManager(kernel_name="python3")
    manager.start_kernel(cwd=str(tmp_path_factory.mktemp("notebooks")))
    try:
        yield manager
    finally:
        manager.shutdown_kernel(now=True)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[os.path.basename(p) for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(path, kernel):
    """Each notebook asserts its own numbers (accuracy, fidelity, folded weights); any failing cell
    fails the test with that cell's error."""
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    notebook.cells.insert(0, nbformat.v4.new_code_cell("%reset -f"))  # nothing left from an earlier notebook
    client = NotebookClient(notebook, timeout=600, km=kernel)
    try:
        client.execute()
    finally:
        if client.kc is not None:
            client.kc.stop_channels()
    errors = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
