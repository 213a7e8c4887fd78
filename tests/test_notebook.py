"""notebooks/walkthrough.ipynb runs top to bottom in a real Jupyter kernel."""

from __future__ import annotations

from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "walkthrough.ipynb"


@pytest.mark.mnist
@pytest.mark.slow
def test_walkthrough_notebook_runs_clean_and_shows_its_figures(mnist_dir, tmp_path,
                                                                monkeypatch):
    nbclient = pytest.importorskip("nbclient")
    nbformat = pytest.importorskip("nbformat")
    monkeypatch.setenv("MNIST_DATA_DIR", str(mnist_dir.resolve()))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert nb.cells[1].source.startswith("QUICK = True")  # as shipped: seconds, not minutes
    # Raises CellExecutionError, with the cell and its traceback, if any cell fails.
    nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    pngs = sum("image/png" in out.get("data", {}) for cell in nb.cells
               if cell.cell_type == "code" for out in cell.outputs)
    assert pngs == 5  # a digit, history, kernels, feature maps, classified test digits
    outputs = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs]
    text = "".join(out.get("text", "") for out in outputs)
    assert "Epoch 1 of 1" in text and "test accuracy:" in text
    errors = "".join(out.get("text", "") for out in outputs if out.get("name") == "stderr")
    assert "Warning" not in errors, errors  # e.g. tqdm's "IProgress not found"
    widgets = [out for out in outputs
               if "application/vnd.jupyter.widget-view+json" in out.get("data", {})]
    assert widgets  # the epoch's progress bar, as a Jupyter widget
