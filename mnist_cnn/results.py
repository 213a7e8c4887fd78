"""What training and evaluation produce: plain records, no behaviour beyond describing them."""

from __future__ import annotations

import datetime
import platform
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

import numpy as np

from mnist_cnn.nets.spec import Weights

if TYPE_CHECKING:
    from mnist_cnn.training.settings import Settings

__all__ = ["EpochStats", "Evaluation", "TrainResult"]


@dataclass(frozen=True)
class EpochStats:
    """One line of the tutorial's per-epoch report.

    Attributes
    ----------
    epoch : int
        1-based epoch number.
    train_loss : float
        Mean training loss over the epoch's mini-batches (with dropout).
    val_loss, val_accuracy : float
        Deterministic (dropout-free) loss and accuracy (0..1) on the validation set.
    seconds : float
        Wall time of the epoch, validation included.
    """

    epoch: int
    train_loss: float
    val_loss: float
    val_accuracy: float
    seconds: float

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The fields' names, in order: the columns of ``history.csv`` and the keys of a
        history record."""
        return tuple(f.name for f in fields(cls))


@dataclass(frozen=True)
class Evaluation:
    """Mean cross-entropy loss and accuracy (0..1) of a deterministic pass.

    Attributes
    ----------
    loss, accuracy : float
    per_digit : tuple of (int, int)
        For each digit 0 to 9, how many of its images were read right and how many
        there were (empty where not counted).
    """

    loss: float
    accuracy: float
    per_digit: tuple[tuple[int, int], ...] = ()

    @classmethod
    def from_proba(cls, proba: np.ndarray, y: np.ndarray) -> Evaluation:
        """The evaluation of class probabilities (N, 10) for labels ``y``, with the
        per-digit counts."""
        y = np.asarray(y, np.int64)
        if len(y) == 0:
            return cls(0.0, 0.0)
        picked = np.maximum(proba[np.arange(len(y)), y], np.finfo(np.float32).tiny)
        right = proba.argmax(axis=1) == y
        per_digit = tuple((int(right[y == d].sum()), int((y == d).sum())) for d in range(10))
        return cls(float(-np.log(picked.astype(np.float64)).mean()), float(right.mean()),
                   per_digit)


@dataclass
class TrainResult:
    """The outcome of :func:`mnist_cnn.train`.

    Attributes
    ----------
    weights : Weights
        The learned parameters in Lasagne's layout and order, with their network (what
        the blog's training function returned).
    history : list of EpochStats
        One entry per epoch.
    test_loss, test_accuracy : float
        On the 10,000 test images, after the last epoch.
    settings : Settings
        The run's settings, every one (:class:`mnist_cnn.training.settings.Settings`).
    device : str
        Where the run computed.
    versions : dict
        Versions of the libraries that computed it.
    """

    weights: Weights
    history: list[EpochStats]
    test_loss: float
    test_accuracy: float
    settings: Settings
    device: str
    versions: dict[str, str] = field(default_factory=dict)
    created: str = field(
        default_factory=lambda: datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"))

    @property
    def model(self) -> str:
        """The tutorial's network name (``cnn``, ``mlp``, ``custom_mlp:...``)."""
        return self.weights.network.name

    @property
    def engine(self) -> str:
        """The engine that trained it."""
        return self.settings.engine

    @property
    def config(self) -> dict[str, Any]:
        """The settings as a JSON-ready dict (as the sidecar's ``hyperparameters``)."""
        return self.settings.to_dict()

    def metadata(self) -> dict[str, Any]:
        """The JSON-ready description saved in the weights file's sidecar."""
        from mnist_cnn import __version__
        from mnist_cnn.storage.mnist_data import FILES

        last = self.history[-1] if self.history else None
        return {
            "model": self.model,
            "engine": self.engine,
            "hyperparameters": self.config,
            "epochs": len(self.history),
            "val_accuracy": last.val_accuracy if last else None,
            "test_loss": self.test_loss,
            "test_accuracy": self.test_accuracy,
            "history": [asdict(h) for h in self.history],
            "device": self.device,
            "created": self.created,
            "versions": {"mnist_cnn": __version__, "numpy": np.__version__,
                         "python": platform.python_version(), **self.versions},
            "data_md5": {spec.name: spec.md5 for spec in FILES},
        }
