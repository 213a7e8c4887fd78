"""End-of-epoch checkpoints, so that a long run can stop and resume bit-identically.

A checkpoint is one ``.npz`` file of numeric arrays only: the weights and Nesterov
velocities (or Adam's moments) in Lasagne's layout (``w0..``, ``v0..``, ``m0..``), the
state of the numpy generator that shuffles (``order_keys``), each dropout layer's
MRG31k3p sub-stream states (``d0..``), and, as UTF-8 JSON bytes (``meta``), the
settings, the epochs and updates done, the rest of the generator's state and the
history. It is written atomically and read through
:func:`mnist_cnn.storage.files.read_npz`: members, types and shapes are checked before anything
is allocated, nothing is unpickled, and every value is checked before it is used.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mnist_cnn.errors import TrainingError, WeightsError
from mnist_cnn.nets import mrg
from mnist_cnn.nets.engines import TrainerState
from mnist_cnn.nets.spec import Weights, network, network_for
from mnist_cnn.results import EpochStats
from mnist_cnn.storage.files import NpyHeader, atomic_write, npz_bytes, parse_json, read_npz
from mnist_cnn.training.settings import Settings

__all__ = ["Checkpoint", "load_checkpoint", "save_checkpoint"]

FORMAT = "mnist-cnn-checkpoint-5"
#: Settings, history and generator state; a 100,000-epoch history is about 15 MB.
MAX_META_BYTES = 64 << 20
#: A PyTorch generator's state (the augmentation's) is 5 kB.
MAX_RNG_BYTES = 1 << 20


@dataclass
class Checkpoint:
    """Everything needed to continue a run after ``epoch`` completed epochs.

    Attributes
    ----------
    settings : Settings
        The run's settings, every one.
    epoch : int
        Epochs completed.
    order_state : tuple
        ``numpy.random.RandomState.get_state()`` of the generator that shuffles.
    history : list of EpochStats
        One record per epoch done.
    state : TrainerState
        The trainer's weights, velocities (or moments), dropout streams, updates done
        and augmentation generator.
    """

    settings: Settings
    epoch: int
    order_state: tuple
    history: list[EpochStats]
    state: TrainerState


def save_checkpoint(path: str | os.PathLike, checkpoint: Checkpoint) -> Path:
    """Write a checkpoint atomically; returns its path."""
    kind, keys, pos, has_gauss, cached = checkpoint.order_state
    state = checkpoint.state
    meta = {"format": FORMAT, "config": checkpoint.settings.to_dict(),
            "epoch": checkpoint.epoch, "steps": state.steps,
            "order": {"kind": kind, "pos": int(pos), "has_gauss": int(has_gauss),
                      "cached_gaussian": float(cached)},
            "history": [asdict(h) for h in checkpoint.history]}
    arrays = {"meta": np.frombuffer(json.dumps(meta, allow_nan=False).encode(), np.uint8),
              "order_keys": np.asarray(keys, np.uint32),
              "augment_rng": np.asarray(state.augment, np.uint8)}
    arrays.update({f"w{i}": w for i, w in enumerate(state.weights)})
    dtype = state.weights[0].dtype if len(state.weights) else np.float32
    arrays.update({f"v{i}": np.asarray(v, dtype) for i, v in enumerate(state.velocities)})
    arrays.update({f"m{i}": np.asarray(m, dtype) for i, m in enumerate(state.moments)})
    arrays.update({f"d{i}": np.asarray(d, np.int64) for i, d in enumerate(state.dropout)})
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
        count = sum(1 for k in headers if k[:1] == "w")
        layers = sum(1 for k in headers if k[:1] == "d")
        moments = count if f"m{0}" in headers else 0
        expected = {"meta", "order_keys", "augment_rng", *(f"w{i}" for i in range(count)),
                    *(f"v{i}" for i in range(count)), *(f"m{i}" for i in range(moments)),
                    *(f"d{i}" for i in range(layers))}
        if set(headers) != expected:
            raise unusable(f"members {sorted(headers)[:12]}, expected meta, order_keys, "
                           "w0.., v0.., (m0..), d0..")
        meta = headers["meta"]
        if meta.dtype != np.uint8 or len(meta.shape) != 1 or meta.nbytes > MAX_META_BYTES:
            raise unusable("its settings are not JSON text of a sensible size")
        if headers["order_keys"].shape != (624,) or headers["order_keys"].dtype != np.uint32:
            raise unusable("its batch-order generator state is not 624 uint32 numbers")
        rng = headers["augment_rng"]
        if rng.dtype != np.uint8 or len(rng.shape) != 1 or rng.nbytes > MAX_RNG_BYTES:
            raise unusable("its augmentation generator state is not a few bytes")
        for i in range(layers):
            d = headers[f"d{i}"]
            if d.shape != (mrg.N_STREAMS, 6) or d.dtype.kind not in "iu":
                raise unusable(f"dropout stream state d{i} has shape {d.shape}, expected "
                               f"({mrg.N_STREAMS}, 6) integers")
        shapes = [headers[f"w{i}"].shape for i in range(count)]
        kinds = "wvm" if moments else "wv"
        if any(headers[f"{k}{i}"].shape != shapes[i] or headers[f"{k}{i}"].dtype.kind != "f"
               for k in kinds[1:] for i in range(count)) or any(
                headers[f"w{i}"].dtype.kind != "f" for i in range(count)):
            raise unusable("its velocities or moments do not match its weights")
        try:
            net = network_for(shapes)
        except WeightsError as exc:
            raise unusable(str(exc)) from None
        if layers > len(net.dropout_shapes(1)):
            raise unusable("it has more dropout streams than its network has dropout layers")

    arrays = read_npz(path, "checkpoint", check, error=TrainingError)
    meta = parse_json(arrays["meta"].tobytes(), f"{path} is not a usable checkpoint")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise unusable(f"not an mnist-cnn checkpoint of this version ({FORMAT})")
    config, epoch, history = meta.get("config"), meta.get("epoch"), meta.get("history")
    if not (isinstance(config, dict) and isinstance(config.get("model"), str)
            and _whole(epoch) and isinstance(history, list) and len(history) == epoch
            and all(_epoch_record(h) for h in history) and _whole(meta.get("steps"))):
        raise unusable("its settings, epoch count or history are malformed")
    order = meta.get("order")
    if not (isinstance(order, dict) and order.get("kind") == "MT19937"
            and _whole(order.get("pos")) and 0 <= order["pos"] <= 624
            and order.get("has_gauss") in (0, 1)
            and isinstance(order.get("cached_gaussian"), int | float)):
        raise unusable("its batch-order generator state is malformed")
    try:
        settings = Settings.from_record(config)
        settings.check()
    except TrainingError as exc:
        raise unusable(f"its settings: {exc}") from None
    count = sum(1 for k in arrays if k[:1] == "w")
    dtype = settings.floatx
    try:
        net = network(settings.model)
        weights = Weights([arrays[f"w{i}"] for i in range(count)], net, dtype)
    except (WeightsError, ValueError) as exc:
        raise unusable(str(exc)) from None
    velocities = [np.asarray(arrays[f"v{i}"], dtype) for i in range(count)]
    moments = [np.asarray(arrays[f"m{i}"], dtype) for i in range(count)
               if f"m{i}" in arrays]
    if not all(np.isfinite(v).all() for v in velocities + moments):
        raise unusable("its velocities or moments hold NaN or infinite values")
    dropout = [np.asarray(arrays[f"d{i}"], np.int64)
               for i in range(len(net.dropout_shapes(1)))]
    if len(dropout) != sum(1 for k in arrays if k[:1] == "d") or not all(
            _valid_streams(d) for d in dropout):
        raise unusable("its dropout stream states are not valid MRG31k3p states")
    order_state = ("MT19937", arrays["order_keys"], order["pos"], order["has_gauss"],
                   float(order["cached_gaussian"]))
    state = TrainerState(weights, velocities, dropout, moments, meta["steps"],
                         np.asarray(arrays["augment_rng"], np.uint8))
    return Checkpoint(settings, epoch, order_state, [EpochStats(**h) for h in history], state)


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _epoch_record(row: Any) -> bool:
    return isinstance(row, dict) and set(row) == set(EpochStats.names()) and all(
        isinstance(row[k], int | float) and not isinstance(row[k], bool) for k in row)


def _valid_streams(states: np.ndarray) -> bool:
    """Each row: three values in [0, M1) not all 0, three in [0, M2) not all 0."""
    first, second = states[:, :3], states[:, 3:]
    return bool(((first >= 0) & (first < mrg.M1)).all() and first.any(axis=1).all()
                and ((second >= 0) & (second < mrg.M2)).all() and second.any(axis=1).all())
