"""The ``theano`` engine: the Lasagne tutorial's symbolic program, on PyTensor.

Theano 1.0.5 no longer builds on current Python; PyTensor is its maintained fork with the
same programming model. This module writes the tutorial's program as the tutorial did: a
4-D input variable and an int32 target vector, shared parameters, the network as one
symbolic expression (stochastic for training, deterministic for evaluation), the
mean categorical cross-entropy, ``grad``, Lasagne's Nesterov momentum updates, and two
compiled functions: ``train_fn(inputs, targets) -> loss`` (applying the updates) and
``val_fn(inputs, targets) -> [loss, accuracy]``.

PyTensor has no convolution or pooling op for 4-D batches, so :func:`true_conv2d` and
:func:`max_pool_2x2` are Ops written here, with their gradients, computed by the numpy
code of :mod:`mnist_cnn.kernels` (true convolution as matrix products of image patches on
numpy's BLAS). Dropout draws its masks from PyTensor's random generator; everything else
is PyTensor's own.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from .errors import MnistCnnError
from .kernels import conv_forward, conv_grad_inputs, conv_grad_weights, pool_forward, pool_grad
from .networks import NetworkSpec, check_shapes, infer_spec, init_weights, parse_model_name
from .results import Evaluation

__all__ = ["TheanoEngine", "TheanoTrainer", "max_pool_2x2", "predict_proba", "require_pytensor",
           "true_conv2d"]


def require_pytensor() -> Any:
    """Import PyTensor, or say how to install it."""
    try:
        import pytensor
    except ImportError:
        raise MnistCnnError(
            "the theano engine needs PyTensor (Theano's maintained fork), which is not "
            "installed: pip install 'mnist-cnn[theano]' (or: pip install pytensor)") from None
    # A pip-installed PyTensor finds no BLAS to link its C code to, and warns at length
    # the first time it looks. It does not matter here: the convolutions and PyTensor's
    # own matrix products both run on numpy's BLAS. Look once, quietly (it is cached).
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS")
        _ = pytensor.config.blas__ldflags
    return pytensor


def _ops() -> dict[str, Any]:
    """The PyTensor Ops (defined on first use, so that PyTensor stays optional)."""
    global _OPS
    if _OPS is None:
        require_pytensor()
        import pytensor.tensor as pt
        from pytensor.graph.basic import Apply
        from pytensor.graph.op import Op

        def tensor4(dtype: str) -> Any:
            return pt.tensor(dtype=dtype, shape=(None,) * 4)

        # The gradient Ops take the forward Op's inputs, never its outputs: PyTensor's
        # elementwise fusion may copy the ReLU feeding them, and a gradient Op that used
        # a forward output would then make it compute the forward pass again.
        class TrueConv2DOp(Op):
            """Lasagne's Conv2DLayer convolution (``flip_filters=True``), valid mode."""

            __props__ = ()

            def make_node(self, x, W):
                x, W = pt.as_tensor_variable(x), pt.as_tensor_variable(W)
                return Apply(self, [x, W], [tensor4(x.dtype)])

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
                return Apply(self, [g, W, x], [tensor4(x.dtype)])

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
                return Apply(self, [x, g, W], [tensor4(W.dtype)])

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
                return Apply(self, [x], [tensor4(x.dtype)])

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
                return Apply(self, [x, g], [tensor4(x.dtype)])

            def perform(self, node, inputs, output_storage):
                output_storage[0][0] = pool_grad(*inputs)

            def infer_shape(self, fgraph, node, shapes):
                return [shapes[0]]

        if not hasattr(Op, "pullback"):  # PyTensor before `pullback` called `grad`
            for op in (TrueConv2DOp, MaxPool2x2Op):
                op.grad = lambda self, inputs, grads: self.pullback(inputs, None, grads)
        _OPS = {"conv": TrueConv2DOp(), "pool": MaxPool2x2Op()}
    return _OPS


_OPS: dict[str, Any] | None = None


def true_conv2d(x: Any, W: Any) -> Any:
    """Symbolic true convolution of a 4-D batch with Lasagne-layout kernels."""
    return _ops()["conv"](x, W)


def max_pool_2x2(x: Any) -> Any:
    """Symbolic 2x2 max-pooling (stride 2, border ignored) of a 4-D batch."""
    return _ops()["pool"](x)


# ------------------------------------------------------------------ the graph

def _build(spec: NetworkSpec, params: list, inputs: Any, rng: Any = None) -> tuple[Any, Any]:
    """The tutorial's network as one symbolic expression: softmax probabilities.

    With a random generator ``rng`` the expression is the stochastic (training) one,
    with dropout; without, the deterministic one. Returns the probabilities and the
    generator after the last draw (to update the shared one with).
    """
    import pytensor.tensor as pt
    from pytensor.tensor.special import softmax

    def dropout(h: Any, p: float) -> Any:
        nonlocal rng
        if rng is None or p == 0:
            return h
        retain = np.float32(1 - p)
        rng, mask = rng.binomial(1, retain, size=h.shape)
        return h / retain * mask.astype("float32")

    def relu(h: Any) -> Any:
        return pt.maximum(h, np.float32(0))

    p = params
    h = inputs
    if spec.kind == "cnn":
        h = max_pool_2x2(relu(true_conv2d(h, p[0]) + p[1].dimshuffle("x", 0, "x", "x")))
        h = max_pool_2x2(relu(true_conv2d(h, p[2]) + p[3].dimshuffle("x", 0, "x", "x")))
        h = relu(pt.dot(dropout(h.flatten(2), 0.5), p[4]) + p[5])
        logits = pt.dot(dropout(h, 0.5), p[6]) + p[7]
    else:
        h = dropout(h, spec.drop_input).flatten(2)
        for i in range(0, len(p) - 2, 2):
            h = dropout(relu(pt.dot(h, p[i]) + p[i + 1]), spec.drop_hidden)
        logits = pt.dot(h, p[-2]) + p[-1]
    return softmax(logits, axis=-1), rng


def _loss_and_accuracy(prediction: Any, targets: Any) -> tuple[Any, Any]:
    import pytensor.tensor as pt

    picked = prediction[pt.arange(targets.shape[0]), targets]
    loss = -pt.mean(pt.log(picked))
    accuracy = pt.mean(pt.eq(pt.argmax(prediction, axis=1), targets), dtype="float32")
    return loss, accuracy


class TheanoEngine:
    """The tutorial's compiled training and validation functions for one network.

    Parameters
    ----------
    spec : NetworkSpec or str
        The network.
    weights : list of numpy.ndarray, optional
        Initial values (Lasagne layout); default Lasagne's initialisation with ``seed``.
    seed : int
        Seeds the initialisation and PyTensor's random stream (dropout masks).
    learning_rate, momentum : float
        Lasagne's ``nesterov_momentum`` settings.
    dropout : bool
        False builds the training function without dropout (to compare engines).
    train : bool
        False compiles only the evaluation functions.
    """

    name = "theano"

    def __init__(self, spec: NetworkSpec | str, weights: Sequence[np.ndarray] | None = None,
                 seed: int = 0, learning_rate: float = 0.01, momentum: float = 0.9,
                 dropout: bool = True, train: bool = True) -> None:
        pytensor = require_pytensor()
        import pytensor.tensor as pt
        from pytensor.tensor.random import shared_rng

        self.spec = parse_model_name(spec)
        if weights is None:
            weights = init_weights(self.spec, seed)
        check_shapes(weights, self.spec)
        self.params = [pytensor.shared(np.asarray(w, np.float32), name=f"param{i}")
                       for i, w in enumerate(weights)]
        self.velocities = [pytensor.shared(np.zeros_like(w, dtype=np.float32))
                           for w in weights]
        self.rng = shared_rng(seed=seed, name="dropout_rng")
        inputs = pt.tensor4("inputs", dtype="float32")
        targets = pt.ivector("targets")
        # Theano's own way of running a graph: compiled C code in a C virtual machine
        # (PyTensor 3 would otherwise pick its Numba backend, which has to call the
        # Python Ops here through object mode).
        mode = pytensor.compile.mode.Mode(linker="cvm", optimizer="fast_run")

        if train:
            prediction, next_rng = _build(self.spec, self.params, inputs,
                                          self.rng if dropout else None)
            loss, _ = _loss_and_accuracy(prediction, targets)
            grads = pytensor.grad(loss, self.params)
            lr, m = np.float32(learning_rate), np.float32(momentum)
            updates = []
            for param, velocity, grad in zip(self.params, self.velocities, grads, strict=True):
                # lasagne.updates.nesterov_momentum(sgd(...)), in Lasagne's own order
                stepped = param - lr * grad
                x = m * velocity + stepped - param
                updates += [(velocity, x), (param, m * x + stepped)]
            if next_rng is not None:
                updates.append((self.rng, next_rng))
            self.train_fn = pytensor.function([inputs, targets], loss, updates=updates,
                                              mode=mode)

        test_prediction, _ = _build(self.spec, self.params, inputs)
        self.val_fn = pytensor.function([inputs, targets],
                                        list(_loss_and_accuracy(test_prediction, targets)),
                                        mode=mode)
        self.predict_fn = pytensor.function([inputs], test_prediction, mode=mode)

    def get_weights(self) -> list[np.ndarray]:
        """The parameters, in Lasagne's layout and order."""
        return [p.get_value().copy() for p in self.params]

    def set_state(self, weights: Sequence[np.ndarray],
                  velocities: Sequence[np.ndarray] | None = None) -> None:
        """Set the parameters (and the Nesterov velocities)."""
        check_shapes(weights, self.spec)
        for shared, value in zip(self.params, weights, strict=True):
            shared.set_value(np.asarray(value, np.float32))
        for shared, value in zip(self.velocities, velocities or [], strict=False):
            shared.set_value(np.asarray(value, np.float32))

    def rng_state(self) -> dict:
        """The state of the dropout masks' generator (JSON-ready)."""
        return self.rng.get_value(borrow=True).bit_generator.state

    def set_rng_state(self, state: dict) -> None:
        generator = self.rng.get_value(borrow=False)
        generator.bit_generator.state = state
        self.rng.set_value(generator, borrow=True)


def predict_proba(weights: Sequence[np.ndarray], X: np.ndarray,
                  model: str | NetworkSpec | None = None, batch_size: int = 1000) -> np.ndarray:
    """Softmax output of the deterministic graph, on PyTensor (see ``inference``)."""
    spec = parse_model_name(model) if model is not None else infer_spec(weights)
    engine = TheanoEngine(spec, weights, train=False)
    X = np.ascontiguousarray(X, np.float32)
    out = [engine.predict_fn(X[s:s + batch_size]) for s in range(0, len(X), batch_size)]
    return np.concatenate(out) if out else np.zeros((0, 10), np.float32)


class TheanoTrainer:
    """The theano engine behind ``train(..., engine="theano")`` (same interface as the
    PyTorch one in :mod:`mnist_cnn.train`): compiled functions fed with numpy batches."""

    name = "theano"
    device = "cpu"

    def __init__(self, spec: NetworkSpec, seed: int, learning_rate: float, momentum: float,
                 device: str, data: Sequence[np.ndarray]) -> None:
        if str(device) not in ("auto", "cpu"):
            raise MnistCnnError(f"the theano engine computes on the CPU (PyTensor's C "
                                f"backend), not on {device!r}; use --device cpu or auto")
        self.engine = TheanoEngine(spec, seed=seed, learning_rate=learning_rate,
                                   momentum=momentum)
        X_train, y_train, X_val, y_val = data
        self.X, self.y = np.ascontiguousarray(X_train, np.float32), np.asarray(y_train, np.int32)
        self.X_val = np.ascontiguousarray(X_val, np.float32)
        self.y_val = np.asarray(y_val, np.int32)

    def batches(self, indices: np.ndarray) -> np.ndarray:
        return indices

    def train_batch(self, index: np.ndarray) -> np.ndarray:
        return self.engine.train_fn(self.X[index], self.y[index])

    def read_losses(self, losses: list) -> np.ndarray:
        return np.asarray(losses, np.float64)

    def validate(self) -> Evaluation:
        return self.evaluate(self.X_val, self.y_val)

    def evaluate(self, X: np.ndarray, y: np.ndarray, batch_size: int = 500) -> Evaluation:
        """Mean loss and accuracy over all examples, with the compiled ``val_fn``."""
        X = np.ascontiguousarray(X, np.float32)
        y = np.asarray(y, np.int32)
        total_loss = correct = 0.0
        for start in range(0, len(X), batch_size):
            loss, accuracy = self.engine.val_fn(X[start:start + batch_size],
                                                y[start:start + batch_size])
            count = len(y[start:start + batch_size])
            total_loss += float(loss) * count
            correct += float(accuracy) * count
        return Evaluation(total_loss / max(len(X), 1), correct / max(len(X), 1))

    def get_state(self) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
        """Weights and velocities (Lasagne layout), and the dropout generator's state
        (its JSON text as bytes, so that a checkpoint holds only numeric arrays)."""
        state = json.dumps(self.engine.rng_state()).encode()
        return (self.engine.get_weights(), [v.get_value().copy() for v in self.engine.velocities],
                np.frombuffer(state, np.uint8).copy())

    def set_state(self, weights: Sequence[np.ndarray], velocities: Sequence[np.ndarray],
                  dropout_state: np.ndarray) -> None:
        self.engine.set_state(weights, velocities)
        self.engine.set_rng_state(json.loads(np.asarray(dropout_state, np.uint8).tobytes()))
