"""Deterministic (dropout-free) passes of a trained network: loss, accuracy, probabilities."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .device import exact_float32, keep_freed_memory, resolve_device
from .errors import MnistCnnError
from .model import LasagneNet
from .networks import NetworkSpec, infer_spec
from .results import Evaluation
from .weights import load_weights

__all__ = ["evaluate", "evaluation_from_proba", "predict_proba"]

WeightsLike = Sequence[np.ndarray] | str | os.PathLike


#: Images per forward pass when none is given: large batches keep a GPU busy.
DEFAULT_BATCH = {"cpu": 1000, "cuda": 10000}


def default_batch_size(device: torch.device) -> int:
    """Images per forward pass for inference on ``device``."""
    return DEFAULT_BATCH.get(device.type, 1000)


def _network(weights: WeightsLike, model: str | NetworkSpec | None,
             device: torch.device) -> LasagneNet:
    if device.type == "cpu":
        keep_freed_memory()
    if isinstance(weights, (str, os.PathLike)):
        weights = load_weights(weights, model)
    spec = model if model is not None else infer_spec(weights)
    return LasagneNet(spec, weights).to(device).eval()


def as_tensor(array: np.ndarray | torch.Tensor, device: torch.device,
              dtype: torch.dtype) -> torch.Tensor:
    """A tensor on ``device`` sharing memory with ``array`` where it can (CPU, writable)."""
    if isinstance(array, torch.Tensor):
        return array.to(device, dtype)
    array = np.ascontiguousarray(array)
    if not array.flags.writeable:
        array = array.copy()  # PyTorch cannot wrap read-only memory
    return torch.from_numpy(array).to(device, dtype)


@torch.inference_mode()
def evaluate_network(net: LasagneNet, X: torch.Tensor, y: torch.Tensor,
                     batch_size: int = 1000) -> Evaluation:
    """Mean cross-entropy and accuracy of ``net`` over tensors already on its device.

    Computed in full float32 (see :func:`mnist_cnn.device.exact_float32`).

    All examples count (the tutorial's batches of 500 divide 10,000 exactly, so its
    mean of batch means is the same number).
    """
    was_training = net.training
    net.eval()
    total_loss = torch.zeros((), dtype=torch.float64, device=X.device)
    correct = torch.zeros((), dtype=torch.int64, device=X.device)
    with exact_float32():
        for start in range(0, len(X), batch_size):
            logits = net(X[start:start + batch_size])
            target = y[start:start + batch_size]
            total_loss += F.cross_entropy(logits, target, reduction="sum")
            correct += (logits.argmax(1) == target).sum()
    net.train(was_training)
    n = max(len(X), 1)
    return Evaluation(float(total_loss) / n, int(correct) / n)


def evaluation_from_proba(proba: np.ndarray, y: np.ndarray) -> Evaluation:
    """Mean cross-entropy and accuracy of given class probabilities (N, 10) for labels y."""
    y = np.asarray(y, np.int64)
    picked = np.maximum(proba[np.arange(len(y)), y], np.finfo(np.float32).tiny)
    return Evaluation(float(-np.log(picked.astype(np.float64)).mean()),
                      float((proba.argmax(axis=1) == y).mean()))


def evaluate(weights: WeightsLike, X: np.ndarray, y: np.ndarray,
             model: str | NetworkSpec | None = None, device: str = "auto",
             batch_size: int | None = None, engine: str = "pytorch") -> Evaluation:
    """Loss and accuracy of weights on a labelled set, without dropout.

    Parameters
    ----------
    weights : list of numpy.ndarray or path
        Lasagne-layout weights, or a weights file.
    X : numpy.ndarray
        Images, float32 (N, 1, 28, 28) scaled as the training data.
    y : numpy.ndarray
        Labels 0..9, shape (N,).
    model : str, optional
        The network; default inferred from the weights' shapes.
    device : str
        ``auto``, ``cpu``, ``cuda`` or ``mps``.
    batch_size : int, optional
        Images per forward pass; default 1000 on a CPU, 10,000 on CUDA.
    engine : {"pytorch", "theano"}
        Which engine computes the pass (the theano engine on the CPU).

    Returns
    -------
    Evaluation
        ``.loss`` (mean cross-entropy) and ``.accuracy`` (0..1).

    Examples
    --------
    >>> evaluate(result.weights, X_test, y_test).accuracy  # doctest: +SKIP
    0.9888
    """
    if engine != "pytorch":
        return evaluation_from_proba(predict_proba(weights, X, model, device, batch_size,
                                                   engine), y)
    dev = resolve_device(device)
    net = _network(weights, model, dev)
    return evaluate_network(net, as_tensor(X, dev, torch.float32),
                            as_tensor(y, dev, torch.int64), batch_size or default_batch_size(dev))


@torch.inference_mode()
def predict_proba(weights: WeightsLike, X: np.ndarray,
                  model: str | NetworkSpec | None = None, device: str = "auto",
                  batch_size: int | None = None, engine: str = "pytorch") -> np.ndarray:
    """Class probabilities (the softmax output) for a batch of images.

    Parameters
    ----------
    weights : list of numpy.ndarray or path
        Lasagne-layout weights, or a weights file.
    X : numpy.ndarray
        Images, float32 (N, 1, 28, 28) scaled as the training data.
    model : str, optional
        The network; default inferred from the weights' shapes.
    device : str
        ``auto``, ``cpu``, ``cuda`` or ``mps``.
    batch_size : int, optional
        Images per forward pass; default 1000 on a CPU, 10,000 on CUDA.
    engine : {"pytorch", "theano"}
        Which engine computes the pass (the theano engine on the CPU).

    Returns
    -------
    numpy.ndarray
        float32 array of shape (N, 10); each row sums to 1.
    """
    if engine == "theano":
        from . import theano_engine

        if isinstance(weights, (str, os.PathLike)):
            weights = load_weights(weights, model)
        return theano_engine.predict_proba(weights, np.asarray(X), model,
                                           batch_size or DEFAULT_BATCH["cpu"])
    if engine != "pytorch":
        raise MnistCnnError(f"unknown engine {engine!r}; choose pytorch or theano")
    dev = resolve_device(device)
    net = _network(weights, model, dev)
    X = as_tensor(X, dev, torch.float32)
    batch_size = batch_size or default_batch_size(dev)
    with exact_float32():
        out = [F.softmax(net(X[s:s + batch_size]), dim=1)
               for s in range(0, len(X), batch_size)]
    if not out:
        return np.zeros((0, 10), np.float32)
    return torch.cat(out).cpu().numpy()
