"""The ``numpy`` engine: Lasagne's layers in plain numpy, the reference.

It classifies a few images without importing PyTorch (so ``mnist-cnn predict`` starts
fast) and computes the feature maps of the figures, with the
convolution and pooling of :mod:`mnist_cnn.nets.engines.array_ops`.

It trains too (:class:`NumpyTrainer`): Lasagne's forward pass with dropout, Theano's
gradients and Lasagne's ``nesterov_momentum``, written out step by step, in float32 or
float64 (Theano's ``floatX``). It is slow, and it is the reference: in float64 it follows
the real Lasagne run in float64 to rounding (the judge checks 1e-12 after 100 steps).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from mnist_cnn import defaults
from mnist_cnn.errors import EngineError
from mnist_cnn.nets import mrg
from mnist_cnn.nets.engines import TrainerState, check_cpu_tutorial, cpu_only
from mnist_cnn.nets.engines.array_ops import (
    conv_forward,
    conv_grad_inputs,
    conv_grad_weights,
    pool_forward,
    pool_grad,
)
from mnist_cnn.nets.spec import Conv, Dense, Dropout, Pool, Weights
from mnist_cnn.results import Evaluation

if TYPE_CHECKING:
    from mnist_cnn.training.settings import Settings

__all__ = ["NAME", "NumpyTrainer", "check_settings", "evaluate", "layer_outputs",
           "make_trainer", "predict_proba"]

NAME = "numpy"


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
        One array per layer of ``weights.network.layers``, in the weights' precision; a
        convolution's is after its ReLU, the last is the softmax output (N, 10).
    """
    params = iter(weights)
    dtype = weights[0].dtype
    h = np.ascontiguousarray(X, dtype)
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
        outputs.append(h.astype(dtype, copy=False))
    return outputs


def predict_proba(weights: Weights, X: np.ndarray, device: str = "cpu",
                  batch_size: int | None = None) -> np.ndarray:
    """Softmax probabilities (N, 10) of the deterministic network, in float32."""
    cpu_only(NAME, device)
    batch_size = batch_size or defaults.INFERENCE_BATCH["cpu"]
    out = [layer_outputs(weights, X[s:s + batch_size])[-1]
           for s in range(0, len(X), batch_size)]
    return np.concatenate(out) if out else np.zeros((0, 10), np.float32)


def evaluate(weights: Weights, X: np.ndarray, y: np.ndarray, device: str = "cpu",
             batch_size: int | None = None) -> Evaluation:
    """Mean cross-entropy and accuracy on a labelled set, without dropout."""
    return Evaluation.from_proba(predict_proba(weights, X, device, batch_size), y)


def _rectify_grad(z: np.ndarray, grad: np.ndarray) -> np.ndarray:
    """The gradient through Lasagne's ``rectify(z) = 0.5 * (z + abs(z))``: Theano's
    ``0.5 * (g + g * sgn(z))``, exactly ``g``, ``g / 2`` at 0, or 0."""
    return 0.5 * (grad + grad * np.sign(z))


def _cross_entropy(logits: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each example's cross-entropy of ``softmax(logits)`` and the softmax, computed
    stably as Theano's fused softmax-cross-entropy Op does."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    total = e.sum(axis=1, keepdims=True)
    losses = np.log(total[:, 0]) - shifted[np.arange(len(y)), y]
    return losses, e / total


class NumpyTrainer:
    """The tutorial's training step written out in numpy: the reference engine.

    Forward with dropout as Lasagne's layers compute it; backward with Theano's
    gradients (softmax with cross-entropy fused, rectify's 0.5 at exactly 0, the
    pooling gradient to every tied maximum, true convolution); Lasagne's
    ``nesterov_momentum`` as it writes it (``x = momentum * v + (p - lr * g) - p``,
    then ``p := momentum * x + (p - lr * g)``). The dropout masks are Theano's MRG31k3p
    draws in the run's precision.

    Parameters
    ----------
    weights : Weights
        Initial weights; their precision (float32 or float64) is the run's.
    dropout : sequence of numpy.ndarray
        The sub-stream states of each dropout layer's stream.
    settings : Settings
        The tutorial's rule and its numbers (see :func:`check_settings`).
    data : sequence of numpy.ndarray
        (X_train, y_train, X_val, y_val).
    """

    device = "cpu"
    losses_every = 10

    def __init__(self, weights: Weights, dropout: Sequence[np.ndarray], settings: Settings,
                 data: Sequence[np.ndarray]) -> None:
        self.network = weights.network
        self.dtype = np.dtype(settings.floatx)
        self.learning_rate = self.dtype.type(settings.learning_rate)
        self.momentum = self.dtype.type(settings.momentum)
        self.params = [np.array(w, self.dtype) for w in weights]
        self.velocities = [np.zeros_like(p) for p in self.params]
        self.keep = [1.0 - p for _, p in self.network.dropout_shapes(1)]
        self.streams: list[mrg.MaskStream] = []
        self._set_streams(dropout)
        self.X, self.y, self.X_val, self.y_val = data
        self.steps = 0
        self.versions = {"numpy": np.__version__}

    def _set_streams(self, states: Sequence[np.ndarray]) -> None:
        self.streams = [mrg.MaskStream(state, keep, self.dtype.name)
                        for state, keep in zip(states, self.keep, strict=True)]

    def step(self, X: np.ndarray, y: np.ndarray) -> float:
        """One update on a batch; returns its mean loss (before the update)."""
        loss, grads = self.gradients(X, y)
        lr, m = self.learning_rate, self.momentum
        for p, v, g in zip(self.params, self.velocities, grads, strict=True):
            stepped = p - lr * g
            x = m * v + stepped - p
            v[...] = x
            p[...] = m * x + stepped
        self.steps += 1
        return loss

    def gradients(self, X: np.ndarray, y: np.ndarray) -> tuple[float, list[np.ndarray]]:
        """The mean cross-entropy of a batch with fresh dropout masks, and its gradient
        with respect to every parameter, in Lasagne's layout and order."""
        n = len(X)
        h = np.asarray(X, self.dtype)
        params = iter(self.params)
        streams = iter(self.streams)
        tape: list[tuple[Any, ...]] = []
        for layer in self.network.layers:
            if isinstance(layer, Conv):
                W, b = next(params), next(params)
                z = conv_forward(h, W) + b[None, :, None, None]
                tape.append((layer, h, z, W))
                h = 0.5 * (z + np.abs(z))
            elif isinstance(layer, Pool):
                tape.append((layer, h))
                h = pool_forward(h)
            elif isinstance(layer, Dropout):
                keep = self.dtype.type(1.0 - layer.p)
                mask = next(streams).draw((n, h[0].size)).reshape(h.shape).astype(self.dtype)
                tape.append((layer, mask, keep))
                h = h / keep * mask
            elif isinstance(layer, Dense):
                W, b = next(params), next(params)
                x = h.reshape(n, -1)
                z = x @ W + b
                tape.append((layer, h.shape, x, z, W))
                h = z if layer.softmax else 0.5 * (z + np.abs(z))
        y = np.asarray(y, np.int64)
        losses, proba = _cross_entropy(h, y)
        grad = proba
        grad[np.arange(n), y] -= 1
        grad *= self.dtype.type(1.0) / self.dtype.type(n)
        grads: list[np.ndarray] = []
        for i, (layer, *saved) in reversed(list(enumerate(tape))):
            if isinstance(layer, Dense):
                shape, x, z, W = saved
                if not layer.softmax:
                    grad = _rectify_grad(z, grad)
                grads += [grad.sum(axis=0), x.T @ grad]
                grad = (grad @ W.T).reshape(shape)
            elif isinstance(layer, Dropout):
                mask, keep = saved
                grad = grad * mask / keep
            elif isinstance(layer, Pool):
                (inputs,) = saved
                grad = pool_grad(inputs, grad)
            else:
                inputs, z, W = saved
                grad = _rectify_grad(z, grad)
                grads += [grad.sum(axis=(0, 2, 3)), conv_grad_weights(inputs, grad, W.shape)]
                if i > 0:
                    grad = conv_grad_inputs(grad, W, inputs.shape)
        return float(losses.mean()), grads[::-1]

    def train_epoch(self, order: np.ndarray, shuffled_from: tuple = ()) -> Iterator[np.ndarray]:
        """One update per row of ``order``; yields the losses every few batches."""
        losses: list[float] = []
        for i, batch in enumerate(order):
            losses.append(self.step(self.X[batch], self.y[batch]))
            if len(losses) == self.losses_every or i + 1 == len(order):
                yield np.asarray(losses, np.float64)
                losses = []

    def _weights(self) -> Weights:
        """A copy: the parameters are updated in place."""
        return Weights([p.copy() for p in self.params], self.network, self.dtype.name)

    def validate(self) -> Evaluation:
        """Loss and accuracy on the validation set, without dropout."""
        return self.evaluate(self.X_val, self.y_val)

    def evaluate(self, X: np.ndarray, y: np.ndarray) -> Evaluation:
        """Loss and accuracy on a labelled set, without dropout."""
        return evaluate(self._weights(), X, y)

    def get_state(self) -> TrainerState:
        """Weights, velocities and the dropout streams' states."""
        return TrainerState(self._weights(), [v.copy() for v in self.velocities],
                            [stream.states for stream in self.streams], steps=self.steps)

    def set_state(self, state: TrainerState) -> None:
        """Continue from a saved state."""
        self.params = [np.array(w, self.dtype) for w in state.weights]
        self.velocities = [np.array(v, self.dtype) for v in state.velocities]
        self.steps = state.steps
        self._set_streams(state.dropout)

    def close(self) -> None:
        """Nothing to give back."""


def check_settings(settings: Settings) -> None:
    """Raise EngineError unless ``settings`` are the tutorial's on the CPU."""
    check_cpu_tutorial(NAME, settings)


def make_trainer(weights: Weights, dropout: Sequence[np.ndarray], settings: Settings,
                 data: Sequence[np.ndarray]) -> NumpyTrainer:
    """The numpy engine's trainer (see :class:`NumpyTrainer`); the threads are numpy's
    BLAS's own."""
    check_settings(settings)
    return NumpyTrainer(weights, dropout, settings, data)
