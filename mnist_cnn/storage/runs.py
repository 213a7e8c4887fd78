"""A run folder: ``model.npz``, its sidecar ``model.json``, ``history.csv`` and
``checkpoint.npz``, as ``mnist-cnn train --out FOLDER`` writes them."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from pathlib import Path

from mnist_cnn.results import EpochStats, TrainResult
from mnist_cnn.storage.files import atomic_write, prepare_folder
from mnist_cnn.storage.weights_file import save_weights, sidecar_path

__all__ = ["RunFolder", "save_history"]


class RunFolder:
    """The files of one training run in a folder.

    Parameters
    ----------
    folder : str or path-like
        Where the run's files go; created when :meth:`prepare` is called.
    """

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self._created: list[Path] = []
        self.model = self.folder / "model.npz"
        self.metadata = sidecar_path(self.model)
        self.history = self.folder / "history.csv"
        self.checkpoint = self.folder / "checkpoint.npz"

    def prepare(self) -> None:
        """Before the first epoch: the folder exists and takes files, and what killed
        runs left half-written in it is removed.

        Raises
        ------
        FileFormatError
            If the folder cannot be written to (the message names it).
        """
        missing, parent = [], self.folder
        while not parent.exists() and parent != parent.parent:
            missing.append(parent)
            parent = parent.parent
        prepare_folder(self.folder, "the output folder")
        self._created = missing

    def discard_if_unused(self) -> None:
        """After a failed start: remove the folders :meth:`prepare` created, if nothing
        was written into them."""
        for folder in self._created:  # the deepest first
            try:
                folder.rmdir()  # only an empty folder goes
            except OSError:
                return
        self._created = []

    def save(self, result: TrainResult) -> dict[str, Path]:
        """Write ``model.npz`` with its sidecar, and ``history.csv``.

        Returns
        -------
        dict
            ``{"model": ..., "metadata": ..., "history": ...}`` paths.
        """
        save_weights(self.model, result)
        save_history(self.history, result.history)
        return {"model": self.model, "metadata": self.metadata, "history": self.history}


def save_history(path: str | os.PathLike, history: Sequence[EpochStats]) -> Path:
    """Write the per-epoch history as CSV (atomically)."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(EpochStats.names())
    for h in history:
        writer.writerow([h.epoch, f"{h.train_loss:.6f}", f"{h.val_loss:.6f}",
                         f"{h.val_accuracy:.6f}", f"{h.seconds:.3f}"])
    path = Path(path)
    with atomic_write(path, text=True) as f:
        f.write(text.getvalue())
    return path
