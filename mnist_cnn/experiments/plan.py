"""What a sweep runs: experiments (``train`` settings each) over a range of seeds.

The built-in set :data:`BLOG` holds the blog's two claims, :data:`BUNDLED` the
package's models; a file of the user's own is TOML, read with the standard
library (``tomllib``)::

    seeds = 5                        # for every experiment (default 3): seeds 0 to 4

    [[experiment]]
    name = "5 epochs"
    claim = 98.85                    # per cent, optional: the accuracy claimed
    source = "the blog"              # optional: who claimed it
    num_epochs = 5                   # any other key: a setting of `mnist-cnn train`

    [[experiment]]
    name = "wider batches"
    seeds = [0, 1, 2, 10]            # these seeds instead
    batch_size = 500
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mnist_cnn import defaults
from mnist_cnn.errors import MnistCnnError, TrainingError
from mnist_cnn.training.settings import Settings

__all__ = ["BLOG", "BUNDLED", "SETS", "Experiment", "ExperimentsError", "experiments",
           "read_experiments"]

#: Settings a sweep decides itself: the seed is the sweep's, where and how fast a run
#: computes does not change its numbers.
_SWEEP_OWNED = ("seed", "device", "threads")
_KEYS = ("name", "seeds", "claim", "source")
_DEFAULT_SEEDS = 3
_MAX_RUNS = 10_000


class ExperimentsError(MnistCnnError):
    """An experiments file, or a set's name, that cannot be used."""


@dataclass(frozen=True)
class Experiment:
    """One experiment: ``train`` settings run once per seed.

    Attributes
    ----------
    name : str
        Its name in the report (and, made safe, its folder's).
    settings : dict
        ``train`` settings by name (those not given: the recipe's or the defaults);
        never the seed, the device or the threads.
    seeds : tuple of int
        The seeds it runs.
    claim : float, optional
        The test accuracy claimed for it, as a fraction.
    source : str
        Who claimed it.
    """

    name: str
    settings: dict[str, Any] = field(default_factory=dict)
    seeds: tuple[int, ...] = tuple(range(_DEFAULT_SEEDS))
    claim: float | None = None
    source: str = ""

    @property
    def folder(self) -> str:
        """Its folder's name: the name with anything but letters, digits, ``.``, ``_``
        and ``-`` made ``-``."""
        return re.sub(r"[^A-Za-z0-9._-]+", "-", self.name).strip("-.") or "experiment"

    def run_settings(self, seed: int) -> Settings:
        """The settings of its run with ``seed`` (checked)."""
        given = dict(self.settings)
        run = Settings.of(given.pop("recipe", None), **given, seed=seed)
        run.validate()
        return run

    def with_seeds(self, count: int) -> Experiment:
        """The same experiment with seeds 0 to ``count - 1``."""
        return dataclasses.replace(self, seeds=tuple(range(count)))


#: The blog's claims: 98.85 % after 5 epochs (10 seeds), 99.6 % after 50 (3 seeds each,
#: without and with augmentation, on the cosine schedule that reaches it).
BLOG = (
    Experiment("5 epochs", {"num_epochs": 5}, tuple(range(10)), 0.9885,
               "the blog: 98.85 % after 5 epochs"),
    Experiment("50 epochs, cosine", {"num_epochs": 50, "schedule": "cosine"},
               tuple(range(3)), 0.996, "the blog: 99.6 % after 50 epochs"),
    Experiment("50 epochs, cosine, augment",
               {"num_epochs": 50, "schedule": "cosine", "augment": True},
               tuple(range(3)), 0.996, "the blog: 99.6 % after 50 epochs"),
)
#: The models bundled with the package (``mnist_cnn/bundled``): the recipe of the last
#: experiment above with the shapes of 1s, 4s and 7s varied too (``--vary-shapes``), in
#: two shards, the seeds of :data:`mnist_cnn.defaults.BUNDLED_SEEDS`.
BUNDLED = (
    Experiment("bundled", {"num_epochs": 50, "schedule": "cosine", "augment": True,
                           "vary_shapes": True, "shards": 2}, defaults.BUNDLED_SEEDS),
)
#: The built-in sets, by name.
SETS = {"blog": BLOG, "bundled": BUNDLED}


def experiments(which: str | os.PathLike | list[Experiment] | tuple[Experiment, ...],
                seeds: int | None = None, only: list[str] | None = None
                ) -> list[Experiment]:
    """The experiments of a built-in set (``"blog"``), of a TOML file, or as given.

    Parameters
    ----------
    which : str, path-like or list of Experiment
        A name in :data:`SETS`, a TOML file's path, or the experiments.
    seeds : int, optional
        Run seeds 0 to ``seeds - 1`` of every experiment instead of its own.
    only : list of str, optional
        Keep only the experiments of these names.

    Raises
    ------
    ExperimentsError
        An unknown set, an unreadable or invalid file, an invalid setting, a name in
        ``only`` that is none of the experiments'.
    """
    if isinstance(which, (list, tuple)):
        chosen = list(which)
    elif str(which) in SETS:
        chosen = list(SETS[str(which)])
    elif Path(which).suffix == ".toml" or Path(which).exists():
        chosen = read_experiments(which)
    else:
        raise ExperimentsError(f"{which}: neither a built-in set ({', '.join(SETS)}) nor "
                               "a .toml file of experiments")
    if only:
        names = [e.name for e in chosen]
        unknown = [name for name in only if name not in names]
        if unknown:
            raise ExperimentsError(f"no experiment named {unknown[0]!r}; the names are "
                                   f"{', '.join(repr(n) for n in names)}")
        chosen = [e for e in chosen if e.name in only]
    if seeds is not None:
        if not 1 <= seeds <= _MAX_RUNS:
            raise ExperimentsError(f"seeds must be 1 to {_MAX_RUNS:,}, got {seeds}")
        chosen = [e.with_seeds(seeds) for e in chosen]
    _check(chosen, str(which) if not isinstance(which, (list, tuple)) else "experiments")
    return chosen


def read_experiments(path: str | os.PathLike) -> list[Experiment]:
    """Read a TOML file of experiments (the format is in this module's docstring).

    Raises
    ------
    ExperimentsError
        Not a readable TOML file of at most 1 MB, or not of that format; the message
        names the file and the key.
    """
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    from mnist_cnn.storage.files import FileFormatError, open_regular

    try:
        with open_regular(path, "experiments file") as f:
            raw = f.read((1 << 20) + 1)
        if len(raw) > 1 << 20:
            raise ExperimentsError(f"{path}: over 1 MB, too large for a file of experiments")
        document = tomllib.loads(raw.decode("utf-8"))
    except FileFormatError as exc:
        raise ExperimentsError(str(exc)) from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ExperimentsError(f"{path}: not valid TOML ({exc})") from None
    unknown = set(document) - {"seeds", "experiment"}
    if unknown:
        raise ExperimentsError(f"{path}: unknown top-level keys {sorted(unknown)}; a file "
                               "has `seeds` and [[experiment]] tables")
    default_seeds = _seeds(document.get("seeds", _DEFAULT_SEEDS), path, "seeds")
    tables = document.get("experiment")
    if not isinstance(tables, list) or not tables:
        raise ExperimentsError(f"{path}: no [[experiment]] table")
    found = []
    for n, table in enumerate(tables, start=1):
        where = f"experiment {n}"
        name = table.get("name", f"experiment {n}")
        if not isinstance(name, str) or not name.strip():
            raise ExperimentsError(f"{path}: {where}: `name` must be a non-empty string")
        claim = table.get("claim")
        if claim is not None and (isinstance(claim, bool) or
                                  not isinstance(claim, (int, float)) or
                                  not 0 < claim <= 100):
            raise ExperimentsError(f"{path}: {name}: `claim` is an accuracy in per cent, "
                                   f"above 0 and at most 100, got {claim!r}")
        source = table.get("source", "")
        if not isinstance(source, str):
            raise ExperimentsError(f"{path}: {name}: `source` must be a string")
        settings = {k: v for k, v in table.items() if k not in _KEYS}
        owned = set(settings) & set(_SWEEP_OWNED)
        if owned:
            raise ExperimentsError(f"{path}: {name}: {', '.join(sorted(owned))} "
                                   "is the sweep's to set, not an experiment's")
        found.append(Experiment(
            name.strip(), settings,
            _seeds(table["seeds"], path, f"{name}: seeds") if "seeds" in table
            else default_seeds,
            None if claim is None else float(claim) / 100, source))
    return found


def _seeds(value: Any, path: Any, what: str) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= _MAX_RUNS:
        return tuple(range(value))
    if (isinstance(value, list) and value and len(value) <= _MAX_RUNS and
            all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s < 2**32
                for s in value) and len(set(value)) == len(value)):
        return tuple(value)
    raise ExperimentsError(f"{path}: {what} must be a count (1 to {_MAX_RUNS:,}) or a list "
                           f"of different seeds (0 to 2**32 - 1), got {value!r}")


def _check(chosen: list[Experiment], where: str) -> None:
    """Every experiment's settings valid, the names (and folders) different."""
    folders: dict[str, str] = {}
    for experiment in chosen:
        if experiment.folder in folders:
            raise ExperimentsError(f"{where}: experiments {folders[experiment.folder]!r} "
                                   f"and {experiment.name!r} would share a folder; "
                                   "name them apart")
        folders[experiment.folder] = experiment.name
        try:
            experiment.run_settings(experiment.seeds[0])
        except (TrainingError, TypeError, ValueError) as exc:
            raise ExperimentsError(f"{where}: {experiment.name}: {exc}") from None
