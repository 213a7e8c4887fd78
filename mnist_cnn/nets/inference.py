"""Deterministic (dropout-free) passes of a trained network: probabilities, loss, accuracy.

One dispatch for every engine: the weights are resolved once (a file is loaded, a list
is checked and its network recognised), the engine is chosen by
:func:`mnist_cnn.nets.engines.choose`, and it computes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mnist_cnn import defaults
from mnist_cnn.errors import MnistCnnError
from mnist_cnn.nets import engines
from mnist_cnn.nets.spec import Network
from mnist_cnn.results import Evaluation
from mnist_cnn.storage.weights_file import WeightsLike, as_weights

__all__ = ["ensemble_proba", "evaluate", "predict_proba"]


def _inputs(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X)
    if X.ndim != 4 or X.shape[1:] != (1, 28, 28):
        raise MnistCnnError(f"images must be an array of shape (N, 1, 28, 28) scaled as the "
                            f"training data, got shape {X.shape}")
    return X


def predict_proba(weights: WeightsLike, X: np.ndarray, model: Network | str | None = None,
                  device: str = defaults.DEVICE, batch_size: int | None = None,
                  engine: str = defaults.INFERENCE_ENGINE) -> np.ndarray:
    """Class probabilities (the softmax output) for a batch of images.

    Parameters
    ----------
    weights : Weights, list of numpy.ndarray or path
        Lasagne-layout weights, or a weights file.
    X : numpy.ndarray
        Images, float32 (N, 1, 28, 28) scaled as the training data.
    model : Network or str, optional
        The network; default: the weights' own (recognised from their shapes).
    device : str
        ``auto``, ``cpu``, ``cuda`` or ``mps``.
    batch_size : int, optional
        Images per forward pass; default 1000 on a CPU, 10,000 on CUDA.
    engine : {"auto", "pytorch", "theano", "numpy"}
        Which engine computes the pass; ``auto``: see :func:`mnist_cnn.nets.engines.choose`.

    Returns
    -------
    numpy.ndarray
        float32 array of shape (N, 10); each row sums to 1.

    Examples
    --------
    >>> predict_proba(result.weights, X_test[:5]).argmax(axis=1)  # doctest: +SKIP
    array([7, 2, 1, 0, 4])
    """
    weights = as_weights(weights, model)
    X = _inputs(X)
    name = engines.choose(engine, device, len(X))
    return engines.get(name).predict_proba(weights, X, device, batch_size)


def ensemble_proba(models: Sequence[WeightsLike], X: np.ndarray,
                   device: str = defaults.DEVICE,
                   engine: str = defaults.INFERENCE_ENGINE) -> np.ndarray:
    """The mean of several models' class probabilities (:func:`predict_proba` of each):
    networks trained alike from other seeds err on fewer of the same images.

    Parameters
    ----------
    models : sequence of Weights, list of numpy.ndarray or path
        One or more models.
    X, device, engine
        As for :func:`predict_proba`.

    Returns
    -------
    numpy.ndarray
        float32 array of shape (N, 10); each row sums to 1.
    """
    if not models:
        raise MnistCnnError("an ensemble needs at least one model")
    return np.mean([predict_proba(m, X, device=device, engine=engine) for m in models],
                   axis=0, dtype=np.float64).astype(np.float32)


def evaluate(weights: WeightsLike, X: np.ndarray, y: np.ndarray,
             model: Network | str | None = None, device: str = defaults.DEVICE,
             batch_size: int | None = None,
             engine: str = defaults.INFERENCE_ENGINE) -> Evaluation:
    """Loss and accuracy of weights on a labelled set, without dropout.

    Parameters
    ----------
    weights : Weights, list of numpy.ndarray or path
        Lasagne-layout weights, or a weights file.
    X : numpy.ndarray
        Images, float32 (N, 1, 28, 28) scaled as the training data.
    y : numpy.ndarray
        Labels 0..9, shape (N,).
    model, device, batch_size, engine
        As for :func:`predict_proba`.

    Returns
    -------
    Evaluation
        ``.loss`` (mean cross-entropy) and ``.accuracy`` (0..1).

    Examples
    --------
    >>> evaluate(result.weights, X_test, y_test).accuracy  # doctest: +SKIP
    0.9919
    """
    weights = as_weights(weights, model)
    X = _inputs(X)
    y = np.asarray(y)
    if y.shape != (len(X),):
        raise MnistCnnError(f"labels must have shape ({len(X)},), got {y.shape}")
    name = engines.choose(engine, device, len(X))
    return engines.get(name).evaluate(weights, X, y, device, batch_size)
