"""mnist_cnn.engines.torch: the PyTorch networks compute what Lasagne computes, and train."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from reference import forward

from mnist_cnn.data import minibatch_indices
from mnist_cnn.engines.torch import (
    LasagneNet,
    NesterovMomentum,
    TorchTrainer,
    bernoulli_mask,
    build_cnn,
    build_custom_mlp,
    build_mlp,
    max_pool_2x2,
)
from mnist_cnn.spec import Weights, init_weights


def random_weights(model: str, seed: int) -> list[np.ndarray]:
    """Non-trivial weights: Glorot values plus random (non-zero) biases."""
    rng = np.random.default_rng(seed)
    return Weights([w + rng.normal(0, 0.1, w.shape) if w.ndim == 1 else w * 3
                    for w in init_weights(model, seed)], model)


@pytest.mark.parametrize("model", ["cnn", "mlp", "custom_mlp:3,50,0.1,0.3"])
def test_forward_pass_equals_the_numpy_reference(model):
    weights = random_weights(model, seed=5)
    x = np.random.default_rng(1).random((6, 1, 28, 28), dtype=np.float32)
    net = LasagneNet(model, weights).eval()
    with torch.no_grad():
        ours = torch.softmax(net(torch.from_numpy(x)), dim=1).numpy()
    np.testing.assert_allclose(ours, forward(weights, x), atol=1e-5)


def test_conv_kernels_are_applied_as_a_true_convolution():
    """An asymmetric kernel: the stored array must be flipped for F.conv2d."""
    weights = init_weights("cnn")
    weights[0][:] = 0
    weights[0][0, 0, 0, 0] = 1.0  # true convolution: output(i, j) = x(i + 4, j + 4)
    net = LasagneNet("cnn", weights)
    x = torch.zeros(1, 1, 28, 28)
    x[0, 0, 4, 4] = 1.0
    conv = torch.nn.functional.conv2d(x, net.params[0])
    assert conv[0, 0, 0, 0] == 1.0 and conv[0, 0].sum() == 1.0


@pytest.mark.parametrize("model", ["cnn", "custom_mlp:2,30,0,0"])
def test_weights_round_trip_through_the_torch_layout_exactly(model):
    weights = random_weights(model, seed=2)
    net = LasagneNet(model, weights)
    assert all((a == b).all() for a, b in zip(net.get_weights(), weights, strict=True))
    assert net.params[4 if model == "cnn" else 0].shape[::-1] == weights[
        4 if model == "cnn" else 0].shape  # dense W transposed


def test_builders_match_the_tutorials_networks():
    assert build_cnn().network.name == "cnn"
    assert build_mlp().network.name == "mlp"
    assert build_custom_mlp(1, 20, 0.0, 0.25).network.name == "custom_mlp:1,20,0,0.25"
    assert sum(p.numel() for p in build_cnn().parameters()) == 160362


def test_dropout_keeps_units_with_one_minus_p_and_rescales():
    net = LasagneNet("custom_mlp:0,1,0.5,0")  # input dropout 0.5 straight into dense(10)
    net.set_weights([np.eye(784, 10, dtype=np.float32), np.zeros(10, np.float32)])
    x = torch.ones(2000, 1, 28, 28)
    gen = torch.Generator().manual_seed(0)
    out = net.train()(x, gen)[:, 0]
    assert set(out.unique().tolist()) == {0.0, 2.0}
    assert (out == 2.0).float().mean().item() == pytest.approx(0.5, abs=0.04)
    assert (net.eval()(x)[:, 0] == 1.0).all()  # deterministic pass: identity


def test_dropout_masks_follow_the_generator_seed():
    net = LasagneNet("cnn").train()
    x = torch.rand(4, 1, 28, 28)
    a = net(x, torch.Generator().manual_seed(3))
    b = net(x, torch.Generator().manual_seed(3))
    c = net(x, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_weights_read_from_a_network_are_copies_not_views_of_its_parameters():
    net = LasagneNet("cnn")
    weights = net.get_weights()
    with torch.no_grad():
        for p in net.params:
            p.add_(1.0)
    for before, after in zip(weights, net.get_weights(), strict=True):
        np.testing.assert_allclose(after, before + 1.0)


@pytest.mark.parametrize("shape", [(2, 3, 24, 24), (2, 3, 9, 7), (50, 32, 8, 8)])
def test_pooling_equals_torch_max_pool_values_and_gradients_with_ties_and_odd_sizes(shape):
    x = torch.randn(shape)
    x[0, :, :4] = 0.25  # windows of four equal values, as on MNIST's blank background
    x[1, :, 1::2] = x[1, :, 0:x.shape[2] - 1:2]  # pairs tied row over row
    with torch.no_grad():  # the strided-view path
        assert torch.equal(max_pool_2x2(x), torch.nn.functional.max_pool2d(x, 2))
    grad = torch.randn(x.shape[0], x.shape[1], x.shape[2] // 2, x.shape[3] // 2)
    ours, theirs = x.clone().requires_grad_(), x.clone().requires_grad_()
    out = max_pool_2x2(ours)  # the channels-last forward, NCHW backward path
    assert out.is_contiguous()
    assert torch.equal(out, torch.nn.functional.max_pool2d(theirs, 2))
    out.backward(grad)
    torch.nn.functional.max_pool2d(theirs, 2).backward(grad)
    assert torch.equal(ours.grad, theirs.grad)  # the same first maximum of each window
    assert ours.grad.is_contiguous()


@pytest.mark.parametrize(("shape", "keep"), [((50, 512), 0.5), ((7, 784), 0.8), ((3, 5), 0.1)])
def test_cpu_dropout_masks_are_bernoullis_draws_bit_for_bit(shape, keep):
    ours, theirs = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    for _ in range(2):
        mask = bernoulli_mask(shape, keep, ours)
        assert mask.dtype == torch.float32
        assert torch.equal(mask, torch.empty(shape).bernoulli_(keep, generator=theirs))
    assert torch.equal(ours.get_state(), theirs.get_state())  # later draws agree too


# ----------------------------------------------------------------------- training


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


def test_first_steps_from_zero_velocity_match_torch_sgd_nesterov():
    """Lasagne's rule is algebraically PyTorch's SGD(nesterov=True)."""
    g = torch.randn(10, generator=torch.Generator().manual_seed(0))
    ours, theirs = torch.ones(10), torch.ones(10, requires_grad=True)
    updates = NesterovMomentum([ours], 0.01, 0.9)
    sgd = torch.optim.SGD([theirs], lr=0.01, momentum=0.9, nesterov=True)
    for _ in range(3):
        updates.step([g])
        theirs.grad = g.clone()
        sgd.step()
    torch.testing.assert_close(ours, theirs.detach())


def _small(mnist, n_train=600):
    return (mnist[0][:n_train], mnist[1][:n_train], mnist[2][:500], mnist[3][:500])


def _run_epoch(trainer, order):
    return np.concatenate(list(trainer.train_epoch(order)))


def _by_hand(model, data, seed, order, masks):
    """The plain training step, run by hand over ``order`` with the given dropout masks."""
    X, y = torch.from_numpy(np.ascontiguousarray(data[0])), torch.from_numpy(data[1]).long()
    net = LasagneNet(model, seed=seed)
    updates = NesterovMomentum(list(net.params), 0.01, 0.9)
    losses = []
    for i, index in enumerate(torch.from_numpy(order)):
        loss = torch.nn.functional.cross_entropy(net(X[index], masks=[m[i] for m in masks]),
                                                 y[index])
        updates.step(torch.autograd.grad(loss, list(net.params)))
        losses.append(loss.item())
    return net.get_weights(), np.array(losses)


@pytest.mark.mnist
@pytest.mark.parametrize("model, shapes, keep", [
    ("cnn", [(6, 100, 512), (6, 100, 256)], [0.5, 0.5]),
    ("custom_mlp:2,64,0.2,0.5", [(6, 100, 784), (6, 100, 64), (6, 100, 64)], [0.8, 0.5, 0.5]),
])
def test_resident_step_equals_the_plain_step_given_the_same_masks(mnist, model, shapes, keep):
    """The step that CUDA graphs capture, run eagerly on the CPU: same numbers, bit for bit.

    The resident path draws each epoch's masks ahead, layer by layer, from the trainer's
    seeded generator; the same draws feed the plain step here.
    """
    data = _small(mnist)
    trainer = TorchTrainer(init_weights(model, 3), 3, 0.01, 0.9, "cpu", data, resident=True)
    order = minibatch_indices(600, 100, shuffle=True, rng=3)
    losses = _run_epoch(trainer, order)
    generator = torch.Generator().manual_seed(3)
    masks = [torch.empty(shape).bernoulli_(p, generator=generator)
             for shape, p in zip(shapes, keep, strict=True)]
    weights, expected = _by_hand(model, data, 3, order, masks)
    np.testing.assert_array_equal(losses, expected)
    for ours, theirs in zip(trainer.get_state().weights, weights, strict=True):
        np.testing.assert_array_equal(ours, theirs)


@pytest.mark.mnist
def test_resident_epochs_resume_from_a_saved_state_identically(mnist):
    data = _small(mnist)
    orders = [minibatch_indices(600, 100, shuffle=True, rng=s) for s in (1, 2)]

    def trainer():
        return TorchTrainer(init_weights("cnn", 5), 5, 0.01, 0.9, "cpu", data, resident=True)

    straight = trainer()
    _run_epoch(straight, orders[0])
    state = straight.get_state()
    second = _run_epoch(straight, orders[1])
    resumed = trainer()
    resumed.set_state(state)
    np.testing.assert_array_equal(_run_epoch(resumed, orders[1]), second)
    for a, b in zip(resumed.get_state().weights, straight.get_state().weights, strict=True):
        np.testing.assert_array_equal(a, b)
    assert resumed.validate() == straight.validate()
