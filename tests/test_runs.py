"""mnist_cnn.storage.runs: a run folder survives a signal at every write, cleans up after,
and the run resumed from it ends with the same model as one never interrupted."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from mnist_cnn.storage.weights_file import load_weights, read_metadata
from mnist_cnn.training.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]

# A real `mnist-cnn train` process that sends itself a real signal once its Nth temporary
# file exists, before its content is written (Python's audit hook sees the file's mode
# being set right after it is created).
CHILD = textwrap.dedent("""
    import os, signal, sys
    target = int(os.environ["SIGNAL_AT_WRITE"])
    number = getattr(signal, os.environ["SIGNAL_NAME"])
    opened = []
    def hook(event, args):
        if event == "os.chmod" and str(args[0]).endswith(".tmp"):
            opened.append(args[0])
            if len(opened) == target:
                os.kill(os.getpid(), number)
    sys.addaudithook(hook)
    from mnist_cnn.frontends.cli import main
    sys.exit(main(sys.argv[1:]))
""")
MODEL = "custom_mlp:1,20,0,0"
# The writes of `train --resume --epochs 2` after one epoch: the checkpoint after epoch
# 2, then model.npz, model.json and history.csv.
WRITES = ["checkpoint.npz", "model.npz", "model.json", "history.csv"]


def train(folder: Path, *args: str, signal_at: int = 0, name: str = "SIGTERM"
          ) -> subprocess.CompletedProcess:
    env = {**os.environ, "SIGNAL_AT_WRITE": str(signal_at), "SIGNAL_NAME": name}
    return subprocess.run([sys.executable, "-c", CHILD, "train", "--model", MODEL,
                           "--out", str(folder), *args],
                          capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)


def assert_consistent(folder: Path, sidecar_must_match: bool) -> None:
    """Every file present is whole; the sidecar belongs to the model beside it (or, after
    SIGKILL between the two renames, is recognised as another model's and ignored)."""
    assert len(load_weights(folder / "model.npz")) == 4
    meta = read_metadata(folder / "model.npz")
    assert meta is not None or not sidecar_must_match
    assert load_checkpoint(folder / "checkpoint.npz").epoch >= 1
    rows = (folder / "history.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,") and len(rows) >= 2


@pytest.mark.mnist
@pytest.mark.slow
@pytest.mark.parametrize("name", ["SIGTERM", "SIGKILL"])
def test_a_signal_at_each_write_leaves_whole_files_and_the_next_run_cleans_up(
        mnist_dir, tmp_path, monkeypatch, name):
    monkeypatch.setenv("MNIST_DATA_DIR", str(mnist_dir))
    first = train(tmp_path / "one-epoch", "--epochs", "1")
    assert first.returncode == 0, first.stderr
    straight = train(tmp_path / "straight", "--epochs", "2")
    assert straight.returncode == 0, straight.stderr
    expected = load_weights(tmp_path / "straight" / "model.npz")
    for at, what in enumerate(WRITES, start=1):
        folder = shutil.copytree(tmp_path / "one-epoch", tmp_path / what)
        proc = train(folder, "--resume", "--epochs", "2", signal_at=at, name=name)
        if name == "SIGTERM":
            assert proc.returncode == 128 + signal.SIGTERM, (what, proc.stderr)
            assert "Traceback" not in proc.stderr and "SIGTERM" in proc.stderr
            assert not list(folder.glob(".*.tmp")), what  # removed on the way out
            assert_consistent(folder, sidecar_must_match=True)
        else:
            assert proc.returncode == -signal.SIGKILL, (what, proc.stderr)
            assert list(folder.glob(".*.tmp")), what  # no chance to clean up...
            assert_consistent(folder, sidecar_must_match=False)
        again = train(folder, "--resume", "--epochs", "2")
        assert again.returncode == 0, again.stderr
        assert not list(folder.glob(".*.tmp")), what  # ...so the next run does
        resumed = load_weights(folder / "model.npz")  # the interrupted run, finished
        assert all(np.array_equal(a, b) for a, b in zip(resumed, expected, strict=True)), what
