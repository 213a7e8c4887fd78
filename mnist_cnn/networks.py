"""The tutorial's three networks described as data: names, parameter shapes, init.

Nothing here needs PyTorch; the engines (:mod:`mnist_cnn.model`) build on it, and so
does the weights-file code, which recognises a network by its parameter shapes.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .errors import WeightsError

__all__ = ["NetworkSpec", "infer_spec", "init_weights", "parse_model_name"]


@dataclass(frozen=True)
class NetworkSpec:
    """Which of the tutorial's networks, with its sizes.

    Attributes
    ----------
    kind : {"cnn", "mlp"}
        The convolutional network, or a multi-layer perceptron.
    depth, width : int
        MLP only: number of hidden layers and units per hidden layer.
    drop_input, drop_hidden : float
        MLP only: dropout probability on the input and after each hidden layer.
    """

    kind: str
    depth: int = 2
    width: int = 800
    drop_input: float = 0.2
    drop_hidden: float = 0.5

    @property
    def name(self) -> str:
        """The tutorial's name: ``cnn``, ``mlp`` or ``custom_mlp:DEPTH,WIDTH,DROP_IN,DROP_HID``."""
        if self.kind == "cnn":
            return "cnn"
        if self == NetworkSpec("mlp"):
            return "mlp"
        return f"custom_mlp:{self.depth},{self.width},{self.drop_input:g},{self.drop_hidden:g}"

    def param_shapes(self) -> list[tuple[int, ...]]:
        """Shapes of the parameters in Lasagne's layout and order (W before b)."""
        if self.kind == "cnn":
            return [(32, 1, 5, 5), (32,), (32, 32, 5, 5), (32,), (512, 256), (256,),
                    (256, 10), (10,)]
        sizes = [784] + [self.width] * self.depth + [10]
        shapes: list[tuple[int, ...]] = []
        for n_in, n_out in itertools.pairwise(sizes):
            shapes += [(n_in, n_out), (n_out,)]
        return shapes


def parse_model_name(name: str | NetworkSpec) -> NetworkSpec:
    """Parse a tutorial model name: ``cnn``, ``mlp`` or ``custom_mlp:D,W,DI,DH``.

    Parameters
    ----------
    name : str or NetworkSpec
        As on the tutorial's command line, e.g. ``custom_mlp:2,800,0.2,0.5``.

    Returns
    -------
    NetworkSpec

    Raises
    ------
    ValueError
        If the name is not one of those forms.

    Examples
    --------
    >>> parse_model_name("custom_mlp:3,500,0,0.5").depth
    3
    """
    if isinstance(name, NetworkSpec):
        return name
    if name == "cnn":
        return NetworkSpec("cnn")
    if name == "mlp":
        return NetworkSpec("mlp")
    if name.startswith("custom_mlp:"):
        parts = name.split(":", 1)[1].split(",")
        try:
            depth, width, drop_in, drop_hid = parts
            spec = NetworkSpec("mlp", int(depth), int(width), float(drop_in), float(drop_hid))
        except ValueError:
            spec = None
        if spec and spec.depth >= 0 and spec.width >= 1 and all(
                0 <= p < 1 for p in (spec.drop_input, spec.drop_hidden)):
            return spec
        raise ValueError(f"bad model {name!r}: expected custom_mlp:DEPTH,WIDTH,DROP_IN,DROP_HID "
                         "with whole numbers DEPTH >= 0, WIDTH >= 1 and drop rates in [0, 1)")
    raise ValueError(f"unknown model {name!r}: choose cnn, mlp or "
                     "custom_mlp:DEPTH,WIDTH,DROP_IN,DROP_HID")


def infer_spec(weights: Sequence[np.ndarray]) -> NetworkSpec:
    """Recognise which tutorial network a list of Lasagne-layout arrays belongs to.

    Dropout rates cannot be seen in weights: an MLP is returned with the tutorial's
    (0.2, 0.5), which only matter for training.

    Raises
    ------
    WeightsError
        If the count or shapes match none of the networks.
    """
    shapes = [tuple(np.shape(w)) for w in weights]
    if shapes == NetworkSpec("cnn").param_shapes():
        return NetworkSpec("cnn")
    if len(shapes) >= 2 and len(shapes) % 2 == 0 and len(shapes[0]) == 2:
        width = shapes[0][1] if len(shapes) > 2 else 800
        spec = NetworkSpec("mlp", depth=len(shapes) // 2 - 1, width=width)
        if shapes == spec.param_shapes():
            return spec if spec.name != "custom_mlp:2,800,0.2,0.5" else NetworkSpec("mlp")
    raise WeightsError(
        f"{len(shapes)} arrays of shapes {shapes} match none of the tutorial's networks "
        f"(cnn expects {NetworkSpec('cnn').param_shapes()}; an MLP expects (784, W), (W,), "
        "... , (W, 10), (10,))")


def check_shapes(weights: Sequence[np.ndarray], spec: NetworkSpec) -> None:
    """Raise :class:`WeightsError` unless ``weights`` has exactly ``spec``'s shapes."""
    shapes = [tuple(np.shape(w)) for w in weights]
    if shapes != spec.param_shapes():
        raise WeightsError(f"the weights do not fit the {spec.name} network: got "
                           f"{len(shapes)} arrays of shapes {shapes}, expected "
                           f"{spec.param_shapes()}")


def init_weights(model: str | NetworkSpec = "cnn", seed: int | None = 0) -> list[np.ndarray]:
    """Lasagne's initial parameters: GlorotUniform (gain 1) weights and zero biases.

    For a weight of shape ``(n1, n2, *rf)``: ``a = sqrt(3) * sqrt(2 / ((n1 + n2) *
    prod(rf)))`` and the values are ``U(-a, a)``, drawn with a ``RandomState(seed)`` in
    parameter order, as Lasagne draws them from its numpy RNG.

    Parameters
    ----------
    model : str or NetworkSpec
        The network (see :func:`parse_model_name`).
    seed : int, optional
        Seed of the numpy ``RandomState``; ``None`` for a random one.

    Returns
    -------
    list of numpy.ndarray
        float32 arrays in Lasagne's layout and order.
    """
    rng = np.random.RandomState(seed)
    weights = []
    for shape in parse_model_name(model).param_shapes():
        if len(shape) == 1:
            weights.append(np.zeros(shape, np.float32))
            continue
        n1, n2 = shape[:2]
        receptive_field = int(np.prod(shape[2:]))
        bound = np.sqrt(3.0) * np.sqrt(2.0 / ((n1 + n2) * receptive_field))
        weights.append(rng.uniform(-bound, bound, size=shape).astype(np.float32))
    return weights
