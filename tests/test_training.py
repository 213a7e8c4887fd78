"""mnist_cnn.training.loop: the epoch loop: reproducibility, checkpoints, resume, real training."""

from __future__ import annotations

import numpy as np
import pytest

from mnist_cnn import TrainingError, evaluate, predict_proba, resume, train
from mnist_cnn.nets.spec import init_weights


def small_data(mnist, n_train=2000, n_val=500):
    X_train, y_train, X_val, y_val, X_test, y_test = mnist
    return (X_train[:n_train], y_train[:n_train], X_val[:n_val], y_val[:n_val],
            X_test[:n_val], y_test[:n_val])


@pytest.mark.mnist
def test_same_seed_gives_identical_weights_on_cpu(mnist):
    runs = [train("cnn", 1, 100, seed=s, device="cpu", data=small_data(mnist),
                  verbose=False, threads=1) for s in (1, 1, 2)]
    assert all((a == b).all() for a, b in zip(runs[0].weights, runs[1].weights, strict=True))
    assert not (runs[0].weights[0] == runs[2].weights[0]).all()


@pytest.mark.slow
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
def test_non_finite_loss_stops_naming_epoch_and_batch(mnist, tmp_path):
    X_train, y_train, *rest = small_data(mnist)
    X_train = X_train.copy()
    X_train[:] = np.nan
    with pytest.raises(TrainingError, match=r"became nan in epoch 1, batch 1 of 20.*"
                                            "no checkpoint file was set"):
        train("custom_mlp:1,20,0,0", 1, 100, data=(X_train, y_train, *rest), verbose=False)
    with pytest.raises(TrainingError, match="no epoch had finished, so there is no checkpoint"):
        train("custom_mlp:1,20,0,0", 1, 100, data=(X_train, y_train, *rest), verbose=False,
              checkpoint=tmp_path / "c.npz")


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


def _same(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a.weights, b.weights, strict=True))


@pytest.mark.slow
@pytest.mark.mnist
def test_the_same_seed_gives_the_same_weights_whatever_the_threads_and_a_busy_core(mnist):
    """1, 2 and 4 threads, and auto beside a process that keeps a core busy: one run."""
    import subprocess
    import sys

    data = small_data(mnist, n_train=1500)
    runs = {t: train("cnn", 1, 50, seed=2, data=data, verbose=False, threads=t)
            for t in (1, 2, 4)}
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        runs["auto, busy"] = train("cnn", 1, 50, seed=2, data=data, verbose=False)
    finally:
        busy.kill()
        busy.wait()
    one = runs[1]
    assert one.config["shards"] == 2  # batch 50: two shards of 25
    for threads, run in runs.items():
        assert _same(run, one), threads
        assert run.history[0].val_loss == one.history[0].val_loss, threads
        assert run.test_loss == one.test_loss, threads


@pytest.mark.mnist
def test_a_run_resumed_on_other_threads_equals_the_uninterrupted_run(mnist, tmp_path):
    data = small_data(mnist, n_train=1000)
    full = train("cnn", 2, 50, seed=3, data=data, verbose=False, threads=2)
    ckpt = tmp_path / "checkpoint.npz"
    train("cnn", 1, 50, seed=3, data=data, checkpoint=ckpt, verbose=False, threads=1)
    resumed = resume(ckpt, num_epochs=2, data=data, verbose=False, threads=3)
    assert _same(resumed, full)


@pytest.mark.mnist
def test_an_augmented_run_with_shapes_varied_resumes_to_the_uninterrupted_runs_weights(
        mnist, tmp_path):
    # The augmentation's generator (shapes and transforms) is kept in the checkpoint.
    data = small_data(mnist, n_train=1000)
    recipe = {"seed": 2, "data": data, "verbose": False, "threads": 1, "augment": True,
              "vary_shapes": True}
    full = train("cnn", 2, 50, **recipe)
    ckpt = tmp_path / "checkpoint.npz"
    train("cnn", 1, 50, **recipe, checkpoint=ckpt)
    resumed = resume(ckpt, num_epochs=2, data=data, verbose=False)
    assert resumed.config["vary_shapes"] and _same(resumed, full)
    plain = train("cnn", 2, 50, **{**recipe, "vary_shapes": False})
    assert not _same(plain, full)


@pytest.mark.mnist
def test_resume_takes_every_setting_the_checkpoint_recorded(mnist, tmp_path):
    ckpt = tmp_path / "c.npz"
    data = small_data(mnist, n_train=600)
    train("custom_mlp:1,20,0.2,0.5", 1, 60, seed=5, data=data, checkpoint=ckpt,
          verbose=False, threads=1, shards=3, device="cpu")
    again = resume(ckpt, num_epochs=2, data=data, verbose=False)
    assert {k: again.config[k] for k in ("threads", "shards", "device", "floatx")} == {
        "threads": 1, "shards": 3, "device": "cpu", "floatx": "float32"}
    with pytest.raises(TrainingError, match="shards=3 there, 2 here"):
        resume(ckpt, num_epochs=3, data=data, verbose=False, shards=2)
    faster = resume(ckpt, num_epochs=3, data=data, verbose=False, threads=2)
    assert faster.config["threads"] == 2


@pytest.mark.mnist
def test_the_numpy_engine_trains_in_float32_and_float64_close_to_pytorch(mnist):
    data = small_data(mnist, n_train=400, n_val=200)
    torch_run = train("cnn", 1, 100, seed=1, data=data, verbose=False, shards=1)
    for floatx in ("float32", "float64"):
        run = train("cnn", 1, 100, seed=1, data=data, verbose=False, engine="numpy",
                    floatx=floatx)
        assert run.weights[0].dtype == np.dtype(floatx) and run.config["floatx"] == floatx
        assert max(float(np.abs(a - b).max())
                   for a, b in zip(run.weights, torch_run.weights, strict=True)) < 1e-4


def test_float64_is_refused_on_an_engine_that_computes_in_float32():
    data = (np.zeros((10, 1, 28, 28), np.float32), np.zeros(10, np.uint8)) * 3
    with pytest.raises(TrainingError, match="pytorch engine trains in float32"):
        train("cnn", 1, 5, data=data, verbose=False, floatx="float64")


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
