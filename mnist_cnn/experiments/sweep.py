"""``reproduce()``: every run of a set of experiments, resumable, on this machine or a
Dask cluster, and its report.

Each run is an ordinary run folder (``model.npz``, ``model.json``, ``history.csv``,
``checkpoint.npz``, as ``mnist-cnn train --out`` writes) at
``SWEEP/EXPERIMENT/seed-N``. A run whose model is saved with its settings is done and
never redone; one with only a checkpoint resumes from it (and resuming is exact: the
model is the one an uninterrupted run gives). A lock file keeps two sweeps out of one
folder.

On this machine the runs go to a pool of processes (the standard library's
:class:`concurrent.futures.ProcessPoolExecutor`), the cores split between them. With
``address`` they go to an existing Dask cluster (``pip install 'mnist-cnn[cluster]'``):
its scheduler places them, and re-runs a run whose worker died, which then resumes from
the run's last checkpoint; the workers must see the sweep's folder (one machine, or a
shared file system).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mnist_cnn.experiments.plan import Experiment, ExperimentsError, experiments
from mnist_cnn.experiments.report import RunOutcome, SweepReport, build_report, write_report
from mnist_cnn.storage.runs import RunFolder
from mnist_cnn.training.settings import Settings

__all__ = ["LOCK", "RunTask", "reproduce", "run_one"]

#: The lock file of a sweep's folder.
LOCK = ".sweep.lock"


@dataclass(frozen=True)
class RunTask:
    """One run to do: what a worker needs (plain values: it crosses processes)."""

    experiment: str
    seed: int
    folder: str
    settings: dict[str, Any]
    data_dir: str | None


def _finished(run: RunFolder, settings: Settings) -> dict[str, Any] | None:
    """The sidecar of the run saved in ``run`` if it is this run, finished; None if no
    model is saved there yet.

    Raises
    ------
    ExperimentsError
        If the folder holds another run (other settings): it is not overwritten.
    """
    from mnist_cnn.storage.weights_file import read_metadata

    if not run.model.is_file():
        return None
    meta = read_metadata(run.model)
    if meta is None:  # a model without its sidecar: killed between the two renames
        return None
    saved = Settings.from_record(meta["hyperparameters"])
    differ = saved.differences(settings)
    if differ:
        raise ExperimentsError(f"{run.folder} holds a run with other settings "
                               f"({', '.join(differ)}); give the sweep another folder")
    return meta if meta.get("epochs") == settings.num_epochs else None


def _outcome(task: RunTask, meta: dict[str, Any], how: str) -> RunOutcome:
    return RunOutcome(task.experiment, task.seed, task.folder, float(meta["test_accuracy"]),
                      float(sum(h["seconds"] for h in meta["history"])), how)


def run_one(task: RunTask, data: Sequence[np.ndarray] | None = None,
            threads: int | str = "auto") -> RunOutcome:
    """Do one run of a sweep (in a worker): train it, resume it, or find it done.

    Parameters
    ----------
    task : RunTask
    data : sequence of numpy.ndarray, optional
        The six arrays of :func:`mnist_cnn.load_dataset`; default: loaded from
        ``task.data_dir``.
    threads : int or "auto"
        CPU threads for this run (they change its speed, never its numbers).
    """
    from mnist_cnn.training.loop import train

    settings = Settings.from_record(task.settings)
    run = RunFolder(task.folder)
    meta = _finished(run, settings)
    if meta is not None:
        return _outcome(task, meta, "done before")
    run.prepare()
    resumed = run.checkpoint.is_file()
    result = train(settings.replace(threads=threads), data=data, data_dir=task.data_dir,
                   checkpoint=run.checkpoint, resume=resumed, verbose=False, progress=False)
    run.save(result)
    return RunOutcome(task.experiment, task.seed, task.folder, result.test_accuracy,
                      float(sum(h.seconds for h in result.history)),
                      "resumed" if resumed else "trained")


def _worker_start() -> None:
    """A pool process between runs ignores Ctrl-C: the pool stops it cleanly."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _run_in_pool(task: RunTask, data: Sequence[np.ndarray] | None,
                 threads: int | str) -> RunOutcome:
    """:func:`run_one` in a pool process: Ctrl-C (or the SIGINT the sweep sends when it
    is stopped) interrupts the run, which keeps its last checkpoint."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return run_one(task, data, threads)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def reproduce(which: str | os.PathLike | Sequence[Experiment] = "blog",
              out: str | os.PathLike | None = None, *, seeds: int | None = None,
              only: Sequence[str] | None = None, workers: int | None = None,
              address: str | None = None, data: Sequence[np.ndarray] | None = None,
              data_dir: str | os.PathLike | None = None, progress: bool | None = None,
              verbose: bool = True) -> SweepReport:
    """Run a set of experiments over their seeds and report the statistics.

    Parameters
    ----------
    which : str, path-like or list of Experiment
        ``"blog"`` (the blog's claims: :data:`mnist_cnn.experiments.plan.BLOG`), a TOML
        file of experiments (see :mod:`mnist_cnn.experiments.plan`), or experiments.
    out : str or path-like, optional
        The sweep's folder; default: ``sweeps/NAME`` for a built-in set or a file's
        name.
    seeds : int, optional
        Run seeds 0 to ``seeds - 1`` of every experiment instead of their own.
    only : list of str, optional
        Run only the experiments of these names.
    workers : int, optional
        Runs at once on this machine, the cores split evenly between them; default:
        half the cores (at least 1). Not with ``address``.
    address : str, optional
        A Dask scheduler (``tcp://HOST:PORT``): the runs go to its cluster.
    data : sequence of numpy.ndarray, optional
        The six arrays of :func:`mnist_cnn.load_dataset` (a small part for a quick try);
        default: MNIST, loaded by each worker from ``data_dir``.
    data_dir : str or path-like, optional
        Where the MNIST files are, for every worker.
    progress : bool, optional
        A progress line (done, running, left, time left); default: when standard error
        is a terminal, or in Jupyter.
    verbose : bool
        Say where the report is.

    Returns
    -------
    SweepReport
        Also written as ``report.md``, ``report.json`` and ``report.png`` in ``out``.

    Raises
    ------
    ExperimentsError
        Invalid experiments or options, a folder in use by another sweep or holding
        other runs.
    TrainingInterrupted, KeyboardInterrupt
        Ctrl-C (or SIGTERM, as the command line runs): the runs stop, each keeping its
        last checkpoint; run the same sweep again to go on.

    Notes
    -----
    The runs on this machine are processes started afresh ("spawn"): in a script, call
    this function under ``if __name__ == "__main__":``, as multiprocessing asks.
    """
    from mnist_cnn.progress import show_progress
    from mnist_cnn.storage.files import prepare_folder

    chosen = experiments(which, seeds, list(only) if only else None)
    if workers is not None and address is not None:
        raise ExperimentsError("workers are the cluster's with an address: give one of "
                               "workers and address")
    if workers is not None and not 1 <= workers <= 1024:
        raise ExperimentsError(f"workers must be 1 to 1024, got {workers}")
    if address is not None:
        _check_address(address)
    folder = Path(out if out is not None else _default_out(which))
    if folder.exists() and not folder.is_dir():
        raise ExperimentsError(f"{folder} is a file, not a folder for the sweep")
    tasks = [RunTask(e.name, seed, str(folder / e.folder / f"seed-{seed}"),
                     e.run_settings(seed).to_dict(),
                     None if data_dir is None else str(data_dir))
             for e in chosen for seed in e.seeds]
    prepare_folder(folder, "the sweep's folder")
    start = time.perf_counter()
    with _Locked(folder):
        outcomes, todo = [], []
        for task in tasks:  # the runs found done cost nothing
            meta = _finished(RunFolder(task.folder), Settings.from_record(task.settings))
            if meta is None:
                todo.append(task)
            else:
                outcomes.append(_outcome(task, meta, "done before"))
        count = workers or max(1, (os.cpu_count() or 1) // 2)
        with _Progress(len(tasks), len(outcomes), show_progress(progress)) as bar:
            if not todo:
                pass
            elif address is None:
                outcomes += _run_here(todo, data, min(count, len(todo)), bar)
            else:
                outcomes += _run_on_cluster(todo, data, address, bar)
        report = build_report(outcomes, chosen, str(folder),
                              address if address is not None else count,
                              time.perf_counter() - start)
        paths = write_report(report, folder)
    if verbose:
        print(f"Report: {paths['markdown']} ({', '.join(p.name for p in paths.values())})",
              flush=True)
    return report


def _default_out(which: Any) -> Path:
    from mnist_cnn import defaults

    name = which if isinstance(which, str) and "/" not in which else (
        Path(which).stem if isinstance(which, (str, os.PathLike)) else "experiments")
    return Path(defaults.SWEEPS_DIR) / name


def _check_address(address: str) -> None:
    from urllib.parse import urlsplit

    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme not in ("tcp", "tls", "inproc", "ws", "wss") or not parts.hostname or (
            parts.scheme != "inproc" and port is None):
        raise ExperimentsError(f"{address!r} is not a Dask scheduler's address; give "
                               "tcp://HOST:PORT (as `dask scheduler` prints it)")


class _Locked:
    """The sweep's folder, locked against another sweep (the ``filelock`` library)."""

    def __init__(self, folder: Path) -> None:
        from filelock import FileLock

        self.folder = folder
        self.lock = FileLock(str(folder / LOCK))

    def __enter__(self) -> None:
        from filelock import Timeout

        try:
            self.lock.acquire(timeout=0)
        except Timeout:
            raise ExperimentsError(f"{self.folder} is in use by another sweep; wait for it "
                                   "to end, or give this one another folder") from None

    def __exit__(self, *exc: object) -> None:
        self.lock.release()


class _Progress:
    """A progress line: runs done, running and left, and the time left (tqdm's)."""

    def __init__(self, total: int, done: int, show: bool) -> None:
        from mnist_cnn.progress import progress_bar

        self.bar = progress_bar(total=total, initial=done, disable=not show, unit="run",
                                desc="runs done", dynamic_ncols=True,
                                bar_format="{desc}: {n}/{total}{postfix} "
                                           "[{elapsed} elapsed, {remaining} left]")
        self.left = total - done
        self.update(running=0)

    def update(self, running: int, finished: int = 0) -> None:
        self.left -= finished
        self.bar.set_postfix_str(f"running {running}, left {self.left - running}",
                                 refresh=False)
        self.bar.update(finished)

    def __enter__(self) -> _Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.close()


def _run_here(todo: list[RunTask], data: Sequence[np.ndarray] | None, workers: int,
              bar: _Progress) -> list[RunOutcome]:
    """The runs on a pool of ``workers`` processes, the cores split between them."""
    threads = max(1, (os.cpu_count() or 1) // workers)
    context = multiprocessing.get_context("spawn")  # no threads or torch state forked
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_start)
    pending = iter(todo)
    running: set[Future] = set()
    outcomes: list[RunOutcome] = []

    def submit() -> None:
        for task in pending:
            running.add(pool.submit(_run_in_pool, task, data, threads))
            if len(running) >= workers:
                return

    try:
        submit()
        bar.update(len(running))
        while running:
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                running.discard(future)
                outcomes.append(future.result())  # a run's error stops the sweep
            submit()
            bar.update(len(running), len(finished))
    except BaseException:
        for future in running:
            future.cancel()
        for child in multiprocessing.active_children():  # a run stops, keeping its
            with contextlib.suppress(ProcessLookupError):  # checkpoint; an idle one waits
                os.kill(child.pid, signal.SIGINT)
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return outcomes


def _run_on_cluster(todo: list[RunTask], data: Sequence[np.ndarray] | None, address: str,
                    bar: _Progress) -> list[RunOutcome]:
    """The runs on a Dask cluster; its scheduler re-runs a run whose worker died."""
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise ExperimentsError("running on a cluster needs Dask: pip install "
                               "'mnist-cnn[cluster]'") from None
    try:
        client = Client(address, timeout="10s")
    except (OSError, TimeoutError) as exc:
        raise ExperimentsError(f"cannot reach the Dask scheduler at {address} ({exc}); "
                               "start it (`dask scheduler`) or check the address") from None
    outcomes: list[RunOutcome] = []
    futures = []
    try:
        shared = client.scatter(data, broadcast=True) if data is not None else None
        futures = [client.submit(run_one, task, shared, "auto", pure=False,
                                 key=f"mnist-cnn-run-{os.getpid()}-{n}-{task.seed}")
                   for n, task in enumerate(todo)]
        bar.update(_cluster_running(client, futures))
        for future in as_completed(futures):
            outcomes.append(future.result())
            bar.update(_cluster_running(client, futures), 1)
    except BaseException:
        client.cancel(futures)
        raise
    finally:
        client.close()
    return outcomes


def _cluster_running(client: Any, futures: list[Any]) -> int:
    """How many of the runs are running: at most the cluster's worker threads."""
    left = sum(not f.done() for f in futures)
    threads = sum(client.nthreads().values()) or 1
    return min(left, threads)
