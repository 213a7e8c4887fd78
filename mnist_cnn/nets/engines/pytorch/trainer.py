"""The pytorch engine's trainer: the tutorial's training step on a CPU, CUDA or MPS."""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from mnist_cnn.errors import EngineError
from mnist_cnn.nets import mrg
from mnist_cnn.nets.dropout_masks import epoch_masks
from mnist_cnn.nets.engines import TrainerState
from mnist_cnn.nets.engines.pytorch.augment import augment, vary_shapes
from mnist_cnn.nets.engines.pytorch.devices import (
    Lanes,
    cpu_kind,
    exact_float32,
    keep_freed_memory,
    resolve_device,
    same_sums_on_every_cpu,
)
from mnist_cnn.nets.engines.pytorch.inference import evaluate_network, evaluation_sums
from mnist_cnn.nets.engines.pytorch.modules import LasagneNet, as_tensor, from_lasagne, to_lasagne
from mnist_cnn.nets.engines.pytorch.optimizers import Adam, NesterovMomentum
from mnist_cnn.nets.spec import Weights
from mnist_cnn.results import Evaluation

if TYPE_CHECKING:
    from mnist_cnn.training.settings import Settings

__all__ = ["TorchTrainer"]


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
    settings : Settings
        The run's settings: the update rule and its numbers, whether dropout drops, the
        augmentation, the shards, the device (``auto``, ``cpu``, ``cuda[:N]`` or
        ``mps``) and the CPU threads.
    data : sequence of numpy.ndarray
        (X_train, y_train, X_val, y_val).

    Notes
    -----
    CPU threads: fitted to the cores other processes leave free (``"auto"``, measured
    at each epoch's start and every :attr:`refit_every` batches; see
    :class:`~mnist_cnn.nets.engines.pytorch.devices.ThreadFitter`), or a fixed number. On a
    CPU each batch is cut into ``settings.shards`` fixed slices whose gradients are
    computed one per thread (:class:`~mnist_cnn.nets.engines.pytorch.devices.Lanes`) and
    added in order, so the threads never change the weights.
    """

    #: Eager steps run before a CUDA graph is captured (cuDNN and cuBLAS set-up).
    warmup_steps = 3
    losses_every = 50
    refit_every = 100
    #: Images of one piece of a validation on a CPU lane.
    validation_piece = 500

    def __init__(self, weights: Weights, dropout: Sequence[np.ndarray], settings: Settings,
                 data: Sequence[np.ndarray], resident: bool | None = None,
                 graphs: bool = True) -> None:
        dev = resolve_device(settings.device)
        self.device = str(dev)
        self.versions = {"torch": torch.__version__}
        self.lanes = Lanes(settings.threads) if dev.type == "cpu" else None
        if dev.type == "cpu":
            keep_freed_memory()
            self.versions["cpu"] = cpu_kind()
            self.versions["onemkl_mode"] = mkl_mode = same_sums_on_every_cpu()
            if mkl_mode == "off":
                warnings.warn("oneMKL computed in this process before mnist-cnn could set "
                              "its reproducible mode, so this run's weights may differ on "
                              "another CPU or when resumed; set MKL_CBWR=COMPATIBLE "
                              "before starting Python for the same weights everywhere",
                              stacklevel=2)
        self.net = LasagneNet(weights.network, weights).to(dev)
        self.params = list(self.net.params)
        self.settings = settings
        X_train, y_train, X_val, y_val = data
        total = settings.num_epochs * (len(X_train) // settings.batch_size)
        if settings.rule == "adam":
            self.updates: NesterovMomentum | Adam = Adam(self.params, settings.learning_rate,
                                                         settings.momentum, total)
        else:
            self.updates = NesterovMomentum(self.params, settings.learning_rate,
                                            settings.momentum, settings.schedule, total)
        self.augmenter: torch.Generator | None = None
        if settings.augment:
            self.augmenter = torch.Generator(device=dev)
            self.augmenter.manual_seed(settings.seed)
        self.keep = [1.0 - p for _, p in self.net.network.dropout_shapes(1)]
        self.streams: list[mrg.MaskStream] = []
        self._set_streams(dropout)
        self.X = as_tensor(X_train, dev, torch.float32)
        self.y = as_tensor(y_train, dev, torch.int64)
        self.X_val = as_tensor(X_val, dev, torch.float32)
        self.y_val = as_tensor(y_val, dev, torch.int64)
        # The resident step and its graph replay the tutorial's recipe: a captured graph
        # keeps one learning rate, and the augmentation's draws are made on the host.
        tutorial = settings.tutorial
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
        self.net.train(self.settings.dropout)  # in eval mode the dropout layers pass through
        order_t = torch.from_numpy(np.ascontiguousarray(order)).to(self.device)
        with exact_float32():
            if self.resident:
                yield from self._resident_epoch(order_t)
                return
            shapes = [shape for shape, _ in self.net.dropout_shapes(order.shape[1])]
            if not self.settings.dropout:
                shapes = []
            losses: list[torch.Tensor] = []
            for i, batch in enumerate(order_t):
                if self.lanes is not None and i % self.refit_every == 0:
                    self.lanes.refit()
                masks = [torch.from_numpy(stream.draw(shape)).to(self.device, torch.float32)
                         for stream, shape in zip(self.streams, shapes, strict=False)]
                images = self.X[batch]
                if self.augmenter is not None:
                    if self.settings.vary_shapes:
                        images = vary_shapes(images, self.y[batch], self.augmenter)
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
        the gradients of ``settings.shards`` fixed slices, each computed on one lane."""
        shards = self.settings.shards if self.lanes is not None else 1
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
            sums = self.lanes.map(lambda s: evaluation_sums(self.net, X[s:s + piece],
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
        moments = self.updates.moments if isinstance(self.updates, Adam) else []
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
        device = self.params[0].device
        self.updates.restore([from_lasagne(v).to(device) for v in state.velocities],
                             [from_lasagne(m).to(device) for m in state.moments], state.steps)
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
