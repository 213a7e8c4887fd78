"""mnist-cnn: the Lasagne/Theano MNIST tutorial, reproduced faithfully.

``import mnist_cnn`` imports only numpy; each function below is imported on first use
(PyTorch only when an engine needs it), so the package starts fast.

Examples
--------
>>> from mnist_cnn import load_dataset, train, predict  # doctest: +SKIP
>>> X_train, y_train, X_val, y_val, X_test, y_test = load_dataset()  # doctest: +SKIP
>>> result = train("cnn", num_epochs=5)  # doctest: +SKIP
>>> predict("my_digit.jpg")[0].digit  # doctest: +SKIP
7
"""

from __future__ import annotations

import importlib
from typing import Any

from .errors import (
    DataError,
    DownloadError,
    EngineError,
    ImageError,
    MnistCnnError,
    MNISTFormatError,
    TrainingError,
    TrainingInterrupted,
    WeightsError,
)

__version__ = "0.1.0"

#: Public name -> the module that defines it (imported when the name is first used).
_LAZY = {
    "download_mnist": "data",
    "iterate_minibatches": "data",
    "load_dataset": "data",
    "Network": "spec",
    "Weights": "spec",
    "init_weights": "spec",
    "network": "spec",
    "train": "training",
    "resume": "training",
    "evaluate": "inference",
    "predict_proba": "inference",
    "EpochStats": "results",
    "Evaluation": "results",
    "TrainResult": "results",
    "save_weights": "weights",
    "load_weights": "weights",
    "read_metadata": "weights",
    "predict": "predictions",
    "Prediction": "predictions",
    "bundled_weights_path": "predictions",
    "read_number": "number_reading",
    "NumberReading": "number_reading",
    "preprocess_image": "images",
}

__all__ = [
    "DataError",
    "DownloadError",
    "EngineError",
    "ImageError",
    "MNISTFormatError",
    "MnistCnnError",
    "TrainingError",
    "TrainingInterrupted",
    "WeightsError",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
