"""mnist_cnn.frontends.cli: the command as a user runs it (real subprocesses, real MNIST)."""

from __future__ import annotations

import csv
import io
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from subprocesses import default_sigint

from mnist_cnn.nets.spec import init_weights
from mnist_cnn.training.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
SMALL_MLP = "custom_mlp:1,64,0.2,0.5"


def run(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mnist_cnn", *args], capture_output=True,
                          text=True, timeout=600, cwd=kwargs.pop("cwd", ROOT), **kwargs)


def assert_clean_error(proc: subprocess.CompletedProcess, *fragments: str,
                       code: int = 1) -> None:
    """The exit code, one line on stderr saying what is wrong, no traceback."""
    assert proc.returncode == code, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mnist-cnn"), proc.stderr
    assert "error: " in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.mark.parametrize("command", [[], ["download"], ["train"], ["evaluate"]])
def test_help_describes_every_command(command):
    proc = run(*command, "--help")
    assert proc.returncode == 0
    assert "usage: mnist-cnn" in proc.stdout
    if command == ["train"]:
        for option in ("--model", "--epochs", "--batch-size", "--lr", "--momentum",
                       "--seed", "--device", "--out", "--resume"):
            assert option in proc.stdout


@pytest.mark.parametrize("script", ["train", "download", "evaluate"])
def test_scripts_run_the_same_entry(script):
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / f"{script}.py"), "--help"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and f"usage: mnist-cnn {script}" in proc.stdout


@pytest.mark.mnist
@pytest.mark.slow
def test_train_resume_and_evaluate_write_and_report_a_run(mnist_dir, tmp_path):
    out = tmp_path / "run"
    proc = run("train", "--model", SMALL_MLP, "--epochs", "2", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    for line in ("Epoch 1 of 2 took", "Epoch 2 of 2 took", "training loss:",
                 "validation loss:", "validation accuracy:", "Final results:",
                 "test accuracy:"):
        assert line in proc.stdout
    with np.load(out / "model.npz", allow_pickle=False) as f:
        assert sorted(f.files) == ["arr_0", "arr_1", "arr_2", "arr_3"]
    meta = json.loads((out / "model.json").read_text())
    assert meta["model"] == SMALL_MLP and meta["epochs"] == 2
    assert meta["hyperparameters"]["batch_size"] == 50
    assert meta["data_md5"]["train-images-idx3-ubyte.gz"] == "f68b3c2dcbeaaa9fbdd348bbdeb94873"
    rows = list(csv.DictReader(io.StringIO((out / "history.csv").read_text())))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert float(rows[-1]["val_accuracy"]) > 0.9

    proc = run("train", "--resume", "--epochs", "3", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "Resuming" in proc.stdout and "Epoch 3 of 3" in proc.stdout
    assert "Epoch 1 of" not in proc.stdout
    assert json.loads((out / "model.json").read_text())["epochs"] == 3

    proc = run("evaluate", "--weights", str(out / "model.npz"))
    assert proc.returncode == 0, proc.stderr
    accuracy = json.loads((out / "model.json").read_text())["test_accuracy"]
    assert f"test accuracy:\t\t{accuracy * 100:.2f} %" in proc.stdout
    table = [line.split() for line in proc.stdout.splitlines()[-10:]]
    assert [row[0] for row in table] == [str(d) for d in range(10)]
    assert sum(int(row[2]) for row in table) == 10000


@pytest.mark.slow  # trains
@pytest.mark.mnist
def test_ctrl_c_keeps_the_checkpoint_and_says_how_to_resume(mnist_dir, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "mnist_cnn", "train", "--model", SMALL_MLP, "--epochs", "100",
         "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=ROOT, preexec_fn=default_sigint)
    deadline = time.monotonic() + 300
    while not (out / "checkpoint.npz").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    epoch = load_checkpoint(out / "checkpoint.npz").epoch
    assert f"the checkpoint of epoch {epoch} is kept" in stderr
    assert f"mnist-cnn train --out {out} --resume" in stderr
    assert not (out / "model.npz").exists()


def test_missing_weights_file_is_a_one_line_error(tmp_path):
    assert_clean_error(run("evaluate", "--weights", str(tmp_path / "none.npz")),
                       "no weights file")


def test_malformed_weights_file_is_a_one_line_error(tmp_path):
    path = tmp_path / "model.npz"
    np.savez(path, *init_weights("cnn")[:3])
    assert_clean_error(run("evaluate", "--weights", str(path)), "match none")


def test_unknown_model_is_a_one_line_error():
    assert_clean_error(run("train", "--model", "resnet"), "unknown model 'resnet'")


def test_cuda_on_a_machine_without_it_is_a_one_line_error():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert_clean_error(run("train", "--device", "cuda"), "no CUDA GPU", "--device cpu")


def test_resume_without_a_checkpoint_is_a_one_line_error(tmp_path):
    assert_clean_error(run("train", "--resume", "--out", str(tmp_path)), "no checkpoint")
    assert_clean_error(run("train", "--resume", "--out", str(tmp_path / "new")),
                       "no checkpoint")
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("args, message", [
    (["--lr", "-1"], "learning rate must be a positive number"),
    (["--model", "resnet"], "unknown model 'resnet'"),
    (["--engine", "theano", "--recipe", "fast"], "runs the tutorial's recipe"),
    (["--floatx", "float64"], "pytorch engine trains in float32"),
    (["--shards", "51"], "shards must be a whole number from 1 to the batch size"),
])
def test_bad_settings_are_refused_before_any_folder_is_made(tmp_path, args, message):
    out = tmp_path / "new" / "run"
    assert_clean_error(run("train", "--out", str(out), *args), message)
    assert not (tmp_path / "new").exists()


def test_an_output_that_is_a_file_is_refused_in_one_line(tmp_path):
    path = tmp_path / "taken.png"
    path.write_bytes(b"x")
    assert_clean_error(run("visualize", "--weights", "none.npz", "--out", str(path)),
                       f"--out {path} is a file, not a folder")
    image = tmp_path / "digit.png"
    from PIL import Image

    Image.new("L", (28, 28), 255).save(image)
    proc = run("predict", str(image), "--save-preprocessed", str(path))
    assert_clean_error(proc, f"--save-preprocessed {path} is a file, not a folder")
    assert_clean_error(run("train", "--out", str(path)), "is a file, not a folder")


def test_a_run_folder_given_as_weights_points_to_its_model(tmp_path):
    np.savez(tmp_path / "model.npz", *init_weights("cnn"))
    assert_clean_error(run("evaluate", "--weights", str(tmp_path)),
                       f"is a folder, not a weights file; did you mean {tmp_path / 'model.npz'}")


def test_output_into_a_closed_pipe_ends_quietly(tmp_path):
    """`mnist-cnn predict --json ... | head -1`: the reader leaves; no message."""
    import io as bytes_io

    from PIL import Image, ImageDraw

    image = Image.new("L", (28, 28), 255)
    ImageDraw.Draw(image).line([(14, 4), (14, 23)], fill=0, width=3)
    encoded = bytes_io.BytesIO()
    image.save(encoded, format="PNG")
    for i in range(300):  # well over a pipe's 64 kB of JSON
        (tmp_path / f"{i}.png").write_bytes(encoded.getvalue())
    proc = subprocess.run(f"{sys.executable} -m mnist_cnn predict --json --top 10 {tmp_path}"
                          " | head -1", shell=True, capture_output=True, text=True,
                          timeout=300, cwd=ROOT)
    assert proc.stdout.strip() == "[" and proc.stderr == ""


def test_download_failure_is_a_one_line_error_naming_the_urls(mirror_server, tmp_path):
    url = mirror_server.url("nothing")
    proc = run("download", "--data-dir", str(tmp_path), "--mirror", url, "--timeout", "5")
    assert_clean_error(proc, f"{url}train-images-idx3-ubyte.gz: HTTP 404", str(tmp_path))


@pytest.mark.mnist
def test_download_with_files_present_prints_where_they_are(mnist_dir, mirror_server):
    proc = run("download", "--data-dir", str(mnist_dir), "--mirror",
               mirror_server.url("unused"))
    assert proc.returncode == 0, proc.stderr
    assert f"MNIST files verified in {mnist_dir}" in proc.stdout
    assert mirror_server.requests == []
