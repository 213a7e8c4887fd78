"""mnist_cnn.experiments.sweep and `mnist-cnn reproduce`: many runs, resumable, on this
machine or a real Dask cluster on 127.0.0.1, byte for byte the same."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import distributed  # the test extra's: a real cluster, never skipped
import numpy as np
import pytest
from filelock import FileLock
from subprocesses import default_sigint

from mnist_cnn import load_weights, train
from mnist_cnn.experiments.plan import Experiment, ExperimentsError
from mnist_cnn.experiments.sweep import LOCK, reproduce
from mnist_cnn.storage.runs import RunFolder

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.mnist, pytest.mark.slow]
TINY = [Experiment("tiny mlp", {"model": "custom_mlp:1,20,0,0", "num_epochs": 2}, (0, 1, 2)),
        Experiment("tiny cnn", {"num_epochs": 2}, (0, 1), claim=0.9)]


@pytest.fixture(scope="module")
def small(mnist):
    """A few hundred images of each part: runs of a second."""
    X, y, Xv, yv, Xt, yt = mnist
    return X[:1200], y[:1200], Xv[:200], yv[:200], Xt[:500], yt[:500]


def models(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("model.npz"))}


def test_a_sweep_runs_every_seed_once_and_running_it_again_redoes_nothing(small, tmp_path):
    report = reproduce(TINY, tmp_path / "sweep", data=small, workers=2, progress=False)
    assert [(r.experiment, r.seed, r.how) for r in report.runs] == [
        ("tiny mlp", 0, "trained"), ("tiny mlp", 1, "trained"), ("tiny mlp", 2, "trained"),
        ("tiny cnn", 0, "trained"), ("tiny cnn", 1, "trained")]
    assert [e.accuracy.n for e in report.experiments] == [3, 2]
    for name in ("report.md", "report.json", "report.png"):
        assert (tmp_path / "sweep" / name).is_file()
    before = models(tmp_path / "sweep")
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "sweep").rglob("model.npz")}
    again = reproduce(TINY, tmp_path / "sweep", data=small, workers=2, progress=False)
    assert {r.how for r in again.runs} == {"done before"}
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert again.experiments == report.experiments and models(tmp_path / "sweep") == before
    straight = train("custom_mlp:1,20,0,0", num_epochs=2, seed=1, data=small, verbose=False,
                     progress=False)  # a run of the sweep is an ordinary run
    saved = RunFolder(tmp_path / "sweep" / "tiny-mlp" / "seed-1")
    assert all(np.array_equal(a, b) for a, b in
               zip(load_weights(saved.model), straight.weights, strict=True))


def test_an_interrupted_run_resumes_from_its_checkpoint_to_the_same_model(small, tmp_path):
    whole = reproduce(TINY[:1], tmp_path / "whole", data=small, workers=1, progress=False)
    half = RunFolder(tmp_path / "cut" / "tiny-mlp" / "seed-0")
    half.prepare()
    train("custom_mlp:1,20,0,0", num_epochs=1, seed=0, data=small, verbose=False,
          progress=False, checkpoint=half.checkpoint)  # stopped after epoch 1 of 2
    cut = reproduce(TINY[:1], tmp_path / "cut", data=small, workers=1, progress=False)
    assert [r.how for r in cut.runs] == ["resumed", "trained", "trained"]
    assert models(tmp_path / "cut") == models(tmp_path / "whole")
    assert [r.test_accuracy for r in cut.runs] == [r.test_accuracy for r in whole.runs]


def test_two_sweeps_on_one_folder_refuse_each_other_and_other_runs_are_not_overwritten(
        small, tmp_path):
    (tmp_path / "sweep").mkdir()
    with FileLock(str(tmp_path / "sweep" / LOCK)), pytest.raises(
            ExperimentsError, match="is in use by another sweep"):
        reproduce(TINY, tmp_path / "sweep", data=small, progress=False)
    reproduce(TINY[:1], tmp_path / "sweep", data=small, workers=1, progress=False)
    other = [Experiment("tiny mlp", {"model": "custom_mlp:1,20,0,0", "num_epochs": 2,
                                     "batch_size": 20}, (0,))]
    with pytest.raises(ExperimentsError, match="holds a run with other settings"):
        reproduce(other, tmp_path / "sweep", data=small, progress=False)


def test_a_dask_cluster_gives_the_local_runs_byte_for_byte_even_when_a_worker_dies(
        small, tmp_path):
    local = reproduce(TINY, tmp_path / "local", data=small, workers=2, progress=False)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1",
                                  processes=True, dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        pids = list(client.run(os.getpid).values())
        killed: list[int] = []

        def kill_a_worker_mid_run() -> None:
            end = time.monotonic() + 120
            while time.monotonic() < end and not killed:
                for run in (tmp_path / "cluster").rglob("checkpoint.npz"):
                    if not (run.parent / "model.npz").exists():  # a run between epochs
                        os.kill(pids[0], signal.SIGKILL)
                        killed.append(pids[0])
                        return
                time.sleep(0.01)

        killer = threading.Thread(target=kill_a_worker_mid_run)
        killer.start()
        remote = reproduce(TINY, tmp_path / "cluster", data=small,
                           address=cluster.scheduler_address, progress=False)
        killer.join()
    print(f"killed worker {killed}; runs: {[(r.seed, r.how) for r in remote.runs]}")
    assert killed and len(remote.runs) == 5
    assert models(tmp_path / "cluster") == models(tmp_path / "local")
    assert ([r.test_accuracy for r in remote.runs] == [r.test_accuracy for r in local.runs])
    again = reproduce(TINY, tmp_path / "cluster", data=small, workers=1, progress=False)
    assert {r.how for r in again.runs} == {"done before"}


def test_the_command_stops_on_sigterm_keeping_checkpoints_and_finishes_when_run_again(
        mnist_dir, tmp_path):
    plan = tmp_path / "plan.toml"
    plan.write_text('seeds = 3\n[[experiment]]\nname = "mlp"\nmodel = "custom_mlp:1,50,0,0"\n'
                    "num_epochs = 3\nclaim = 90\n")
    command = [sys.executable, "-m", "mnist_cnn", "reproduce", str(plan), "--out",
               str(tmp_path / "sweep"), "--workers", "1", "--data-dir", str(mnist_dir)]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=default_sigint)
    end = time.monotonic() + 120
    while not list((tmp_path / "sweep").rglob("checkpoint.npz")) and time.monotonic() < end:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM and "Traceback" not in err, err
    assert "run the same command again to go on" in err
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "| mlp | 3 |" in done.stdout and (tmp_path / "sweep" / "report.png").is_file()
