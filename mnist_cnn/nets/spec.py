"""The tutorial's three networks, described once, as data.

A :class:`Network` is the tutorial's list of layers (convolution, pooling, dropout,
dense) with their sizes. Every engine builds its own form of a network from
``Network.layers`` (PyTorch modules, the PyTensor graph, the numpy forward pass), the
parameter shapes and their order are derived from it, and :class:`Weights` carries the
network its arrays belong to, so that no other code works it out again. Nothing here
needs PyTorch.

Layouts and order are Lasagne's: a convolution kernel is stored ``(num_filters,
input_channels, rows, cols)`` for a true convolution, a dense weight ``(num_inputs,
num_units)``, and the parameters run from input to output, W before b.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import overload

import numpy as np

from mnist_cnn.errors import WeightsError

__all__ = [
    "Conv",
    "Dense",
    "Dropout",
    "Layer",
    "Network",
    "Pool",
    "Weights",
    "cnn",
    "custom_mlp",
    "init_weights",
    "initialise",
    "mlp",
    "network",
    "network_for",
]


Shape = tuple[int, ...]


@dataclass(frozen=True)
class Conv:
    """Lasagne's ``Conv2DLayer``: ``num_filters`` true convolutions of ``size x size``,
    stride 1, no padding, then ReLU; its W is drawn GlorotUniform and its b is 0."""

    num_filters: int
    size: int

    def output_shape(self, inputs: Shape) -> Shape:
        """One example's shape after the layer, from its shape before."""
        return (self.num_filters, inputs[1] - self.size + 1, inputs[2] - self.size + 1)

    def param_shapes(self, inputs: Shape) -> list[Shape]:
        """W (num_filters, channels, size, size) and b (num_filters,)."""
        return [(self.num_filters, inputs[0], self.size, self.size), (self.num_filters,)]

    def initialise(self, inputs: Shape, rng: np.random.RandomState,
                   dtype: str) -> tuple[list[np.ndarray], list[int]]:
        """Its parameters as Lasagne draws them (see :func:`glorot_uniform`)."""
        return _weight_and_bias(self.param_shapes(inputs), rng, dtype), []


@dataclass(frozen=True)
class Pool:
    """Lasagne's ``MaxPool2DLayer(pool_size=2)``: the maximum of each 2x2 window,
    stride 2; an incomplete last row or column is ignored."""

    def output_shape(self, inputs: Shape) -> Shape:
        """One example's shape after the layer, from its shape before."""
        return (inputs[0], inputs[1] // 2, inputs[2] // 2)

    def param_shapes(self, inputs: Shape) -> list[Shape]:
        """None."""
        return []

    def initialise(self, inputs: Shape, rng: np.random.RandomState,
                   dtype: str) -> tuple[list[np.ndarray], list[int]]:
        """Nothing to draw."""
        return [], []


@dataclass(frozen=True)
class Dropout:
    """Lasagne's ``DropoutLayer``: in training, each unit is kept with probability
    ``1 - p`` and kept units are scaled by ``1 / (1 - p)``; otherwise the identity. It
    draws the seed of its own random stream when it is built."""

    p: float

    def output_shape(self, inputs: Shape) -> Shape:
        """The input's shape (the engines flatten it)."""
        return inputs

    def param_shapes(self, inputs: Shape) -> list[Shape]:
        """None."""
        return []

    def initialise(self, inputs: Shape, rng: np.random.RandomState,
                   dtype: str) -> tuple[list[np.ndarray], list[int]]:
        """No parameters; the seed of its stream, ``randint(1, DROPOUT_SEED_LIMIT)``."""
        return [], [int(rng.randint(1, DROPOUT_SEED_LIMIT))]


@dataclass(frozen=True)
class Dense:
    """Lasagne's ``DenseLayer``: ``x @ W + b`` on the flattened input, then ReLU, or
    softmax for the output layer; its W is drawn GlorotUniform and its b is 0."""

    num_units: int
    softmax: bool = False

    def output_shape(self, inputs: Shape) -> Shape:
        """One example's shape after the layer, from its shape before."""
        return (self.num_units,)

    def param_shapes(self, inputs: Shape) -> list[Shape]:
        """W (num_inputs, num_units) and b (num_units,)."""
        return [(math.prod(inputs), self.num_units), (self.num_units,)]

    def initialise(self, inputs: Shape, rng: np.random.RandomState,
                   dtype: str) -> tuple[list[np.ndarray], list[int]]:
        """Its parameters as Lasagne draws them (see :func:`glorot_uniform`)."""
        return _weight_and_bias(self.param_shapes(inputs), rng, dtype), []


Layer = Conv | Pool | Dropout | Dense

#: Lasagne's ``DropoutLayer`` seeds its stream with ``randint(1, DROPOUT_SEED_LIMIT)``.
DROPOUT_SEED_LIMIT = 2147462579


def glorot_uniform(shape: Shape, rng: np.random.RandomState) -> np.ndarray:
    """Lasagne's ``GlorotUniform`` (gain 1) in float64: for a shape ``(n1, n2, *rf)``,
    ``U(-a, a)`` with ``a = sqrt(3) * sqrt(2 / ((n1 + n2) * prod(rf)))``."""
    n1, n2 = shape[:2]
    std = 1.0 * np.sqrt(2.0 / ((n1 + n2) * np.prod(shape[2:])))
    bound = np.sqrt(3) * std
    return rng.uniform(low=0.0 - bound, high=0.0 + bound, size=shape)


def _weight_and_bias(shapes: list[Shape], rng: np.random.RandomState,
                     dtype: str) -> list[np.ndarray]:
    weight, bias = shapes
    return [glorot_uniform(weight, rng).astype(dtype), np.zeros(bias, dtype)]


@dataclass(frozen=True)
class Network:
    """One of the tutorial's networks.

    Attributes
    ----------
    name : str
        The tutorial's name: ``cnn``, ``mlp`` or ``custom_mlp:DEPTH,WIDTH,DROP_IN,DROP_HID``.
    layers : tuple of Layer
        The layers after the input, in order.
    input_shape : tuple of int
        One example's shape: (1, 28, 28).
    """

    name: str
    layers: tuple[Layer, ...]
    input_shape: Shape = (1, 28, 28)

    def input_shapes(self) -> list[Shape]:
        """One example's shape before each layer."""
        shapes, shape = [], self.input_shape
        for layer in self.layers:
            shapes.append(shape)
            shape = layer.output_shape(shape)
        return shapes

    def output_shapes(self) -> list[Shape]:
        """One example's shape after each layer."""
        return [layer.output_shape(shape)
                for layer, shape in zip(self.layers, self.input_shapes(), strict=True)]

    def param_shapes(self) -> list[Shape]:
        """Shapes of the parameters in Lasagne's layout and order (W before b)."""
        return [param for layer, shape in zip(self.layers, self.input_shapes(), strict=True)
                for param in layer.param_shapes(shape)]

    def num_params(self) -> int:
        """How many numbers the weights hold."""
        return sum(math.prod(shape) for shape in self.param_shapes())

    def dropout_shapes(self, batch_size: int) -> list[tuple[Shape, float]]:
        """Shape and drop probability of each dropout mask of a training batch, in order.

        A mask has the shape of its layer's input, the batch first.
        """
        return [((batch_size, *shape), layer.p)
                for layer, shape in zip(self.layers, self.input_shapes(), strict=True)
                if isinstance(layer, Dropout)]

    @property
    def convolutional(self) -> bool:
        """Whether the network has convolution layers (kernels and feature maps to show)."""
        return any(isinstance(layer, Conv) for layer in self.layers)


def cnn() -> Network:
    """The tutorial's ``build_cnn``: conv(32, 5x5)-pool-conv(32, 5x5)-pool-dropout(0.5)-
    dense(256)-dropout(0.5)-dense(10, softmax)."""
    return Network("cnn", (Conv(32, 5), Pool(), Conv(32, 5), Pool(), Dropout(0.5),
                           Dense(256), Dropout(0.5), Dense(10, softmax=True)))


def custom_mlp(depth: int = 2, width: int = 800, drop_input: float = 0.2,
               drop_hidden: float = 0.5) -> Network:
    """The tutorial's ``build_custom_mlp``: input dropout, ``depth`` dense layers of
    ``width`` units each followed by dropout, dense(10, softmax). A dropout layer with
    probability 0 is left out, as the tutorial does."""
    name = "mlp" if (depth, width, drop_input, drop_hidden) == (2, 800, 0.2, 0.5) else (
        f"custom_mlp:{depth},{width},{drop_input:g},{drop_hidden:g}")
    layers: list[Layer] = [Dropout(drop_input)] if drop_input else []
    for _ in range(depth):
        layers.append(Dense(width))
        if drop_hidden:
            layers.append(Dropout(drop_hidden))
    return Network(name, (*layers, Dense(10, softmax=True)))


def mlp() -> Network:
    """The tutorial's ``build_mlp``: input dropout 0.2, two dense layers of 800 units
    with dropout 0.5, dense(10, softmax)."""
    return custom_mlp()


#: The tutorial's networks by name (``custom_mlp:DEPTH,WIDTH,DROP_IN,DROP_HID`` names the
#: family of :func:`custom_mlp`): what :func:`network` builds and :func:`network_for`
#: recognises. A new network is one function and one line here.
NETWORKS: dict[str, Callable[[], Network]] = {"cnn": cnn, "mlp": mlp}

_CUSTOM = re.compile(r"custom_mlp:(\d+),(\d+),([0-9.eE+-]+),([0-9.eE+-]+)")


def network(name: str | Network) -> Network:
    """The network of a tutorial model name: ``cnn``, ``mlp`` or ``custom_mlp:D,W,DI,DH``.

    Parameters
    ----------
    name : str or Network
        As on the tutorial's command line, e.g. ``custom_mlp:2,800,0.2,0.5``; a
        :class:`Network` is returned as it is.

    Returns
    -------
    Network

    Raises
    ------
    ValueError
        If the name is not one of those forms.

    Examples
    --------
    >>> network("custom_mlp:3,500,0,0.5").param_shapes()[0]
    (784, 500)
    """
    if isinstance(name, Network):
        return name
    if isinstance(name, str) and name in NETWORKS:
        return NETWORKS[name]()
    match = _CUSTOM.fullmatch(name) if isinstance(name, str) else None
    if match is None:
        if isinstance(name, str) and name.startswith("custom_mlp:"):
            raise ValueError(f"bad model {name!r}: expected custom_mlp:DEPTH,WIDTH,DROP_IN,"
                             "DROP_HID with whole numbers DEPTH >= 0, WIDTH >= 1 and drop "
                             "rates in [0, 1)")
        raise ValueError(f"unknown model {name!r}: choose {', '.join(NETWORKS)} or "
                         "custom_mlp:DEPTH,WIDTH,DROP_IN,DROP_HID")
    depth, width = int(match[1]), int(match[2])
    try:
        drop_input, drop_hidden = float(match[3]), float(match[4])
    except ValueError:
        drop_input = drop_hidden = -1.0
    if width < 1 or not (0 <= drop_input < 1 and 0 <= drop_hidden < 1):
        raise ValueError(f"bad model {name!r}: expected custom_mlp:DEPTH,WIDTH,DROP_IN,"
                         "DROP_HID with whole numbers DEPTH >= 0, WIDTH >= 1 and drop "
                         "rates in [0, 1)")
    return custom_mlp(depth, width, drop_input, drop_hidden)


def network_for(shapes: Sequence[tuple[int, ...]]) -> Network:
    """Recognise which tutorial network a list of Lasagne-layout parameter shapes is.

    Dropout rates cannot be seen in shapes: an MLP is returned with the tutorial's
    (0.2, 0.5), which only matter for training.

    Raises
    ------
    WeightsError
        If the count or shapes match none of the networks.
    """
    shapes = [tuple(int(n) for n in s) for s in shapes]
    for build in NETWORKS.values():
        if shapes == build().param_shapes():
            return build()
    if len(shapes) >= 2 and len(shapes) % 2 == 0 and len(shapes[0]) == 2:
        width = shapes[0][1] if len(shapes) > 2 else 800
        candidate = custom_mlp(depth=len(shapes) // 2 - 1, width=width)
        if shapes == candidate.param_shapes():
            return candidate
    raise WeightsError(
        f"{len(shapes)} arrays of shapes {shapes} match none of the tutorial's networks "
        f"(cnn expects {cnn().param_shapes()}; an MLP expects (784, W), (W,), ... , "
        "(W, 10), (10,))")


class Weights(Sequence[np.ndarray]):
    """Parameter values in Lasagne's layout and order, and the network they belong to.

    A read-only sequence of float32 arrays (``weights[0]`` is the first layer's W), as
    ``lasagne.layers.get_all_param_values`` returns them; float64 ones for a run in
    float64 (Theano's ``floatX=float64``).

    Parameters
    ----------
    arrays : sequence of array_like
        The values; floating point and finite, converted to ``dtype``.
    net : Network or str, optional
        The network; default: recognised from the shapes (:func:`network_for`).
    dtype : {"float32", "float64"}
        The precision kept.

    Raises
    ------
    WeightsError
        Values that are not finite floating-point numbers, or shapes that do not fit.

    Examples
    --------
    >>> w = Weights(init_weights("cnn"))
    >>> w.network.name, len(w), w[0].shape
    ('cnn', 8, (32, 1, 5, 5))
    """

    def __init__(self, arrays: Sequence[np.ndarray],
                 net: Network | str | None = None, dtype: str = "float32") -> None:
        values = []
        for i, a in enumerate(arrays):
            a = np.asarray(a)
            if not np.issubdtype(a.dtype, np.floating):
                raise WeightsError(f"array {i} has dtype {a.dtype}; weights must be "
                                   "floating-point numbers")
            if not np.isfinite(a).all():
                raise WeightsError(f"array {i} (shape {a.shape}) holds NaN or infinite "
                                   "values")
            values.append(np.ascontiguousarray(a, dtype=dtype))
        shapes = [a.shape for a in values]
        self.network = network_for(shapes) if net is None else network(net)
        if shapes != self.network.param_shapes():
            raise WeightsError(f"the weights do not fit the {self.network.name} network: "
                               f"got {len(shapes)} arrays of shapes {shapes}, expected "
                               f"{self.network.param_shapes()}")
        self._arrays = tuple(values)

    @overload
    def __getitem__(self, index: int) -> np.ndarray: ...

    @overload
    def __getitem__(self, index: slice) -> list[np.ndarray]: ...

    def __getitem__(self, index: int | slice) -> np.ndarray | list[np.ndarray]:
        if isinstance(index, slice):
            return list(self._arrays[index])
        return self._arrays[index]

    def __len__(self) -> int:
        return len(self._arrays)

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter(self._arrays)

    def __repr__(self) -> str:
        return f"Weights({self.network.name}, {len(self)} arrays)"


def initialise(net: Network | str, rng: np.random.RandomState,
               dtype: str = "float32") -> tuple[Weights, list[int]]:
    """Build a network's parameters as Lasagne does, drawing from ``rng``.

    Lasagne draws everything from one numpy ``RandomState`` while the layers are built,
    input to output, each layer as its ``initialise`` says: a ``Conv2DLayer`` or
    ``DenseLayer`` draws its W (:func:`glorot_uniform`; its b is 0), and a
    ``DropoutLayer`` draws the seed of its own random stream. ``rng`` is left where
    Lasagne leaves the global generator, so that the tutorial's shuffles come next.

    Parameters
    ----------
    net : Network or str
        The network (see :func:`network`).
    rng : numpy.random.RandomState
        The generator (the tutorial's ``np.random`` after ``np.random.seed(seed)``).
    dtype : {"float32", "float64"}
        Theano's ``floatX``: Lasagne casts its float64 draws to it.

    Returns
    -------
    weights : Weights
        In Lasagne's layout and order.
    dropout_seeds : list of int
        One per dropout layer, in order.
    """
    net = network(net)
    arrays: list[np.ndarray] = []
    seeds: list[int] = []
    for layer, shape in zip(net.layers, net.input_shapes(), strict=True):
        params, drawn = layer.initialise(shape, rng, dtype)
        arrays += params
        seeds += drawn
    return Weights(arrays, net, dtype), seeds


def init_weights(net: Network | str = "cnn", seed: int | None = 0) -> Weights:
    """Lasagne's initial parameters after ``np.random.seed(seed)`` (see :func:`initialise`).

    Parameters
    ----------
    net : Network or str
        The network (see :func:`network`).
    seed : int, optional
        Seed of the numpy ``RandomState``; ``None`` for a random one.

    Returns
    -------
    Weights
        GlorotUniform weights and zero biases, float32, in Lasagne's layout and order.
    """
    return initialise(net, np.random.RandomState(seed))[0]
