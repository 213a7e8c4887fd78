"""End-of-epoch checkpoints, so that a long run can stop and resume bit-identically.

A checkpoint is one ``.npz`` file holding only numeric arrays and a JSON string: the
weights and Nesterov velocities in Lasagne's layout, the dropout generator's state, and
(as JSON) the settings, the epochs done, the shuffling generator's state and the
history. It is written atomically and read with ``allow_pickle=False``.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_write
from .errors import TrainingError

__all__ = ["Checkpoint", "load_checkpoint", "save_checkpoint"]

FORMAT = "mnist-cnn-checkpoint-1"


@dataclass
class Checkpoint:
    """Everything needed to continue a run after ``epoch`` completed epochs."""

    config: dict[str, Any]
    epoch: int
    weights: list[np.ndarray]
    velocities: list[np.ndarray]
    shuffle_state: dict[str, Any]
    dropout_state: np.ndarray
    history: list[dict[str, Any]]


def save_checkpoint(path: str | os.PathLike, checkpoint: Checkpoint) -> Path:
    """Write a checkpoint atomically; returns its path."""
    meta = {"format": FORMAT, "config": checkpoint.config, "epoch": checkpoint.epoch,
            "shuffle_state": checkpoint.shuffle_state, "history": checkpoint.history}
    arrays = {"meta": np.array(json.dumps(meta)),
              "dropout_state": np.asarray(checkpoint.dropout_state, np.uint8)}
    arrays.update({f"w{i}": w for i, w in enumerate(checkpoint.weights)})
    arrays.update({f"v{i}": v for i, v in enumerate(checkpoint.velocities)})
    path = Path(path)
    with atomic_write(path) as f:
        np.savez(f, **arrays)
    return path


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Raises
    ------
    TrainingError
        If the file is missing, truncated, or not a checkpoint of this format.
    """
    path = Path(path)
    if not path.is_file():
        raise TrainingError(f"no checkpoint at {path}: nothing to resume (train without "
                            "--resume to start a new run)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            meta = json.loads(str(archive["meta"]))
            count = sum(1 for k in archive.files if k.startswith("w"))
            weights = [archive[f"w{i}"] for i in range(count)]
            velocities = [archive[f"v{i}"] for i in range(count)]
            dropout_state = archive["dropout_state"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise TrainingError(f"{path} is not a usable checkpoint ({exc}); delete it and "
                            "train without --resume") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise TrainingError(f"{path} is not an mnist-cnn checkpoint ({FORMAT})")
    return Checkpoint(meta["config"], meta["epoch"], weights, velocities,
                      meta["shuffle_state"], dropout_state, meta["history"])
