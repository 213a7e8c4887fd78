"""Train the tutorial's networks as its ``main()`` does: the epoch loop.

The loop is the same for every engine and knows nothing of how an engine computes. As
the tutorial after ``np.random.seed(seed)``, one numpy ``RandomState`` builds the
network (Lasagne's draws, in Lasagne's order) and then shuffles the training set every
epoch; each dropout layer's masks come from the MRG31k3p stream its seed starts. The
loop draws the batch order, drives the engine's :class:`~mnist_cnn.nets.engines.Trainer` through
each epoch (mean cross-entropy, Lasagne's ``nesterov_momentum``, the training set
shuffled every epoch with the last incomplete batch dropped), validates without
dropout, prints the tutorial's report, and writes a checkpoint after every epoch, so
that a run stopped by Ctrl-C or SIGTERM resumes bit-identically.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from mnist_cnn import defaults
from mnist_cnn.errors import TrainingError, TrainingInterrupted
from mnist_cnn.interrupts import Terminated, sigterm_as_interrupt
from mnist_cnn.nets import engines, mrg
from mnist_cnn.nets.engines import Trainer, TrainerState
from mnist_cnn.nets.spec import Network, initialise, network
from mnist_cnn.progress import progress_bar, show_progress
from mnist_cnn.results import EpochStats, TrainResult
from mnist_cnn.storage.files import check_writable_folder, remove_stale_temporaries
from mnist_cnn.storage.mnist_data import load_dataset, minibatch_indices
from mnist_cnn.training.checkpoint import Checkpoint, load_checkpoint, save_checkpoint

__all__ = ["Settings", "resume", "train"]


@dataclass(frozen=True)
class Settings:
    """Every setting of a training run, as its checkpoint and sidecar record them.

    The fields in :attr:`FIXED` decide the numbers a run computes and must be the same to
    resume it; ``num_epochs`` may grow; ``device`` and ``threads`` say where and how
    fast it ran (on a CPU the weights do not depend on ``threads``; see
    :data:`mnist_cnn.defaults.SHARD_IMAGES`). ``shards`` of None means the default for
    the batch size (:func:`mnist_cnn.defaults.shards_for`).
    """

    model: str = defaults.MODEL
    engine: str = defaults.ENGINE
    num_epochs: int = defaults.EPOCHS
    batch_size: int = defaults.BATCH_SIZE
    learning_rate: float = defaults.LEARNING_RATE
    momentum: float = defaults.MOMENTUM
    seed: int = defaults.SEED
    recipe: str = defaults.RECIPE
    augment: bool = False
    schedule: str = "constant"
    shards: int | None = None
    floatx: str = defaults.FLOATX
    device: str = defaults.DEVICE
    threads: int | str = defaults.THREADS

    #: What must be equal to resume a run (``num_epochs`` may grow).
    FIXED = ("model", "engine", "batch_size", "learning_rate", "momentum", "seed", "recipe",
             "augment", "schedule", "shards", "floatx")
    #: What a resumed run takes from its checkpoint unless told otherwise.
    RECORDED = (*FIXED, "num_epochs", "device", "threads")
    #: The value of a setting that a checkpoint of an earlier version did not record.
    BEFORE_RECORDED: ClassVar[dict[str, Any]] = {
        "shards": 1, "floatx": defaults.FLOATX, "device": defaults.DEVICE,
        "threads": defaults.THREADS}

    @classmethod
    def of(cls, recipe: str = defaults.RECIPE, **given: Any) -> Settings:
        """The settings of ``recipe``, with the ``given`` ones (not None) instead."""
        if recipe not in defaults.RECIPES:
            raise TrainingError(f"unknown recipe {recipe!r}; choose one of "
                                f"{', '.join(defaults.RECIPES)}")
        base = defaults.RECIPES[recipe]
        values = {"num_epochs": base.num_epochs, "batch_size": base.batch_size,
                  "learning_rate": base.learning_rate, "momentum": base.momentum,
                  "augment": base.augment, "schedule": base.schedule}
        values.update({k: v for k, v in given.items() if v is not None})
        if values.get("shards") is None and isinstance(values["batch_size"], int):
            values["shards"] = defaults.shards_for(values["batch_size"])
        return cls(recipe=recipe, **values)

    def updates(self) -> defaults.Recipe:
        """The recipe with these settings (what the engine's trainer needs)."""
        return dataclasses.replace(defaults.RECIPES[self.recipe], num_epochs=self.num_epochs,
                                   batch_size=self.batch_size,
                                   learning_rate=self.learning_rate, momentum=self.momentum,
                                   augment=self.augment, schedule=self.schedule,
                                   seed=self.seed, shards=self.shards, floatx=self.floatx)

    def validate(self) -> Network:
        """Check every setting before anything is loaded or created: the numbers, the
        network's name and size, and that the engine is installed; returns the network.

        Raises
        ------
        TrainingError, EngineError
        """
        try:
            net = network(self.model)
        except ValueError as exc:
            raise TrainingError(str(exc)) from None
        self.check()
        _check_fits_in_memory(net, self.model)
        engines.get(self.engine, training=True)
        if self.engine == "pytorch":
            from mnist_cnn.nets.engines.pytorch.devices import resolve_device

            resolve_device(self.device)
        return net

    def check(self, n_train: int | None = None) -> None:
        """Raise TrainingError unless every setting is usable (the batch size against
        ``n_train`` training examples, when given)."""
        def ok_int(value: Any) -> bool:
            return isinstance(value, int | np.integer) and not isinstance(value, bool)

        if not ok_int(self.num_epochs) or self.num_epochs < 1:
            raise TrainingError(f"the number of epochs must be a whole number of at least 1, "
                                f"got {self.num_epochs!r}")
        if not ok_int(self.batch_size) or self.batch_size < 1:
            raise TrainingError(f"the batch size must be a whole number of at least 1, got "
                                f"{self.batch_size!r}")
        if n_train is not None and self.batch_size > n_train:
            raise TrainingError(f"the batch size must be between 1 and the {n_train:,} "
                                f"training examples, got {self.batch_size!r}")
        if not isinstance(self.learning_rate, int | float) or not (
                0 < self.learning_rate < float("inf")):
            raise TrainingError(f"the learning rate must be a positive number, got "
                                f"{self.learning_rate!r}")
        if not isinstance(self.momentum, int | float) or not 0 <= self.momentum < 1:
            raise TrainingError(f"the momentum must be in [0, 1), got {self.momentum!r}")
        if not ok_int(self.seed) or not 0 <= self.seed < 2**32:
            raise TrainingError(f"the seed must be a whole number from 0 to 2**32 - 1, got "
                                f"{self.seed!r}")
        if self.schedule not in defaults.SCHEDULES:
            raise TrainingError(f"unknown learning-rate schedule {self.schedule!r}; choose "
                                f"one of {', '.join(defaults.SCHEDULES)}")
        if self.schedule != "constant" and defaults.RECIPES[self.recipe].rule != "nesterov":
            raise TrainingError(f"the {self.recipe} recipe has a schedule of its own")
        if not ok_int(self.shards) or not 1 <= self.shards <= self.batch_size:
            raise TrainingError(f"the shards must be a whole number from 1 to the batch "
                                f"size ({self.batch_size}), got {self.shards!r}")
        if self.floatx not in defaults.FLOATXS:
            raise TrainingError(f"unknown floatX {self.floatx!r}; choose one of "
                                f"{', '.join(defaults.FLOATXS)}")
        if self.floatx != "float32" and self.engine not in engines.FLOAT64_ENGINES:
            raise TrainingError(f"the {self.engine} engine trains in float32; float64 runs on "
                                f"the {' and '.join(engines.FLOAT64_ENGINES)} engines")
        if self.threads != "auto" and not (ok_int(self.threads) and self.threads >= 1):
            raise TrainingError(f"threads must be 'auto' or a whole number >= 1, got "
                                f"{self.threads!r}")


def train(
    model: str = defaults.MODEL,
    num_epochs: int | None = None,
    batch_size: int | None = None,
    learning_rate: float | None = None,
    momentum: float | None = None,
    seed: int = defaults.SEED,
    device: str = defaults.DEVICE,
    data: Sequence[np.ndarray] | None = None,
    data_dir: str | os.PathLike | None = None,
    checkpoint: str | os.PathLike | None = None,
    resume: bool = False,
    verbose: bool = True,
    progress: bool | None = None,
    engine: str = defaults.ENGINE,
    threads: int | str = defaults.THREADS,
    recipe: str = defaults.RECIPE,
    augment: bool | None = None,
    lr_schedule: str | None = None,
    shards: int | None = None,
    floatx: str = defaults.FLOATX,
) -> TrainResult:
    """Train one of the tutorial's networks and return its weights and history.

    The defaults reproduce the blog's run (5 epochs at batch size 50); the tutorial's
    own ``mnist.py`` used ``batch_size=500`` (and 500 epochs).

    Parameters
    ----------
    model : str
        ``"cnn"``, ``"mlp"`` or ``"custom_mlp:DEPTH,WIDTH,DROP_IN,DROP_HID"``.
    num_epochs : int, optional
        Passes over the 50,000 training images; default: the recipe's (5).
    batch_size : int, optional
        Images per update; the last incomplete batch of an epoch is dropped; default:
        the recipe's (50).
    learning_rate, momentum : float, optional
        Nesterov momentum's settings (the tutorial's 0.01 and 0.9); for the fast recipe,
        Adam's peak learning rate and first beta (4e-3 and 0.9).
    seed : int
        Seeds the initialisation, the batch order and the dropout masks: on a CPU, or
        on one CUDA GPU, the same seed gives identical weights.
    device : str
        ``"auto"`` (CUDA if present, else CPU), ``"cpu"``, ``"cuda"`` or ``"mps"``.
    data : sequence of numpy.ndarray, optional
        ``(X_train, y_train, X_val, y_val, X_test, y_test)``; default
        :func:`mnist_cnn.load_dataset` from ``data_dir``.
    data_dir : str or path-like, optional
        Where the MNIST files are (see :func:`mnist_cnn.load_dataset`).
    checkpoint : str or path-like, optional
        File written (atomically) at the end of every epoch.
    resume : bool
        Continue from ``checkpoint``, made with the same settings (``num_epochs`` may be
        larger); :func:`resume` takes the settings from the checkpoint instead.
    verbose : bool
        Print the tutorial's report: what it is doing, each epoch, the test results.
    progress : bool, optional
        A progress bar inside each epoch; default: when standard error is a terminal, or in Jupyter.
    engine : {"pytorch", "theano", "lasagne", "numpy"}
        PyTorch (default); the tutorial's symbolic program on PyTensor (CPU only; needs
        ``pip install 'mnist-cnn[theano]'``); the tutorial's own program on the real
        Theano 0.8.2 and Lasagne 0.1 (CPU only; needs ``mnist-cnn legacy setup``); or
        Lasagne's rules written out in numpy, the slow reference (CPU only). All give
        weights in the same layout.
    threads : int or "auto"
        CPU threads: ``"auto"`` fits them to the cores that other processes leave free
        (so a busy machine does not slow training to a crawl); a number fixes them.
        They change the speed, never the weights: each batch's gradient is summed over
        fixed shards in a fixed order (see ``shards``).
    recipe : {"tutorial", "fast"}
        The tutorial's (Nesterov momentum, dropout), or a modern recipe for the same
        layers that reaches 99 % sooner: 2 epochs at batch 192 without dropout, Adam with
        its learning rate rising linearly to 4e-3 over the first quarter of the steps and
        falling to 0 (pytorch engine only). See :data:`mnist_cnn.defaults.RECIPES`.
    augment : bool, optional
        Transform every training batch afresh (random affine transforms, elastic
        distortions, stroke widths; see :mod:`mnist_cnn.training.augment`), for a model that reads
        real people's digits; pytorch engine only. Default: the recipe's (no).
    lr_schedule : {"constant", "cosine"}, optional
        Nesterov momentum's learning rate: constant, or falling to 0 along half a cosine
        over the run; default: the recipe's (constant).
    shards : int, optional
        On a CPU, each batch's gradient is the sum, in a fixed order, of the gradients
        of this many fixed slices of it, each computed on one thread; default: one per
        25 images, at most 4 (:func:`mnist_cnn.defaults.shards_for`). Part of the
        arithmetic, so recorded and kept on resume; 1 computes the whole batch at once.
    floatx : {"float32", "float64"}
        The precision (Theano's ``floatX``); float64 on the numpy engine (the
        reference) and the lasagne engine only.

    Returns
    -------
    TrainResult
        ``.weights`` (Lasagne layout), ``.history``, ``.test_loss``, ``.test_accuracy``.

    Raises
    ------
    TrainingError
        Bad settings, a non-finite loss (names epoch and batch), an unusable checkpoint.
    TrainingInterrupted
        On Ctrl-C or SIGTERM; the checkpoint of the last finished epoch is kept.
    EngineError
        An unknown engine, or one whose library is not installed.

    Examples
    --------
    >>> result = train("cnn", num_epochs=5, batch_size=50)  # doctest: +SKIP
    >>> weights = result.weights  # doctest: +SKIP
    """
    settings = Settings.of(recipe, model=str(model), engine=engine, num_epochs=num_epochs,
                           batch_size=batch_size, learning_rate=learning_rate,
                           momentum=momentum, seed=seed, augment=augment,
                           schedule=lr_schedule, shards=shards, floatx=floatx,
                           device=device, threads=threads)
    saved = None
    if resume:
        if checkpoint is None:
            raise TrainingError("resume=True needs the checkpoint file to resume from")
        saved = load_checkpoint(checkpoint)
        _check_same(saved, settings, checkpoint)
    return _run(settings, saved, data, data_dir, checkpoint, verbose, progress)


def resume(checkpoint: str | os.PathLike, num_epochs: int | None = None, *,
           device: str | None = None, data: Sequence[np.ndarray] | None = None,
           data_dir: str | os.PathLike | None = None, verbose: bool = True,
           progress: bool | None = None, threads: int | str | None = None,
           **settings: Any) -> TrainResult:
    """Continue the run saved in ``checkpoint``, with the settings it was made with.

    Parameters
    ----------
    checkpoint : str or path-like
        A checkpoint written by :func:`train` (``checkpoint.npz`` of a run folder).
    num_epochs : int, optional
        The total number of epochs; default: the checkpoint's.
    device, threads : optional
        As for :func:`train`; default: the checkpoint's.
    data, data_dir, verbose, progress
        As for :func:`train`.
    **settings
        Settings given again (those of :attr:`Settings.FIXED`): each must equal the
        checkpoint's.

    Returns
    -------
    TrainResult

    Raises
    ------
    TrainingError
        No usable checkpoint, or settings that differ from it.
    """
    saved = load_checkpoint(checkpoint)
    unknown = set(settings) - set(Settings.FIXED)
    if unknown:
        raise TrainingError(f"unknown settings {sorted(unknown)}; resume takes "
                            f"{', '.join(Settings.FIXED)} and num_epochs")
    recorded = _recorded(saved)
    given = {**recorded, **settings}
    for key, value in (("num_epochs", num_epochs), ("device", device), ("threads", threads)):
        if value is not None:
            given[key] = value
    run = Settings.of(**{**given, "recipe": given["recipe"] or defaults.RECIPE})
    _check_same(saved, run, checkpoint)
    return _run(run, saved, data, data_dir, checkpoint, verbose, progress)


def _recorded(saved: Checkpoint) -> dict[str, Any]:
    """The settings a checkpoint recorded (those of earlier versions filled in)."""
    return {key: saved.config.get(key, Settings.BEFORE_RECORDED.get(key))
            for key in Settings.RECORDED}


def _check_same(saved: Checkpoint, settings: Settings, checkpoint: Any) -> None:
    given, recorded = asdict(settings), _recorded(saved)
    differ = [key for key in Settings.FIXED if recorded[key] != given[key]]
    if differ:
        raise TrainingError(
            f"{checkpoint} was made with other settings ("
            + ", ".join(f"{k}={recorded[k]!r} there, {given[k]!r} here"
                        for k in differ)
            + "); resume with the same settings or start a new run")
    if settings.num_epochs < saved.epoch:
        raise TrainingError(f"{checkpoint} already holds {saved.epoch} epochs; ask for at "
                            f"least that many (got {settings.num_epochs})")


def _say(verbose: bool, text: str) -> None:
    if verbose:
        print(text, flush=True)


#: Bytes per parameter while training: Lasagne's float64 initialisation, then the
#: float32 weights, gradients, momentum and the engine's copy.
_TRAINING_BYTES_PER_PARAM = 8 + 4 * 4


def _check_fits_in_memory(net: Network, name: str) -> None:
    """Refuse a network whose parameters alone would not fit in this machine's memory."""
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not on POSIX: a generous 64 GiB
        memory = 64 << 30
    need = net.num_params() * _TRAINING_BYTES_PER_PARAM
    if need > memory:
        raise TrainingError(f"model {name!r} has {net.num_params():,} parameters and needs "
                            f"about {need / 2**30:,.0f} GiB to train, more than this "
                            f"machine's {memory / 2**30:,.0f} GiB; choose a smaller WIDTH "
                            "or DEPTH")


def _run(settings: Settings, saved: Checkpoint | None,
         data: Sequence[np.ndarray] | None, data_dir: str | os.PathLike | None,
         checkpoint: str | os.PathLike | None, verbose: bool,
         progress: bool | None) -> TrainResult:
    net = settings.validate()
    engine = engines.get(settings.engine, training=True)
    if checkpoint is not None:
        check_writable_folder(Path(checkpoint).parent, "the checkpoint's folder")
        remove_stale_temporaries(Path(checkpoint).parent)
    progress = show_progress(progress)
    if data is None:
        _say(verbose, "Loading data...")
        data = load_dataset(data_dir, progress=progress)
    X_train, y_train, X_val, y_val, X_test, y_test = data
    settings.check(len(X_train))
    _say(verbose, "Building model and compiling functions...")
    # As the tutorial after np.random.seed(seed): one generator builds the network (its
    # weights, and each dropout layer's seed) and then shuffles every epoch.
    rng = np.random.RandomState(settings.seed)
    weights, dropout_seeds = initialise(net, rng, settings.floatx)
    dropout = [mrg.stream_states(seed)[0] for seed in dropout_seeds]
    history: list[EpochStats] = []
    if saved is not None:
        weights, dropout = saved.weights, saved.dropout
        rng.set_state(saved.order_state)
        history = [EpochStats(**h) for h in saved.history]
    trainer = engine.make_trainer(weights, dropout, settings.updates(), settings.device,
                                  (X_train, y_train, X_val, y_val), settings.threads)
    try:
        if saved is not None:
            trainer.set_state(TrainerState(saved.weights, saved.velocities, saved.dropout,
                                           saved.moments, saved.steps, saved.augment))
            _say(verbose, f"Resuming {checkpoint} after epoch {saved.epoch}")
        _say(verbose, "Starting training...")
        history = _epochs(trainer, settings, history, rng, checkpoint, X_train, verbose,
                          progress)
        test = trainer.evaluate(X_test, y_test)
        weights = trainer.get_state().weights
    finally:
        trainer.close()
    if verbose:
        print("Final results:")
        print(f"  test loss:\t\t\t{test.loss:.6f}")
        print(f"  test accuracy:\t\t{test.accuracy * 100:.2f} %", flush=True)
    return TrainResult(weights, history, test.loss, test.accuracy, asdict(settings),
                       trainer.device, trainer.versions)


def _epochs(trainer: Trainer, settings: Settings, history: list[EpochStats],
            rng: np.random.RandomState, checkpoint: str | os.PathLike | None,
            X_train: np.ndarray, verbose: bool, progress: bool) -> list[EpochStats]:
    """The epochs left to train; Ctrl-C or SIGTERM keeps the last epoch's checkpoint."""
    config = asdict(settings)
    epoch = done = len(history)
    try:
        with sigterm_as_interrupt():
            for epoch in range(len(history) + 1, settings.num_epochs + 1):
                start = time.perf_counter()
                shuffled_from = rng.get_state()
                order = minibatch_indices(len(X_train), settings.batch_size, shuffle=True,
                                          rng=rng)
                kept = ("no checkpoint file was set" if checkpoint is None else
                        f"the checkpoint of epoch {done} is kept" if done else
                        "no epoch had finished, so there is no checkpoint")
                train_loss = _train_epoch(trainer, order, shuffled_from, epoch,
                                          settings.num_epochs, progress, kept)
                val = trainer.validate()
                stats = EpochStats(epoch, train_loss, val.loss, val.accuracy,
                                   time.perf_counter() - start)
                history.append(stats)
                if checkpoint is not None:
                    state = trainer.get_state()
                    save_checkpoint(checkpoint, Checkpoint(
                        config, epoch, state.weights, state.velocities, rng.get_state(),
                        state.dropout, [asdict(h) for h in history], state.moments,
                        state.steps, state.augment))
                    done = epoch
                if verbose:
                    _print_epoch(stats, settings.num_epochs)
    except KeyboardInterrupt as exc:
        raise TrainingInterrupted(
            _interrupted_message(epoch, settings.num_epochs, checkpoint, done, exc),
            epoch=epoch, checkpoint=checkpoint if (checkpoint is not None and done) else None,
            signal=getattr(exc, "signal", signal.SIGINT)) from None
    return history


def _print_epoch(stats: EpochStats, num_epochs: int) -> None:
    print(f"Epoch {stats.epoch} of {num_epochs} took {stats.seconds:.3f}s")
    print(f"  training loss:\t\t{stats.train_loss:.6f}")
    print(f"  validation loss:\t\t{stats.val_loss:.6f}")
    print(f"  validation accuracy:\t\t{stats.val_accuracy * 100:.2f} %", flush=True)


def _train_epoch(trainer: Trainer, order: np.ndarray, shuffled_from: tuple, epoch: int,
                 num_epochs: int, progress: bool, kept: str) -> float:
    """One epoch of updates; returns the mean of the batch losses. ``kept`` says what a
    stopped run leaves to resume from."""
    chunks: list[np.ndarray] = []
    done = 0
    with progress_bar(total=len(order), desc=f"epoch {epoch}/{num_epochs}", unit="batch",
                      leave=False, disable=not progress) as bar, \
            contextlib.closing(trainer.train_epoch(order, shuffled_from)) as losses:
        for chunk in losses:
            bad = np.flatnonzero(~np.isfinite(chunk))
            if bad.size:
                raise TrainingError(
                    f"the training loss became {chunk[bad[0]]} in epoch {epoch}, batch "
                    f"{done + bad[0] + 1} of {len(order)}; training stopped (try a lower "
                    f"learning rate); {kept}")
            chunks.append(chunk)
            done += len(chunk)
            bar.set_postfix(loss=f"{chunk.mean():.4f}", refresh=False)
            bar.update(len(chunk))
    return float(np.concatenate(chunks).mean())


def _interrupted_message(epoch: int, num_epochs: int,
                         checkpoint: str | os.PathLike | None, saved: int,
                         exc: BaseException) -> str:
    how = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
    text = f"training {how} in epoch {epoch} of {num_epochs}"
    if checkpoint is not None and saved:
        return f"{text}; the checkpoint of epoch {saved} is kept in {Path(checkpoint)}"
    if checkpoint is not None:
        return f"{text}; no epoch had finished, so there is no checkpoint to resume from"
    return f"{text}; no checkpoint file was set, so it cannot be resumed"
