#!/usr/bin/env python3
"""Regenerate the figures in docs/figures from the recorded run, with their provenance.

The run is recorded in ``docs/figures/provenance.json`` (its ``train`` arguments). This
trains it afresh into a temporary folder, draws its figures with ``mnist-cnn
visualize``, replaces the six figures of the run in ``docs/figures`` and rewrites the
provenance: the command, the run's test accuracy, the sha256 of its ``model.npz`` and the
library versions. ``draw.png`` (a screenshot of the drawing page) is not a figure of the
run and is left as it is.

    MNIST_DATA_DIR=../shared/data/mnist python scripts/docs_figures.py
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ROOT / "docs" / "figures"
PROVENANCE = FIGURES / "provenance.json"
OF_THE_RUN = ("kernels.png", "feature_maps_c1.png", "feature_maps_c2.png", "history.png",
              "confusion.png", "misclassified.png")


def mnist_cnn(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "mnist_cnn", *args], check=True, cwd=ROOT)


def main() -> None:
    recorded = json.loads(PROVENANCE.read_text())
    with tempfile.TemporaryDirectory() as tmp:
        run, drawn = Path(tmp) / "run", Path(tmp) / "figures"
        mnist_cnn("train", *recorded["train"], "--out", str(run))
        mnist_cnn("visualize", "--weights", str(run / "model.npz"), "--out", str(drawn))
        meta = json.loads((run / "model.json").read_text())
        for name in OF_THE_RUN:
            shutil.copyfile(drawn / name, FIGURES / name)
        digest = hashlib.sha256((run / "model.npz").read_bytes()).hexdigest()
    provenance = {
        "train": recorded["train"],
        "command": "mnist-cnn train " + " ".join(recorded["train"]),
        "figures": list(OF_THE_RUN),
        "test_accuracy": meta["test_accuracy"],
        "model_sha256": digest,
        "versions": meta["versions"],
    }
    PROVENANCE.write_text(json.dumps(provenance, indent=2) + "\n")
    print(f"{len(OF_THE_RUN)} figures of `{provenance['command']}` in {FIGURES}: test "
          f"accuracy {meta['test_accuracy']:.2%}, model sha256 {digest[:16]}")


if __name__ == "__main__":
    main()
