"""The one record of a training run: every setting, the recipe's included.

A run's :class:`Settings` is what ``train()`` takes, what the engine's trainer reads, and
what the checkpoint and the weights' sidecar save whole; resuming loads it back. Adding
a setting is adding a field here (and its flag on the command line).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np

from mnist_cnn import defaults
from mnist_cnn.errors import TrainingError
from mnist_cnn.nets import engines
from mnist_cnn.nets.spec import Network, network

__all__ = ["Settings"]


@dataclass(frozen=True)
class Settings:
    """Every setting of a training run.

    Attributes
    ----------
    model : str
        ``cnn``, ``mlp`` or ``custom_mlp:DEPTH,WIDTH,DROP_IN,DROP_HID``.
    engine : {"pytorch", "theano", "lasagne", "numpy"}
        The engine that trains (see :mod:`mnist_cnn.nets.engines`).
    num_epochs, batch_size : int
        Passes over the training set, and images per update (the last incomplete batch
        of an epoch is dropped).
    learning_rate : float
        The step size (for the fast recipe's Adam, its peak).
    momentum : float
        Nesterov's momentum (for Adam, its first beta).
    seed : int
        Seeds the initialisation, the batch order, the dropout masks and the
        augmentation.
    recipe : {"tutorial", "fast"}
        The update rule and whether dropout drops (:data:`mnist_cnn.defaults.RECIPES`);
        see :attr:`rule` and :attr:`dropout`.
    augment : bool
        Transform every training batch afresh (see :mod:`mnist_cnn.nets.engines.pytorch.augment`).
    vary_shapes : bool
        With ``augment``, also write some 1s, 4s and 7s as MNIST's writers rarely did: a
        1's flag, a 7's bar, a 4's closed top
        (:func:`mnist_cnn.nets.engines.pytorch.augment.vary_shapes`).
    schedule : {"constant", "cosine"}
        Nesterov momentum's learning rate (see :data:`mnist_cnn.defaults.SCHEDULES`).
    shards : int
        Each batch's gradient is the sum, in a fixed order, of the gradients of this
        many fixed slices of the batch, each computed on one thread: the threads change
        the time, never the sum (see :func:`mnist_cnn.defaults.shards_for`).
    floatx : {"float32", "float64"}
        Theano's ``floatX``: the precision of the weights and the arithmetic (float64 on
        the engines of :data:`mnist_cnn.nets.engines.FLOAT64_ENGINES`).
    device : str
        ``auto``, ``cpu``, ``cuda[:N]`` or ``mps``.
    threads : int or "auto"
        CPU threads; they change the speed, never the weights.
    """

    model: str = defaults.MODEL
    engine: str = defaults.ENGINE
    num_epochs: int = defaults.EPOCHS
    batch_size: int = defaults.BATCH_SIZE
    learning_rate: float = defaults.LEARNING_RATE
    momentum: float = defaults.MOMENTUM
    seed: int = defaults.SEED
    recipe: str = defaults.RECIPE
    augment: bool = False
    vary_shapes: bool = False
    schedule: str = defaults.SCHEDULE
    shards: int = defaults.shards_for(defaults.BATCH_SIZE)
    floatx: str = defaults.FLOATX
    device: str = defaults.DEVICE
    threads: int | str = defaults.THREADS

    #: What a resumed run may change: the epochs may grow, and where and how fast it runs
    #: does not change its numbers. Every other setting must be the checkpoint's.
    MAY_CHANGE: ClassVar[tuple[str, ...]] = ("num_epochs", "device", "threads")
    #: The value of a setting that a checkpoint of an earlier version did not record.
    BEFORE_RECORDED: ClassVar[dict[str, Any]] = {"shards": 1, "vary_shapes": False}

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The settings' names, in order."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def fixed(cls) -> tuple[str, ...]:
        """What must be equal to resume a run."""
        return tuple(name for name in cls.names() if name not in cls.MAY_CHANGE)

    @classmethod
    def of(cls, recipe: str | None = None, **given: Any) -> Settings:
        """The settings of ``recipe`` (default: the tutorial's), with the ``given`` ones
        (those not None) instead; ``shards`` defaults to the batch size's.

        Raises
        ------
        TrainingError
            An unknown recipe or setting.
        """
        recipe = recipe or defaults.RECIPE
        if recipe not in defaults.RECIPES:
            raise TrainingError(f"unknown recipe {recipe!r}; choose one of "
                                f"{', '.join(defaults.RECIPES)}")
        unknown = set(given) - set(cls.names())
        if unknown:
            raise TrainingError(f"unknown settings {sorted(unknown)}; the settings are "
                                f"{', '.join(cls.names())}")
        values = {k: v for k, v in defaults.RECIPES[recipe].items() if k in cls.names()}
        values.update({k: v for k, v in given.items() if v is not None})
        if values.get("shards") is None and isinstance(values["batch_size"], int):
            values["shards"] = defaults.shards_for(values["batch_size"])
        return cls(recipe=recipe, **values)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Settings:
        """The settings a checkpoint or sidecar recorded (:meth:`to_dict`), those an
        earlier version did not record filled in.

        Raises
        ------
        TrainingError
            A setting that is not one of :meth:`names`.
        """
        values = {name: record.get(name, cls.BEFORE_RECORDED.get(name))
                  for name in cls.names()}
        unknown = set(record) - set(cls.names())
        if unknown:
            raise TrainingError(f"unknown settings {sorted(unknown)} in the record")
        return cls.of(**values)

    def to_dict(self) -> dict[str, Any]:
        """Every setting, JSON-ready."""
        return asdict(self)

    def replace(self, **changes: Any) -> Settings:
        """These settings with ``changes`` (those not None)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    @property
    def rule(self) -> str:
        """The recipe's update rule: ``nesterov`` (Lasagne's ``nesterov_momentum``) or
        ``adam``."""
        return defaults.RECIPES[self.recipe]["rule"]

    @property
    def dropout(self) -> bool:
        """Whether the network's dropout layers drop during training (the recipe's)."""
        return defaults.RECIPES[self.recipe]["dropout"]

    @property
    def tutorial(self) -> bool:
        """Whether this is the tutorial's arithmetic: Nesterov momentum at a constant
        rate, with dropout, on unchanged images."""
        return (self.rule == "nesterov" and self.dropout and not self.augment
                and self.schedule == "constant")

    def differences(self, other: Settings) -> list[str]:
        """The settings that must be equal to resume but are not, as ``name=a there, b
        here`` (``self`` is there)."""
        return [f"{k}={getattr(self, k)!r} there, {getattr(other, k)!r} here"
                for k in self.fixed() if getattr(self, k) != getattr(other, k)]

    def validate(self) -> Network:
        """Check every setting before anything is loaded or created: the numbers, the
        network's name and size, and that the engine is installed; returns the network.

        Raises
        ------
        TrainingError, EngineError
        """
        try:
            net = network(self.model)
        except ValueError as exc:
            raise TrainingError(str(exc)) from None
        self.check()
        _check_fits_in_memory(net, self.model)
        engines.get(self.engine, training=True).check_settings(self)
        return net

    def check(self, n_train: int | None = None) -> None:
        """Raise TrainingError unless every setting is usable (the batch size against
        ``n_train`` training examples, when given)."""
        def ok_int(value: Any) -> bool:
            return isinstance(value, int | np.integer) and not isinstance(value, bool)

        if not ok_int(self.num_epochs) or self.num_epochs < 1:
            raise TrainingError(f"the number of epochs must be a whole number of at least 1, "
                                f"got {self.num_epochs!r}")
        if not ok_int(self.batch_size) or self.batch_size < 1:
            raise TrainingError(f"the batch size must be a whole number of at least 1, got "
                                f"{self.batch_size!r}")
        if n_train is not None and self.batch_size > n_train:
            raise TrainingError(f"the batch size must be between 1 and the {n_train:,} "
                                f"training examples, got {self.batch_size!r}")
        if not isinstance(self.learning_rate, int | float) or not (
                0 < self.learning_rate < float("inf")):
            raise TrainingError(f"the learning rate must be a positive number, got "
                                f"{self.learning_rate!r}")
        if not isinstance(self.momentum, int | float) or not 0 <= self.momentum < 1:
            raise TrainingError(f"the momentum must be in [0, 1), got {self.momentum!r}")
        if not ok_int(self.seed) or not 0 <= self.seed < 2**32:
            raise TrainingError(f"the seed must be a whole number from 0 to 2**32 - 1, got "
                                f"{self.seed!r}")
        if self.vary_shapes and not self.augment:
            raise TrainingError("varying the shapes of 1s, 4s and 7s is part of the "
                                "augmentation; give --augment with --vary-shapes")
        if self.schedule not in defaults.SCHEDULES:
            raise TrainingError(f"unknown learning-rate schedule {self.schedule!r}; choose "
                                f"one of {', '.join(defaults.SCHEDULES)}")
        if self.schedule != "constant" and self.rule != "nesterov":
            raise TrainingError(f"the {self.recipe} recipe has a schedule of its own")
        if not ok_int(self.shards) or not 1 <= self.shards <= self.batch_size:
            raise TrainingError(f"the shards must be a whole number from 1 to the batch "
                                f"size ({self.batch_size}), got {self.shards!r}")
        if self.floatx not in defaults.FLOATXS:
            raise TrainingError(f"unknown floatX {self.floatx!r}; choose one of "
                                f"{', '.join(defaults.FLOATXS)}")
        if self.floatx != "float32" and self.engine not in engines.FLOAT64_ENGINES:
            raise TrainingError(f"the {self.engine} engine trains in float32; float64 runs on "
                                f"the {' and '.join(engines.FLOAT64_ENGINES)} engines")
        if self.threads != "auto" and not (ok_int(self.threads) and self.threads >= 1):
            raise TrainingError(f"threads must be 'auto' or a whole number >= 1, got "
                                f"{self.threads!r}")


#: Bytes per parameter while training: Lasagne's float64 initialisation, then the
#: float32 weights, gradients, momentum and the engine's copy.
_TRAINING_BYTES_PER_PARAM = 8 + 4 * 4


def _check_fits_in_memory(net: Network, name: str) -> None:
    """Refuse a network whose parameters alone would not fit in this machine's memory."""
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not on POSIX: a generous 64 GiB
        memory = 64 << 30
    need = net.num_params() * _TRAINING_BYTES_PER_PARAM
    if need > memory:
        raise TrainingError(f"model {name!r} has {net.num_params():,} parameters and needs "
                            f"about {need / 2**30:,.0f} GiB to train, more than this "
                            f"machine's {memory / 2**30:,.0f} GiB; choose a smaller WIDTH "
                            "or DEPTH")
