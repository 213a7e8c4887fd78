"""Weights files: the tutorial's ``model.npz`` and this project's ``model.json`` sidecar.

``model.npz`` is exactly what the tutorial's ``np.savez('model.npz',
*lasagne.layers.get_all_param_values(network))`` writes: keys ``arr_0 .. arr_N`` and
nothing else, in Lasagne's layout and order, so the tutorial's own code reads ours and
:func:`load_weights` reads theirs. Everything else (network, settings, history,
accuracies, versions, data hashes) goes to ``model.json`` beside it, which records the
SHA-256 of the ``.npz`` it describes. Loading never unpickles anything.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mnist_cnn.errors import WeightsError
from mnist_cnn.nets.spec import Network, Weights, network, network_for
from mnist_cnn.results import EpochStats
from mnist_cnn.storage.files import NpyHeader, read_json, read_npz, write_together
from mnist_cnn.storage.files import npz_bytes as _npz_bytes

__all__ = ["as_weights", "load_weights", "read_metadata", "save_weights", "sidecar_path"]

#: A sidecar larger than this is refused (a 10,000-epoch history is about 1.5 MB).
MAX_SIDECAR_BYTES = 32 << 20

WeightsLike = Weights | Sequence[np.ndarray] | str | os.PathLike


def sidecar_path(path: str | os.PathLike) -> Path:
    """The JSON sidecar of a weights file: ``model.npz`` -> ``model.json``."""
    return Path(path).with_suffix(".json")


def as_weights(weights: WeightsLike, model: Network | str | None = None) -> Weights:
    """Weights from a :class:`Weights`, a list of arrays or a weights file.

    This is where a weights argument is resolved, once: a path is loaded with
    :func:`load_weights`, a list is checked and its network recognised.

    Raises
    ------
    WeightsError
        If the file or the arrays are not usable, or do not fit ``model``.
    """
    if isinstance(weights, (str, os.PathLike)):
        return load_weights(weights, model)
    if isinstance(weights, Weights) and (model is None or network(model) == weights.network):
        return weights
    if isinstance(weights, np.ndarray) or not isinstance(weights, Sequence):
        raise WeightsError(f"expected weights (Weights, a list of arrays or a weights "
                           f"file), got {type(weights).__name__}")
    return Weights(list(weights), model)


def save_weights(path: str | os.PathLike, result_or_weights: Any,
                 metadata: Mapping[str, Any] | None = None) -> Path:
    """Save weights as the tutorial does (``arr_0 ..``) plus a JSON sidecar.

    The two files are written completely under temporary names, then renamed in one
    step (see :func:`mnist_cnn.storage.files.write_together`): an existing model is never left
    half-overwritten, nor beside a sidecar of other weights.

    Parameters
    ----------
    path : str or path-like
        The ``.npz`` file to write (``.npz`` is added if missing).
    result_or_weights : TrainResult, Weights or list of numpy.ndarray
        A training result (its weights and metadata are saved) or weights in Lasagne's
        layout.
    metadata : dict, optional
        Extra fields for the sidecar (they override the result's).

    Returns
    -------
    pathlib.Path
        The path of the ``.npz`` file written.

    Examples
    --------
    >>> save_weights("model.npz", result)  # doctest: +SKIP
    """
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    meta: dict[str, Any] = {}
    weights = result_or_weights
    if hasattr(result_or_weights, "weights") and hasattr(result_or_weights, "metadata"):
        weights, meta = result_or_weights.weights, result_or_weights.metadata()
    model = (metadata or {}).get("model") or meta.get("model")
    weights = Weights(list(as_weights(weights, model)), model)  # arrays may have changed
    meta = {**meta, **(metadata or {})}
    meta["model"] = weights.network.name
    data = _npz_bytes(*weights)
    meta["weights_sha256"] = hashlib.sha256(data).hexdigest()
    meta["param_shapes"] = [list(w.shape) for w in weights]
    sidecar = (json.dumps(meta, indent=2, allow_nan=False) + "\n").encode()
    write_together({path: data, sidecar_path(path): sidecar})
    return path


def read_metadata(path: str | os.PathLike) -> dict[str, Any] | None:
    """Read the JSON sidecar of a weights file.

    Returns
    -------
    dict or None
        The sidecar's content; None if there is none (e.g. a file saved by the original
        tutorial) or if it describes other weights (its SHA-256 differs: the ``.npz``
        was replaced without it).

    Raises
    ------
    WeightsError
        If the sidecar exists but is not a valid sidecar (the message names it).
    """
    side = sidecar_path(path)
    if not side.exists() and not side.is_symlink():
        return None
    meta = read_json(side, "model sidecar (model.json)", MAX_SIDECAR_BYTES)
    _check_sidecar(meta, side)
    expected = meta.get("weights_sha256")
    if expected is not None and expected != _sha256(path):
        return None
    return meta


def _sha256(path: str | os.PathLike) -> str | None:
    import pooch

    try:
        return pooch.file_hash(str(path), alg="sha256")
    except OSError:
        return None


_SIDECAR_TYPES: dict[str, tuple[type, ...]] = {
    "model": (str,), "weights_sha256": (str,), "history": (list,), "epochs": (int,),
    "test_accuracy": (int, float, type(None)), "test_loss": (int, float, type(None)),
    "val_accuracy": (int, float, type(None)), "hyperparameters": (dict,),
}
_HISTORY_KEYS = EpochStats.names()


def _check_sidecar(meta: Any, side: Path) -> None:
    """Raise WeightsError unless the sidecar's fields have the types this project uses."""
    def bad(what: str) -> WeightsError:
        return WeightsError(f"{side}: {what}; delete the sidecar or restore it from the run "
                            "that wrote it")

    if not isinstance(meta, dict):
        raise bad("the sidecar must hold a JSON object")
    for key, types in _SIDECAR_TYPES.items():
        if key in meta and (not isinstance(meta[key], types) or isinstance(meta[key], bool)):
            raise bad(f"{key!r} has the wrong type ({type(meta[key]).__name__})")
    for i, row in enumerate(meta.get("history", [])):
        if not (isinstance(row, dict) and all(
                isinstance(row.get(k), (int, float)) and not isinstance(row.get(k), bool)
                for k in _HISTORY_KEYS)):
            raise bad(f"history entry {i} is not an epoch record with numbers for "
                      + ", ".join(_HISTORY_KEYS))


def load_weights(path: str | os.PathLike, model: Network | str | None = None) -> Weights:
    """Load a weights file written by :func:`save_weights` or by the original tutorial.

    The archive must hold ``arr_0 ..`` only, floating-point arrays of the shapes of one
    of the tutorial's networks (checked from their headers before anything is read),
    with finite values. The tutorial's float64 files (Theano's default floatX on a CPU)
    are accepted and converted to float32. Nothing is unpickled.

    Parameters
    ----------
    path : str or path-like
        The ``.npz`` file.
    model : Network or str, optional
        The network the file must fit; default: the sidecar's, else recognised from the
        array shapes.

    Returns
    -------
    Weights
        Float32 arrays in Lasagne's layout and order, with their network.

    Raises
    ------
    WeightsError
        Missing or unreadable file, unexpected members, object arrays, wrong count or
        shapes, non-finite values; the message names the file.

    Examples
    --------
    >>> weights = load_weights("model.npz")  # doctest: +SKIP
    >>> weights.network.name  # doctest: +SKIP
    'cnn'
    """
    path = Path(path)
    if str(path) in ("", "."):
        raise WeightsError("no weights file named (an empty path)")
    if path.is_dir():
        inside = path / "model.npz"
        raise WeightsError(f"{path} is a folder, not a weights file; "
                           + (f"did you mean {inside}?" if inside.is_file() else
                              "name the model.npz of a run folder"))
    if model is None and path.is_file():
        meta = read_metadata(path)
        model = meta.get("model") if meta else None
    try:
        expected = network(model) if model is not None else None
    except ValueError as exc:
        raise WeightsError(f"{path}: {exc}") from None
    found: list[Network] = []

    def check(headers: dict[str, NpyHeader]) -> None:
        keys = list(headers)
        names = [f"arr_{i}" for i in range(len(keys))]
        if not keys or sorted(keys) != sorted(names):
            raise WeightsError(f"{path} has members {keys}; a weights file holds only "
                               "arr_0, arr_1, ... as written by np.savez(path, *weights)")
        for name in names:
            if headers[name].dtype.kind != "f":
                raise WeightsError(f"{path}: {name} has dtype {headers[name].dtype}; "
                                   "weights must be floating-point numbers")
        shapes = [headers[name].shape for name in names]
        try:
            net = expected if expected is not None else network_for(shapes)
        except WeightsError as exc:
            raise WeightsError(f"{path}: {exc}") from None
        if shapes != net.param_shapes():
            raise WeightsError(f"{path}: the weights do not fit the {net.name} network: got "
                               f"{len(shapes)} arrays of shapes {shapes}, expected "
                               f"{net.param_shapes()}")
        found.append(net)

    arrays = read_npz(path, "weights file", check, error=WeightsError)
    try:
        return Weights([arrays[f"arr_{i}"] for i in range(len(arrays))], found[0])
    except WeightsError as exc:
        raise WeightsError(f"{path}: {exc}") from None
