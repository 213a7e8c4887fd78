"""The tutorial's networks as a PyTorch module, with Lasagne's layout at the boundary.

:class:`LasagneNet` builds a network from its :class:`~mnist_cnn.nets.spec.Network`. Its
parameters live in one ``ParameterList`` in Lasagne's order ([W1, b1, W2, b2, ...]) but
in PyTorch's layout; :func:`to_lasagne` and :func:`from_lasagne` convert one array:

* a convolution kernel is flipped in both spatial axes, because Lasagne's Conv2DLayer
  (``flip_filters=True``) computes a true convolution while ``F.conv2d`` computes a
  cross-correlation;
* a dense weight is transposed: Lasagne stores (num_inputs, num_units), PyTorch
  (out_features, in_features).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mnist_cnn.nets.engines.pytorch.gradient_rules import (
    conv_pool_rectify,
    max_pool_2x2,
    rectify,
)
from mnist_cnn.nets.spec import Conv, Dense, Dropout, Network, Pool, Weights, init_weights, network

__all__ = ["LasagneNet", "as_tensor", "from_lasagne", "to_lasagne"]


def to_lasagne(tensor: torch.Tensor) -> np.ndarray:
    """Convert one parameter (or same-shaped state) from PyTorch to Lasagne layout."""
    t = tensor.detach().to("cpu", torch.float32)
    if t.ndim == 4:
        t = t.flip((2, 3))
    elif t.ndim == 2:
        t = t.t()
    return np.array(t.numpy(), order="C")  # a copy: never a view of a live parameter


def from_lasagne(array: np.ndarray) -> torch.Tensor:
    """Convert one parameter (or same-shaped state) from Lasagne to PyTorch layout.

    Always a copy: a network built from arrays must never train them in place.
    """
    t = torch.tensor(np.asarray(array, dtype=np.float32))
    if t.ndim == 4:
        t = t.flip((2, 3))
    elif t.ndim == 2:
        t = t.t()
    return t.contiguous()


class LasagneNet(nn.Module):
    """One of the tutorial's networks; ``forward`` returns the logits (pre-softmax).

    Built from the network's layers, with Lasagne's arithmetic: ``rectify`` has gradient
    0.5 at exactly 0 and pooling passes its gradient to every tied maximum, as on
    Theano's CPU (see :func:`pool_rectify`); a convolution followed by pooling runs as
    convolution, pooling, then rectify.

    Parameters
    ----------
    net : Network or str
        Which network (``"cnn"``, ``"mlp"``, ``"custom_mlp:D,W,DI,DH"``).
    weights : Weights or list of numpy.ndarray, optional
        Initial values in Lasagne's layout; default :func:`~mnist_cnn.nets.spec.init_weights`
        with ``seed``.
    seed : int
        Seed of Lasagne's initialisation when ``weights`` is not given.

    Examples
    --------
    >>> net = LasagneNet("cnn")
    >>> net(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 10])
    """

    def __init__(self, net: Network | str = "cnn",
                 weights: Sequence[np.ndarray] | None = None, seed: int = 0) -> None:
        super().__init__()
        self.network = network(net)
        weights = init_weights(self.network, seed) if weights is None else Weights(
            list(weights), self.network)
        self.params = nn.ParameterList(nn.Parameter(from_lasagne(w)) for w in weights)

    def forward(self, x: torch.Tensor,
                masks: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
        """Logits for a batch of shape (N, 1, 28, 28).

        In training mode, dropout multiplies each dropout layer's input, divided by its
        keep probability, by one of ``masks`` (0/1, shaped as :meth:`dropout_shapes`
        says), as Lasagne's ``DropoutLayer`` does; in eval mode the pass is
        deterministic (Lasagne's ``deterministic=True``).
        """
        params = iter(self.params)
        given = iter(masks) if masks is not None else None
        layers = self.network.layers
        pooled = False
        for i, layer in enumerate(layers):
            if isinstance(layer, Conv):
                W, b = next(params), next(params)
                if i + 1 < len(layers) and isinstance(layers[i + 1], Pool):
                    x, pooled = conv_pool_rectify(x, W, b), True
                else:
                    x = rectify(F.conv2d(x, W, b))
            elif isinstance(layer, Pool):
                x = x if pooled else max_pool_2x2(x)
                pooled = False
            elif isinstance(layer, Dropout):
                x = x.flatten(1)
                if self.training:
                    if given is None:
                        raise ValueError("training mode needs the dropout masks: pass "
                                         "masks=[...] (see dropout_shapes), or use eval()")
                    x = x / (1.0 - layer.p) * next(given)
            elif isinstance(layer, Dense):
                x = F.linear(x.flatten(1), next(params), next(params))
                if not layer.softmax:
                    x = rectify(x)
        return x

    def dropout_shapes(self, batch_size: int) -> list[tuple[tuple[int, int], float]]:
        """Shape and drop probability of each dropout mask of a training batch, in order
        (the layer's input flattened to (batch, units))."""
        return [((shape[0], math.prod(shape[1:])), p)
                for shape, p in self.network.dropout_shapes(batch_size)]

    def get_weights(self) -> Weights:
        """The parameters in Lasagne's layout and order."""
        return Weights([to_lasagne(p) for p in self.params], self.network)

    def set_weights(self, weights: Sequence[np.ndarray]) -> None:
        """Set the parameters from arrays in Lasagne's layout and order."""
        weights = Weights(list(weights), self.network)
        with torch.no_grad():
            for p, w in zip(self.params, weights, strict=True):
                p.copy_(from_lasagne(w))


def as_tensor(array: np.ndarray | torch.Tensor, device: torch.device,
              dtype: torch.dtype) -> torch.Tensor:
    """A tensor on ``device`` sharing memory with ``array`` where it can (CPU, writable)."""
    if isinstance(array, torch.Tensor):
        return array.to(device, dtype)
    array = np.ascontiguousarray(array)
    if not array.flags.writeable:
        array = array.copy()  # PyTorch cannot wrap read-only memory
    return torch.from_numpy(array).to(device, dtype)
