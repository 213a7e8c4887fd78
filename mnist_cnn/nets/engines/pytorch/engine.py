"""The ``pytorch`` engine: the tutorial's networks as PyTorch modules, trained and run on
a CPU, a CUDA GPU or Apple's MPS, with Lasagne's semantics and layout.

:class:`LasagneNet` builds a network from its :class:`~mnist_cnn.nets.spec.Network`. Its
parameters live in one ``ParameterList`` in Lasagne's order ([W1, b1, W2, b2, ...]) but
in PyTorch's layout; :func:`to_lasagne` and :func:`from_lasagne` convert one array:

* a convolution kernel is flipped in both spatial axes, because Lasagne's Conv2DLayer
  (``flip_filters=True``) computes a true convolution while ``F.conv2d`` computes a
  cross-correlation;
* a dense weight is transposed: Lasagne stores (num_inputs, num_units), PyTorch
  (out_features, in_features).

:class:`TorchTrainer` runs the tutorial's training step; on CUDA it keeps the data on
the GPU and replays the step as a CUDA graph (see its docstring).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mnist_cnn import defaults
from mnist_cnn.defaults import Recipe
from mnist_cnn.errors import EngineError
from mnist_cnn.nets import mrg
from mnist_cnn.nets.engines import TrainerState
from mnist_cnn.nets.engines.pytorch.devices import (
    Lanes,
    exact_float32,
    keep_freed_memory,
    resolve_device,
)
from mnist_cnn.nets.spec import Conv, Dense, Dropout, Network, Pool, Weights, init_weights, network
from mnist_cnn.results import Evaluation
from mnist_cnn.training.augment import augment

__all__ = [
    "NAME",
    "Adam",
    "LasagneNet",
    "NesterovMomentum",
    "TorchTrainer",
    "build_cnn",
    "build_custom_mlp",
    "build_mlp",
    "build_network",
    "evaluate",
    "from_lasagne",
    "make_trainer",
    "max_pool_2x2",
    "predict_proba",
    "to_lasagne",
]

NAME = "pytorch"


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


# ------------------------------------------------------------------------ layers

def _pool_values(x: torch.Tensor) -> torch.Tensor:
    """The maximum of each 2x2 window (stride 2; an odd last row or column is ignored)."""
    h, w = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
    return torch.maximum(torch.maximum(x[..., 0:h:2, 0:w:2], x[..., 0:h:2, 1:w:2]),
                         torch.maximum(x[..., 1:h:2, 0:w:2], x[..., 1:h:2, 1:w:2]))


def _rectify_grad(x: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """The gradient of Lasagne's ``rectify(x) = 0.5 * (x + abs(x))``: 1 above 0, 0.5 at 0.

    Computed as ``grad * 0.5 * (sign(x) + 1)`` (exactly 1, 0.5 or 0 times ``grad``):
    float arithmetic vectorises better on a CPU than comparisons and selections.
    """
    return grad * torch.sign(x).add_(1).mul_(0.5)


def _pool_grad(x: torch.Tensor, pooled: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """Theano's max-pooling gradient: to every input equal to its window's maximum.

    Written window position by window position (four strided passes) into one buffer,
    with the tie test written as floats; an ignored last row or column gets 0.
    """
    h, w = pooled.shape[-2] * 2, pooled.shape[-1] * 2
    out = torch.empty_like(x) if (h, w) == tuple(x.shape[-2:]) else torch.zeros_like(x)
    tied = torch.empty_like(pooled)
    for a in (0, 1):
        for b in (0, 1):
            torch.eq(x[..., a:h:2, b:w:2], pooled, out=tied)
            torch.mul(tied, grad, out=out[..., a:h:2, b:w:2])
    return out


class _Rectify(torch.autograd.Function):
    """Lasagne's ``rectify``, with its gradient of 0.5 at exactly 0 (not ReLU's 0)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return torch.relu(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return _rectify_grad(x, grad)


class _PoolRectify(torch.autograd.Function):
    """Lasagne's ``rectify`` then ``MaxPool2DLayer(2)``, with Theano's gradients.

    Computed as pooling, then rectify (the same values, on a quarter of them: rectify
    is monotone, so it commutes with max). The gradients are Lasagne's on Theano's
    CPU: rectify's is 0.5 at exactly 0, and pooling's goes to every input equal to
    its window's maximum. With the pooling done first, ties at a window's maximum are
    the same inputs, and a maximum of exactly 0 passes half its gradient to each input
    at 0, as it does in Lasagne's order.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        pooled = _pool_values(x)
        ctx.save_for_backward(x, pooled)
        return torch.relu(pooled)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        x, pooled = ctx.saved_tensors
        return _pool_grad(x, pooled, _rectify_grad(pooled, grad))


class _ConvPoolRectify(torch.autograd.Function):
    """``pool_rectify(conv2d(x, W, b))`` for an input that needs no gradient (the images).

    The convolution output is computed window position by window position: the outputs
    at (2i + a, 2j + c) are a stride-2 convolution of the input shifted by (a, c). The
    four quarter-size outputs are bitwise the full convolution's values; their maximum,
    the tie tests and the products of the backward pass then run on contiguous tensors
    (instead of strided views of the full output), and W's and b's gradients are the
    sums of the four stride-2 convolutions' gradients. The same rules as
    :class:`_PoolRectify`.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        span = 2 * ((x.shape[-1] - W.shape[-1] + 1) // 2) + W.shape[-1] - 2
        outputs = [F.conv2d(x[..., a:a + span, c:c + span], W, b, stride=2)
                   for a, c in _POSITIONS]
        pooled = torch.maximum(torch.maximum(outputs[0], outputs[1]),
                               torch.maximum(outputs[2], outputs[3]))
        ctx.save_for_backward(x, W, pooled, *outputs)
        ctx.span = span
        return torch.relu(pooled)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[None, torch.Tensor, torch.Tensor]:
        x, W, pooled, *outputs = ctx.saved_tensors
        scaled = _rectify_grad(pooled, grad)
        grad_W, grad_b = torch.zeros_like(W), torch.zeros(W.shape[0], dtype=W.dtype,
                                                            device=W.device)
        tied = torch.empty_like(pooled)
        for (a, c), output in zip(_POSITIONS, outputs, strict=True):
            torch.eq(output, pooled, out=tied)
            _, gw, gb = torch.ops.aten.convolution_backward(
                tied.mul_(scaled), x[..., a:a + ctx.span, c:c + ctx.span], W, [W.shape[0]],
                [2, 2], [0, 0], [1, 1], False, [0, 0], 1, [False, True, True])
            grad_W += gw
            grad_b += gb
        return None, grad_W, grad_b


_POSITIONS = ((0, 0), (0, 1), (1, 0), (1, 1))


def conv_pool_rectify(x: torch.Tensor, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``pool_rectify(F.conv2d(x, W, b))``; for inputs that need no gradient on a CPU, by
    window position (see ``_ConvPoolRectify``)."""
    if (torch.is_grad_enabled() and not x.requires_grad and W.requires_grad
            and x.device.type == "cpu"):
        return _ConvPoolRectify.apply(x, W, b)
    return pool_rectify(F.conv2d(x, W, b))


def rectify(x: torch.Tensor) -> torch.Tensor:
    """Lasagne's ``rectify``: ReLU values, gradient 0.5 at exactly 0."""
    if torch.is_grad_enabled() and x.requires_grad:
        return _Rectify.apply(x)
    return torch.relu(x)


def pool_rectify(x: torch.Tensor) -> torch.Tensor:
    """2x2 max-pooling of ``rectify(x)`` with Lasagne's gradients (see ``_PoolRectify``)."""
    if torch.is_grad_enabled() and x.requires_grad:
        return _PoolRectify.apply(x)
    return torch.relu(_pool_values(x))


def max_pool_2x2(x: torch.Tensor) -> torch.Tensor:
    """2x2 max-pooling (stride 2, border ignored), gradient to every tied maximum."""
    if torch.is_grad_enabled() and x.requires_grad:
        return _MaxPool.apply(x)
    return _pool_values(x)


class _MaxPool(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        pooled = _pool_values(x)
        ctx.save_for_backward(x, pooled)
        return pooled

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        x, pooled = ctx.saved_tensors
        return _pool_grad(x, pooled, grad)


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


def build_cnn(seed: int = 0) -> LasagneNet:
    """conv(32, 5x5)-pool-conv(32, 5x5)-pool-dropout-dense(256)-dropout-dense(10)."""
    return LasagneNet("cnn", seed=seed)


def build_mlp(seed: int = 0) -> LasagneNet:
    """Input dropout 0.2, two dense layers of 800 with dropout 0.5, dense(10)."""
    return LasagneNet("mlp", seed=seed)


def build_custom_mlp(depth: int = 2, width: int = 800, drop_input: float = 0.2,
                     drop_hidden: float = 0.5, seed: int = 0) -> LasagneNet:
    """The tutorial's ``custom_mlp``: ``depth`` dense layers of ``width`` with dropout."""
    return LasagneNet(f"custom_mlp:{depth},{width},{drop_input:g},{drop_hidden:g}",
                      seed=seed)


def build_network(model: Network | str = defaults.MODEL,
                  weights: Sequence[np.ndarray] | None = None, seed: int = 0,
                  device: str | torch.device = "cpu") -> LasagneNet:
    """Build a network by the tutorial's name, optionally with given weights.

    Parameters
    ----------
    model : Network or str
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


# ------------------------------------------------------------------------ training

class NesterovMomentum:
    """Lasagne's ``nesterov_momentum`` update, step by step.

    For each parameter ``p`` with gradient ``g`` and velocity ``v`` (starting at 0)::

        v := momentum * v - learning_rate * g
        p := p + momentum * v - learning_rate * g

    computed in Lasagne's order, ``p := (p - learning_rate * g) + momentum * v``.

    Parameters
    ----------
    params : sequence of torch.Tensor
        The parameters, updated in place.
    learning_rate, momentum : float
        The tutorial uses 0.01 and 0.9.
    schedule : {"constant", "cosine"}
        The tutorial's constant rate, or one falling to 0 along half a cosine over
        ``total`` steps.
    total : int
        The steps of the whole run (for the schedule).
    """

    def __init__(self, params: Sequence[torch.Tensor], learning_rate: float,
                 momentum: float, schedule: str = "constant", total: int = 1) -> None:
        self.params = list(params)
        self.peak, self.schedule, self.total = learning_rate, schedule, max(total, 1)
        self.momentum = momentum
        self.velocities = [torch.zeros_like(p) for p in self.params]
        self.steps = 0

    def learning_rate(self, step: int) -> float:
        """The learning rate of update number ``step`` (from 0)."""
        if self.schedule == "cosine":
            return self.peak * 0.5 * (1 + math.cos(math.pi * min(step, self.total) / self.total))
        return self.peak

    @torch.no_grad()
    def step(self, grads: Sequence[torch.Tensor]) -> None:
        """Apply one update with the given gradients (same order as ``params``)."""
        lr, m = self.learning_rate(self.steps), self.momentum
        self.steps += 1
        grads = list(grads)
        if len(grads) != len(self.params):
            raise ValueError(f"{len(grads)} gradients for {len(self.params)} parameters")
        # One multi-tensor kernel per line instead of one per parameter; the same math.
        torch._foreach_mul_(self.velocities, m)
        torch._foreach_add_(self.velocities, grads, alpha=-lr)
        torch._foreach_add_(self.params, grads, alpha=-lr)
        torch._foreach_add_(self.params, self.velocities, alpha=m)


class Adam:
    """Adam (Kingma & Ba) with a warm-up and a linear decay: the fast recipe's update.

    The learning rate rises linearly from 0 to ``peak`` over the first quarter of
    ``total`` steps and falls linearly to 0 over the rest; betas (``beta1``, 0.999),
    epsilon 1e-8, with bias correction.

    Parameters
    ----------
    params : sequence of torch.Tensor
        The parameters, updated in place.
    peak : float
        The highest learning rate.
    beta1 : float
        The first moments' decay.
    total : int
        The steps of the whole run.
    """

    beta2 = 0.999
    eps = 1e-8

    def __init__(self, params: Sequence[torch.Tensor], peak: float, beta1: float,
                 total: int) -> None:
        self.params = list(params)
        self.peak, self.beta1, self.total = peak, beta1, max(total, 1)
        self.velocities = [torch.zeros_like(p) for p in self.params]  # first moments
        self.moments = [torch.zeros_like(p) for p in self.params]
        self.steps = 0

    def learning_rate(self, step: int) -> float:
        """The learning rate of update number ``step`` (from 0)."""
        warm = max(1, self.total // 4)
        if step < warm:
            return self.peak * step / warm
        return self.peak * max(0.0, (self.total - step) / max(1, self.total - warm))

    @torch.no_grad()
    def step(self, grads: Sequence[torch.Tensor]) -> None:
        """Apply one update with the given gradients (same order as ``params``)."""
        lr = self.learning_rate(self.steps)
        self.steps += 1
        b1, b2 = self.beta1, self.beta2
        grads = list(grads)
        torch._foreach_lerp_(self.velocities, grads, 1 - b1)
        torch._foreach_mul_(self.moments, b2)
        torch._foreach_addcmul_(self.moments, grads, grads, 1 - b2)
        denom = torch._foreach_sqrt(self.moments)
        torch._foreach_div_(denom, (1 - b2 ** self.steps) ** 0.5)
        torch._foreach_add_(denom, self.eps)
        torch._foreach_addcdiv_(self.params, self.velocities, denom,
                                -lr / (1 - b1 ** self.steps))


def as_tensor(array: np.ndarray | torch.Tensor, device: torch.device,
              dtype: torch.dtype) -> torch.Tensor:
    """A tensor on ``device`` sharing memory with ``array`` where it can (CPU, writable)."""
    if isinstance(array, torch.Tensor):
        return array.to(device, dtype)
    array = np.ascontiguousarray(array)
    if not array.flags.writeable:
        array = array.copy()  # PyTorch cannot wrap read-only memory
    return torch.from_numpy(array).to(device, dtype)


def epoch_masks(states: np.ndarray, keep: float, calls: int, shape: Sequence[int],
                device: torch.device | str = "cpu") -> tuple[torch.Tensor, np.ndarray]:
    """``calls`` masks of one dropout layer at once, as ``calls`` Theano draws give them.

    The same masks as :class:`mnist_cnn.nets.mrg.MaskStream` draws one by one, computed
    here all at once on ``device``: each draw's generator state is the sub-stream's
    state times a power of the one-step matrix (:func:`mnist_cnn.nets.mrg.jump_matrices`),
    so no draw waits for the one before it.

    Parameters
    ----------
    states : numpy.ndarray
        (n_streams, 6) sub-stream states before the first call.
    keep : float
        Probability of keeping a unit.
    calls : int
        How many masks (training steps).
    shape : sequence of int
        The shape of one mask.
    device : torch.device or str
        Where the masks are computed and kept.

    Returns
    -------
    masks : torch.Tensor
        (calls, *shape) float32 0/1 masks on ``device``.
    states : numpy.ndarray
        The sub-streams' states after the last call.
    """
    streams = len(states)
    size = math.prod(shape)
    per_call = np.full(streams, size // streams) + (np.arange(streams) < size % streams)
    draws = calls * int(per_call.max())
    powers1, powers2 = mrg.jump_matrices(max(draws, 1))
    dev = torch.device(device)
    first = torch.tensor(states[:, :3], device=dev)
    second = torch.tensor(states[:, 3:], device=dev)
    rows1 = torch.tensor(powers1[:, 0], device=dev)
    rows2 = torch.tensor(powers2[:, 0], device=dev)
    threshold = mrg.keep_threshold(keep)
    grid = torch.empty((draws, streams), dtype=torch.bool, device=dev)
    chunk = max(1, (1 << 22) // streams)
    for start in range(0, draws, chunk):
        x1 = _mat_row_mod(rows1[start:start + chunk], first, mrg.M1)
        x2 = _mat_row_mod(rows2[start:start + chunk], second, mrg.M2)
        d = x1 - x2
        grid[start:start + chunk] = torch.where(d <= 0, d + mrg.M1, d) < threshold
    stream = torch.arange(size, device=dev) % streams
    done = torch.as_tensor(per_call, device=dev)[stream]
    step = torch.arange(calls, device=dev)[:, None] * done[None, :]
    masks = grid[step + (torch.arange(size, device=dev) // streams)[None, :], stream[None, :]]
    after = states.copy()
    used = calls * per_call
    moved = used > 0
    jump1, jump2 = powers1[used[moved] - 1], powers2[used[moved] - 1]
    after[moved, :3] = ((jump1 * states[moved, None, :3]) % mrg.M1).sum(-1) % mrg.M1
    after[moved, 3:] = ((jump2 * states[moved, None, 3:]) % mrg.M2).sum(-1) % mrg.M2
    return masks.reshape(calls, *shape).to(torch.float32), after


def _mat_row_mod(rows: torch.Tensor, states: torch.Tensor, m: int) -> torch.Tensor:
    """(k, s) values ``rows[k] . states[s] mod m``, exactly in int64."""
    total = (rows[:, None, 0] * states[None, :, 0]) % m
    total += (rows[:, None, 1] * states[None, :, 1]) % m
    total += (rows[:, None, 2] * states[None, :, 2]) % m
    return total % m


class TorchTrainer:
    """The tutorial's training step in PyTorch on a CPU, CUDA or MPS device.

    The training and validation data are moved to the device once; mini-batches are
    cut from them by index. Dropout masks come from Theano's MRG31k3p streams, as
    Lasagne's ``DropoutLayer`` draws them (:mod:`mnist_cnn.nets.mrg`). Losses are read from
    the device every :attr:`losses_every` batches (reading waits for the device).

    With ``resident=True`` (the default on CUDA) each epoch's batch order and dropout
    masks are put on the device ahead (the masks computed there, all at once, by
    :func:`epoch_masks`), and a device-side step counter picks each batch and stores
    each loss, so no step waits for the host. On CUDA that step is then captured once
    as a CUDA graph and replayed (``graphs=False`` runs it eagerly). The masks are the
    same either way, so a resident run gives the same numbers as a plain one.

    Parameters
    ----------
    weights : Weights
        Initial weights (and so the network).
    dropout : sequence of numpy.ndarray
        The sub-stream states of each dropout layer's stream, in order (see
        :func:`mnist_cnn.nets.mrg.stream_states`).
    recipe : Recipe
        The update rule and its settings, and whether dropout drops (see
        :data:`mnist_cnn.defaults.RECIPES`).
    device : str
        ``auto``, ``cpu``, ``cuda[:N]`` or ``mps``.
    data : sequence of numpy.ndarray
        (X_train, y_train, X_val, y_val).
    threads : int or "auto"
        CPU threads: fitted to the cores other processes leave free (``"auto"``, measured
        at each epoch's start and every :attr:`refit_every` batches; see
        :class:`~mnist_cnn.nets.engines.pytorch.devices.ThreadFitter`), or a fixed number. On a
        CPU each batch is cut into ``recipe.shards`` fixed slices whose gradients are
        computed one per thread (:class:`~mnist_cnn.nets.engines.pytorch.devices.Lanes`) and
        added in order, so the threads never change the weights.
    resident, graphs : bool, optional
        See above.
    """

    #: Eager steps run before a CUDA graph is captured (cuDNN and cuBLAS set-up).
    warmup_steps = 3
    losses_every = 50
    refit_every = 100
    #: Images of one piece of a validation on a CPU lane.
    validation_piece = 500

    def __init__(self, weights: Weights, dropout: Sequence[np.ndarray], recipe: Recipe,
                 device: str, data: Sequence[np.ndarray],
                 threads: int | str = defaults.THREADS, resident: bool | None = None,
                 graphs: bool = True) -> None:
        dev = resolve_device(device)
        self.device = str(dev)
        self.versions = {"torch": torch.__version__}
        if recipe.floatx != "float32":
            raise EngineError(f"the pytorch engine trains in float32, not {recipe.floatx}; "
                              "the numpy and lasagne engines train in float64")
        self.lanes = Lanes(threads) if dev.type == "cpu" else None
        if dev.type == "cpu":
            keep_freed_memory()
        self.net = LasagneNet(weights.network, weights).to(dev)
        self.params = list(self.net.params)
        self.recipe = recipe
        X_train, y_train, X_val, y_val = data
        total = recipe.num_epochs * (len(X_train) // recipe.batch_size)
        if recipe.rule == "adam":
            self.updates: NesterovMomentum | Adam = Adam(self.params, recipe.learning_rate,
                                                         recipe.momentum, total)
        else:
            self.updates = NesterovMomentum(self.params, recipe.learning_rate,
                                            recipe.momentum, recipe.schedule, total)
        self.augmenter: torch.Generator | None = None
        if recipe.augment:
            self.augmenter = torch.Generator(device=dev)
            self.augmenter.manual_seed(recipe.seed)
        self.keep = [1.0 - p for _, p in self.net.network.dropout_shapes(1)]
        self.streams: list[mrg.MaskStream] = []
        self._set_streams(dropout)
        self.X = as_tensor(X_train, dev, torch.float32)
        self.y = as_tensor(y_train, dev, torch.int64)
        self.X_val = as_tensor(X_val, dev, torch.float32)
        self.y_val = as_tensor(y_val, dev, torch.int64)
        # The resident step and its graph replay the tutorial's recipe: a captured graph
        # keeps one learning rate, and the augmentation's draws are made on the host.
        tutorial = (recipe.rule == "nesterov" and recipe.dropout and not recipe.augment
                    and recipe.schedule == "constant")
        self.resident = dev.type == "cuda" and tutorial if resident is None else resident
        self.graphs = graphs and self.resident and dev.type == "cuda" and tutorial
        self._epoch: _EpochBuffers | None = None
        self._graph: Any = None

    def _set_streams(self, states: Sequence[np.ndarray]) -> None:
        if len(states) != len(self.keep):
            raise ValueError(f"{len(states)} dropout stream states for {len(self.keep)} "
                             "dropout layers")
        self.streams = [mrg.MaskStream(state, keep)
                        for state, keep in zip(states, self.keep, strict=True)]

    def train_epoch(self, order: np.ndarray, shuffled_from: tuple = ()) -> Iterator[np.ndarray]:
        """One update per row of ``order``; yields the losses every few batches."""
        self.net.train(self.recipe.dropout)  # in eval mode the dropout layers pass through
        order_t = torch.from_numpy(np.ascontiguousarray(order)).to(self.device)
        with exact_float32():
            if self.resident:
                yield from self._resident_epoch(order_t)
                return
            shapes = [shape for shape, _ in self.net.dropout_shapes(order.shape[1])]
            if not self.recipe.dropout:
                shapes = []
            losses: list[torch.Tensor] = []
            for i, batch in enumerate(order_t):
                if self.lanes is not None and i % self.refit_every == 0:
                    self.lanes.refit()
                masks = [torch.from_numpy(stream.draw(shape)).to(self.device, torch.float32)
                         for stream, shape in zip(self.streams, shapes, strict=False)]
                images = self.X[batch]
                if self.augmenter is not None:
                    images = augment(images, self.augmenter)
                loss, grads = self._gradients(images, self.y[batch], masks)
                self.updates.step(grads)
                losses.append(loss)
                if (i + 1) % self.losses_every == 0 or i + 1 == len(order_t):
                    yield torch.stack(losses).double().cpu().numpy()
                    losses = []

    def _gradients(self, images: torch.Tensor, targets: torch.Tensor,
                   masks: Sequence[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The mean loss of a batch and its gradients; on a CPU as the sum, in order, of
        the gradients of ``recipe.shards`` fixed slices, each computed on one lane."""
        shards = self.recipe.shards if self.lanes is not None else 1
        if shards <= 1:
            loss = F.cross_entropy(self.net(images, masks), targets)
            return loss.detach(), list(torch.autograd.grad(loss, self.params))
        n = len(targets)
        bounds = [k * n // shards for k in range(shards + 1)]

        def shard(k: int) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
            part = slice(bounds[k], bounds[k + 1])
            total = F.cross_entropy(self.net(images[part], [m[part] for m in masks]),
                                    targets[part], reduction="sum")
            return total.detach(), torch.autograd.grad(total / n, self.params)

        assert self.lanes is not None
        parts = self.lanes.map(shard, range(shards))
        loss, grads = parts[0][0], list(parts[0][1])
        for total, more in parts[1:]:
            loss = loss + total
            for grad, add in zip(grads, more, strict=True):
                grad.add_(add)
        return loss / n, grads

    def _resident_epoch(self, order: torch.Tensor) -> Iterator[np.ndarray]:
        if self._epoch is None or self._epoch.order.shape != order.shape:
            self._epoch = _EpochBuffers(order, self.net.dropout_shapes(order.shape[1]))
            self._graph = None
        states = self._epoch.start(order, [s.states for s in self.streams], self.keep)
        self._set_streams(states)
        done = 0
        for i in range(len(order)):
            if not self.graphs:
                self._resident_step()
            elif self._graph is not None:
                self._graph.replay()
            elif i < self.warmup_steps:
                side = torch.cuda.Stream(self.device)
                side.wait_stream(torch.cuda.current_stream(self.device))
                with torch.cuda.stream(side):
                    self._resident_step()
                torch.cuda.current_stream(self.device).wait_stream(side)
            else:
                self._graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(self._graph):
                    self._resident_step()
                self._graph.replay()
            if (i + 1) % self.losses_every == 0 or i + 1 == len(order):
                yield self._epoch.losses[done:i + 1].double().cpu().numpy()
                done = i + 1

    def _resident_step(self) -> None:
        """The update of the batch the step counter points at; no host synchronisation."""
        epoch = self._epoch
        step = epoch.step
        index = epoch.order.index_select(0, step).view(-1)
        masks = [m.index_select(0, step).view(m.shape[1:]) for m in epoch.masks]
        loss = F.cross_entropy(self.net(self.X.index_select(0, index), masks),
                               self.y.index_select(0, index))
        self.updates.step(torch.autograd.grad(loss, self.params))
        epoch.losses.index_copy_(0, step, loss.detach().view(1))
        step.add_(1)

    def validate(self) -> Evaluation:
        """Loss and accuracy on the validation set, without dropout."""
        return self._evaluate(self.X_val, self.y_val)

    def evaluate(self, X: np.ndarray, y: np.ndarray) -> Evaluation:
        """Loss and accuracy on a labelled set, without dropout."""
        dev = torch.device(self.device)
        return self._evaluate(as_tensor(X, dev, torch.float32), as_tensor(y, dev, torch.int64))

    def _evaluate(self, X: torch.Tensor, y: torch.Tensor) -> Evaluation:
        """On a CPU, by fixed pieces on the lanes, added in order (as the gradients)."""
        if self.lanes is None:
            return evaluate_network(self.net, X, y)
        piece = self.validation_piece
        was_training = self.net.training
        self.net.eval()
        try:
            sums = self.lanes.map(lambda s: _evaluation_sums(self.net, X[s:s + piece],
                                                             y[s:s + piece], piece),
                                  range(0, len(X), piece))
        finally:
            self.net.train(was_training)
        loss = sum((total for total, _ in sums), torch.zeros((), dtype=torch.float64))
        correct = sum(int(right) for _, right in sums)
        n = max(len(X), 1)
        return Evaluation(float(loss) / n, correct / n)

    def get_state(self) -> TrainerState:
        """Weights and the update rule's state (Lasagne layout), and the dropout streams'
        states."""
        moments = getattr(self.updates, "moments", [])
        augmenter = (self.augmenter.get_state().numpy() if self.augmenter is not None
                     else np.zeros(0, np.uint8))
        return TrainerState(self.net.get_weights(),
                            [to_lasagne(v) for v in self.updates.velocities],
                            [stream.states for stream in self.streams],
                            [to_lasagne(m) for m in moments], self.updates.steps, augmenter)

    def set_state(self, state: TrainerState) -> None:
        """Continue from a saved state (in place: a captured CUDA graph keeps reading the
        same tensors)."""
        self.net.set_weights(state.weights)
        for v, saved in zip(self.updates.velocities, state.velocities, strict=True):
            v.copy_(from_lasagne(saved))
        if isinstance(self.updates, Adam):
            for m, saved in zip(self.updates.moments, state.moments, strict=True):
                m.copy_(from_lasagne(saved))
        self.updates.steps = state.steps
        if self.augmenter is not None:
            try:
                self.augmenter.set_state(torch.from_numpy(np.asarray(state.augment, np.uint8)))
            except (RuntimeError, ValueError):
                raise EngineError("the saved augmentation state does not fit this "
                                  "generator; train again without --resume") from None
        self._set_streams(state.dropout)

    def close(self) -> None:
        """Stop the lanes' threads and set PyTorch's threads back to what they were."""
        if self.lanes is not None:
            self.lanes.close()


class _EpochBuffers:
    """Device tensors of one epoch for the resident step; refilled in place each epoch.

    ``order`` (batches, batch size) holds the example indices, ``masks`` one 0/1 tensor
    (batches, *shape) per dropout layer, ``losses`` the loss of each batch, and ``step``
    the number of the next batch.
    """

    def __init__(self, order: torch.Tensor,
                 dropout_shapes: Sequence[tuple[tuple[int, ...], float]]) -> None:
        n, dev = len(order), order.device
        self.order = torch.empty_like(order)
        self.shapes = [shape for shape, _ in dropout_shapes]
        self.masks = [torch.empty((n, *shape), device=dev) for shape in self.shapes]
        self.losses = torch.zeros(n, device=dev)
        self.step = torch.zeros(1, dtype=torch.int64, device=dev)

    def start(self, order: torch.Tensor, states: Sequence[np.ndarray],
              keep: Sequence[float]) -> list[np.ndarray]:
        """New order, the epoch's masks, counter back to batch 0; returns the dropout
        streams' states after the epoch."""
        self.order.copy_(order)
        after = []
        for mask, shape, state, p_keep in zip(self.masks, self.shapes, states, keep,
                                              strict=True):
            values, new_state = epoch_masks(state, p_keep, len(order), shape, mask.device)
            mask.copy_(values)
            after.append(new_state)
        self.step.zero_()
        return after


def make_trainer(weights: Weights, dropout: Sequence[np.ndarray], recipe: Recipe,
                 device: str, data: Sequence[np.ndarray],
                 threads: int | str = defaults.THREADS) -> TorchTrainer:
    """The PyTorch trainer (see :class:`TorchTrainer`)."""
    return TorchTrainer(weights, dropout, recipe, device, data, threads)


# ----------------------------------------------------------------------- inference

def _batch_size(device: torch.device, batch_size: int | None) -> int:
    return batch_size or defaults.INFERENCE_BATCH.get(device.type, 1000)


@torch.inference_mode()
def evaluate_network(net: LasagneNet, X: torch.Tensor, y: torch.Tensor,
                     batch_size: int | None = None) -> Evaluation:
    """Mean cross-entropy and accuracy of ``net`` over tensors already on its device.

    Computed in full float32 (see :func:`~mnist_cnn.nets.engines.pytorch.devices.exact_float32`).
    All examples count (the tutorial's batches of 500 divide 10,000 exactly, so its
    mean of batch means is the same number).
    """
    batch_size = batch_size or defaults.INFERENCE_BATCH["cpu"]
    was_training = net.training
    net.eval()
    with exact_float32():
        total_loss, correct = _evaluation_sums(net, X, y, batch_size)
    net.train(was_training)
    n = max(len(X), 1)
    return Evaluation(float(total_loss) / n, int(correct) / n)


@torch.inference_mode()
def _evaluation_sums(net: LasagneNet, X: torch.Tensor, y: torch.Tensor,
                     batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The summed cross-entropy (float64) and the count of right answers of a network
    in eval mode."""
    total_loss = torch.zeros((), dtype=torch.float64, device=X.device)
    correct = torch.zeros((), dtype=torch.int64, device=X.device)
    for start in range(0, len(X), batch_size):
        logits = net(X[start:start + batch_size])
        target = y[start:start + batch_size]
        total_loss += F.cross_entropy(logits, target, reduction="sum")
        correct += (logits.argmax(1) == target).sum()
    return total_loss, correct


def _network(weights: Weights, device: torch.device) -> LasagneNet:
    if device.type == "cpu":
        keep_freed_memory()
    return LasagneNet(weights.network, weights).to(device).eval()


def evaluate(weights: Weights, X: np.ndarray, y: np.ndarray, device: str = defaults.DEVICE,
             batch_size: int | None = None) -> Evaluation:
    """Mean cross-entropy and accuracy on a labelled set, without dropout."""
    dev = resolve_device(device)
    return evaluate_network(_network(weights, dev), as_tensor(X, dev, torch.float32),
                            as_tensor(y, dev, torch.int64), _batch_size(dev, batch_size))


@torch.inference_mode()
def predict_proba(weights: Weights, X: np.ndarray, device: str = defaults.DEVICE,
                  batch_size: int | None = None) -> np.ndarray:
    """Softmax outputs (N, 10) of the deterministic network, float32."""
    dev = resolve_device(device)
    net = _network(weights, dev)
    X = as_tensor(X, dev, torch.float32)
    batch_size = _batch_size(dev, batch_size)
    with exact_float32():
        out = [F.softmax(net(X[s:s + batch_size]), dim=1)
               for s in range(0, len(X), batch_size)]
    if not out:
        return np.zeros((0, 10), np.float32)
    return torch.cat(out).cpu().numpy()
