"""The tutorial's networks as PyTorch modules, with Lasagne's semantics and layout.

Parameters live in one ``ParameterList`` in Lasagne's order ([W1, b1, W2, b2, ...]) but
in PyTorch's layout; :func:`to_lasagne` and :func:`from_lasagne` convert one array:

* a convolution kernel is flipped in both spatial axes, because Lasagne's Conv2DLayer
  (``flip_filters=True``) computes a true convolution while ``F.conv2d`` computes a
  cross-correlation;
* a dense weight is transposed: Lasagne stores (num_inputs, num_units), PyTorch
  (out_features, in_features).

Dropout masks come from a ``torch.Generator`` that the caller passes, so training is
reproducible without touching PyTorch's global random state.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .networks import NetworkSpec, check_shapes, init_weights, parse_model_name

__all__ = [
    "LasagneNet",
    "build_cnn",
    "build_custom_mlp",
    "build_mlp",
    "build_network",
    "from_lasagne",
    "to_lasagne",
]


def to_lasagne(tensor: torch.Tensor) -> np.ndarray:
    """Convert one parameter (or same-shaped state) from PyTorch to Lasagne layout."""
    t = tensor.detach().to("cpu", torch.float32)
    if t.ndim == 4:
        t = t.flip((2, 3))
    elif t.ndim == 2:
        t = t.t()
    return np.array(t.numpy(), order="C")  # a copy: never a view of a live parameter


def from_lasagne(array: np.ndarray) -> torch.Tensor:
    """Convert one parameter (or same-shaped state) from Lasagne to PyTorch layout."""
    t = torch.from_numpy(np.asarray(array, dtype=np.float32))
    if t.ndim == 4:
        t = t.flip((2, 3))
    elif t.ndim == 2:
        t = t.t()
    return t.contiguous()


def _dropout(x: torch.Tensor, p: float, generator: torch.Generator | None,
             masks: Iterator[torch.Tensor] | None) -> torch.Tensor:
    """Lasagne's DropoutLayer (rescale=True): keep with prob 1-p, scale kept by 1/(1-p).

    The mask is the next of ``masks`` when given, else drawn from ``generator``.
    """
    if p == 0:
        return x
    mask = next(masks) if masks is not None else bernoulli_mask(x.shape, 1.0 - p, generator,
                                                                  x.device)
    return x * mask / (1.0 - p)


def bernoulli_mask(shape: Sequence[int], keep: float, generator: torch.Generator | None,
                   device: torch.device | str = "cpu") -> torch.Tensor:
    """A 0/1 float32 mask whose entries are 1 with probability ``keep`` (a dropout mask).

    On a CPU the mask is exactly ``torch.empty(shape).bernoulli_(keep, generator=...)``:
    the same draws, leaving the generator in the same state, 2.4 times faster. That
    kernel draws one float64 uniform per entry in a scalar loop and keeps those below
    ``keep``; ``torch.rand`` draws the same numbers in a vectorised loop.

    Parameters
    ----------
    shape : sequence of int
        Shape of the mask.
    keep : float
        Probability of a 1.
    generator : torch.Generator or None
        Where the randomness comes from (PyTorch's global generator when None).
    device : torch.device or str
        Where the mask is made; the generator must live there.

    Returns
    -------
    torch.Tensor
        The mask, float32.
    """
    if torch.device(device).type == "cpu":
        uniform = torch.rand(shape, dtype=torch.float64, generator=generator)
        return (uniform < keep).to(torch.float32)
    return torch.empty(shape, device=device).bernoulli_(keep, generator=generator)


def _conv_pool_relu(x: torch.Tensor, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Lasagne's Conv2DLayer (ReLU) then MaxPool2DLayer(2), as conv, pool, then ReLU.

    ReLU after the pooling gives the same numbers as Lasagne's conv-ReLU-pool (ReLU is
    monotone, so it commutes with max), on a quarter of the values.
    """
    return F.relu(_max_pool_2x2(F.conv2d(x, W, b)))


def _max_pool_2x2(x: torch.Tensor) -> torch.Tensor:
    """2x2 max-pooling, stride 2; an odd last row or column is ignored (``ignore_border``)."""
    if x.device.type != "cpu":
        return F.max_pool2d(x, 2)
    if torch.is_grad_enabled() and x.requires_grad:
        return _MaxPool2x2CPU.apply(x)
    # Without gradients PyTorch's CPU max_pool2d still computes the argmax indices; the
    # maximum of four strided views gives the same values, 5 to 6 times faster.
    h, w = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
    return torch.maximum(torch.maximum(x[..., 0:h:2, 0:w:2], x[..., 0:h:2, 1:w:2]),
                         torch.maximum(x[..., 1:h:2, 0:w:2], x[..., 1:h:2, 1:w:2]))


class _MaxPool2x2CPU(torch.autograd.Function):
    """``F.max_pool2d(x, 2)`` for training on a CPU, with each pass in its faster layout.

    PyTorch's CPU max-pooling vectorises across channels only for channels-last tensors.
    On conv1's output for a batch of 50 MNIST digits it takes 1.8 ms on NCHW and 0.6 ms
    on a channels-last copy, the copy included, so the forward pass pools that copy. The
    backward pass is the other way round (0.5 ms on channels-last with its copies, 0.2 on
    NCHW), so it runs on NCHW. Values and argmax indices (the first maximum of each
    window) are PyTorch's own in both layouts, so the gradients are ``F.max_pool2d``'s
    bit for bit.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        values, indices = F.max_pool2d_with_indices(
            x.contiguous(memory_format=torch.channels_last), 2)
        ctx.save_for_backward(x, indices.contiguous())
        return values.contiguous()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        x, indices = ctx.saved_tensors
        return torch.ops.aten.max_pool2d_with_indices_backward(
            grad.contiguous(), x, [2, 2], [2, 2], [0, 0], [1, 1], False, indices)


class LasagneNet(nn.Module):
    """One of the tutorial's networks; ``forward`` returns the logits (pre-softmax).

    Parameters
    ----------
    spec : NetworkSpec or str
        Which network (``"cnn"``, ``"mlp"``, ``"custom_mlp:D,W,DI,DH"``).
    weights : list of numpy.ndarray, optional
        Initial values in Lasagne's layout; default :func:`init_weights` with ``seed``.
    seed : int
        Seed of Lasagne's initialisation when ``weights`` is not given.

    Examples
    --------
    >>> net = LasagneNet("cnn")
    >>> net(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 10])
    """

    def __init__(self, spec: NetworkSpec | str = "cnn",
                 weights: Sequence[np.ndarray] | None = None, seed: int = 0) -> None:
        super().__init__()
        self.spec = parse_model_name(spec)
        if weights is None:
            weights = init_weights(self.spec, seed)
        check_shapes(weights, self.spec)
        self.params = nn.ParameterList(nn.Parameter(from_lasagne(w)) for w in weights)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None,
                masks: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
        """Logits for a batch of shape (N, 1, 28, 28).

        In training mode dropout is applied with ``masks`` (one 0/1 tensor per dropout
        layer, shaped as :meth:`dropout_shapes` says) or, without them, with masks drawn
        from ``generator``; in eval mode the pass is deterministic (Lasagne's
        ``deterministic=True``).
        """
        p = list(self.params)
        drop = self.training
        given = iter(masks) if masks is not None else None
        if self.spec.kind == "cnn":
            x = _conv_pool_relu(_conv_pool_relu(x, p[0], p[1]), p[2], p[3]).flatten(1)
            if drop:
                x = _dropout(x, 0.5, generator, given)
            x = F.relu(F.linear(x, p[4], p[5]))
            if drop:
                x = _dropout(x, 0.5, generator, given)
            return F.linear(x, p[6], p[7])
        x = x.flatten(1)
        if drop:
            x = _dropout(x, self.spec.drop_input, generator, given)
        for i in range(0, len(p) - 2, 2):
            x = F.relu(F.linear(x, p[i], p[i + 1]))
            if drop:
                x = _dropout(x, self.spec.drop_hidden, generator, given)
        return F.linear(x, p[-2], p[-1])

    def dropout_shapes(self, batch_size: int) -> list[tuple[tuple[int, int], float]]:
        """Shape and drop probability of each dropout mask of a training batch, in order."""
        if self.spec.kind == "cnn":
            return [((batch_size, 512), 0.5), ((batch_size, 256), 0.5)]
        shapes = [((batch_size, 784), self.spec.drop_input)]
        shapes += [((batch_size, self.spec.width), self.spec.drop_hidden)] * self.spec.depth
        return [(shape, p) for shape, p in shapes if p > 0]

    def get_weights(self) -> list[np.ndarray]:
        """The parameters as a list of float32 arrays in Lasagne's layout and order."""
        return [to_lasagne(p) for p in self.params]

    def set_weights(self, weights: Sequence[np.ndarray]) -> None:
        """Set the parameters from arrays in Lasagne's layout and order."""
        check_shapes(weights, self.spec)
        with torch.no_grad():
            for p, w in zip(self.params, weights, strict=True):
                p.copy_(from_lasagne(w))


def build_cnn(seed: int = 0) -> LasagneNet:
    """conv(32, 5x5)-pool-conv(32, 5x5)-pool-dropout-dense(256)-dropout-dense(10)."""
    return LasagneNet("cnn", seed=seed)


def build_mlp(seed: int = 0) -> LasagneNet:
    """Input dropout 0.2, two dense layers of 800 with dropout 0.5, dense(10)."""
    return LasagneNet("mlp", seed=seed)


def build_custom_mlp(depth: int = 2, width: int = 800, drop_input: float = 0.2,
                     drop_hidden: float = 0.5, seed: int = 0) -> LasagneNet:
    """The tutorial's ``custom_mlp``: ``depth`` dense layers of ``width`` with dropout."""
    return LasagneNet(NetworkSpec("mlp", depth, width, drop_input, drop_hidden), seed=seed)


def build_network(model: str | NetworkSpec = "cnn",
                  weights: Sequence[np.ndarray] | None = None, seed: int = 0,
                  device: str | torch.device = "cpu") -> LasagneNet:
    """Build a network by the tutorial's name, optionally with given weights.

    Parameters
    ----------
    model : str or NetworkSpec
        ``"cnn"``, ``"mlp"`` or ``"custom_mlp:D,W,DI,DH"``.
    weights : list of numpy.ndarray, optional
        Values in Lasagne's layout; default Lasagne's initialisation with ``seed``.
    seed : int
        Initialisation seed.
    device : str or torch.device
        Where the parameters live.

    Returns
    -------
    LasagneNet
    """
    return LasagneNet(model, weights, seed).to(device)
