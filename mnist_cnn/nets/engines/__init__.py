"""The engines that compute the networks, what each provides, and the one place that
picks one.

:data:`ENGINES` lists them, by name: ``pytorch`` (package :mod:`.pytorch`, the
default), ``theano`` (:mod:`.symbolic`: the tutorial's symbolic program on PyTensor),
``lasagne`` (:mod:`.legacy`: the real Theano 0.8.2 and Lasagne 0.1 in a legacy
interpreter) and ``numpy`` (:mod:`.reference`: Lasagne's layers in numpy, float32 or
float64). Each builds its own form of a network from the layers of
:class:`mnist_cnn.nets.spec.Network` and provides the functions of :class:`Engine`; each
returns a :class:`Trainer` from ``make_trainer``.

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
from typing import TYPE_CHECKING, Protocol

import numpy as np

from mnist_cnn import defaults
from mnist_cnn.errors import EngineError
from mnist_cnn.nets.spec import Weights
from mnist_cnn.results import Evaluation

if TYPE_CHECKING:
    from mnist_cnn.training.settings import Settings

__all__ = [
    "ENGINES",
    "FLOAT64_ENGINES",
    "INFERENCE_ENGINES",
    "TRAINING_ENGINES",
    "Engine",
    "EngineError",
    "EngineInfo",
    "Trainer",
    "TrainerState",
    "check_cpu_tutorial",
    "choose",
    "cpu_only",
    "describe",
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

    def check_settings(self, settings: Settings) -> None:
        """Raise EngineError unless this engine can train with ``settings`` here."""
        ...

    def make_trainer(self, weights: Weights, dropout: Sequence[np.ndarray],
                     settings: Settings, data: Sequence[np.ndarray]) -> Trainer:
        """A trainer starting from ``weights`` and the dropout streams' states, training
        as ``settings`` say on (X_train, y_train, X_val, y_val)."""
        ...


@dataclass(frozen=True)
class EngineInfo:
    """What the registry knows of an engine before importing it.

    Attributes
    ----------
    module : str
        Its module, under this package.
    library : str
        The library it imports, and :attr:`install`: how to install it.
    install : str
    about : str
        What it is, for ``--help``.
    float64 : bool
        Whether it trains in float64 too (Theano's ``floatX=float64``).
    """

    module: str
    library: str
    install: str
    about: str
    float64: bool = False


#: Every engine, by name: the one list (``--help``, the choices and the checks read it).
ENGINES = {
    "pytorch": EngineInfo("pytorch", "torch",
                          "pip install torch (see the README for the CPU build)",
                          "PyTorch on a CPU, CUDA or MPS"),
    "theano": EngineInfo("symbolic", "pytensor", "pip install 'mnist-cnn[theano]'",
                         "the tutorial's symbolic program on PyTensor (CPU; needs pip "
                         "install 'mnist-cnn[theano]')"),
    "lasagne": EngineInfo("legacy.engine", "numpy", "mnist-cnn legacy setup",
                          "the real Theano 0.8.2 and Lasagne 0.1 (CPU; needs mnist-cnn "
                          "legacy setup)", float64=True),
    "numpy": EngineInfo("reference", "numpy", "pip install numpy",
                        "Lasagne's layers in numpy, the slow reference (CPU)", float64=True),
}
TRAINING_ENGINES = tuple(ENGINES)
#: The engines that train in float64 too.
FLOAT64_ENGINES = tuple(name for name, info in ENGINES.items() if info.float64)
INFERENCE_ENGINES = ("auto", *ENGINES)


def describe() -> str:
    """Each engine with what it is, for ``--help``: ``"pytorch: PyTorch ...; theano: ..."``."""
    return "; ".join(f"{name}: {info.about}" for name, info in ENGINES.items())


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
    info = ENGINES[name]
    try:
        engine: ModuleType = importlib.import_module(f"{__name__}.{info.module}")
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] != info.library:
            raise
        raise EngineError(f"the {name} engine needs {info.library}, which is not "
                          f"installed: {info.install}") from None
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


def cpu_only(engine: str, device: str) -> None:
    """Raise EngineError unless ``device`` means the CPU (``auto`` or ``cpu``): what the
    theano, lasagne and numpy engines compute on."""
    if str(device) not in ("auto", "cpu"):
        raise EngineError(f"the {engine} engine computes on the CPU, not on {device!r}; use "
                          "--device cpu or auto")


def check_cpu_tutorial(engine: str, settings: Settings) -> None:
    """Raise EngineError unless ``settings`` are the tutorial's arithmetic on the CPU (what
    the theano, lasagne and numpy engines, being the tutorial's program, train)."""
    if not settings.tutorial:
        raise EngineError(f"the {engine} engine runs the tutorial's recipe; the "
                          f"{settings.recipe} recipe, a schedule or --augment runs on the "
                          "pytorch engine")
    cpu_only(engine, settings.device)
