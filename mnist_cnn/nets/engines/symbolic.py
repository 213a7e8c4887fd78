"""The ``theano`` engine: the Lasagne tutorial's symbolic program, on PyTensor.

PyTensor is Theano's maintained fork, with the same programming model, for current
Python. This module writes the tutorial's program as the tutorial did: a
4-D input variable and an int32 target vector, shared parameters, the network as one
symbolic expression (stochastic for training, deterministic for evaluation), the
mean categorical cross-entropy, ``grad``, Lasagne's Nesterov momentum updates, and two
compiled functions: ``train_fn(inputs, targets) -> loss`` (applying the updates) and
``val_fn(inputs, targets) -> [loss, accuracy]``.

PyTensor has no convolution or pooling op for 4-D batches, so :func:`true_conv2d` and
:func:`max_pool_2x2` are Ops written here, with their gradients, computed by the numpy
engine's layers (true convolution as matrix products of image patches on numpy's BLAS).
Lasagne's arithmetic is kept: ``rectify`` is ``0.5 * (x + abs(x))`` (gradient 0.5 at
0) and the pooling gradient goes to every tied maximum, as Theano's does. The dropout
masks are inputs of ``train_fn``, drawn from Theano's MRG31k3p streams as Lasagne draws
them (:mod:`mnist_cnn.nets.mrg`); everything else is PyTensor's own. The graph is built from
:attr:`mnist_cnn.nets.spec.Network.layers`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from pytensor.tensor.special import softmax

from mnist_cnn import defaults
from mnist_cnn.nets.engines import TrainerState, check_cpu_tutorial, cpu_only
from mnist_cnn.nets.engines.array_ops import (
    conv_forward,
    conv_grad_inputs,
    conv_grad_weights,
    pool_forward,
    pool_grad,
)
from mnist_cnn.nets.mrg import MaskStream
from mnist_cnn.nets.spec import Conv, Dense, Dropout, Network, Pool, Weights
from mnist_cnn.results import Evaluation

if TYPE_CHECKING:
    from mnist_cnn.training.settings import Settings

__all__ = ["NAME", "TheanoProgram", "TheanoTrainer", "evaluate", "make_trainer",
           "max_pool_2x2", "predict_proba", "true_conv2d"]

NAME = "theano"

# A pip-installed PyTensor finds no BLAS to link its C code to, and warns at length the
# first time it looks. It does not matter here: the convolutions and PyTensor's own
# matrix products both run on numpy's BLAS. Look once, quietly (it is cached).
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS")
    _ = pytensor.config.blas__ldflags


def _tensor4(dtype: str) -> Any:
    return pt.tensor(dtype=dtype, shape=(None,) * 4)


# The gradient Ops take the forward Op's inputs, never its outputs: PyTensor's
# elementwise fusion may copy the ReLU feeding them, and a gradient Op that used
# a forward output would then make it compute the forward pass again.
class TrueConv2DOp(Op):
    """Lasagne's Conv2DLayer convolution (``flip_filters=True``), valid mode."""

    __props__ = ()

    def make_node(self, x, W):
        x, W = pt.as_tensor_variable(x), pt.as_tensor_variable(W)
        return Apply(self, [x, W], [_tensor4(x.dtype)])

    def perform(self, node, inputs, output_storage):
        output_storage[0][0] = conv_forward(*inputs).astype(inputs[0].dtype,
                                                            copy=False)

    def infer_shape(self, fgraph, node, shapes):
        (n, _, h, w), (f, _, r, c) = shapes
        return [(n, f, h - r + 1, w - c + 1)]

    def pullback(self, inputs, outputs, output_grads):
        x, W = inputs
        (g,) = output_grads
        return [ConvGradInputsOp()(g, W, x), ConvGradWeightsOp()(x, g, W)]


class ConvGradInputsOp(Op):
    __props__ = ()

    def make_node(self, g, W, x):
        g, W, x = (pt.as_tensor_variable(v) for v in (g, W, x))
        return Apply(self, [g, W, x], [_tensor4(x.dtype)])

    def perform(self, node, inputs, output_storage):
        g, W, x = inputs
        output_storage[0][0] = conv_grad_inputs(g, W, x.shape)

    def infer_shape(self, fgraph, node, shapes):
        return [shapes[2]]

    def connection_pattern(self, node):
        return [[True], [True], [False]]  # x is used for its shape only


class ConvGradWeightsOp(Op):
    __props__ = ()

    def make_node(self, x, g, W):
        x, g, W = (pt.as_tensor_variable(v) for v in (x, g, W))
        return Apply(self, [x, g, W], [_tensor4(W.dtype)])

    def perform(self, node, inputs, output_storage):
        x, g, W = inputs
        output_storage[0][0] = conv_grad_weights(x, g, W.shape).astype(W.dtype)

    def infer_shape(self, fgraph, node, shapes):
        return [shapes[2]]

    def connection_pattern(self, node):
        return [[True], [True], [False]]  # W is used for its shape only


class MaxPool2x2Op(Op):
    """Lasagne's MaxPool2DLayer(pool_size=2): stride 2, border ignored."""

    __props__ = ()

    def make_node(self, x):
        x = pt.as_tensor_variable(x)
        return Apply(self, [x], [_tensor4(x.dtype)])

    def perform(self, node, inputs, output_storage):
        output_storage[0][0] = pool_forward(inputs[0])

    def infer_shape(self, fgraph, node, shapes):
        n, c, h, w = shapes[0]
        return [(n, c, h // 2, w // 2)]

    def pullback(self, inputs, outputs, output_grads):
        (x,) = inputs
        return [MaxPool2x2GradOp()(x, output_grads[0])]


class MaxPool2x2GradOp(Op):
    __props__ = ()

    def make_node(self, x, g):
        x, g = (pt.as_tensor_variable(v) for v in (x, g))
        return Apply(self, [x, g], [_tensor4(x.dtype)])

    def perform(self, node, inputs, output_storage):
        output_storage[0][0] = pool_grad(*inputs)

    def infer_shape(self, fgraph, node, shapes):
        return [shapes[0]]


if not hasattr(Op, "pullback"):  # PyTensor before `pullback` called it `grad`
    for _op in (TrueConv2DOp, MaxPool2x2Op):
        _op.grad = lambda self, inputs, grads: self.pullback(inputs, None, grads)

_CONV, _POOL = TrueConv2DOp(), MaxPool2x2Op()


def true_conv2d(x: Any, W: Any) -> Any:
    """Symbolic true convolution of a 4-D batch with Lasagne-layout kernels."""
    return _CONV(x, W)


def max_pool_2x2(x: Any) -> Any:
    """Symbolic 2x2 max-pooling (stride 2, border ignored) of a 4-D batch."""
    return _POOL(x)


# ------------------------------------------------------------------ the graph

def _build(net: Network, params: list, inputs: Any, masks: list | None = None) -> Any:
    """The tutorial's network as one symbolic expression: softmax probabilities.

    With ``masks`` (one symbolic 0/1 matrix per dropout layer) the expression is the
    stochastic (training) one, with dropout; without, the deterministic one.
    """
    def rectify(h: Any) -> Any:
        return np.float32(0.5) * (h + abs(h))  # lasagne.nonlinearities.rectify

    shared = iter(params)
    given = iter(masks) if masks is not None else None
    h = inputs
    for layer in net.layers:
        if isinstance(layer, Conv):
            W, b = next(shared), next(shared)
            h = rectify(true_conv2d(h, W) + b.dimshuffle("x", 0, "x", "x"))
        elif isinstance(layer, Pool):
            h = max_pool_2x2(h)
        elif isinstance(layer, Dropout):
            h = h.flatten(2)
            if given is not None:
                h = h / np.float32(1 - layer.p) * next(given)
        elif isinstance(layer, Dense):
            W, b = next(shared), next(shared)
            h = pt.dot(h.flatten(2), W) + b
            h = softmax(h, axis=-1) if layer.softmax else rectify(h)
    return h


def _loss_and_accuracy(prediction: Any, targets: Any) -> tuple[Any, Any]:
    picked = prediction[pt.arange(targets.shape[0]), targets]
    loss = -pt.mean(pt.log(picked))
    accuracy = pt.mean(pt.eq(pt.argmax(prediction, axis=1), targets), dtype="float32")
    return loss, accuracy


class TheanoProgram:
    """The tutorial's shared variables and compiled functions for one network.

    Parameters
    ----------
    weights : Weights
        Initial values (and so the network).
    learning_rate, momentum : float
        Lasagne's ``nesterov_momentum`` settings.
    dropout : bool
        False builds the training function without dropout (to compare engines).
    train : bool
        False compiles only the evaluation functions.

    Attributes
    ----------
    train_fn : callable
        ``train_fn(inputs, targets, *masks) -> loss``, applying the updates; one float32
        0/1 mask (batch, units) per dropout layer, unless ``dropout=False``.
    val_fn : callable
        ``val_fn(inputs, targets) -> [loss, accuracy]``, deterministic.
    predict_fn : callable
        ``predict_fn(inputs) -> probabilities``, deterministic.
    """

    def __init__(self, weights: Weights, learning_rate: float = 0.01, momentum: float = 0.9,
                 dropout: bool = True, train: bool = True) -> None:
        self.network = weights.network
        self.params = [pytensor.shared(np.asarray(w, np.float32), name=f"param{i}")
                       for i, w in enumerate(weights)]
        self.velocities = [pytensor.shared(np.zeros_like(w, dtype=np.float32))
                           for w in weights]
        inputs = pt.tensor4("inputs", dtype="float32")
        targets = pt.ivector("targets")
        # Theano's own way of running a graph: compiled C code in a C virtual machine
        # (PyTensor 3 would otherwise pick its Numba backend, which has to call the
        # Python Ops here through object mode).
        mode = pytensor.compile.mode.Mode(linker="cvm", optimizer="fast_run")

        if train:
            count = len(self.network.dropout_shapes(1)) if dropout else 0
            masks = [pt.matrix(f"mask{i}", dtype="float32") for i in range(count)]
            prediction = _build(self.network, self.params, inputs, masks if dropout else None)
            loss, _ = _loss_and_accuracy(prediction, targets)
            grads = pytensor.grad(loss, self.params)
            lr, m = np.float32(learning_rate), np.float32(momentum)
            updates = []
            for param, velocity, grad in zip(self.params, self.velocities, grads, strict=True):
                # lasagne.updates.nesterov_momentum(sgd(...)), in Lasagne's own order
                stepped = param - lr * grad
                x = m * velocity + stepped - param
                updates += [(velocity, x), (param, m * x + stepped)]
            self.train_fn = pytensor.function([inputs, targets, *masks], loss,
                                              updates=updates, mode=mode)

        test_prediction = _build(self.network, self.params, inputs)
        self.val_fn = pytensor.function([inputs, targets],
                                        list(_loss_and_accuracy(test_prediction, targets)),
                                        mode=mode)
        self.predict_fn = pytensor.function([inputs], test_prediction, mode=mode)

    def get_weights(self) -> Weights:
        """The parameters, in Lasagne's layout and order."""
        return Weights([p.get_value().copy() for p in self.params], self.network)


def predict_proba(weights: Weights, X: np.ndarray, device: str = "cpu",
                  batch_size: int | None = None) -> np.ndarray:
    """Softmax outputs (N, 10) of the deterministic graph."""
    cpu_only(NAME, device)
    program = TheanoProgram(weights, train=False)
    batch_size = batch_size or defaults.INFERENCE_BATCH["cpu"]
    X = np.ascontiguousarray(X, np.float32)
    out = [program.predict_fn(X[s:s + batch_size]) for s in range(0, len(X), batch_size)]
    return np.concatenate(out) if out else np.zeros((0, 10), np.float32)


def evaluate(weights: Weights, X: np.ndarray, y: np.ndarray, device: str = "cpu",
             batch_size: int | None = None) -> Evaluation:
    """Mean cross-entropy and accuracy on a labelled set, without dropout."""
    return Evaluation.from_proba(predict_proba(weights, X, device, batch_size), y)


class TheanoTrainer:
    """The theano engine's trainer: the compiled functions fed with numpy batches, and
    dropout masks drawn from Theano's MRG31k3p streams (see :mod:`mnist_cnn.nets.mrg`)."""

    device = "cpu"
    losses_every = 50

    def __init__(self, weights: Weights, dropout: Sequence[np.ndarray], learning_rate: float,
                 momentum: float, data: Sequence[np.ndarray]) -> None:
        self.versions = {"pytensor": pytensor.__version__}
        self.program = TheanoProgram(weights, learning_rate=learning_rate, momentum=momentum)
        self.keep = [1.0 - p for _, p in weights.network.dropout_shapes(1)]
        self.streams = [MaskStream(state, keep)
                        for state, keep in zip(dropout, self.keep, strict=True)]
        X_train, y_train, X_val, y_val = data
        self.X, self.y = np.ascontiguousarray(X_train, np.float32), np.asarray(y_train, np.int32)
        self.X_val = np.ascontiguousarray(X_val, np.float32)
        self.y_val = np.asarray(y_val, np.int32)

    def train_epoch(self, order: np.ndarray, shuffled_from: tuple = ()) -> Iterator[np.ndarray]:
        """One call of ``train_fn`` per row of ``order``; yields the losses every few."""
        shapes = [(len(order[0]), math.prod(shape[1:]))
                  for shape, _ in self.program.network.dropout_shapes(len(order[0]))]
        losses = []
        for i, index in enumerate(order):
            masks = [stream.draw(shape).astype(np.float32)
                     for stream, shape in zip(self.streams, shapes, strict=True)]
            losses.append(float(self.program.train_fn(self.X[index], self.y[index], *masks)))
            if (i + 1) % self.losses_every == 0 or i + 1 == len(order):
                yield np.asarray(losses, np.float64)
                losses = []

    def validate(self) -> Evaluation:
        """Loss and accuracy on the validation set, without dropout."""
        return self.evaluate(self.X_val, self.y_val)

    def evaluate(self, X: np.ndarray, y: np.ndarray, batch_size: int = 500) -> Evaluation:
        """Mean loss and accuracy over all examples, with the compiled ``val_fn``."""
        X = np.ascontiguousarray(X, np.float32)
        y = np.asarray(y, np.int32)
        total_loss = correct = 0.0
        for start in range(0, len(X), batch_size):
            loss, accuracy = self.program.val_fn(X[start:start + batch_size],
                                                 y[start:start + batch_size])
            count = len(y[start:start + batch_size])
            total_loss += float(loss) * count
            correct += float(accuracy) * count
        return Evaluation(total_loss / max(len(X), 1), correct / max(len(X), 1))

    def get_state(self) -> TrainerState:
        """Weights and velocities (Lasagne layout), and the dropout streams' states."""
        return TrainerState(self.program.get_weights(),
                            [v.get_value().copy() for v in self.program.velocities],
                            [stream.states for stream in self.streams])

    def set_state(self, state: TrainerState) -> None:
        """Continue from a saved state."""
        for shared, value in zip(self.program.params, state.weights, strict=True):
            shared.set_value(np.asarray(value, np.float32))
        for shared, value in zip(self.program.velocities, state.velocities, strict=True):
            shared.set_value(np.asarray(value, np.float32))
        self.streams = [MaskStream(saved, keep)
                        for saved, keep in zip(state.dropout, self.keep, strict=True)]

    def close(self) -> None:
        """Nothing to give back."""


def check_settings(settings: Settings) -> None:
    """Raise EngineError unless ``settings`` are the tutorial's on the CPU."""
    check_cpu_tutorial(NAME, settings)


def make_trainer(weights: Weights, dropout: Sequence[np.ndarray], settings: Settings,
                 data: Sequence[np.ndarray]) -> TheanoTrainer:
    """The theano engine's trainer (see :class:`TheanoTrainer`); the threads are those of
    numpy's BLAS (or Theano's)."""
    check_settings(settings)
    return TheanoTrainer(weights, dropout, settings.learning_rate, settings.momentum, data)
