"""The ``numpy`` engine: Lasagne's layers in plain numpy, for inference.

It classifies a few images without importing PyTorch (so ``mnist-cnn predict`` starts
fast), computes the feature maps of the figures, and lends its convolution and pooling
(with their gradients) to the PyTensor engine's Ops. Convolution is a matrix product of
image patches (im2col) on numpy's BLAS.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .. import defaults
from ..errors import EngineError
from ..results import Evaluation
from ..spec import Conv, Dense, Dropout, Pool, Weights

__all__ = ["NAME", "conv_forward", "conv_grad_inputs", "conv_grad_weights",
           "evaluate", "evaluation_from_proba", "layer_outputs", "make_trainer",
           "pool_forward", "pool_grad", "predict_proba"]

NAME = "numpy"


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


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def layer_outputs(weights: Weights, X: np.ndarray) -> list[np.ndarray]:
    """The output of every layer of the deterministic (dropout-free) network.

    Parameters
    ----------
    weights : Weights
        The network and its parameters.
    X : numpy.ndarray
        Images, (N, 1, 28, 28), scaled as the training data.

    Returns
    -------
    list of numpy.ndarray
        One float32 array per layer of ``weights.network.layers``; a convolution's is
        after its ReLU, the last is the softmax output (N, 10).
    """
    params = iter(weights)
    h = np.ascontiguousarray(X, np.float32)
    outputs = []
    for layer in weights.network.layers:
        if isinstance(layer, Conv):
            W, b = next(params), next(params)
            h = np.maximum(conv_forward(h, W) + b[None, :, None, None], 0)
        elif isinstance(layer, Pool):
            h = pool_forward(h)
        elif isinstance(layer, Dense):
            W, b = next(params), next(params)
            h = h.reshape(len(h), -1) @ W + b
            h = _softmax(h) if layer.softmax else np.maximum(h, 0)
        elif not isinstance(layer, Dropout):
            raise EngineError(f"the numpy engine has no layer {layer!r}")
        outputs.append(h.astype(np.float32, copy=False))
    return outputs


def predict_proba(weights: Weights, X: np.ndarray, device: str = "cpu",
                  batch_size: int | None = None) -> np.ndarray:
    """Softmax probabilities (N, 10) of the deterministic network, in float32."""
    if device not in ("auto", "cpu"):
        raise EngineError(f"the numpy engine computes on the CPU, not on {device!r}")
    batch_size = batch_size or defaults.INFERENCE_BATCH["cpu"]
    out = [layer_outputs(weights, X[s:s + batch_size])[-1]
           for s in range(0, len(X), batch_size)]
    return np.concatenate(out) if out else np.zeros((0, 10), np.float32)


def evaluation_from_proba(proba: np.ndarray, y: np.ndarray) -> Evaluation:
    """Mean cross-entropy and accuracy of class probabilities (N, 10) for labels y."""
    y = np.asarray(y, np.int64)
    if len(y) == 0:
        return Evaluation(0.0, 0.0)
    picked = np.maximum(proba[np.arange(len(y)), y], np.finfo(np.float32).tiny)
    return Evaluation(float(-np.log(picked.astype(np.float64)).mean()),
                      float((proba.argmax(axis=1) == y).mean()))


def evaluate(weights: Weights, X: np.ndarray, y: np.ndarray, device: str = "cpu",
             batch_size: int | None = None) -> Evaluation:
    """Mean cross-entropy and accuracy on a labelled set, without dropout."""
    return evaluation_from_proba(predict_proba(weights, X, device, batch_size), y)


def make_trainer(*args: object, **kwargs: object) -> None:
    """The numpy engine only predicts."""
    raise EngineError("the numpy engine only predicts; train with --engine pytorch or theano")
