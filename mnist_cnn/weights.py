"""Weights files: the tutorial's ``model.npz`` format plus a JSON sidecar.

``model.npz`` holds exactly what the tutorial's ``np.savez('model.npz',
*get_all_param_values(network))`` writes: keys ``arr_0 .. arr_N`` in Lasagne's layout
and order, nothing else. So the tutorial's own code loads ours and we load theirs.
Everything else (network name, hyperparameters, history, accuracies, versions, data
hashes) goes to ``model.json`` beside it. Loading never unpickles anything.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_write
from .data import file_digest
from .errors import WeightsError
from .networks import NetworkSpec, check_shapes, infer_spec, parse_model_name

__all__ = ["load_weights", "read_metadata", "save_weights", "sidecar_path"]


def sidecar_path(path: str | os.PathLike) -> Path:
    """The JSON sidecar of a weights file: ``model.npz`` -> ``model.json``."""
    return Path(path).with_suffix(".json")


def _as_weight_list(result_or_weights: Any) -> tuple[list[np.ndarray], dict[str, Any]]:
    """Accept a TrainResult (anything with ``.weights``) or a list of arrays."""
    metadata: dict[str, Any] = {}
    weights = result_or_weights
    if hasattr(result_or_weights, "weights"):
        weights = result_or_weights.weights
        if hasattr(result_or_weights, "metadata"):
            metadata = result_or_weights.metadata()
    try:
        arrays = [np.asarray(w) for w in weights]
    except TypeError as exc:
        raise WeightsError("save_weights needs a training result or a list of arrays") from exc
    return _validated(arrays, "the weights to save"), metadata


def _validated(arrays: list[np.ndarray], source: str) -> list[np.ndarray]:
    for i, a in enumerate(arrays):
        if not np.issubdtype(a.dtype, np.floating):
            raise WeightsError(f"{source}: array {i} has dtype {a.dtype}; weights must be "
                               "floating-point numbers")
        if not np.all(np.isfinite(a)):
            raise WeightsError(f"{source}: array {i} (shape {a.shape}) holds NaN or "
                               "infinite values")
    return [np.ascontiguousarray(a, dtype=np.float32) for a in arrays]


def save_weights(path: str | os.PathLike, result_or_weights: Any,
                 metadata: dict[str, Any] | None = None) -> Path:
    """Save weights as the tutorial does (``arr_0 ..``) plus a JSON sidecar.

    Both files are written to temporary names and renamed, so an existing model is
    never left half-overwritten.

    Parameters
    ----------
    path : str or path-like
        The ``.npz`` file to write (``.npz`` is added if missing).
    result_or_weights : TrainResult or list of numpy.ndarray
        A training result (its weights and metadata are saved) or a plain list of
        arrays in Lasagne's layout.
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
    weights, meta = _as_weight_list(result_or_weights)
    meta = {**meta, **(metadata or {})}
    meta.setdefault("model", infer_spec(weights).name)
    check_shapes(weights, parse_model_name(meta["model"]))
    with atomic_write(path) as f:
        np.savez(f, *weights)
    meta["weights_sha256"] = file_digest(path, "sha256")
    meta["param_shapes"] = [list(w.shape) for w in weights]
    with atomic_write(sidecar_path(path), text=True) as f:
        json.dump(meta, f, indent=2)
        f.write("\n")
    return path


def read_metadata(path: str | os.PathLike) -> dict[str, Any] | None:
    """Read the JSON sidecar of a weights file.

    Returns
    -------
    dict or None
        The sidecar's content, or None if there is none (e.g. a file saved by the
        original tutorial) or it does not describe this weights file (hash differs).

    Raises
    ------
    WeightsError
        If the sidecar exists but is not valid JSON.
    """
    side = sidecar_path(path)
    if not side.is_file():
        return None
    try:
        meta = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise WeightsError(f"{side}: unreadable sidecar ({exc}); delete it or restore "
                           "it from the run that wrote it") from exc
    if not isinstance(meta, dict):
        raise WeightsError(f"{side}: the sidecar must hold a JSON object")
    expected = meta.get("weights_sha256")
    if expected and Path(path).is_file() and expected != file_digest(path, "sha256"):
        return None
    return meta


def load_weights(path: str | os.PathLike,
                 model: str | NetworkSpec | None = None) -> list[np.ndarray]:
    """Load a weights file written by :func:`save_weights` or by the original tutorial.

    Arrays are checked (keys ``arr_0 ..`` only, floating point, finite, the shapes of
    one of the tutorial's networks) and returned as float32; the tutorial's float64
    files (Theano's default floatX on a CPU) are accepted. Nothing is unpickled.

    Parameters
    ----------
    path : str or path-like
        The ``.npz`` file.
    model : str or NetworkSpec, optional
        The network the file must fit; default: the sidecar's, else inferred from the
        array shapes.

    Returns
    -------
    list of numpy.ndarray
        Float32 arrays in Lasagne's layout and order.

    Raises
    ------
    WeightsError
        Missing or unreadable file, unexpected keys, object arrays, wrong count or
        shapes, non-finite values.

    Examples
    --------
    >>> weights = load_weights("model.npz")  # doctest: +SKIP
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"no weights file at {path}")
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic == b"\x93NUMPY":
        raise WeightsError(f"{path} is a single .npy array; a weights file is an .npz "
                           "archive as written by np.savez(path, *weights)")
    if not magic.startswith(b"PK"):
        raise WeightsError(f"{path} is not a valid .npz weights file (not a zip archive)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            keys = list(archive.files)
            expected = [f"arr_{i}" for i in range(len(keys))]
            if sorted(keys) != sorted(expected) or not keys:
                raise WeightsError(f"{path} has keys {keys}; a weights file holds only "
                                   "arr_0, arr_1, ... as written by np.savez(path, *weights)")
            arrays = [archive[k] for k in expected]
    except WeightsError:
        raise
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise WeightsError(f"{path} holds Python objects (pickled data), which are never "
                               "loaded; weights must be plain numeric arrays") from exc
        raise WeightsError(f"{path} is not a valid .npz weights file ({exc})") from exc
    except (OSError, EOFError, zipfile.BadZipFile, zipfile.LargeZipFile) as exc:
        raise WeightsError(f"{path} is not a valid .npz weights file (truncated or "
                           f"corrupt: {exc})") from exc
    weights = _validated(arrays, str(path))
    if model is None:
        meta = read_metadata(path)
        model = meta.get("model") if meta else None
    try:
        spec = parse_model_name(model) if model is not None else infer_spec(weights)
    except ValueError as exc:
        raise WeightsError(f"{path}: {exc}") from exc
    try:
        check_shapes(weights, spec)
    except WeightsError as exc:
        raise WeightsError(f"{path}: {exc}") from None
    return weights

