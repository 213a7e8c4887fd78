"""mnist_cnn.training: the epoch loop: reproducibility, checkpoints, resume, real training."""

from __future__ import annotations

import numpy as np
import pytest

from mnist_cnn import TrainingError, evaluate, predict_proba, resume, train
from mnist_cnn.spec import init_weights


def small_data(mnist, n_train=2000, n_val=500):
    X_train, y_train, X_val, y_val, X_test, y_test = mnist
    return (X_train[:n_train], y_train[:n_train], X_val[:n_val], y_val[:n_val],
            X_test[:n_val], y_test[:n_val])


@pytest.mark.mnist
def test_same_seed_gives_identical_weights_on_cpu(mnist):
    # The same thread count (with "auto", another test beside this one may change it).
    runs = [train("cnn", 1, 100, seed=s, device="cpu", data=small_data(mnist),
                  verbose=False, threads=1) for s in (1, 1, 2)]
    assert all((a == b).all() for a, b in zip(runs[0].weights, runs[1].weights, strict=True))
    assert not (runs[0].weights[0] == runs[2].weights[0]).all()


@pytest.mark.mnist
def test_resume_equals_an_uninterrupted_run(mnist, tmp_path):
    data = small_data(mnist)
    full = train("cnn", 3, 100, seed=4, device="cpu", data=data, verbose=False, threads=1)
    ckpt = tmp_path / "checkpoint.npz"
    train("cnn", 1, 100, seed=4, device="cpu", data=data, checkpoint=ckpt, verbose=False, threads=1)
    resumed = train("cnn", 3, 100, seed=4, device="cpu", data=data, checkpoint=ckpt,
                    resume=True, verbose=False, threads=1)
    assert all((a == b).all() for a, b in zip(full.weights, resumed.weights, strict=True))
    assert [h.epoch for h in resumed.history] == [1, 2, 3]
    assert resumed.history[0] == full.history[0].__class__(
        **{**full.history[0].__dict__, "seconds": resumed.history[0].seconds})
    assert resumed.test_accuracy == full.test_accuracy


@pytest.mark.mnist
def test_resume_with_other_settings_is_refused(mnist, tmp_path):
    ckpt = tmp_path / "c.npz"
    train("custom_mlp:1,20,0,0", 1, 200, data=small_data(mnist), checkpoint=ckpt,
          verbose=False)
    with pytest.raises(TrainingError, match="batch_size=200 there, 100 here"):
        train("custom_mlp:1,20,0,0", 2, 100, data=small_data(mnist), checkpoint=ckpt,
              resume=True, verbose=False)


@pytest.mark.mnist
def test_non_finite_loss_stops_naming_epoch_and_batch(mnist):
    X_train, y_train, *rest = small_data(mnist)
    X_train = X_train.copy()
    X_train[:] = np.nan
    with pytest.raises(TrainingError, match=r"became nan in epoch 1, batch 1 of 20"):
        train("custom_mlp:1,20,0,0", 1, 100, data=(X_train, y_train, *rest), verbose=False)


@pytest.mark.parametrize("kwargs, message", [
    ({"batch_size": 0}, "batch size"), ({"num_epochs": 0}, "epochs"),
    ({"learning_rate": 0}, "learning rate"), ({"momentum": 1.0}, "momentum"),
    ({"seed": -1}, "seed"), ({"learning_rate": float("nan")}, "learning rate"),
])
def test_bad_settings_are_refused(kwargs, message):
    data = (np.zeros((10, 1, 28, 28), np.float32), np.zeros(10, np.uint8)) * 3
    with pytest.raises(TrainingError, match=message):
        train("cnn", data=data, verbose=False, **{"num_epochs": 1, "batch_size": 5, **kwargs})


def test_cuda_asked_on_a_machine_without_it_is_a_clear_error():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(Exception, match="no CUDA GPU"):
        predict_proba(init_weights("cnn"), np.zeros((1, 1, 28, 28), np.float32), device="cuda")


@pytest.mark.mnist
@pytest.mark.slow
def test_one_epoch_of_the_cnn_at_batch_50_reaches_97_percent(mnist):
    result = train("cnn", num_epochs=1, batch_size=50, seed=0, data=mnist, verbose=False)
    assert result.history[0].val_accuracy >= 0.97
    assert result.test_accuracy >= 0.97
    # evaluate() and predict_proba() agree with what training reported
    X_test, y_test = mnist[4], mnist[5]
    check = evaluate(result.weights, X_test, y_test)
    assert check.accuracy == pytest.approx(result.test_accuracy, abs=1e-9)
    assert check.loss == pytest.approx(result.test_loss, rel=1e-5)
    proba = predict_proba(result.weights, X_test[:100])
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)


@pytest.mark.mnist
def test_resume_takes_the_checkpoints_settings_and_refuses_others(mnist, tmp_path):
    ckpt = tmp_path / "c.npz"
    data = small_data(mnist)
    first = train("custom_mlp:1,20,0.2,0.5", 2, 200, seed=7, data=data, checkpoint=ckpt,
                  verbose=False, threads=1)
    train("custom_mlp:1,20,0.2,0.5", 1, 200, seed=7, data=data, checkpoint=ckpt,
          verbose=False, threads=1)
    again = resume(ckpt, num_epochs=2, data=data, verbose=False, threads=1)
    assert again.config == first.config
    for a, b in zip(again.weights, first.weights, strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(TrainingError, match="seed=7 there, 8 here"):
        resume(ckpt, data=data, seed=8, verbose=False, threads=1)
    with pytest.raises(TrainingError, match="already holds 2 epochs"):
        resume(ckpt, num_epochs=1, data=data, verbose=False, threads=1)


@pytest.mark.mnist
def test_what_the_seed_guarantees_across_thread_counts(mnist):
    """The same thread count: bit-identical. Another count: the same start, batches and
    masks, and losses equal to float32 rounding."""
    import torch

    previous = torch.get_num_threads()
    data = small_data(mnist, n_train=1000)
    try:
        runs = {t: [train("cnn", 1, 50, seed=2, data=data, verbose=False, threads=t,
                          checkpoint=None) for _ in range(2 if t == 1 else 1)]
                for t in (1, 2)}
    finally:
        torch.set_num_threads(previous)
    one, again = runs[1]
    assert all(np.array_equal(a, b) for a, b in zip(one.weights, again.weights, strict=True))
    two = runs[2][0]
    assert abs(one.history[0].train_loss - two.history[0].train_loss) < 1e-4
    assert max(float(np.abs(a - b).max()) for a, b in zip(one.weights, two.weights,
                                                          strict=True)) < 1e-3


def test_bad_thread_counts_are_refused():
    data = (np.zeros((10, 1, 28, 28), np.float32), np.zeros(10, np.uint8)) * 3
    with pytest.raises(TrainingError, match="threads"):
        train("cnn", 1, 5, data=data, verbose=False, threads=0)


def test_the_fast_recipe_runs_on_pytorch_only(theano_engine):
    from mnist_cnn import EngineError

    data = (np.zeros((10, 1, 28, 28), np.float32), np.zeros(10, np.uint8)) * 3
    with pytest.raises(EngineError, match="runs the tutorial's recipe"):
        train("cnn", 1, 5, recipe="fast", engine="theano", data=data, verbose=False)
    with pytest.raises(TrainingError, match="unknown recipe 'slow'"):
        train("cnn", 1, 5, recipe="slow", data=data, verbose=False)
