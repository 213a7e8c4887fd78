"""The documentation: its figures come from the recorded run, its numbers from it too."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ROOT / "docs" / "figures"
PROVENANCE = json.loads((FIGURES / "provenance.json").read_text())


def test_every_figure_of_the_recorded_run_is_there_and_named_in_its_provenance():
    assert PROVENANCE["command"] == "mnist-cnn train " + " ".join(PROVENANCE["train"])
    for name in PROVENANCE["figures"]:
        assert (FIGURES / name).stat().st_size > 10_000, name


def test_the_docs_state_the_recorded_runs_accuracy_and_model():
    """The training page says which run its figures come from, with that run's test
    accuracy and the start of its model's sha256, as the provenance records them."""
    page = (ROOT / "docs" / "training.md").read_text()
    stated = (f"`{PROVENANCE['command']}`: test accuracy "
              f"{PROVENANCE['test_accuracy'] * 100:.2f} %, `model.npz` sha256 "
              f"{PROVENANCE['model_sha256'][:16]}")
    assert stated in page
    readme = (ROOT / "README.md").read_text()
    assert f"{PROVENANCE['test_accuracy'] * 100:.2f}" in readme


@pytest.mark.mnist
@pytest.mark.slow
def test_the_recorded_run_trains_again_to_the_same_model(mnist_dir, tmp_path):
    """The run behind the figures, trained again here: on the kind of CPU that recorded
    it, the same model byte for byte; on another kind, whose convolution kernels may
    round otherwise, the same test accuracy to within 0.1 point."""
    done = subprocess.run([sys.executable, "-m", "mnist_cnn", "train", *PROVENANCE["train"],
                           "--data-dir", str(mnist_dir), "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    digest = hashlib.sha256((tmp_path / "model.npz").read_bytes()).hexdigest()
    again = json.loads((tmp_path / "model.json").read_text())
    recorded_cpu = PROVENANCE["versions"]["cpu"]
    print(f"recorded on {recorded_cpu}: {PROVENANCE['model_sha256'][:16]}, "
          f"{PROVENANCE['test_accuracy']:.2%}; here on {again['versions']['cpu']}: "
          f"{digest[:16]}, {again['test_accuracy']:.2%}")
    if again["versions"]["cpu"] == recorded_cpu:
        assert digest == PROVENANCE["model_sha256"]
    else:
        assert abs(again["test_accuracy"] - PROVENANCE["test_accuracy"]) <= 0.001


def test_the_documentation_site_builds_strict(tmp_path):
    """mkdocs in strict mode: a broken link or reference fails (the test extra has the
    docs extra's tools)."""
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q",
                           "-d", str(tmp_path / "site")], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "site" / "api" / "index.html").read_text().count("Parameters") > 10
