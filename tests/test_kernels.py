"""mnist_cnn.kernels: Lasagne's layers in numpy equal PyTorch's, gradients included."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mnist_cnn import kernels, predict_proba
from mnist_cnn.networks import init_weights, parse_model_name


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


def test_max_pool_and_its_gradient_equal_pytorch_ties_included():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 3, 9, 8))  # odd height: the border row is ignored
    x[:, :, :4, :4] = 0.5  # ties: the gradient goes to the first maximum only
    grad_out = rng.normal(size=(2, 3, 4, 4))
    tx = torch.tensor(x, requires_grad=True)
    out = torch.nn.functional.max_pool2d(tx, 2)
    out.backward(torch.tensor(grad_out))
    np.testing.assert_array_equal(kernels.pool_forward(x), out.detach().numpy())
    np.testing.assert_array_equal(kernels.pool_grad(x, grad_out), tx.grad.numpy())


@pytest.mark.parametrize("model", ["cnn", "mlp", "custom_mlp:3,64,0.1,0.3"])
def test_numpy_forward_pass_equals_pytorch(mnist, model):
    rng = np.random.default_rng(4)
    weights = [w * (3 if w.ndim > 1 else 1) + rng.normal(0, 0.05, w.shape).astype(np.float32)
               for w in init_weights(model, 4)]
    X = mnist[4][:64]  # real, distinct digits
    ours = kernels.forward(weights, X, parse_model_name(model))
    theirs = predict_proba(weights, X, device="cpu")
    assert theirs.std(axis=0).max() > 0.05
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
