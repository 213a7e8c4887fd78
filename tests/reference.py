"""An independent numpy/scipy forward pass with Lasagne's semantics, for the tests.

Written from Lasagne's documentation, not from the package: true 2-D convolution with
the stored kernels (``scipy.signal.convolve2d``), 2x2 max-pool ignoring the border,
dense layers as ``x @ W + b`` with W stored (num_inputs, num_units), softmax output.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import convolve2d


def conv_layer(x: np.ndarray, W: np.ndarray, b: np.ndarray) -> np.ndarray:
    """ReLU(true convolution + bias): x (N, C, H, W), W (F, C, r, c) -> (N, F, H-r+1, W-c+1)."""
    n, channels = x.shape[:2]
    filters, _, rows, cols = W.shape
    out = np.zeros((n, filters, x.shape[2] - rows + 1, x.shape[3] - cols + 1))
    for i in range(n):
        for f in range(filters):
            for c in range(channels):
                out[i, f] += convolve2d(x[i, c].astype(np.float64), W[f, c], mode="valid")
            out[i, f] += b[f]
    return np.maximum(out, 0)


def max_pool(x: np.ndarray) -> np.ndarray:
    n, c, h, w = x.shape
    x = x[:, :, : h // 2 * 2, : w // 2 * 2]
    return x.reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def forward(weights: list[np.ndarray], x: np.ndarray) -> np.ndarray:
    """Deterministic output probabilities of the tutorial's CNN or MLP, in float64."""
    w = [np.asarray(a, np.float64) for a in weights]
    h = np.asarray(x, np.float64)
    if w[0].ndim == 4:  # the CNN
        h = max_pool(conv_layer(h, w[0], w[1]))
        h = max_pool(conv_layer(h, w[2], w[3]))
        w = w[4:]
    h = h.reshape(len(h), -1)
    for i in range(0, len(w) - 2, 2):
        h = np.maximum(h @ w[i] + w[i + 1], 0)
    return softmax(h @ w[-2] + w[-1])


# ------------------------------------------------------------------ Theano's MRG31k3p

M1, M2 = 2147483647, 2147462579


def mrg_next(state: list[int]) -> float:
    """One draw of Theano's ``mrg_next_value`` (rng_mrg.py), on Python integers, as a
    float32 sample; ``state`` (six integers) is advanced in place."""
    x11, x12, x13, x21, x22, x23 = state
    y1 = (4194304 * x12 + 129 * x13) % M1  # 2**22 x12 + (2**7 + 1) x13
    y2 = (32768 * x21 + 32769 * x23) % M2  # 2**15 x21 + (2**15 + 1) x23
    state[:] = [y1, x11, x12, y2, x21, x22]
    d = y1 - y2 + M1 if y1 <= y2 else y1 - y2
    return float(np.float32(d) * np.float32(4.6566126e-10))


def matrix_power_mod(A: list[list[int]], exponent: int, m: int) -> list[list[int]]:
    """A ** exponent mod m by repeated squaring, on Python integers."""
    result = [[int(i == j) for j in range(3)] for i in range(3)]
    while exponent:
        if exponent & 1:
            result = [[sum(result[i][k] * A[k][j] for k in range(3)) % m for j in range(3)]
                      for i in range(3)]
        A = [[sum(A[i][k] * A[k][j] for k in range(3)) % m for j in range(3)]
             for i in range(3)]
        exponent >>= 1
    return result
