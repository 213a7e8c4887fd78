"""Lasagne's convolution and 2x2 max-pooling on numpy arrays, with the gradients Theano
computes on a CPU: what the numpy engine computes with and the theano engine's Ops wrap.

A convolution is a matrix product of image patches (im2col) on numpy's BLAS.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["conv_forward", "conv_grad_inputs", "conv_grad_weights", "pool_forward",
           "pool_grad"]


def _columns(x: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """im2col: (N, C, H, W) -> (C*rows*cols, N*H'*W'), every image patch a column, so
    that a whole batch's convolution is one matrix product."""
    windows = np.lib.stride_tricks.sliding_window_view(x, (rows, cols), axis=(2, 3))
    n, channels, out_h, out_w = windows.shape[:4]
    return windows.transpose(1, 4, 5, 0, 2, 3).reshape(channels * rows * cols,
                                                       n * out_h * out_w)


def _kernel_matrix(W: np.ndarray) -> np.ndarray:
    """Lasagne's kernels, rotated by 180 degrees (true convolution), as (F, C*r*c)."""
    return np.ascontiguousarray(W[:, :, ::-1, ::-1]).reshape(W.shape[0], -1)


def _by_filter(grad_out: np.ndarray) -> np.ndarray:
    """(N, F, H', W') -> (F, N*H'*W'), the layout of :func:`_columns`' products."""
    return grad_out.transpose(1, 0, 2, 3).reshape(grad_out.shape[1], -1)


def conv_forward(x: np.ndarray, W: np.ndarray) -> np.ndarray:
    """True 2-D convolution, 'valid' mode: (N, C, H, W) * (F, C, r, c) -> (N, F, H', W')."""
    rows, cols = W.shape[2:]
    out = _kernel_matrix(W) @ _columns(x, rows, cols)  # (F, N*H'*W')
    shape = (W.shape[0], len(x), x.shape[2] - rows + 1, x.shape[3] - cols + 1)
    return np.ascontiguousarray(out.reshape(shape).transpose(1, 0, 2, 3))


def conv_grad_weights(x: np.ndarray, grad_out: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Gradient of the loss with respect to the kernels, in Lasagne's layout."""
    flipped = (_by_filter(grad_out) @ _columns(x, *shape[2:]).T).reshape(shape)
    return np.ascontiguousarray(flipped[:, :, ::-1, ::-1])


def conv_grad_inputs(grad_out: np.ndarray, W: np.ndarray, in_shape: Sequence[int]) -> np.ndarray:
    """Gradient of the loss with respect to the input (col2im of the patch gradients)."""
    _, channels, rows, cols = W.shape
    n, _, out_h, out_w = grad_out.shape
    patches = (_kernel_matrix(W).T @ _by_filter(grad_out)).reshape(
        channels, rows, cols, n, out_h, out_w)
    grad_in = np.zeros((in_shape[1], in_shape[0], *in_shape[2:]), dtype=grad_out.dtype)
    for i in range(rows):
        for j in range(cols):
            grad_in[:, :, i:i + out_h, j:j + out_w] += patches[:, i, j]
    return np.ascontiguousarray(grad_in.transpose(1, 0, 2, 3))


def pool_forward(x: np.ndarray) -> np.ndarray:
    """2x2 max-pooling, stride 2, border ignored: (N, C, H, W) -> (N, C, H//2, W//2)."""
    h, w = x.shape[2] // 2 * 2, x.shape[3] // 2 * 2
    top = np.maximum(x[:, :, 0:h:2, 0:w:2], x[:, :, 0:h:2, 1:w:2])
    bottom = np.maximum(x[:, :, 1:h:2, 0:w:2], x[:, :, 1:h:2, 1:w:2])
    return np.maximum(top, bottom, out=top)


def pool_grad(x: np.ndarray, grad_out: np.ndarray) -> np.ndarray:
    """Gradient of 2x2 max-pooling as Theano's CPU pooling computes it: each window's
    gradient goes to every input equal to the window's maximum.

    Ties are common on MNIST: on the blank background every first-layer unit equals its
    bias, so a window holds four equal maxima, and all four receive the gradient.
    """
    h, w = x.shape[2] // 2 * 2, x.shape[3] // 2 * 2
    pooled = pool_forward(x)
    grad_in = np.zeros_like(x)
    for a in (0, 1):
        for b in (0, 1):
            grad_in[:, :, a:h:2, b:w:2] = (x[:, :, a:h:2, b:w:2] == pooled) * grad_out
    return grad_in
