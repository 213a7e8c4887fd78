"""The engines that compute the networks, what each provides, and the one place that
picks one.

Each engine is a module named after what it runs on: ``torch`` (PyTorch, the default),
``pytensor`` (the tutorial's symbolic program on PyTensor, engine name ``theano``),
``lasagne`` (the real Theano 0.8.2 and Lasagne 0.1 in a legacy interpreter) and
``numpy`` (Lasagne's layers in numpy, float32 or float64: the reference). Each builds
its own form of a network from :attr:`mnist_cnn.nets.spec.Network.layers` and provides the
functions of :class:`Engine`; each returns a :class:`Trainer` from ``make_trainer``.

:func:`get` is the only place where an engine is chosen, for training and inference
alike, and :class:`mnist_cnn.errors.EngineError` the only error for an engine that is
unknown or unavailable.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Protocol

import numpy as np

from mnist_cnn import defaults
from mnist_cnn.defaults import Recipe
from mnist_cnn.errors import EngineError
from mnist_cnn.nets.spec import Weights
from mnist_cnn.results import Evaluation

__all__ = [
    "FLOAT64_ENGINES",
    "INFERENCE_ENGINES",
    "TRAINING_ENGINES",
    "Engine",
    "EngineError",
    "Trainer",
    "TrainerState",
    "choose",
    "get",
]


@dataclass
class TrainerState:
    """What a trainer holds besides its data, as it is saved in a checkpoint.

    Attributes
    ----------
    weights : Weights
    velocities : list of numpy.ndarray
        Lasagne's Nesterov velocities (Adam's first moments), one per parameter, in
        Lasagne's layout.
    dropout : list of numpy.ndarray
        The sub-stream states (n_streams, 6) of each dropout layer's MRG31k3p stream
        (see :mod:`mnist_cnn.nets.mrg`), the same for every engine.
    moments : list of numpy.ndarray
        Adam's second moments (empty for Nesterov momentum).
    steps : int
        Updates done so far.
    augment : numpy.ndarray
        The state of the augmentation's generator (empty without augmentation).
    """

    weights: Weights
    velocities: list[np.ndarray]
    dropout: list[np.ndarray]
    moments: list[np.ndarray] = field(default_factory=list)
    steps: int = 0
    augment: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint8))


class Trainer(Protocol):
    """An engine's training process for one network; the epoch loop drives it.

    Attributes
    ----------
    device : str
        Where it computes (``cpu``, ``cuda:0`` ...).
    versions : dict
        The versions of the libraries it computes with, for the sidecar.
    """

    device: str
    versions: dict[str, str]

    def train_epoch(self, order: np.ndarray, shuffled_from: tuple) -> Iterator[np.ndarray]:
        """Run one epoch of updates, one per row of ``order`` (example indices).

        ``shuffled_from`` is the state of the numpy ``RandomState`` that shuffled the
        order (as the tutorial's ``iterate_minibatches`` shuffles with ``np.random``);
        an engine that runs the tutorial's own loop shuffles from it. Yields the losses
        of the batches done since the last yield, a few at a time; the loop checks them
        and shows progress. Closing the generator stops the epoch.
        """
        ...

    def validate(self) -> Evaluation:
        """Loss and accuracy on the validation set, without dropout."""
        ...

    def evaluate(self, X: np.ndarray, y: np.ndarray) -> Evaluation:
        """Loss and accuracy on a labelled set, without dropout."""
        ...

    def get_state(self) -> TrainerState:
        """The weights, velocities and dropout generator state now."""
        ...

    def set_state(self, state: TrainerState) -> None:
        """Continue from a saved state."""
        ...

    def close(self) -> None:
        """Give back what the trainer took (threads, processes); it is not used after."""
        ...


class Engine(Protocol):
    """What an engine module provides."""

    NAME: str

    def predict_proba(self, weights: Weights, X: np.ndarray, device: str,
                      batch_size: int | None) -> np.ndarray:
        """Softmax outputs (N, 10) of the deterministic (dropout-free) network."""
        ...

    def evaluate(self, weights: Weights, X: np.ndarray, y: np.ndarray, device: str,
                 batch_size: int | None) -> Evaluation:
        """Mean cross-entropy and accuracy on a labelled set, without dropout."""
        ...

    def make_trainer(self, weights: Weights, dropout: Sequence[np.ndarray], recipe: Recipe,
                     device: str, data: Sequence[np.ndarray],
                     threads: int | str = "auto") -> Trainer:
        """A trainer starting from ``weights`` and the dropout streams' states, updating as
        ``recipe`` says, on (X_train, y_train, X_val, y_val); ``threads``: its CPU
        threads, fitted to the free cores (``"auto"``) or fixed, where the engine
        chooses them."""
        ...


#: Engine name -> (module, library it needs, how to install that library).
_ENGINES = {
    "pytorch": ("pytorch.engine", "torch", "pip install torch (see the README for the CPU build)"),
    "theano": ("symbolic", "pytensor", "pip install 'mnist-cnn[theano]'"),
    "lasagne": ("legacy.engine", "numpy", "mnist-cnn legacy setup"),
    "numpy": ("reference", "numpy", "pip install numpy"),
}
TRAINING_ENGINES = ("pytorch", "theano", "lasagne", "numpy")
#: The engines that train in float64 too (Theano's ``floatX=float64``).
FLOAT64_ENGINES = ("numpy", "lasagne")
INFERENCE_ENGINES = ("auto", "pytorch", "theano", "lasagne", "numpy")


def get(name: str, training: bool = False) -> Engine:
    """The engine module called ``name``.

    Raises
    ------
    EngineError
        If the name is unknown, the engine cannot train when ``training``, or its
        library is not installed (the message says how to install it).
    """
    choices = TRAINING_ENGINES if training else INFERENCE_ENGINES[1:]
    if name not in choices:
        raise EngineError(f"unknown engine {name!r} for {'training' if training else 'inference'}; "
                          f"choose one of {', '.join(choices)}")
    module, library, install = _ENGINES[name]
    try:
        engine: ModuleType = importlib.import_module(f"{__name__}.{module}")
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] != library:
            raise
        raise EngineError(f"the {name} engine needs {library}, which is not installed: "
                          f"{install}") from None
    return engine  # type: ignore[return-value]


def choose(name: str, device: str, count: int) -> str:
    """The inference engine that ``name`` means for ``count`` images on ``device``.

    ``auto`` is numpy for up to :data:`mnist_cnn.defaults.NUMPY_MAX_IMAGES` images on a
    CPU (as fast, and PyTorch need not be imported), PyTorch otherwise, and numpy where
    PyTorch is not installed; any other name is itself.
    """
    if name != "auto":
        return name
    on_cpu = device in ("auto", "cpu")
    if on_cpu and count <= defaults.NUMPY_MAX_IMAGES:
        return "numpy"
    if on_cpu and importlib.util.find_spec("torch") is None:
        return "numpy"
    return "pytorch"


def tutorial_only(engine: str, recipe: Recipe) -> None:
    """Raise EngineError unless ``recipe`` is the tutorial's rule with dropout (what the
    theano and lasagne engines, being the tutorial's program, compute)."""
    if (recipe.rule != "nesterov" or not recipe.dropout or recipe.augment
            or recipe.schedule != "constant"):
        raise EngineError(f"the {engine} engine runs the tutorial's recipe; the {recipe.name} "
                          "recipe runs on the pytorch engine")
