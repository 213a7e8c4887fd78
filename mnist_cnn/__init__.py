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

from mnist_cnn.errors import (
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
    "download_mnist": "storage.mnist_data",
    "iterate_minibatches": "storage.mnist_data",
    "load_dataset": "storage.mnist_data",
    "Network": "nets.spec",
    "Weights": "nets.spec",
    "init_weights": "nets.spec",
    "network": "nets.spec",
    "Settings": "training.settings",
    "train": "training.loop",
    "resume": "training.loop",
    "evaluate": "nets.inference",
    "predict_proba": "nets.inference",
    "EpochStats": "results",
    "Evaluation": "results",
    "TrainResult": "results",
    "save_weights": "storage.weights_file",
    "load_weights": "storage.weights_file",
    "read_metadata": "storage.weights_file",
    "predict": "reading.predictions",
    "Prediction": "reading.predictions",
    "Unreadable": "reading.predictions",
    "bundled_models": "reading.predictions",
    "bundled_weights_path": "reading.predictions",
    "read_number": "reading.numbers",
    "NumberReading": "reading.numbers",
    "preprocess_image": "reading.images",
    "adapt": "training.adapt",
    "AdaptResult": "training.adapt",
    "reproduce": "experiments.sweep",
    "Experiment": "experiments.plan",
    "SweepReport": "experiments.report",
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
