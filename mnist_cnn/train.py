"""Train the tutorial's networks exactly as its ``main()`` does.

The engine is PyTorch (:class:`TorchEngine`), or PyTensor with ``engine="theano"``
(:mod:`mnist_cnn.theano_engine`); the epoch loop here is the same for both.

Mean cross-entropy of the softmax output; Lasagne's ``nesterov_momentum`` updates;
the training set shuffled every epoch with the last incomplete batch dropped; a
deterministic pass for validation and test. A checkpoint after every epoch makes long
runs safe to stop (Ctrl-C) and resume bit-identically.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from .data import load_dataset, minibatch_indices
from .device import exact_float32, keep_freed_memory, resolve_device
from .errors import TrainingError, TrainingInterrupted
from .inference import as_tensor, evaluate, evaluate_network, predict_proba
from .model import LasagneNet, from_lasagne, to_lasagne
from .networks import NetworkSpec, parse_model_name
from .results import EpochStats, Evaluation, TrainResult

__all__ = ["EpochStats", "Evaluation", "NesterovMomentum", "TrainResult", "evaluate",
           "predict_proba", "train"]

# Settings that must be equal to resume a run (num_epochs may grow).
_RESUME_KEYS = ("model", "engine", "batch_size", "learning_rate", "momentum", "seed")


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


def _check_settings(num_epochs: int, batch_size: int, learning_rate: float,
                    momentum: float, n_train: int) -> None:
    if num_epochs < 0:
        raise TrainingError(f"the number of epochs must be 0 or more, got {num_epochs}")
    if not 1 <= batch_size <= n_train:
        raise TrainingError(f"the batch size must be between 1 and the {n_train:,} "
                            f"training examples, got {batch_size}")
    if not learning_rate > 0:
        raise TrainingError(f"the learning rate must be positive, got {learning_rate}")
    if not 0 <= momentum < 1:
        raise TrainingError(f"the momentum must be in [0, 1), got {momentum}")


def _print_epoch(stats: EpochStats, num_epochs: int) -> None:
    print(f"Epoch {stats.epoch} of {num_epochs} took {stats.seconds:.3f}s")
    print(f"  training loss:\t\t{stats.train_loss:.6f}")
    print(f"  validation loss:\t\t{stats.val_loss:.6f}")
    print(f"  validation accuracy:\t\t{stats.val_accuracy * 100:.2f} %", flush=True)


def train(
    model: str = "cnn",
    num_epochs: int = 5,
    batch_size: int = 50,
    learning_rate: float = 0.01,
    momentum: float = 0.9,
    seed: int = 0,
    device: str = "auto",
    data: Sequence[np.ndarray] | None = None,
    data_dir: str | os.PathLike | None = None,
    checkpoint: str | os.PathLike | None = None,
    resume: bool = False,
    verbose: bool = True,
    progress: bool | None = None,
    engine: str = "pytorch",
) -> TrainResult:
    """Train one of the tutorial's networks and return its weights and history.

    The defaults reproduce the blog's run (5 epochs at batch size 50); the tutorial's
    own ``mnist.py`` used ``batch_size=500`` (and 500 epochs).

    Parameters
    ----------
    model : str
        ``"cnn"``, ``"mlp"`` or ``"custom_mlp:DEPTH,WIDTH,DROP_IN,DROP_HID"``.
    num_epochs : int
        Passes over the 50,000 training images.
    batch_size : int
        Images per update; the last incomplete batch of an epoch is dropped.
    learning_rate, momentum : float
        Nesterov momentum settings (the tutorial's 0.01 and 0.9).
    seed : int
        Seeds the initialisation, the shuffling and the dropout masks: on a CPU, or on
        one CUDA GPU, the same seed gives identical weights.
    device : str
        ``"auto"`` (CUDA if present, else CPU), ``"cpu"``, ``"cuda"`` or ``"mps"``. On
        CUDA the data stay on the GPU and each step is a replayed CUDA graph (see
        :class:`TorchEngine`), in full float32.
    data : sequence of numpy.ndarray, optional
        ``(X_train, y_train, X_val, y_val, X_test, y_test)``; default
        :func:`mnist_cnn.load_dataset` from ``data_dir``.
    data_dir : str or path-like, optional
        Where the MNIST files are (see :func:`mnist_cnn.load_dataset`).
    checkpoint : str or path-like, optional
        File written (atomically) at the end of every epoch.
    resume : bool
        Continue from ``checkpoint`` (same settings; ``num_epochs`` may be larger).
    verbose : bool
        Print the tutorial's per-epoch report and the final test results.
    progress : bool, optional
        A progress bar inside each epoch; default: when standard error is a terminal.
    engine : {"pytorch", "theano"}
        PyTorch (default), or the tutorial's symbolic program on PyTensor (CPU only;
        needs ``pip install 'mnist-cnn[theano]'``). Both give weights in the same layout.

    Returns
    -------
    TrainResult
        ``.weights`` (Lasagne layout), ``.history``, ``.test_loss``, ``.test_accuracy``.

    Raises
    ------
    TrainingError
        Bad settings, a non-finite loss (names epoch and batch), an unusable checkpoint.
    TrainingInterrupted
        On Ctrl-C; the checkpoint of the last finished epoch is kept.

    Examples
    --------
    >>> result = train("cnn", num_epochs=5, batch_size=50)  # doctest: +SKIP
    >>> weights = result.weights  # doctest: +SKIP
    """
    spec = parse_model_name(model)
    X_train, y_train, X_val, y_val, X_test, y_test = (
        data if data is not None else load_dataset(data_dir))
    _check_settings(num_epochs, batch_size, learning_rate, momentum, len(X_train))
    if resume and checkpoint is None:
        raise TrainingError("resume=True needs the checkpoint file to resume from")
    if progress is None:
        progress = sys.stderr.isatty()
    runner = _make_engine(engine, spec, seed, learning_rate, momentum, device,
                          (X_train, y_train, X_val, y_val))
    config = {"model": spec.name, "engine": runner.name, "num_epochs": num_epochs,
              "batch_size": batch_size, "learning_rate": learning_rate,
              "momentum": momentum, "seed": seed}
    order_rng = np.random.default_rng(seed)
    history: list[EpochStats] = []
    if resume:
        state = load_checkpoint(checkpoint)
        saved_config = {"engine": "pytorch", **state.config}
        differ = [k for k in _RESUME_KEYS if saved_config.get(k) != config[k]]
        if differ:
            raise TrainingError(
                f"{checkpoint} was made with other settings ("
                + ", ".join(f"{k}={saved_config.get(k)!r} here {config[k]!r}" for k in differ)
                + "); resume with the same settings or start a new run")
        runner.set_state(state.weights, state.velocities, state.dropout_state)
        order_rng.bit_generator.state = state.shuffle_state
        history = [EpochStats(**h) for h in state.history]

    epoch = saved = len(history)
    try:
        for epoch in range(len(history) + 1, num_epochs + 1):
            start = time.perf_counter()
            batches = runner.batches(
                minibatch_indices(len(X_train), batch_size, shuffle=True, rng=order_rng))
            train_loss = _train_epoch(runner, batches, f"epoch {epoch}/{num_epochs}",
                                      progress, epoch)
            val = runner.validate()
            stats = EpochStats(epoch, train_loss, val.loss, val.accuracy,
                               time.perf_counter() - start)
            history.append(stats)
            if checkpoint is not None:
                weights, velocities, dropout_state = runner.get_state()
                save_checkpoint(checkpoint, Checkpoint(
                    config, epoch, weights, velocities, order_rng.bit_generator.state,
                    dropout_state, [asdict(h) for h in history]))
                saved = epoch
            if verbose:
                _print_epoch(stats, num_epochs)
    except KeyboardInterrupt:
        raise TrainingInterrupted(
            _interrupted_message(epoch, num_epochs, checkpoint, saved), epoch=epoch,
            checkpoint=checkpoint if (checkpoint is not None and saved) else None,
        ) from None

    test = runner.evaluate(X_test, y_test)
    if verbose:
        print("Final results:")
        print(f"  test loss:\t\t\t{test.loss:.6f}")
        print(f"  test accuracy:\t\t{test.accuracy * 100:.2f} %", flush=True)
    return TrainResult(spec.name, runner.get_state()[0], history, test.loss,
                       test.accuracy, config, runner.device, runner.name)


def _interrupted_message(epoch: int, num_epochs: int,
                         checkpoint: str | os.PathLike | None, saved: int) -> str:
    text = f"training interrupted in epoch {epoch} of {num_epochs}"
    if checkpoint is not None and saved:
        return f"{text}; the checkpoint of epoch {saved} is kept in {Path(checkpoint)}"
    if checkpoint is not None:
        return f"{text}; no epoch had finished, so there is no checkpoint to resume from"
    return f"{text}; no checkpoint file was set, so it cannot be resumed"


def _train_epoch(runner: Any, batches: Any, desc: str, progress: bool, epoch: int) -> float:
    """One pass of updates over the batches; returns the mean of the batch losses."""
    from tqdm.auto import tqdm

    n_batches = len(batches)
    losses: list[Any] = []
    values = np.empty(0)
    # Reading the losses syncs with the device, so it is done only now and then.
    check_every = 50
    with tqdm(total=n_batches, desc=desc, unit="batch", leave=False,
              disable=not progress, file=sys.stderr) as bar:
        for i, index in enumerate(batches):
            losses.append(runner.train_batch(index))
            if (i + 1) % check_every == 0 or i + 1 == n_batches:
                values = np.concatenate([values, runner.read_losses(losses[len(values):])])
                bad = np.flatnonzero(~np.isfinite(values))
                if bad.size:
                    raise TrainingError(
                        f"the training loss became {values[bad[0]]} in epoch {epoch}, "
                        f"batch {bad[0] + 1} of {n_batches}; training stopped (try a lower "
                        "learning rate); the last checkpoint holds the previous epoch")
                bar.set_postfix(loss=f"{values[-check_every:].mean():.4f}", refresh=False)
                bar.update(i + 1 - bar.n)
    return float(values.mean())


class TorchEngine:
    """The PyTorch engine: the tutorial's training step on a CPU, CUDA or MPS device.

    The training and validation data are moved to the device once; mini-batches are
    cut from them by index.

    With ``resident=True`` (the default on CUDA) each epoch's batch order and dropout
    masks are drawn ahead, on the device, and a device-side step counter picks each
    batch and stores each loss, so no step waits for the host. On CUDA that step is
    then captured once as a CUDA graph and replayed (``graphs=False`` runs it eagerly).
    The masks come from the same seeded generator, in another order than the default
    path's, so a resident run is reproducible but not bit-identical to a default one.
    """

    name = "pytorch"
    #: Eager steps run before a CUDA graph is captured (cuDNN and cuBLAS set-up).
    warmup_steps = 3

    def __init__(self, spec: NetworkSpec, seed: int, learning_rate: float, momentum: float,
                 device: str, data: Sequence[np.ndarray], resident: bool | None = None,
                 graphs: bool = True) -> None:
        dev = resolve_device(device)
        self.device = str(dev)
        if dev.type == "cpu":
            keep_freed_memory()
        self.net = LasagneNet(spec, seed=seed).to(dev)
        self.params = list(self.net.params)
        self.updates = NesterovMomentum(self.params, learning_rate, momentum)
        self.dropout_rng = torch.Generator(device=dev)
        self.dropout_rng.manual_seed(seed)
        X_train, y_train, X_val, y_val = data
        self.X, self.y = as_tensor(X_train, dev, torch.float32), as_tensor(y_train, dev,
                                                                             torch.int64)
        self.X_val = as_tensor(X_val, dev, torch.float32)
        self.y_val = as_tensor(y_val, dev, torch.int64)
        self.resident = dev.type == "cuda" if resident is None else resident
        self.graphs = graphs and self.resident and dev.type == "cuda"
        self._epoch: _EpochBuffers | None = None
        self._graph: Any = None

    def batches(self, indices: np.ndarray) -> Sequence[Any]:
        """The epoch's batches, given their example indices (one row per batch)."""
        order = torch.from_numpy(indices).to(self.device)
        if not self.resident:
            return order
        if self._epoch is None or self._epoch.order.shape != order.shape:
            self._epoch = _EpochBuffers(order, self.net.dropout_shapes(order.shape[1]))
            self._graph = None
        self._epoch.start(order, self.dropout_rng)
        return range(len(order))

    def train_batch(self, batch: Any) -> Any:
        """One update; returns a handle on its loss for :meth:`read_losses`."""
        self.net.train()
        with exact_float32():
            if not self.resident:
                loss = F.cross_entropy(self.net(self.X[batch], self.dropout_rng),
                                       self.y[batch])
                self.updates.step(torch.autograd.grad(loss, self.params))
                return loss.detach()
            if not self.graphs:
                self._resident_step()
            elif self._graph is not None:
                self._graph.replay()
            elif batch < self.warmup_steps:
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
        return batch

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

    def read_losses(self, losses: list[Any]) -> np.ndarray:
        """The losses behind handles from :meth:`train_batch` (waits for the device)."""
        if not losses:
            return np.empty(0)
        if self.resident:
            return self._epoch.losses[losses[0]:losses[-1] + 1].double().cpu().numpy()
        return torch.stack(losses).double().cpu().numpy()

    def validate(self) -> Evaluation:
        return evaluate_network(self.net, self.X_val, self.y_val)

    def evaluate(self, X: np.ndarray, y: np.ndarray) -> Evaluation:
        dev = torch.device(self.device)
        return evaluate_network(self.net, as_tensor(X, dev, torch.float32),
                                as_tensor(y, dev, torch.int64))

    def get_state(self) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
        """Weights and velocities (Lasagne layout), and the dropout generator's state."""
        return (self.net.get_weights(), [to_lasagne(v) for v in self.updates.velocities],
                self.dropout_rng.get_state().numpy())

    def set_state(self, weights: Sequence[np.ndarray], velocities: Sequence[np.ndarray],
                  dropout_state: np.ndarray) -> None:
        # In place: a captured CUDA graph keeps reading the same tensors.
        self.net.set_weights(weights)
        for v, saved in zip(self.updates.velocities, velocities, strict=True):
            v.copy_(from_lasagne(saved))
        self.dropout_rng.set_state(torch.from_numpy(np.asarray(dropout_state, np.uint8)))


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


ENGINES = ("pytorch", "theano")


def _make_engine(engine: str, spec: NetworkSpec, seed: int, learning_rate: float,
                 momentum: float, device: str, data: Sequence[np.ndarray]) -> Any:
    if engine == "pytorch":
        return TorchEngine(spec, seed, learning_rate, momentum, device, data)
    if engine == "theano":
        from .theano_engine import TheanoTrainer

        return TheanoTrainer(spec, seed, learning_rate, momentum, device, data)
    raise TrainingError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
