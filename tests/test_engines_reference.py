"""mnist_cnn.nets.engines.reference: Lasagne's layers in numpy equal PyTorch's, gradients
included."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mnist_cnn import predict_proba
from mnist_cnn.nets.engines import reference as kernels
from mnist_cnn.nets.spec import Weights, init_weights


def test_convolution_and_its_gradients_equal_pytorch_autograd():
    rng = np.random.default_rng(0)
    x, W = rng.random((3, 4, 11, 10)), rng.normal(size=(5, 4, 3, 2))
    grad_out = rng.normal(size=(3, 5, 9, 9))
    tx = torch.tensor(x, requires_grad=True)
    tW = torch.tensor(W, requires_grad=True)
    out = torch.nn.functional.conv2d(tx, tW.flip((2, 3)))  # a true convolution
    out.backward(torch.tensor(grad_out))
    np.testing.assert_allclose(kernels.conv_forward(x, W), out.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(kernels.conv_grad_weights(x, grad_out, W.shape), tW.grad.numpy(),
                               atol=1e-12)
    np.testing.assert_allclose(kernels.conv_grad_inputs(grad_out, W, x.shape), tx.grad.numpy(),
                               atol=1e-12)


def test_max_pool_gradient_goes_to_every_tied_maximum_as_in_theano():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 3, 9, 8))  # odd height: the border row is ignored
    x[:, :, :4, :4] = 0.5  # windows of four equal maxima
    grad_out = rng.normal(size=(2, 3, 4, 4))
    tx = torch.tensor(x, requires_grad=True)
    out = torch.nn.functional.max_pool2d(tx, 2)
    out.backward(torch.tensor(grad_out))
    np.testing.assert_array_equal(kernels.pool_forward(x), out.detach().numpy())
    ours = kernels.pool_grad(x, grad_out)
    tied = np.zeros(x.shape, bool)
    tied[:, :, :4, :4] = True
    np.testing.assert_array_equal(ours[~tied], tx.grad.numpy()[~tied])  # one maximum each
    expected = np.repeat(np.repeat(grad_out[:, :, :2, :2], 2, axis=2), 2, axis=3)
    np.testing.assert_array_equal(ours[:, :, :4, :4], expected)  # all four tied get it
    assert (ours[:, :, 8] == 0).all()


@pytest.mark.parametrize("model", ["cnn", "mlp", "custom_mlp:3,64,0.1,0.3"])
def test_numpy_forward_pass_equals_pytorch(mnist, model):
    rng = np.random.default_rng(4)
    weights = Weights([w * (3 if w.ndim > 1 else 1) + rng.normal(0, 0.05, w.shape)
                       for w in init_weights(model, 4)], model)
    X = mnist[4][:64]  # real, distinct digits
    ours = predict_proba(weights, X, engine="numpy")
    theirs = predict_proba(weights, X, engine="pytorch", device="cpu")
    assert theirs.std(axis=0).max() > 0.05
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


def test_layer_outputs_follow_the_networks_layers(mnist):
    outputs = kernels.layer_outputs(init_weights("cnn"), mnist[4][:3])
    assert [o.shape for o in outputs] == [(3, 32, 24, 24), (3, 32, 12, 12), (3, 32, 8, 8),
                                          (3, 32, 4, 4), (3, 32, 4, 4), (3, 256), (3, 256),
                                          (3, 10)]
    assert (outputs[0] >= 0).all()  # after ReLU
    np.testing.assert_allclose(outputs[-1].sum(axis=1), 1, rtol=1e-6)


def test_the_numpy_trainers_gradients_and_update_are_pytorchs_and_lasagnes():
    """float64 numpy against PyTorch's float32 autograd of the same network and masks,
    then one step of Lasagne's nesterov_momentum written out."""

    from mnist_cnn.nets import mrg
    from mnist_cnn.nets.engines.pytorch.modules import LasagneNet, to_lasagne
    from mnist_cnn.nets.engines.reference import NumpyTrainer
    from mnist_cnn.training.settings import Settings

    rng = np.random.default_rng(2)
    weights = Weights([w * 3 + rng.normal(0, 0.05, w.shape) for w in init_weights("cnn", 3)],
                      "cnn", "float64")
    X = rng.random((12, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, 12)
    states = [mrg.stream_states(s)[0] for s in (11, 12)]
    settings = Settings(engine="numpy", floatx="float64", device="cpu")
    trainer = NumpyTrainer(weights, states, settings, (X, y, X, y))
    loss, grads = trainer.gradients(X, y)
    masks = [torch.from_numpy(mrg.MaskStream(state, 0.5, "float64").draw((12, units))
                              .astype(np.float32))
             for state, units in zip(states, (512, 256), strict=True)]
    net = LasagneNet("cnn", weights).train()
    torch_loss = torch.nn.functional.cross_entropy(net(torch.from_numpy(X), masks),
                                                   torch.from_numpy(y))
    torch_grads = torch.autograd.grad(torch_loss, list(net.params))
    assert loss == pytest.approx(float(torch_loss.detach()), rel=1e-6)  # float32's few ulps
    for ours, theirs in zip(grads, torch_grads, strict=True):
        np.testing.assert_allclose(ours, to_lasagne(theirs), atol=2e-5 * np.abs(ours).max())
    stepped = NumpyTrainer(weights, states, settings, (X, y, X, y))  # the same masks
    stepped.step(X, y)
    for p0, p1, v, g in zip(weights, stepped.params, stepped.velocities, grads, strict=True):
        np.testing.assert_array_equal(v, 0.9 * 0 + (p0 - 0.01 * g) - p0)
        np.testing.assert_array_equal(p1, 0.9 * v + (p0 - 0.01 * g))
