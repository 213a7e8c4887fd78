"""What a training run produces, and how a run folder is written."""

from __future__ import annotations

import csv
import datetime
import os
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_write
from .data import FILES

__all__ = ["EpochStats", "Evaluation", "TrainResult", "save_history", "save_run"]


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
    model : str
        The tutorial's network name (``cnn``, ``mlp``, ``custom_mlp:...``).
    weights : list of numpy.ndarray
        The learned parameters in Lasagne's layout and order (what the blog's training
        function returned).
    history : list of EpochStats
        One entry per epoch.
    test_loss, test_accuracy : float
        On the 10,000 test images, after the last epoch.
    config : dict
        The hyperparameters (model, num_epochs, batch_size, learning_rate, momentum, seed).
    device : str
        Where the run computed.
    """

    model: str
    weights: list[np.ndarray]
    history: list[EpochStats]
    test_loss: float
    test_accuracy: float
    config: dict[str, Any]
    device: str
    engine: str = "pytorch"
    created: str = field(
        default_factory=lambda: datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"))

    def metadata(self) -> dict[str, Any]:
        """The JSON-ready description saved in the weights file's sidecar."""
        import torch

        from . import __version__

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
            "versions": {"mnist_cnn": __version__, "torch": torch.__version__,
                         "numpy": np.__version__, "python": platform.python_version()},
            "data_md5": {spec.name: spec.md5 for spec in FILES},
        }


def save_history(path: str | os.PathLike, history: list[EpochStats]) -> Path:
    """Write the per-epoch history as CSV (atomically)."""
    path = Path(path)
    with atomic_write(path, text=True) as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["epoch", "train_loss", "val_loss", "val_accuracy", "seconds"])
        for h in history:
            writer.writerow([h.epoch, f"{h.train_loss:.6f}", f"{h.val_loss:.6f}",
                             f"{h.val_accuracy:.6f}", f"{h.seconds:.3f}"])
    return path


def save_run(out_dir: str | os.PathLike, result: TrainResult) -> dict[str, Path]:
    """Write ``model.npz``, its sidecar ``model.json`` and ``history.csv`` to a folder.

    Returns
    -------
    dict
        ``{"model": ..., "metadata": ..., "history": ...}`` paths.
    """
    from .weights import save_weights, sidecar_path

    out = Path(out_dir)
    model = save_weights(out / "model.npz", result)
    return {"model": model, "metadata": sidecar_path(model),
            "history": save_history(out / "history.csv", result.history)}
