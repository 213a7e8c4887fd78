"""mnist_cnn.model: the PyTorch networks compute what Lasagne computes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from reference import forward

from mnist_cnn.model import LasagneNet, build_cnn, build_custom_mlp, build_mlp
from mnist_cnn.networks import init_weights


def random_weights(model: str, seed: int) -> list[np.ndarray]:
    """Non-trivial weights: Glorot values plus random (non-zero) biases."""
    rng = np.random.default_rng(seed)
    return [w + rng.normal(0, 0.1, w.shape).astype(np.float32) if w.ndim == 1 else w * 3
            for w in init_weights(model, seed)]


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
    assert build_cnn().spec.name == "cnn"
    assert build_mlp().spec.name == "mlp"
    assert build_custom_mlp(1, 20, 0.0, 0.25).spec.name == "custom_mlp:1,20,0,0.25"
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
    from mnist_cnn.model import _max_pool_2x2

    x = torch.randn(shape)
    x[0, :, :4] = 0.25  # windows of four equal values, as on MNIST's blank background
    x[1, :, 1::2] = x[1, :, 0:x.shape[2] - 1:2]  # pairs tied row over row
    with torch.no_grad():  # the strided-view path
        assert torch.equal(_max_pool_2x2(x), torch.nn.functional.max_pool2d(x, 2))
    grad = torch.randn(x.shape[0], x.shape[1], x.shape[2] // 2, x.shape[3] // 2)
    ours, theirs = x.clone().requires_grad_(), x.clone().requires_grad_()
    out = _max_pool_2x2(ours)  # the channels-last forward, NCHW backward path
    assert out.is_contiguous()
    assert torch.equal(out, torch.nn.functional.max_pool2d(theirs, 2))
    out.backward(grad)
    torch.nn.functional.max_pool2d(theirs, 2).backward(grad)
    assert torch.equal(ours.grad, theirs.grad)  # the same first maximum of each window
    assert ours.grad.is_contiguous()


@pytest.mark.parametrize(("shape", "keep"), [((50, 512), 0.5), ((7, 784), 0.8), ((3, 5), 0.1)])
def test_cpu_dropout_masks_are_bernoullis_draws_bit_for_bit(shape, keep):
    from mnist_cnn.model import bernoulli_mask

    ours, theirs = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    for _ in range(2):
        mask = bernoulli_mask(shape, keep, ours)
        assert mask.dtype == torch.float32
        assert torch.equal(mask, torch.empty(shape).bernoulli_(keep, generator=theirs))
    assert torch.equal(ours.get_state(), theirs.get_state())  # later draws agree too
