"""Lasagne's layers in plain numpy: true convolution, 2x2 max-pool, and a forward pass.

Used by the theano engine (its PyTensor Ops call these functions), by the feature-map
figures of :mod:`mnist_cnn.viz`, and by :func:`forward`, which classifies a few images
without importing PyTorch, so that ``mnist-cnn predict`` starts fast. Convolution is
a matrix product of image patches (im2col) on numpy's BLAS.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .networks import NetworkSpec

__all__ = ["conv_forward", "conv_grad_inputs", "conv_grad_weights", "forward", "pool_forward",
           "pool_grad"]


def _patches(x: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """im2col: (N, C, H, W) -> (N, C*rows*cols, H'*W') image patches, one per column."""
    windows = np.lib.stride_tricks.sliding_window_view(x, (rows, cols), axis=(2, 3))
    n, channels, out_h, out_w = windows.shape[:4]
    return windows.transpose(0, 1, 4, 5, 2, 3).reshape(n, channels * rows * cols,
                                                       out_h * out_w)


def _kernel_matrix(W: np.ndarray) -> np.ndarray:
    """Lasagne's kernels, rotated by 180 degrees (true convolution), as (F, C*r*c)."""
    return np.ascontiguousarray(W[:, :, ::-1, ::-1]).reshape(W.shape[0], -1)


def conv_forward(x: np.ndarray, W: np.ndarray) -> np.ndarray:
    """True 2-D convolution, 'valid' mode: (N, C, H, W) * (F, C, r, c) -> (N, F, H', W')."""
    rows, cols = W.shape[2:]
    out = np.matmul(_kernel_matrix(W), _patches(x, rows, cols))  # (N, F, H'*W')
    return out.reshape(len(x), W.shape[0], x.shape[2] - rows + 1, -1)


def conv_grad_weights(x: np.ndarray, grad_out: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Gradient of the loss with respect to the kernels, in Lasagne's layout."""
    patches = _patches(x, *shape[2:])
    g = grad_out.reshape(len(grad_out), shape[0], -1)  # (N, F, H'*W')
    flipped = np.matmul(g, patches.transpose(0, 2, 1)).sum(axis=0).reshape(shape)
    return np.ascontiguousarray(flipped[:, :, ::-1, ::-1])


def conv_grad_inputs(grad_out: np.ndarray, W: np.ndarray, in_shape: Sequence[int]) -> np.ndarray:
    """Gradient of the loss with respect to the input (col2im of the patch gradients)."""
    filters, channels, rows, cols = W.shape
    n, _, out_h, out_w = grad_out.shape
    g = grad_out.reshape(n, filters, -1)
    patches = np.matmul(_kernel_matrix(W).T, g).reshape(n, channels, rows, cols, out_h, out_w)
    grad_in = np.zeros(in_shape, dtype=grad_out.dtype)
    for i in range(rows):
        for j in range(cols):
            grad_in[:, :, i:i + out_h, j:j + out_w] += patches[:, :, i, j]
    return grad_in


def pool_forward(x: np.ndarray) -> np.ndarray:
    """2x2 max-pooling, stride 2, border ignored: (N, C, H, W) -> (N, C, H//2, W//2)."""
    h, w = x.shape[2] // 2 * 2, x.shape[3] // 2 * 2
    top = np.maximum(x[:, :, 0:h:2, 0:w:2], x[:, :, 0:h:2, 1:w:2])
    bottom = np.maximum(x[:, :, 1:h:2, 0:w:2], x[:, :, 1:h:2, 1:w:2])
    return np.maximum(top, bottom, out=top)


def pool_grad(x: np.ndarray, grad_out: np.ndarray) -> np.ndarray:
    """Gradient of 2x2 max-pooling: to the first maximum of each window (row by row).

    Ties are common on MNIST: on the blank background every first-layer unit equals its
    bias, so a window holds four equal maxima. The first one gets the gradient, as in
    PyTorch and cuDNN (Theano's CPU pooling gave it to all four), so that both engines
    take the same steps.
    """
    h, w = x.shape[2] // 2 * 2, x.shape[3] // 2 * 2
    pooled = pool_forward(x)
    grad_in = np.zeros_like(x)
    taken = np.zeros(pooled.shape, bool)
    for a in (0, 1):
        for b in (0, 1):
            first = (x[:, :, a:h:2, b:w:2] == pooled) & ~taken
            grad_in[:, :, a:h:2, b:w:2] = first * grad_out
            taken |= first
    return grad_in


def forward(weights: Sequence[np.ndarray], X: np.ndarray, spec: NetworkSpec) -> np.ndarray:
    """Softmax probabilities of the deterministic (dropout-free) network, in float32.

    Parameters
    ----------
    weights : list of numpy.ndarray
        Lasagne-layout weights of ``spec``'s network.
    X : numpy.ndarray
        Images, (N, 1, 28, 28), scaled as the training data.
    spec : NetworkSpec
        The network.

    Returns
    -------
    numpy.ndarray
        (N, 10) probabilities.
    """
    w = [np.asarray(a, np.float32) for a in weights]
    h = np.ascontiguousarray(X, np.float32)
    if spec.kind == "cnn":
        for W, b in ((w[0], w[1]), (w[2], w[3])):
            h = pool_forward(np.maximum(conv_forward(h, W) + b[None, :, None, None], 0))
        w = w[4:]
    h = h.reshape(len(h), -1)
    for i in range(0, len(w) - 2, 2):
        h = np.maximum(h @ w[i] + w[i + 1], 0)
    logits = h @ w[-2] + w[-1]
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
