"""The ``pytorch`` engine: the tutorial's networks in PyTorch, trained and run on a CPU,
a CUDA GPU or Apple's MPS, with Lasagne's semantics and layout.

Its parts, one job each: :mod:`.gradient_rules` (Lasagne's rectify and max-pooling
gradients), :mod:`.modules` (the network as a module, Lasagne's layout at the boundary),
:mod:`.optimizers` (the recipes' update rules), :mod:`.trainer` (the training step; on
CUDA the data stays on the GPU and the step replays as a CUDA graph), :mod:`.inference`
and :mod:`.devices` (devices, threads and lanes).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from mnist_cnn.nets.engines.pytorch.devices import resolve_device, same_sums_on_every_cpu
from mnist_cnn.nets.engines.pytorch.inference import evaluate, predict_proba
from mnist_cnn.nets.engines.pytorch.trainer import TorchTrainer
from mnist_cnn.nets.spec import Weights

if TYPE_CHECKING:
    from mnist_cnn.training.settings import Settings

__all__ = ["NAME", "check_settings", "evaluate", "make_trainer", "predict_proba"]

NAME = "pytorch"

same_sums_on_every_cpu()  # before any product of this process, or it is too late


def check_settings(settings: Settings) -> None:
    """Raise EngineError unless the device of ``settings`` is here."""
    resolve_device(settings.device)


def make_trainer(weights: Weights, dropout: Sequence[np.ndarray], settings: Settings,
                 data: Sequence[np.ndarray]) -> TorchTrainer:
    """The PyTorch trainer (see :class:`~mnist_cnn.nets.engines.pytorch.trainer.TorchTrainer`)."""
    check_settings(settings)
    return TorchTrainer(weights, dropout, settings, data)
