"""mnist-cnn: the Lasagne/Theano MNIST tutorial, reproduced faithfully on PyTorch.

The data functions import only numpy; the training functions (which need PyTorch) are
imported on first use, so ``import mnist_cnn`` stays fast.

Examples
--------
>>> from mnist_cnn import load_dataset, train  # doctest: +SKIP
>>> X_train, y_train, X_val, y_val, X_test, y_test = load_dataset()  # doctest: +SKIP
>>> result = train("cnn", num_epochs=5)  # doctest: +SKIP
>>> weights = result.weights  # doctest: +SKIP
>>> predict("my_digit.jpg")[0].digit  # doctest: +SKIP
7
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

from .data import download_mnist, iterate_minibatches, load_dataset
from .errors import (
    DataError,
    DownloadError,
    MnistCnnError,
    MNISTFormatError,
    TrainingError,
    TrainingInterrupted,
    WeightsError,
)

__version__ = "0.1.0"

_LAZY = {
    "train": "train",
    "evaluate": "train",
    "predict_proba": "train",
    "EpochStats": "results",
    "TrainResult": "train",
    "build_network": "model",
    "init_weights": "networks",
    "parse_model_name": "networks",
    "save_weights": "weights",
    "load_weights": "weights",
    "read_metadata": "weights",
    "predict": "predict",
    "preprocess_image": "predict",
}

__all__ = [
    "DataError",
    "DownloadError",
    "MNISTFormatError",
    "MnistCnnError",
    "TrainingError",
    "TrainingInterrupted",
    "WeightsError",
    "download_mnist",
    "iterate_minibatches",
    "load_dataset",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _Package(types.ModuleType):
    """``mnist_cnn.train`` is the function, although a submodule has that name too.

    Python binds a submodule on its package when it is first imported; for the names
    that are also functions exported here, that binding is skipped, so the function
    (imported lazily by ``__getattr__``) is what ``mnist_cnn.train`` gives.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _LAZY and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
