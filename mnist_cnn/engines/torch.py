"""The ``pytorch`` engine: the tutorial's networks as PyTorch modules, trained and run on
a CPU, a CUDA GPU or Apple's MPS, with Lasagne's semantics and layout.

:class:`LasagneNet` builds a network from its :class:`~mnist_cnn.spec.Network`. Its
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

from .. import defaults
from ..results import Evaluation
from ..spec import Conv, Dense, Dropout, Network, Pool, Weights, init_weights, network
from . import TrainerState
from .torch_devices import exact_float32, keep_freed_memory, resolve_device

__all__ = [
    "NAME",
    "LasagneNet",
    "NesterovMomentum",
    "TorchTrainer",
    "bernoulli_mask",
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
    """Convert one parameter (or same-shaped state) from Lasagne to PyTorch layout."""
    t = torch.from_numpy(np.asarray(array, dtype=np.float32))
    if t.ndim == 4:
        t = t.flip((2, 3))
    elif t.ndim == 2:
        t = t.t()
    return t.contiguous()


# ------------------------------------------------------------------------ layers

def bernoulli_mask(shape: Sequence[int], keep: float, generator: torch.Generator | None,
                   device: torch.device | str = "cpu") -> torch.Tensor:
    """A 0/1 float32 mask whose entries are 1 with probability ``keep`` (a dropout mask).

    On a CPU the mask is exactly ``torch.empty(shape).bernoulli_(keep, generator=...)``
    (the same draws, leaving the generator in the same state): that kernel draws one
    float64 uniform per entry in a scalar loop and keeps those below ``keep``, and
    ``torch.rand`` draws the same numbers in a vectorised loop.

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


def max_pool_2x2(x: torch.Tensor) -> torch.Tensor:
    """2x2 max-pooling, stride 2; an odd last row or column is ignored (``ignore_border``)."""
    if x.device.type != "cpu":
        return F.max_pool2d(x, 2)
    if torch.is_grad_enabled() and x.requires_grad:
        return _MaxPool2x2CPU.apply(x)
    # Without gradients PyTorch's CPU max_pool2d still computes the argmax indices; the
    # maximum of four strided views gives the same values without them.
    h, w = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
    return torch.maximum(torch.maximum(x[..., 0:h:2, 0:w:2], x[..., 0:h:2, 1:w:2]),
                         torch.maximum(x[..., 1:h:2, 0:w:2], x[..., 1:h:2, 1:w:2]))


class _MaxPool2x2CPU(torch.autograd.Function):
    """``F.max_pool2d(x, 2)`` for training on a CPU, with each pass in its faster layout.

    PyTorch's CPU max-pooling vectorises across channels only for channels-last
    tensors, so the forward pass pools a channels-last copy; the backward pass is the
    other way round, so it runs on NCHW. Values and argmax indices (the first maximum of
    each window) are PyTorch's own in both layouts, so the gradients are
    ``F.max_pool2d``'s bit for bit.
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

    Built from the network's layers: a convolution followed by pooling runs as
    convolution, pooling, then ReLU (the same numbers as Lasagne's conv-ReLU-pool,
    because ReLU is monotone and commutes with max, on a quarter of the values).

    Parameters
    ----------
    net : Network or str
        Which network (``"cnn"``, ``"mlp"``, ``"custom_mlp:D,W,DI,DH"``).
    weights : Weights or list of numpy.ndarray, optional
        Initial values in Lasagne's layout; default :func:`~mnist_cnn.spec.init_weights`
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

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None,
                masks: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
        """Logits for a batch of shape (N, 1, 28, 28).

        In training mode dropout is applied with ``masks`` (one 0/1 tensor per dropout
        layer, shaped as :meth:`dropout_shapes` says) or, without them, with masks drawn
        from ``generator``; in eval mode the pass is deterministic (Lasagne's
        ``deterministic=True``).
        """
        params = iter(self.params)
        given = iter(masks) if masks is not None else None
        layers = self.network.layers
        fused = False
        for i, layer in enumerate(layers):
            if isinstance(layer, Conv):
                x = F.conv2d(x, next(params), next(params))
                fused = i + 1 < len(layers) and isinstance(layers[i + 1], Pool)
                if not fused:
                    x = F.relu(x)
            elif isinstance(layer, Pool):
                x = max_pool_2x2(x)
                if fused:
                    x = F.relu(x)
                fused = False
            elif isinstance(layer, Dropout):
                x = x.flatten(1)
                if self.training:
                    mask = next(given) if given is not None else bernoulli_mask(
                        x.shape, 1.0 - layer.p, generator, x.device)
                    x = x * mask / (1.0 - layer.p)
            elif isinstance(layer, Dense):
                x = F.linear(x.flatten(1), next(params), next(params))
                if not layer.softmax:
                    x = F.relu(x)
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
    """

    def __init__(self, params: Sequence[torch.Tensor], learning_rate: float,
                 momentum: float) -> None:
        self.params = list(params)
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.velocities = [torch.zeros_like(p) for p in self.params]

    @torch.no_grad()
    def step(self, grads: Sequence[torch.Tensor]) -> None:
        """Apply one update with the given gradients (same order as ``params``)."""
        lr, m = self.learning_rate, self.momentum
        grads = list(grads)
        if len(grads) != len(self.params):
            raise ValueError(f"{len(grads)} gradients for {len(self.params)} parameters")
        # One multi-tensor kernel per line instead of one per parameter; the same math.
        torch._foreach_mul_(self.velocities, m)
        torch._foreach_add_(self.velocities, grads, alpha=-lr)
        torch._foreach_add_(self.params, grads, alpha=-lr)
        torch._foreach_add_(self.params, self.velocities, alpha=m)


def as_tensor(array: np.ndarray | torch.Tensor, device: torch.device,
              dtype: torch.dtype) -> torch.Tensor:
    """A tensor on ``device`` sharing memory with ``array`` where it can (CPU, writable)."""
    if isinstance(array, torch.Tensor):
        return array.to(device, dtype)
    array = np.ascontiguousarray(array)
    if not array.flags.writeable:
        array = array.copy()  # PyTorch cannot wrap read-only memory
    return torch.from_numpy(array).to(device, dtype)


class TorchTrainer:
    """The tutorial's training step in PyTorch on a CPU, CUDA or MPS device.

    The training and validation data are moved to the device once; mini-batches are
    cut from them by index. Losses are read from the device every
    :attr:`losses_every` batches (reading waits for the device).

    With ``resident=True`` (the default on CUDA) each epoch's batch order and dropout
    masks are drawn ahead, on the device, and a device-side step counter picks each
    batch and stores each loss, so no step waits for the host. On CUDA that step is
    then captured once as a CUDA graph and replayed (``graphs=False`` runs it eagerly).
    The masks come from the same seeded generator, in another order than the default
    path's, so a resident run is reproducible but not bit-identical to a default one.

    Parameters
    ----------
    weights : Weights
        Initial weights (and so the network).
    seed : int
        Seed of the dropout masks' generator.
    learning_rate, momentum : float
        Nesterov momentum settings.
    device : str
        ``auto``, ``cpu``, ``cuda[:N]`` or ``mps``.
    data : sequence of numpy.ndarray
        (X_train, y_train, X_val, y_val).
    resident, graphs : bool, optional
        See above.
    """

    #: Eager steps run before a CUDA graph is captured (cuDNN and cuBLAS set-up).
    warmup_steps = 3
    losses_every = 50

    def __init__(self, weights: Weights, seed: int, learning_rate: float, momentum: float,
                 device: str, data: Sequence[np.ndarray], resident: bool | None = None,
                 graphs: bool = True) -> None:
        dev = resolve_device(device)
        self.device = str(dev)
        self.versions = {"torch": torch.__version__}
        if dev.type == "cpu":
            keep_freed_memory()
        self.net = LasagneNet(weights.network, weights).to(dev)
        self.params = list(self.net.params)
        self.updates = NesterovMomentum(self.params, learning_rate, momentum)
        self.dropout_rng = torch.Generator(device=dev)
        self.dropout_rng.manual_seed(seed)
        X_train, y_train, X_val, y_val = data
        self.X = as_tensor(X_train, dev, torch.float32)
        self.y = as_tensor(y_train, dev, torch.int64)
        self.X_val = as_tensor(X_val, dev, torch.float32)
        self.y_val = as_tensor(y_val, dev, torch.int64)
        self.resident = dev.type == "cuda" if resident is None else resident
        self.graphs = graphs and self.resident and dev.type == "cuda"
        self._epoch: _EpochBuffers | None = None
        self._graph: Any = None

    def train_epoch(self, order: np.ndarray) -> Iterator[np.ndarray]:
        """One update per row of ``order``; yields the losses every few batches."""
        self.net.train()
        order_t = torch.from_numpy(np.ascontiguousarray(order)).to(self.device)
        with exact_float32():
            if self.resident:
                yield from self._resident_epoch(order_t)
                return
            losses: list[torch.Tensor] = []
            for i, batch in enumerate(order_t):
                loss = F.cross_entropy(self.net(self.X[batch], self.dropout_rng),
                                       self.y[batch])
                self.updates.step(torch.autograd.grad(loss, self.params))
                losses.append(loss.detach())
                if (i + 1) % self.losses_every == 0 or i + 1 == len(order_t):
                    yield torch.stack(losses).double().cpu().numpy()
                    losses = []

    def _resident_epoch(self, order: torch.Tensor) -> Iterator[np.ndarray]:
        if self._epoch is None or self._epoch.order.shape != order.shape:
            self._epoch = _EpochBuffers(order, self.net.dropout_shapes(order.shape[1]))
            self._graph = None
        self._epoch.start(order, self.dropout_rng)
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
        loss = F.cross_entropy(self.net(self.X.index_select(0, index), masks=masks),
                               self.y.index_select(0, index))
        self.updates.step(torch.autograd.grad(loss, self.params))
        epoch.losses.index_copy_(0, step, loss.detach().view(1))
        step.add_(1)

    def validate(self) -> Evaluation:
        """Loss and accuracy on the validation set, without dropout."""
        return evaluate_network(self.net, self.X_val, self.y_val)

    def evaluate(self, X: np.ndarray, y: np.ndarray) -> Evaluation:
        """Loss and accuracy on a labelled set, without dropout."""
        dev = torch.device(self.device)
        return evaluate_network(self.net, as_tensor(X, dev, torch.float32),
                                as_tensor(y, dev, torch.int64))

    def get_state(self) -> TrainerState:
        """Weights and velocities (Lasagne layout), and the dropout generator's state."""
        return TrainerState(self.net.get_weights(),
                            [to_lasagne(v) for v in self.updates.velocities],
                            self.dropout_rng.get_state().numpy())

    def set_state(self, state: TrainerState) -> None:
        """Continue from a saved state (in place: a captured CUDA graph keeps reading the
        same tensors)."""
        self.net.set_weights(state.weights)
        for v, saved in zip(self.updates.velocities, state.velocities, strict=True):
            v.copy_(from_lasagne(saved))
        self.dropout_rng.set_state(torch.from_numpy(np.asarray(state.dropout, np.uint8)))


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
        self.keep = [1.0 - p for _, p in dropout_shapes]
        self.masks = [torch.empty((n, *shape), device=dev) for shape, _ in dropout_shapes]
        self.losses = torch.zeros(n, device=dev)
        self.step = torch.zeros(1, dtype=torch.int64, device=dev)

    def start(self, order: torch.Tensor, generator: torch.Generator) -> None:
        """New order, new masks (drawn layer by layer), counter back to batch 0."""
        self.order.copy_(order)
        for mask, keep in zip(self.masks, self.keep, strict=True):
            mask.bernoulli_(keep, generator=generator)
        self.step.zero_()


def make_trainer(weights: Weights, seed: int, learning_rate: float, momentum: float,
                 device: str, data: Sequence[np.ndarray]) -> TorchTrainer:
    """The PyTorch trainer (see :class:`TorchTrainer`)."""
    return TorchTrainer(weights, seed, learning_rate, momentum, device, data)


# ----------------------------------------------------------------------- inference

def _batch_size(device: torch.device, batch_size: int | None) -> int:
    return batch_size or defaults.INFERENCE_BATCH.get(device.type, 1000)


@torch.inference_mode()
def evaluate_network(net: LasagneNet, X: torch.Tensor, y: torch.Tensor,
                     batch_size: int | None = None) -> Evaluation:
    """Mean cross-entropy and accuracy of ``net`` over tensors already on its device.

    Computed in full float32 (see :func:`~mnist_cnn.engines.torch_devices.exact_float32`).
    All examples count (the tutorial's batches of 500 divide 10,000 exactly, so its
    mean of batch means is the same number).
    """
    batch_size = batch_size or defaults.INFERENCE_BATCH["cpu"]
    was_training = net.training
    net.eval()
    total_loss = torch.zeros((), dtype=torch.float64, device=X.device)
    correct = torch.zeros((), dtype=torch.int64, device=X.device)
    with exact_float32():
        for start in range(0, len(X), batch_size):
            logits = net(X[start:start + batch_size])
            target = y[start:start + batch_size]
            total_loss += F.cross_entropy(logits, target, reduction="sum")
            correct += (logits.argmax(1) == target).sum()
    net.train(was_training)
    n = max(len(X), 1)
    return Evaluation(float(total_loss) / n, int(correct) / n)


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
