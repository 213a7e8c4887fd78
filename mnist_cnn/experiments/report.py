"""A sweep's report: per experiment, how its runs' test accuracy and time spread, a 95 %
confidence interval of the mean (Student's t, from SciPy), and whether the claim lies in
it; written as Markdown, JSON and a figure."""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mnist_cnn.storage.files import atomic_write

__all__ = ["ExperimentStats", "RunOutcome", "Summary", "SweepReport", "build_report",
           "summarize", "write_report"]


@dataclass(frozen=True)
class RunOutcome:
    """One finished run of a sweep.

    Attributes
    ----------
    experiment : str
        Its experiment's name.
    seed : int
    folder : str
        Its run folder.
    test_accuracy : float
        On the 10,000 test images (a fraction).
    seconds : float
        Its epochs' training time, summed (over resumptions too).
    how : {"trained", "resumed", "done before"}
        Whether this sweep trained it, resumed it from its checkpoint, or found it done.
    """

    experiment: str
    seed: int
    folder: str
    test_accuracy: float
    seconds: float
    how: str


@dataclass(frozen=True)
class Summary:
    """How a quantity spreads over runs: ``n``, mean, standard deviation (n - 1),
    the 95 % confidence interval of the mean (``low``, ``high``; None for one run),
    ``min`` and ``max``."""

    n: int
    mean: float
    std: float | None
    low: float | None
    high: float | None
    min: float
    max: float


def summarize(values: Any, confidence: float = 0.95) -> Summary:
    """The :class:`Summary` of ``values``: Student's t interval of the mean."""
    from scipy import stats

    x = np.asarray(values, np.float64)
    n = len(x)
    if n == 0:
        raise ValueError("no values to summarize")
    mean = float(x.mean())
    if n == 1:
        return Summary(1, mean, None, None, None, mean, mean)
    std = float(x.std(ddof=1))
    half = float(stats.t.ppf((1 + confidence) / 2, n - 1)) * std / math.sqrt(n)
    return Summary(n, mean, std, mean - half, mean + half, float(x.min()), float(x.max()))


@dataclass(frozen=True)
class ExperimentStats:
    """One experiment's statistics.

    Attributes
    ----------
    name : str
    settings : dict
        Its ``train`` settings (those it sets).
    accuracy, seconds : Summary
        Test accuracy (fractions) and training time per run.
    claim : float, optional
        The accuracy claimed.
    source : str
        Who claimed it.
    """

    name: str
    settings: dict[str, Any]
    accuracy: Summary
    seconds: Summary
    claim: float | None
    source: str

    @property
    def claim_in_interval(self) -> bool | None:
        """Whether the claim lies in the 95 % interval (None: no claim, or one run)."""
        if self.claim is None or self.accuracy.low is None:
            return None
        return self.accuracy.low <= self.claim <= self.accuracy.high


@dataclass(frozen=True)
class SweepReport:
    """What a sweep found.

    Attributes
    ----------
    experiments : list of ExperimentStats
        In the order they were given; experiments with no finished run are left out.
    runs : list of RunOutcome
        Every finished run.
    folder : str
        The sweep's folder.
    workers : int or str
        Runs at once on this machine, or the cluster's address.
    wall_seconds : float
        The sweep's time, start to end (runs found done cost nothing).
    """

    experiments: list[ExperimentStats]
    runs: list[RunOutcome]
    folder: str
    workers: int | str
    wall_seconds: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (``report.json``)."""
        return {"folder": self.folder, "workers": self.workers,
                "wall_seconds": self.wall_seconds,
                "experiments": [{**asdict(e), "claim_in_interval": e.claim_in_interval}
                                for e in self.experiments],
                "runs": [asdict(r) for r in self.runs]}

    def to_markdown(self) -> str:
        """The report's table (``report.md``), one row per experiment."""
        def pct(v: float | None) -> str:
            return "-" if v is None else f"{v * 100:.2f}"

        lines = ["| experiment | runs | test accuracy, mean ± sd (%) | 95 % interval (%) | "
                 "min - max (%) | time per run, mean (min - max) | claim | in the "
                 "interval? |", "|---|---|---|---|---|---|---|---|"]
        for e in self.experiments:
            a, s = e.accuracy, e.seconds
            sd = "" if a.std is None else f" ± {a.std * 100:.2f}"
            interval = "-" if a.low is None else f"{pct(a.low)} - {pct(a.high)}"
            verdict = {None: "-", True: "yes", False: "**no**"}[e.claim_in_interval]
            lines.append(f"| {e.name} | {a.n} | {pct(a.mean)}{sd} | {interval} | "
                         f"{pct(a.min)} - {pct(a.max)} | {_duration(s.mean)} "
                         f"({_duration(s.min)} - {_duration(s.max)}) | "
                         f"{pct(e.claim) if e.claim is not None else '-'} | {verdict} |")
        workers = (f"{self.workers} at once on this machine" if isinstance(self.workers, int)
                   else f"on the cluster at {self.workers}")
        lines += ["", f"{len(self.runs)} runs ({workers}); the sweep took "
                      f"{_duration(self.wall_seconds)}. Intervals: Student's t, 95 %."]
        return "\n".join(lines) + "\n"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.1f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def build_report(outcomes: list[RunOutcome], experiments: list[Any], folder: str,
                 workers: int | str, wall_seconds: float) -> SweepReport:
    """The report of ``outcomes`` for ``experiments`` (:class:`~mnist_cnn.experiments.plan.
    Experiment` each)."""
    order = {e.name: i for i, e in enumerate(experiments)}
    runs = sorted(outcomes, key=lambda o: (order.get(o.experiment, 0), o.seed))
    stats = []
    for e in experiments:
        # By seed, not in the order the runs ended: a float sum's last digit hangs on
        # its order, and the report must not hang on the machine's load.
        mine = [o for o in runs if o.experiment == e.name]
        if mine:
            stats.append(ExperimentStats(
                e.name, dict(e.settings), summarize([o.test_accuracy for o in mine]),
                summarize([o.seconds for o in mine]), e.claim, e.source))
    return SweepReport(stats, runs, folder, workers, wall_seconds)


def write_report(report: SweepReport, folder: str | os.PathLike) -> dict[str, Path]:
    """Write ``report.md``, ``report.json`` and ``report.png`` into ``folder``
    (atomically each); returns their paths."""
    from mnist_cnn.frontends.figures import plot_sweep, save_figure

    folder = Path(folder)
    paths = {"markdown": folder / "report.md", "json": folder / "report.json",
             "figure": folder / "report.png"}
    with atomic_write(paths["markdown"], text=True) as f:
        f.write(report.to_markdown())
    with atomic_write(paths["json"], text=True) as f:
        f.write(json.dumps(report.to_dict(), indent=2) + "\n")
    if report.experiments:
        save_figure(plot_sweep(report), paths["figure"])
    else:
        del paths["figure"]
    return paths
