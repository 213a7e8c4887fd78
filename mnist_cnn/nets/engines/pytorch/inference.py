"""The pytorch engine's inference: softmax outputs and evaluations of given weights."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from mnist_cnn import defaults
from mnist_cnn.nets.engines.pytorch.devices import exact_float32, keep_freed_memory, resolve_device
from mnist_cnn.nets.engines.pytorch.modules import LasagneNet, as_tensor
from mnist_cnn.nets.spec import Weights
from mnist_cnn.results import Evaluation

__all__ = ["evaluate", "evaluate_network", "evaluation_sums", "predict_proba"]


def _batch_size(device: torch.device, batch_size: int | None) -> int:
    return batch_size or defaults.INFERENCE_BATCH.get(device.type, 1000)


@torch.inference_mode()
def evaluate_network(net: LasagneNet, X: torch.Tensor, y: torch.Tensor,
                     batch_size: int | None = None) -> Evaluation:
    """Mean cross-entropy and accuracy of ``net`` over tensors already on its device.

    Computed in full float32 (see :func:`~mnist_cnn.nets.engines.pytorch.devices.exact_float32`).
    All examples count (the tutorial's batches of 500 divide 10,000 exactly, so its
    mean of batch means is the same number).
    """
    batch_size = batch_size or defaults.INFERENCE_BATCH["cpu"]
    was_training = net.training
    net.eval()
    with exact_float32():
        total_loss, correct = evaluation_sums(net, X, y, batch_size)
    net.train(was_training)
    n = max(len(X), 1)
    return Evaluation(float(total_loss) / n, int(correct) / n)


@torch.inference_mode()
def evaluation_sums(net: LasagneNet, X: torch.Tensor, y: torch.Tensor,
                     batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The summed cross-entropy (float64) and the count of right answers of a network
    in eval mode."""
    total_loss = torch.zeros((), dtype=torch.float64, device=X.device)
    correct = torch.zeros((), dtype=torch.int64, device=X.device)
    for start in range(0, len(X), batch_size):
        logits = net(X[start:start + batch_size])
        target = y[start:start + batch_size]
        total_loss += F.cross_entropy(logits, target, reduction="sum")
        correct += (logits.argmax(1) == target).sum()
    return total_loss, correct


def _network(weights: Weights, device: torch.device) -> LasagneNet:
    if device.type == "cpu":
        keep_freed_memory()
    return LasagneNet(weights.network, weights).to(device).eval()


def evaluate(weights: Weights, X: np.ndarray, y: np.ndarray, device: str = defaults.DEVICE,
             batch_size: int | None = None) -> Evaluation:
    """Mean cross-entropy and accuracy on a labelled set, without dropout."""
    dev = resolve_device(device)
    return evaluate_network(_network(weights, dev), as_tensor(X, dev, torch.float32),
                            as_tensor(y, dev, torch.int64), _batch_size(dev, batch_size))


@torch.inference_mode()
def predict_proba(weights: Weights, X: np.ndarray, device: str = defaults.DEVICE,
                  batch_size: int | None = None) -> np.ndarray:
    """Softmax outputs (N, 10) of the deterministic network, float32."""
    dev = resolve_device(device)
    net = _network(weights, dev)
    X = as_tensor(X, dev, torch.float32)
    batch_size = _batch_size(dev, batch_size)
    with exact_float32():
        out = [F.softmax(net(X[s:s + batch_size]), dim=1)
               for s in range(0, len(X), batch_size)]
    if not out:
        return np.zeros((0, 10), np.float32)
    return torch.cat(out).cpu().numpy()
