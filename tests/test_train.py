"""mnist_cnn.train: Lasagne's updates, reproducibility, checkpoints, real training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mnist_cnn import TrainingError, evaluate, predict_proba, train
from mnist_cnn.networks import init_weights
from mnist_cnn.train import NesterovMomentum


def test_one_nesterov_step_equals_lasagnes_formula():
    rng = np.random.default_rng(0)
    p0, v0, g = (rng.normal(size=(4, 3)).astype(np.float32) for _ in range(3))
    param = torch.from_numpy(p0.copy())
    updates = NesterovMomentum([param], learning_rate=0.01, momentum=0.9)
    updates.velocities[0].copy_(torch.from_numpy(v0))
    updates.step([torch.from_numpy(g)])
    v1 = 0.9 * v0 - 0.01 * g
    np.testing.assert_allclose(updates.velocities[0].numpy(), v1, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(param.numpy(), p0 + 0.9 * v1 - 0.01 * g, rtol=1e-6, atol=1e-7)


def test_first_step_from_zero_velocity_matches_torch_sgd_nesterov():
    """REFERENCE: Lasagne's rule is algebraically PyTorch's SGD(nesterov=True)."""
    g = torch.randn(10, generator=torch.Generator().manual_seed(0))
    ours, theirs = torch.ones(10), torch.ones(10, requires_grad=True)
    updates = NesterovMomentum([ours], 0.01, 0.9)
    sgd = torch.optim.SGD([theirs], lr=0.01, momentum=0.9, nesterov=True)
    for _ in range(3):
        updates.step([g])
        theirs.grad = g.clone()
        sgd.step()
    torch.testing.assert_close(ours, theirs.detach())


def small_data(mnist, n_train=2000, n_val=500):
    X_train, y_train, X_val, y_val, X_test, y_test = mnist
    return (X_train[:n_train], y_train[:n_train], X_val[:n_val], y_val[:n_val],
            X_test[:n_val], y_test[:n_val])


@pytest.mark.mnist
def test_same_seed_gives_identical_weights_on_cpu(mnist):
    runs = [train("cnn", 1, 100, seed=s, device="cpu", data=small_data(mnist),
                  verbose=False) for s in (1, 1, 2)]
    assert all((a == b).all() for a, b in zip(runs[0].weights, runs[1].weights, strict=True))
    assert not (runs[0].weights[0] == runs[2].weights[0]).all()


@pytest.mark.mnist
def test_resume_equals_an_uninterrupted_run(mnist, tmp_path):
    data = small_data(mnist)
    full = train("cnn", 3, 100, seed=4, device="cpu", data=data, verbose=False)
    ckpt = tmp_path / "checkpoint.npz"
    train("cnn", 1, 100, seed=4, device="cpu", data=data, checkpoint=ckpt, verbose=False)
    resumed = train("cnn", 3, 100, seed=4, device="cpu", data=data, checkpoint=ckpt,
                    resume=True, verbose=False)
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
    with pytest.raises(TrainingError, match="batch_size=200 here 100"):
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
    ({"batch_size": 0}, "batch size"), ({"num_epochs": -1}, "epochs"),
    ({"learning_rate": 0}, "learning rate"), ({"momentum": 1.0}, "momentum"),
])
def test_bad_settings_are_refused(kwargs, message):
    data = (np.zeros((10, 1, 28, 28), np.float32), np.zeros(10, np.uint8)) * 3
    with pytest.raises(TrainingError, match=message):
        train("cnn", data=data, verbose=False, **{"num_epochs": 1, "batch_size": 5, **kwargs})


def test_cuda_asked_on_a_machine_without_it_is_a_clear_error():
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


def _by_hand(model, data, seed, order, masks):
    """The plain training step, run by hand over ``order`` with the given dropout masks."""
    import torch.nn.functional as F

    from mnist_cnn.model import LasagneNet

    X, y = torch.from_numpy(np.ascontiguousarray(data[0])), torch.from_numpy(data[1]).long()
    net = LasagneNet(model, seed=seed)
    updates = NesterovMomentum(list(net.params), 0.01, 0.9)
    losses = []
    for i, index in enumerate(torch.from_numpy(order)):
        loss = F.cross_entropy(net(X[index], masks=[m[i] for m in masks]), y[index])
        updates.step(torch.autograd.grad(loss, list(net.params)))
        losses.append(loss.item())
    return net.get_weights(), np.array(losses)


@pytest.mark.mnist
@pytest.mark.parametrize("model, shapes, keep", [
    ("cnn", [(6, 100, 512), (6, 100, 256)], [0.5, 0.5]),
    ("custom_mlp:2,64,0.2,0.5", [(6, 100, 784), (6, 100, 64), (6, 100, 64)], [0.8, 0.5, 0.5]),
])
def test_resident_step_equals_the_plain_step_given_the_same_masks(mnist, model, shapes, keep):
    """The step that CUDA graphs capture, run eagerly on the CPU: same numbers, bit for bit."""
    from mnist_cnn.data import minibatch_indices
    from mnist_cnn.networks import parse_model_name
    from mnist_cnn.train import TorchEngine

    data = small_data(mnist, n_train=600)
    engine = TorchEngine(parse_model_name(model), 3, 0.01, 0.9, "cpu", data[:4],
                         resident=True)
    order = minibatch_indices(600, 100, shuffle=True, rng=3)
    losses = engine.read_losses([engine.train_batch(b) for b in engine.batches(order)])
    masks = [m.clone() for m in engine._epoch.masks]
    assert [tuple(m.shape) for m in masks] == shapes
    for mask, p_keep in zip(masks, keep, strict=True):
        assert abs(float(mask.mean()) - p_keep) < 0.05
    weights, expected = _by_hand(model, data, 3, order, masks)
    np.testing.assert_array_equal(losses, expected)
    for ours, theirs in zip(engine.get_state()[0], weights, strict=True):
        np.testing.assert_array_equal(ours, theirs)


@pytest.mark.mnist
def test_resident_epochs_resume_from_a_saved_state_identically(mnist):
    from mnist_cnn.data import minibatch_indices
    from mnist_cnn.networks import parse_model_name
    from mnist_cnn.train import TorchEngine

    data = small_data(mnist, n_train=600)
    orders = [minibatch_indices(600, 100, shuffle=True, rng=s) for s in (1, 2)]

    def engine():
        return TorchEngine(parse_model_name("cnn"), 5, 0.01, 0.9, "cpu", data[:4],
                           resident=True)

    def epoch(e, order):
        return e.read_losses([e.train_batch(b) for b in e.batches(order)])

    straight = engine()
    epoch(straight, orders[0])
    state = straight.get_state()
    second = epoch(straight, orders[1])
    resumed = engine()
    resumed.set_state(*state)
    np.testing.assert_array_equal(epoch(resumed, orders[1]), second)
    for a, b in zip(resumed.get_state()[0], straight.get_state()[0], strict=True):
        np.testing.assert_array_equal(a, b)
    assert resumed.validate() == straight.validate()
