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
import os
import signal
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mnist_cnn.errors import TrainingError, TrainingInterrupted
from mnist_cnn.interrupts import Terminated
from mnist_cnn.nets import engines, mrg
from mnist_cnn.nets.engines import Trainer
from mnist_cnn.nets.spec import initialise
from mnist_cnn.progress import progress_bar, show_progress
from mnist_cnn.results import EpochStats, TrainResult
from mnist_cnn.storage.files import prepare_folder
from mnist_cnn.storage.mnist_data import load_dataset, minibatch_indices
from mnist_cnn.training.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from mnist_cnn.training.settings import Settings

__all__ = ["Settings", "resume", "train"]


def train(
    model: str | Settings | None = None,
    num_epochs: int | None = None,
    batch_size: int | None = None,
    *,
    data: Sequence[np.ndarray] | None = None,
    data_dir: str | os.PathLike | None = None,
    checkpoint: str | os.PathLike | None = None,
    resume: bool = False,
    verbose: bool = True,
    progress: bool | None = None,
    **settings: Any,
) -> TrainResult:
    """Train one of the tutorial's networks and return its weights and history.

    The defaults reproduce the blog's run (5 epochs at batch size 50); the tutorial's
    own ``mnist.py`` used ``batch_size=500`` (and 500 epochs).

    Every setting of the run is one field of :class:`~mnist_cnn.training.settings.Settings`:
    pass a whole record as ``model``, or the settings by name (those not given are the
    recipe's or the defaults).

    Parameters
    ----------
    model : str or Settings, optional
        ``"cnn"`` (default), ``"mlp"`` or ``"custom_mlp:DEPTH,WIDTH,DROP_IN,DROP_HID"``;
        or the run's settings, whole (the named ``settings`` then replace some).
    num_epochs : int, optional
        Passes over the 50,000 training images; default: the recipe's (5).
    batch_size : int, optional
        Images per update; the last incomplete batch of an epoch is dropped; default:
        the recipe's (50).
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
    **settings
        Any other setting by name (see Other Parameters), as the fields of
        :class:`~mnist_cnn.training.settings.Settings`; ``lr_schedule`` is taken for
        ``schedule``.

    Other Parameters
    ----------------
    learning_rate, momentum : float, optional
        Nesterov momentum's settings (the tutorial's 0.01 and 0.9); for the fast recipe,
        Adam's peak learning rate and first beta (4e-3 and 0.9).
    seed : int, optional
        Seeds the initialisation, the batch order and the dropout masks: on a CPU, or
        on one CUDA GPU, the same seed gives identical weights.
    device : str, optional
        ``"auto"`` (CUDA if present, else CPU), ``"cpu"``, ``"cuda"`` or ``"mps"``.
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
        distortions, stroke widths; see :mod:`mnist_cnn.nets.engines.pytorch.augment`),
        for a model that reads real people's digits; pytorch engine only. Default: the
        recipe's (no).
    vary_shapes : bool, optional
        With ``augment``, also write some 1s, 4s and 7s as MNIST's writers rarely did (a
        1's flag, a 7's bar, a 4's closed top; see
        :func:`mnist_cnn.nets.engines.pytorch.augment.vary_shapes`). Default: no.
    schedule : {"constant", "cosine"}, optional
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
    if "lr_schedule" in settings:
        settings["schedule"] = settings.pop("lr_schedule")
    given = {"num_epochs": num_epochs, "batch_size": batch_size, **settings}
    if isinstance(model, Settings):
        try:
            run = model.replace(**given)
        except TypeError as exc:
            raise TrainingError(f"unknown setting: {exc}") from None
    else:
        run = Settings.of(given.pop("recipe", None),
                          **{**given, "model": None if model is None else str(model)})
    saved = None
    if resume:
        if checkpoint is None:
            raise TrainingError("resume=True needs the checkpoint file to resume from")
        saved = load_checkpoint(checkpoint)
        _check_same(saved, run, checkpoint)
    return _run(run, saved, data, data_dir, checkpoint, verbose, progress)


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
        Settings given again (any but those of
        :attr:`~mnist_cnn.training.settings.Settings.MAY_CHANGE`): each must equal the
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
    if "lr_schedule" in settings:
        settings["schedule"] = settings.pop("lr_schedule")
    unknown = set(settings) - set(Settings.fixed())
    if unknown:
        raise TrainingError(f"unknown settings {sorted(unknown)}; resume takes "
                            f"{', '.join(Settings.fixed())} and num_epochs, device, threads")
    run = saved.settings.replace(**settings, num_epochs=num_epochs, device=device,
                                 threads=threads)
    _check_same(saved, run, checkpoint)
    return _run(run, saved, data, data_dir, checkpoint, verbose, progress)


def _check_same(saved: Checkpoint, settings: Settings, checkpoint: Any) -> None:
    differ = saved.settings.differences(settings)
    if differ:
        raise TrainingError(f"{checkpoint} was made with other settings ({', '.join(differ)}); "
                            "resume with the same settings or start a new run")
    if settings.num_epochs < saved.epoch:
        raise TrainingError(f"{checkpoint} already holds {saved.epoch} epochs; ask for at "
                            f"least that many (got {settings.num_epochs})")


def _say(verbose: bool, text: str) -> None:
    if verbose:
        print(text, flush=True)


def _run(settings: Settings, saved: Checkpoint | None,
         data: Sequence[np.ndarray] | None, data_dir: str | os.PathLike | None,
         checkpoint: str | os.PathLike | None, verbose: bool,
         progress: bool | None) -> TrainResult:
    net = settings.validate()
    engine = engines.get(settings.engine, training=True)
    if checkpoint is not None:
        prepare_folder(Path(checkpoint).parent, "the checkpoint's folder")
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
        weights, dropout = saved.state.weights, saved.state.dropout
        rng.set_state(saved.order_state)
        history = list(saved.history)
    trainer = engine.make_trainer(weights, dropout, settings, (X_train, y_train, X_val, y_val))
    try:
        if saved is not None:
            trainer.set_state(saved.state)
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
    return TrainResult(weights, history, test.loss, test.accuracy, settings, trainer.device,
                       trainer.versions)


def _epochs(trainer: Trainer, settings: Settings, history: list[EpochStats],
            rng: np.random.RandomState, checkpoint: str | os.PathLike | None,
            X_train: np.ndarray, verbose: bool, progress: bool) -> list[EpochStats]:
    """The epochs left to train; an interruption (Ctrl-C, or SIGTERM under
    :func:`mnist_cnn.interrupts.sigterm_as_interrupt`, as the command line runs) keeps the
    last epoch's checkpoint."""
    epoch = done = len(history)
    try:
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
                save_checkpoint(checkpoint, Checkpoint(
                    settings, epoch, rng.get_state(), history, trainer.get_state()))
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
