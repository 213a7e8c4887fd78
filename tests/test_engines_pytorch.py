"""mnist_cnn.nets.engines.pytorch: the PyTorch networks compute what Lasagne computes,
and train."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from reference import forward

from mnist_cnn.nets import mrg
from mnist_cnn.nets.engines.array_ops import pool_grad
from mnist_cnn.nets.engines.pytorch.gradient_rules import max_pool_2x2, pool_rectify, rectify
from mnist_cnn.nets.engines.pytorch.modules import LasagneNet
from mnist_cnn.nets.engines.pytorch.optimizers import NesterovMomentum
from mnist_cnn.nets.engines.pytorch.trainer import TorchTrainer
from mnist_cnn.nets.spec import Weights, init_weights, initialise
from mnist_cnn.storage.mnist_data import minibatch_indices
from mnist_cnn.training.settings import Settings

TUTORIAL = Settings(device="cpu", shards=1)


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


def test_modules_are_built_for_the_tutorials_networks():
    assert LasagneNet("cnn").network.name == "cnn"
    assert LasagneNet("mlp").network.name == "mlp"
    assert LasagneNet("custom_mlp:1,20,0,0.25").network.name == "custom_mlp:1,20,0,0.25"
    assert sum(p.numel() for p in LasagneNet("cnn").parameters()) == 160362


def test_dropout_divides_by_the_keep_probability_and_multiplies_by_the_mask():
    net = LasagneNet("custom_mlp:0,1,0.2,0")  # input dropout 0.2 straight into dense(10)
    net.set_weights([np.eye(784, 10, dtype=np.float32), np.zeros(10, np.float32)])
    x = torch.ones(3, 1, 28, 28)
    mask = torch.zeros(3, 784)
    mask[:, 0] = 1.0
    out = net.train()(x, masks=[mask])[:, 0]
    assert torch.equal(out, torch.full((3,), 1 / 0.8))  # Lasagne: (x / 0.8) * mask
    assert (net(x, masks=[torch.zeros(3, 784)]) == 0).all()
    assert (net.eval()(x)[:, 0] == 1.0).all()  # deterministic pass: the identity
    with pytest.raises(ValueError, match="needs the dropout masks"):
        net.train()(x)


def test_weights_read_from_a_network_are_copies_not_views_of_its_parameters():
    net = LasagneNet("cnn")
    weights = net.get_weights()
    with torch.no_grad():
        for p in net.params:
            p.add_(1.0)
    for before, after in zip(weights, net.get_weights(), strict=True):
        np.testing.assert_allclose(after, before + 1.0)


def test_a_network_built_from_arrays_never_changes_them():
    weights = init_weights("cnn")
    before = [w.copy() for w in weights]
    net = LasagneNet("cnn", weights)
    with torch.no_grad():
        for p in net.params:
            p.add_(1.0)
    assert all(np.array_equal(a, b) for a, b in zip(weights, before, strict=True))


def test_rectify_has_lasagnes_gradient_half_at_exactly_zero():
    x = torch.tensor([-1.0, 0.0, 2.0], requires_grad=True)
    out = rectify(x)
    out.backward(torch.ones(3))
    assert out.tolist() == [0.0, 0.0, 2.0]
    assert x.grad.tolist() == [0.0, 0.5, 1.0]  # 0.5 * (x + abs(x)): d/dx at 0 is 0.5


@pytest.mark.parametrize("shape", [(2, 3, 24, 24), (2, 3, 9, 7), (50, 32, 8, 8)])
def test_pooling_gives_every_tied_maximum_the_gradient_as_theano_does(shape):
    x = torch.randn(shape, dtype=torch.float64)
    x[0, :, :4] = 0.25  # windows of four equal values, as on MNIST's blank background
    x[1, :, 1::2] = x[1, :, 0:x.shape[2] - 1:2]  # pairs tied row over row
    with torch.no_grad():
        assert torch.equal(max_pool_2x2(x), torch.nn.functional.max_pool2d(x, 2))
    grad = torch.randn(x.shape[0], x.shape[1], x.shape[2] // 2, x.shape[3] // 2,
                       dtype=torch.float64)
    ours = x.clone().requires_grad_()
    max_pool_2x2(ours).backward(grad)
    np.testing.assert_array_equal(ours.grad.numpy(), pool_grad(x.numpy(), grad.numpy()))
    assert (ours.grad[0, :, 0:2, 0:2] == grad[0, :, 0:1, 0:1]).all()  # all four got it


def test_fused_pool_rectify_equals_lasagnes_rectify_then_pool():
    """Pooling first then rectify gives Lasagne's values and gradients (ties and zeros)."""
    rng = np.random.default_rng(0)
    z = rng.choice([-1.0, 0.0, 0.5, 1.0], size=(4, 3, 8, 8))  # many ties and exact zeros
    g = rng.normal(size=(4, 3, 4, 4))
    x = torch.tensor(z, requires_grad=True)
    out = pool_rectify(x)
    out.backward(torch.tensor(g))
    r = np.maximum(z, 0)  # Lasagne: rectify, then pool with gradient to every tied max
    expected = pool_grad(r, g) * np.where(z > 0, 1.0, np.where(z == 0, 0.5, 0.0))
    np.testing.assert_array_equal(out.detach().numpy(), r.reshape(4, 3, 4, 2, 4, 2).max((3, 5)))
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=0, atol=1e-15)


# ----------------------------------------------------------------------- training


@pytest.mark.parametrize("calls, shape", [(4, (50, 512)), (3, (50, 256)), (2, (500, 256)),
                                          (2, (5, 784))])
def test_a_whole_epochs_masks_at_once_are_the_step_by_step_masks(calls, shape):
    from mnist_cnn.nets.dropout_masks import epoch_masks

    states = mrg.stream_states(123456789)[0]
    stream = mrg.MaskStream(states, keep=0.5)
    expected = np.stack([stream.draw(shape) for _ in range(calls)])
    masks, after = epoch_masks(states, 0.5, calls, shape)
    np.testing.assert_array_equal(masks.numpy(), expected.astype(np.float32))
    np.testing.assert_array_equal(after, stream.states)


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


def _streams(model, seed):
    weights, seeds = initialise(model, np.random.RandomState(seed))
    return weights, [mrg.stream_states(s)[0] for s in seeds]


@pytest.mark.mnist
@pytest.mark.parametrize("model", ["cnn", "custom_mlp:2,64,0.2,0.5"])
def test_resident_epochs_equal_plain_epochs_bit_for_bit(mnist, model):
    """The step that CUDA graphs capture, run eagerly on the CPU: its masks, drawn for
    the whole epoch at once, are the plain step's, so are the losses and weights."""
    data = _small(mnist)
    order = minibatch_indices(600, 100, shuffle=True, rng=3)
    runs = []
    for resident in (True, False):
        weights, dropout = _streams(model, 3)
        trainer = TorchTrainer(weights, dropout, TUTORIAL, data, resident=resident)
        runs.append((_run_epoch(trainer, order), trainer.get_state()))
    (losses_a, a), (losses_b, b) = runs
    np.testing.assert_array_equal(losses_a, losses_b)
    for x, y in zip([*a.weights, *a.dropout], [*b.weights, *b.dropout], strict=True):
        np.testing.assert_array_equal(x, y)


def _resumed_after_one_epoch(trainer, orders):
    """Two trainers: one straight through two epochs, one set to the first's state after
    epoch 1 and run through epoch 2; asserts equal losses and weights. Returns both and
    the state."""
    straight = trainer()
    _run_epoch(straight, orders[0])
    state = straight.get_state()
    second = _run_epoch(straight, orders[1])
    resumed = trainer()
    resumed.set_state(state)
    np.testing.assert_array_equal(_run_epoch(resumed, orders[1]), second)
    for a, b in zip(resumed.get_state().weights, straight.get_state().weights, strict=True):
        np.testing.assert_array_equal(a, b)
    return straight, resumed, state


@pytest.mark.mnist
def test_the_fast_recipe_resumes_from_a_saved_state_identically(mnist):
    """Adam's moments and step count (and so its schedule) are saved and restored."""
    data = _small(mnist)
    orders = [minibatch_indices(600, 100, shuffle=True, rng=s) for s in (1, 2)]
    fast = Settings.of("fast", batch_size=100, device="cpu")

    def trainer():
        return TorchTrainer(*_streams("cnn", 5), fast, data)

    *_, state = _resumed_after_one_epoch(trainer, orders)
    assert state.steps == 6 and len(state.moments) == 8


@pytest.mark.mnist
def test_resident_epochs_resume_from_a_saved_state_identically(mnist):
    data = _small(mnist)
    orders = [minibatch_indices(600, 100, shuffle=True, rng=s) for s in (1, 2)]

    def trainer():
        return TorchTrainer(*_streams("cnn", 5), TUTORIAL, data, resident=True)

    straight, resumed, _ = _resumed_after_one_epoch(trainer, orders)
    assert resumed.validate() == straight.validate()


def test_the_first_convolution_by_window_position_equals_the_plain_one():
    """Values bitwise; gradients to float32 rounding (the sums run in another order)."""
    from mnist_cnn.nets.engines.pytorch.gradient_rules import conv_pool_rectify

    rng = torch.Generator().manual_seed(0)
    x = torch.rand(6, 1, 28, 28, generator=rng)
    x[:, :, :9] = 0  # blank rows: windows of four equal values (the bias)
    W = (torch.randn(32, 1, 5, 5, generator=rng) * 0.3).requires_grad_()
    b = (torch.randn(32, generator=rng) * 0.1).requires_grad_()
    grad = torch.randn(6, 32, 12, 12, generator=rng)
    plain = pool_rectify(torch.nn.functional.conv2d(x, W, b))
    plain.backward(grad)
    expected = (W.grad.clone(), b.grad.clone())
    W.grad = b.grad = None
    ours = conv_pool_rectify(x, W, b)
    ours.backward(grad)
    assert torch.equal(ours, plain)
    for got, want in zip((W.grad, b.grad), expected, strict=True):
        assert (got - want).abs().max() <= 1e-5 * want.abs().max()  # sums of ~3,500 terms


def test_the_fast_recipes_learning_rate_warms_up_over_a_quarter_and_decays_to_zero():
    from mnist_cnn.nets.engines.pytorch.optimizers import Adam

    param = torch.zeros(3)
    updates = Adam([param], peak=3e-3, beta1=0.9, total=8)
    rates = []
    for _ in range(8):
        rates.append(updates.optimizer.param_groups[0]["lr"])
        updates.step([torch.ones(3)])
    assert rates[:3] == [0.0, 1.5e-3, 3e-3] and rates[-1] == pytest.approx(3e-3 / 6)
    assert (param < 0).all()  # the first step at rate 0 moved nothing; the others did


def test_adam_restored_after_some_steps_continues_as_if_never_stopped():
    from mnist_cnn.nets.engines.pytorch.optimizers import Adam

    rng = torch.Generator().manual_seed(0)
    grads = [torch.randn(4, generator=rng) for _ in range(6)]
    straight, resumed = torch.zeros(4), torch.zeros(4)
    through = Adam([straight], peak=1e-2, beta1=0.9, total=6)
    for g in grads[:3]:
        through.step([g])
    resumed.copy_(straight)
    again = Adam([resumed], peak=1e-2, beta1=0.9, total=6)
    again.restore(through.velocities, through.moments, through.steps)
    for g in grads[3:]:
        through.step([g])
        again.step([g])
    assert torch.equal(straight, resumed) and again.steps == 6
