"""The ``theano`` engine: the Lasagne tutorial's symbolic program, on PyTensor.

Theano 1.0.5 no longer builds on current Python; PyTensor is its maintained fork with the
same programming model. This module writes the tutorial's program as the tutorial did: a
4-D input variable and an int32 target vector, shared parameters, the network as one
symbolic expression (stochastic for training, deterministic for evaluation), the
mean categorical cross-entropy, ``grad``, Lasagne's Nesterov momentum updates, and two
compiled functions: ``train_fn(inputs, targets) -> loss`` (applying the updates) and
``val_fn(inputs, targets) -> [loss, accuracy]``.

PyTensor has no convolution op for 4-D batches, so :func:`true_conv2d` is one written
here (with its gradients): Lasagne's true convolution computed as a matrix product of
image patches (im2col) with numpy's BLAS. Max-pooling is built from PyTensor's own
reshape and max; dropout draws its masks from PyTensor's random streams.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .errors import MnistCnnError
from .networks import NetworkSpec, check_shapes, infer_spec, init_weights, parse_model_name

__all__ = ["TheanoEngine", "predict_proba", "require_pytensor", "true_conv2d"]


def require_pytensor() -> Any:
    """Import PyTensor, or say how to install it."""
    try:
        import pytensor
    except ImportError:
        raise MnistCnnError(
            "the theano engine needs PyTensor (Theano's maintained fork), which is not "
            "installed: pip install 'mnist-cnn[theano]' (or: pip install pytensor)") from None
    return pytensor


# ----------------------------------------------------------- convolution in numpy

def _patches(x: np.ndarray, rows: int, cols: int) -> tuple[np.ndarray, tuple[int, int, int]]:
    """im2col: (N, C, H, W) -> (N*H'*W', C*rows*cols) patches, and (N, H', W')."""
    windows = np.lib.stride_tricks.sliding_window_view(x, (rows, cols), axis=(2, 3))
    n, _, out_h, out_w = windows.shape[:4]
    flat = windows.transpose(0, 2, 3, 1, 4, 5).reshape(n * out_h * out_w, -1)
    return flat, (n, out_h, out_w)


def _kernel_matrix(W: np.ndarray) -> np.ndarray:
    """Lasagne's kernels, rotated by 180 degrees (true convolution), as (F, C*r*c)."""
    return W[:, :, ::-1, ::-1].reshape(W.shape[0], -1)


def conv_forward(x: np.ndarray, W: np.ndarray) -> np.ndarray:
    """True 2-D convolution, 'valid' mode: (N, C, H, W) * (F, C, r, c) -> (N, F, H', W')."""
    patches, (n, out_h, out_w) = _patches(x, *W.shape[2:])
    out = patches @ _kernel_matrix(W).T
    return np.ascontiguousarray(out.reshape(n, out_h, out_w, -1).transpose(0, 3, 1, 2))


def conv_grad_weights(x: np.ndarray, grad_out: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Gradient of the loss with respect to the kernels, in Lasagne's layout."""
    filters = shape[0]
    patches, _ = _patches(x, *shape[2:])
    g = grad_out.transpose(0, 2, 3, 1).reshape(-1, filters)
    flipped = (g.T @ patches).reshape(shape)
    return np.ascontiguousarray(flipped[:, :, ::-1, ::-1])


def conv_grad_inputs(grad_out: np.ndarray, W: np.ndarray, in_shape: Sequence[int]) -> np.ndarray:
    """Gradient of the loss with respect to the input (col2im of the patch gradients)."""
    filters, channels, rows, cols = W.shape
    n, _, out_h, out_w = grad_out.shape
    g = grad_out.transpose(0, 2, 3, 1).reshape(-1, filters)
    patches = (g @ _kernel_matrix(W)).reshape(n, out_h, out_w, channels, rows, cols)
    patches = patches.transpose(0, 3, 4, 5, 1, 2)  # (N, C, r, c, H', W')
    grad_in = np.zeros(in_shape, dtype=grad_out.dtype)
    for i in range(rows):
        for j in range(cols):
            grad_in[:, :, i:i + out_h, j:j + out_w] += patches[:, :, i, j]
    return grad_in


def _ops() -> tuple[type, type, type]:
    """The three PyTensor Ops (defined on first use, so that PyTensor stays optional)."""
    global _OPS
    if _OPS is None:
        require_pytensor()
        import pytensor.tensor as pt
        from pytensor.graph.basic import Apply
        from pytensor.graph.op import Op

        class TrueConv2DOp(Op):
            """Lasagne's Conv2DLayer convolution (``flip_filters=True``), valid mode."""

            __props__ = ()

            def make_node(self, x, W):
                x, W = pt.as_tensor_variable(x), pt.as_tensor_variable(W)
                return Apply(self, [x, W], [pt.tensor4(dtype=x.dtype)])

            def perform(self, node, inputs, output_storage):
                x, W = inputs
                output_storage[0][0] = conv_forward(x, W).astype(x.dtype, copy=False)

            def grad(self, inputs, output_grads):
                x, W = inputs
                (g,) = output_grads
                return [ConvGradInputsOp()(g, W, x), ConvGradWeightsOp()(x, g, W)]

        class ConvGradInputsOp(Op):
            __props__ = ()

            def make_node(self, g, W, x):
                g, W, x = (pt.as_tensor_variable(v) for v in (g, W, x))
                return Apply(self, [g, W, x], [pt.tensor4(dtype=x.dtype)])

            def perform(self, node, inputs, output_storage):
                g, W, x = inputs
                output_storage[0][0] = conv_grad_inputs(g, W, x.shape).astype(x.dtype)

            def connection_pattern(self, node):
                return [[True], [True], [False]]  # x is used for its shape only

        class ConvGradWeightsOp(Op):
            __props__ = ()

            def make_node(self, x, g, W):
                x, g, W = (pt.as_tensor_variable(v) for v in (x, g, W))
                return Apply(self, [x, g, W], [pt.tensor4(dtype=W.dtype)])

            def perform(self, node, inputs, output_storage):
                x, g, W = inputs
                output_storage[0][0] = conv_grad_weights(x, g, W.shape).astype(W.dtype)

            def connection_pattern(self, node):
                return [[True], [True], [False]]  # W is used for its shape only

        _OPS = (TrueConv2DOp, ConvGradInputsOp, ConvGradWeightsOp)
    return _OPS


_OPS: tuple[type, type, type] | None = None


def true_conv2d(x: Any, W: Any) -> Any:
    """Symbolic true convolution of a 4-D batch with Lasagne-layout kernels."""
    return _ops()[0]()(x, W)


# ------------------------------------------------------------------ the graph

def _build(spec: NetworkSpec, params: list, inputs: Any, deterministic: bool,
           srng: Any) -> Any:
    """The tutorial's network as one symbolic expression: softmax probabilities."""
    import pytensor.tensor as pt
    from pytensor.tensor.special import softmax

    def dropout(h: Any, p: float) -> Any:
        if deterministic or p == 0:
            return h
        retain = np.float32(1 - p)
        mask = srng.binomial(1, retain, size=h.shape).astype("float32")
        return h / retain * mask

    def relu(h: Any) -> Any:
        return pt.maximum(h, np.float32(0))

    def pool(h: Any) -> Any:  # 2x2 max-pool, stride 2, border ignored
        n, c, height, width = h.shape
        h = h[:, :, : height // 2 * 2, : width // 2 * 2]
        return h.reshape((n, c, height // 2, 2, width // 2, 2)).max(axis=(3, 5))

    p = params
    h = inputs
    if spec.kind == "cnn":
        h = pool(relu(true_conv2d(h, p[0]) + p[1].dimshuffle("x", 0, "x", "x")))
        h = pool(relu(true_conv2d(h, p[2]) + p[3].dimshuffle("x", 0, "x", "x")))
        h = relu(pt.dot(dropout(h.flatten(2), 0.5), p[4]) + p[5])
        logits = pt.dot(dropout(h, 0.5), p[6]) + p[7]
    else:
        h = dropout(h, spec.drop_input).flatten(2)
        for i in range(0, len(p) - 2, 2):
            h = dropout(relu(pt.dot(h, p[i]) + p[i + 1]), spec.drop_hidden)
        logits = pt.dot(h, p[-2]) + p[-1]
    return softmax(logits, axis=-1)


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
        from pytensor.tensor.random.utils import RandomStream

        self.spec = parse_model_name(spec)
        if weights is None:
            weights = init_weights(self.spec, seed)
        check_shapes(weights, self.spec)
        self.params = [pytensor.shared(np.asarray(w, np.float32), name=f"param{i}")
                       for i, w in enumerate(weights)]
        self.velocities = [pytensor.shared(np.zeros_like(w, dtype=np.float32))
                           for w in weights]
        self.srng = RandomStream(seed)
        inputs = pt.tensor4("inputs", dtype="float32")
        targets = pt.ivector("targets")

        if train:
            prediction = _build(self.spec, self.params, inputs, not dropout, self.srng)
            loss, _ = _loss_and_accuracy(prediction, targets)
            grads = pytensor.grad(loss, self.params)
            lr, m = np.float32(learning_rate), np.float32(momentum)
            updates = []
            for param, velocity, grad in zip(self.params, self.velocities, grads, strict=True):
                # lasagne.updates.nesterov_momentum(sgd(...)), in Lasagne's own order
                stepped = param - lr * grad
                x = m * velocity + stepped - param
                updates += [(velocity, x), (param, m * x + stepped)]
            self.train_fn = pytensor.function([inputs, targets], loss, updates=updates)

        test_prediction = _build(self.spec, self.params, inputs, True, self.srng)
        self.val_fn = pytensor.function([inputs, targets],
                                        list(_loss_and_accuracy(test_prediction, targets)))
        self.predict_fn = pytensor.function([inputs], test_prediction)

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

    def rng_state(self) -> list[dict]:
        """The states of the dropout streams' generators (JSON-ready)."""
        return [rng.get_value(borrow=True).bit_generator.state
                for rng, _ in self.srng.state_updates]

    def set_rng_state(self, states: Sequence[dict]) -> None:
        for (rng, _), state in zip(self.srng.state_updates, states, strict=True):
            generator = rng.get_value(borrow=False)
            generator.bit_generator.state = state
            rng.set_value(generator, borrow=True)


def predict_proba(weights: Sequence[np.ndarray], X: np.ndarray,
                  model: str | NetworkSpec | None = None, batch_size: int = 1000) -> np.ndarray:
    """Softmax output of the deterministic graph, on PyTensor (see ``inference``)."""
    spec = parse_model_name(model) if model is not None else infer_spec(weights)
    engine = TheanoEngine(spec, weights, train=False)
    X = np.ascontiguousarray(X, np.float32)
    out = [engine.predict_fn(X[s:s + batch_size]) for s in range(0, len(X), batch_size)]
    return np.concatenate(out) if out else np.zeros((0, 10), np.float32)
