"""End-of-epoch checkpoints, so that a long run can stop and resume bit-identically.

A checkpoint is one ``.npz`` file of numeric arrays only: the weights and Nesterov
velocities in Lasagne's layout, the dropout generator's state, and (as UTF-8 JSON
bytes) the settings, the epochs done, the batch-order generator's state and the
history. It is written atomically and read through :func:`mnist_cnn.files.read_npz`:
members and shapes are checked before anything is allocated, nothing is unpickled.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import TrainingError, WeightsError
from .files import NpyHeader, atomic_write, npz_bytes, parse_json, read_npz
from .spec import Weights, network, network_for

__all__ = ["Checkpoint", "load_checkpoint", "save_checkpoint"]

FORMAT = "mnist-cnn-checkpoint-2"
#: Settings, history and generator states; a 100,000-epoch history is about 15 MB.
MAX_META_BYTES = 64 << 20
#: The dropout generator's state (a PyTorch generator's is 5 kB).
MAX_DROPOUT_STATE_BYTES = 16 << 20


@dataclass
class Checkpoint:
    """Everything needed to continue a run after ``epoch`` completed epochs.

    Attributes
    ----------
    config : dict
        The run's settings (model, engine, batch_size, learning_rate, momentum, seed,
        num_epochs).
    epoch : int
        Epochs completed.
    weights : Weights
    velocities : list of numpy.ndarray
        Nesterov velocities, Lasagne's layout.
    order_state : dict
        State of the generator of the batch order (JSON-ready).
    dropout_state : numpy.ndarray
        State of the dropout masks' generator, as the engine saved it.
    history : list of dict
        One record per epoch done.
    """

    config: dict[str, Any]
    epoch: int
    weights: Weights
    velocities: list[np.ndarray]
    order_state: dict[str, Any]
    dropout_state: np.ndarray
    history: list[dict[str, Any]]


def save_checkpoint(path: str | os.PathLike, checkpoint: Checkpoint) -> Path:
    """Write a checkpoint atomically; returns its path."""
    meta = {"format": FORMAT, "config": checkpoint.config, "epoch": checkpoint.epoch,
            "order_state": checkpoint.order_state, "history": checkpoint.history}
    arrays = {"meta": np.frombuffer(json.dumps(meta).encode(), np.uint8),
              "dropout_state": np.asarray(checkpoint.dropout_state)}
    arrays.update({f"w{i}": w for i, w in enumerate(checkpoint.weights)})
    arrays.update({f"v{i}": np.asarray(v, np.float32)
                   for i, v in enumerate(checkpoint.velocities)})
    path = Path(path)
    with atomic_write(path) as f:
        f.write(npz_bytes(**arrays))
    return path


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Raises
    ------
    TrainingError
        If the file is missing, truncated, of another format, or its content does not
        fit together; the message names the checkpoint and says what to do.
    """
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        raise TrainingError(f"no checkpoint at {path}: nothing to resume (train without "
                            "--resume to start a new run)")

    def unusable(why: str) -> TrainingError:
        return TrainingError(f"{path} is not a usable checkpoint ({why}); delete it and "
                             "train without --resume")

    def check(headers: dict[str, NpyHeader]) -> None:
        count = sum(1 for k in headers if k.startswith("w"))
        expected = {"meta", "dropout_state", *(f"w{i}" for i in range(count)),
                    *(f"v{i}" for i in range(count))}
        if set(headers) != expected:
            raise unusable(f"members {sorted(headers)}, expected meta, dropout_state, "
                           "w0.., v0..")
        meta, state = headers["meta"], headers["dropout_state"]
        if meta.dtype != np.uint8 or len(meta.shape) != 1 or meta.nbytes > MAX_META_BYTES:
            raise unusable("its settings are not JSON text of a sensible size")
        if state.nbytes > MAX_DROPOUT_STATE_BYTES:
            raise unusable("its dropout generator state is too large")
        shapes = [headers[f"w{i}"].shape for i in range(count)]
        if [headers[f"v{i}"].shape for i in range(count)] != shapes or any(
                headers[f"{k}{i}"].dtype.kind != "f" for k in "wv" for i in range(count)):
            raise unusable("its velocities do not match its weights")
        try:
            network_for(shapes)
        except WeightsError as exc:
            raise unusable(str(exc)) from None

    arrays = read_npz(path, "checkpoint", check, error=TrainingError)
    meta = parse_json(arrays["meta"].tobytes(), f"{path} is not a usable checkpoint")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise unusable(f"not an mnist-cnn checkpoint of this version ({FORMAT})")
    config, epoch, history = meta.get("config"), meta.get("epoch"), meta.get("history")
    if not (isinstance(config, dict) and isinstance(config.get("model"), str)
            and isinstance(epoch, int) and not isinstance(epoch, bool)
            and isinstance(history, list) and len(history) == epoch
            and all(isinstance(h, dict) for h in history)
            and isinstance(meta.get("order_state"), dict)):
        raise unusable("its settings, epoch count or history are malformed")
    count = len(arrays) // 2 - 1
    try:
        weights = Weights([arrays[f"w{i}"] for i in range(count)], network(config["model"]))
    except (WeightsError, ValueError) as exc:
        raise unusable(str(exc)) from None
    velocities = [np.asarray(arrays[f"v{i}"], np.float32) for i in range(count)]
    if not all(np.isfinite(v).all() for v in velocities):
        raise unusable("its velocities hold NaN or infinite values")
    return Checkpoint(config, epoch, weights, velocities, meta["order_state"],
                      arrays["dropout_state"], history)
