"""mnist_cnn.nets.engines.symbolic: the tutorial's symbolic program on PyTensor agrees
with PyTorch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mnist_cnn import evaluate, predict_proba, save_weights, train
from mnist_cnn.nets.engines.pytorch.modules import LasagneNet
from mnist_cnn.nets.engines.pytorch.optimizers import NesterovMomentum
from mnist_cnn.nets.spec import Weights, init_weights

ROOT = Path(__file__).resolve().parents[1]
MODELS = ["cnn", "mlp", "custom_mlp:3,64,0.1,0.3"]


@pytest.fixture(scope="module")
def te(theano_engine):
    return theano_engine


def perturbed(model: str, seed: int = 1, gain: float = 1.0) -> list[np.ndarray]:
    """Glorot weights (times ``gain``) with non-zero biases: every parameter matters."""
    rng = np.random.default_rng(seed)
    return Weights([w * (gain if w.ndim > 1 else 1) + rng.normal(0, 0.05, w.shape)
                    for w in init_weights(model, seed)], model)


@pytest.mark.parametrize("model", MODELS)
def test_both_engines_give_the_same_probabilities(te, mnist, model):
    weights = perturbed(model, gain=3.0)  # confident, so that outputs differ per digit
    X = mnist[4][:64]  # real, distinct digits
    ours = predict_proba(weights, X, device="cpu", engine="pytorch")
    theirs = predict_proba(weights, X, engine="theano")
    assert ours.std(axis=0).max() > 0.05  # the digits give different outputs
    np.testing.assert_allclose(theirs, ours, atol=1e-5)


@pytest.mark.parametrize("model", MODELS)
def test_one_training_step_without_dropout_gives_the_same_weights(te, mnist, model):
    weights = perturbed(model, seed=2)
    X, y = np.ascontiguousarray(mnist[0][:50]), mnist[1][:50]
    program = te.TheanoProgram(weights, learning_rate=0.01, momentum=0.9, dropout=False)
    net = LasagneNet(model, weights).eval()  # eval: the same network without dropout
    params = list(net.params)
    updates = NesterovMomentum(params, 0.01, 0.9)
    for _ in range(2):  # the second step also uses the velocities
        program.train_fn(X, y.astype(np.int32))
        loss = torch.nn.functional.cross_entropy(net(torch.from_numpy(X)),
                                                 torch.from_numpy(y).long())
        updates.step(torch.autograd.grad(loss, params))
    for theirs, ours in zip(program.get_weights(), net.get_weights(), strict=True):
        np.testing.assert_allclose(theirs, ours, atol=1e-5)


def test_a_model_from_one_engine_loads_and_predicts_in_the_other(te, mnist, tmp_path):
    path = save_weights(tmp_path / "model.npz", perturbed("cnn", seed=3))
    X, y = mnist[4][:200], mnist[5][:200]
    a = evaluate(path, X, y, device="cpu", engine="pytorch")
    b = evaluate(path, X, y, engine="theano")
    assert a.accuracy == b.accuracy and a.loss == pytest.approx(b.loss, abs=1e-5)


def small(mnist, n=1000):
    X_train, y_train, X_val, y_val, X_test, y_test = mnist
    return X_train[:n], y_train[:n], X_val[:500], y_val[:500], X_test[:500], y_test[:500]


def test_theano_resume_equals_an_uninterrupted_run(te, mnist, tmp_path):
    model = "custom_mlp:1,32,0.2,0.5"
    full = train(model, 2, 100, seed=5, data=small(mnist), engine="theano", verbose=False)
    ckpt = tmp_path / "c.npz"
    train(model, 1, 100, seed=5, data=small(mnist), engine="theano", checkpoint=ckpt,
          verbose=False)
    resumed = train(model, 2, 100, seed=5, data=small(mnist), engine="theano",
                    checkpoint=ckpt, resume=True, verbose=False)
    for a, b in zip(full.weights, resumed.weights, strict=True):
        np.testing.assert_array_equal(a, b)
    assert resumed.engine == "theano" and resumed.versions["pytensor"]


@pytest.mark.slow
def test_one_epoch_on_15000_digits_with_the_theano_engine_reaches_93_percent(te, mnist):
    X_train, y_train, X_val, y_val, X_test, y_test = mnist
    part = (X_train[:15000], y_train[:15000], X_val[:2000], y_val[:2000], X_test[:2000],
            y_test[:2000])
    result = train("cnn", num_epochs=1, batch_size=50, seed=0, data=part, engine="theano",
                   verbose=False)
    assert result.history[0].val_accuracy >= 0.93  # measured: 94.3 %


@pytest.mark.slow
def test_cli_trains_with_the_theano_engine_records_it_and_resumes_it(te, mnist_dir, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "mnist_cnn", "train", "--engine", "theano", "--model",
         "custom_mlp:1,32,0.2,0.5", "--epochs", "1", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "model.json").read_text())["engine"] == "theano"
    proc = subprocess.run(  # resuming takes the engine from the checkpoint
        [sys.executable, "-m", "mnist_cnn", "train", "--resume", "--epochs", "2", "--out",
         str(tmp_path)], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    meta = json.loads((tmp_path / "model.json").read_text())
    assert meta["engine"] == "theano" and meta["epochs"] == 2


def test_asking_for_the_engine_without_pytensor_says_how_to_install_it(tmp_path):
    code = ("import sys; sys.modules['pytensor'] = None; from mnist_cnn.frontends.cli import main; "
            "sys.exit(main(sys.argv[1:]))")
    weights = save_weights(tmp_path / "model.npz", init_weights("cnn"))
    proc = subprocess.run([sys.executable, "-c", code, "evaluate", "--engine", "theano",
                           "--weights", str(weights)], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "pip install 'mnist-cnn[theano]'" in proc.stderr
