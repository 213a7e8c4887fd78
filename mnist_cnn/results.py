"""What training and evaluation produce: plain records, no behaviour beyond describing them."""

from __future__ import annotations

import datetime
import platform
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from mnist_cnn.nets.spec import Weights

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


@dataclass(frozen=True)
class Evaluation:
    """Mean cross-entropy loss and accuracy (0..1) of a deterministic pass."""

    loss: float
    accuracy: float


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
    config : dict
        The settings (model, engine, num_epochs, batch_size, learning_rate, momentum,
        seed).
    device : str
        Where the run computed.
    versions : dict
        Versions of the libraries that computed it.
    """

    weights: Weights
    history: list[EpochStats]
    test_loss: float
    test_accuracy: float
    config: dict[str, Any]
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
        return self.config["engine"]

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
