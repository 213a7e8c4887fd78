"""``adapt()``: a trained model taught one writer's handwriting.

The writer's labelled digits (:mod:`mnist_cnn.reading.labelled`, read as ``predict``
reads images) fine-tune a copy of the model with MNIST mixed in
(:func:`mnist_cnn.nets.engines.pytorch.fine_tune.fine_tune`); the result is an ordinary
``model.npz`` whose sidecar says what it was adapted on (counts and hashes, never the
images). How much it helps is measured honestly: the writer's accuracy before, and after
by cross-validation (each fold's digits read by a model adapted on the others), and
MNIST's test accuracy after.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mnist_cnn.errors import MnistCnnError
from mnist_cnn.nets.spec import Weights
from mnist_cnn.reading.labelled import LabelledDigits, read_labelled_digits
from mnist_cnn.storage.weights_file import WeightsLike, as_weights

__all__ = ["AdaptResult", "adapt"]


@dataclass(frozen=True)
class AdaptResult:
    """A model adapted to a writer, and what it bought.

    Attributes
    ----------
    weights : Weights
        The adapted model, in Lasagne's layout (every engine reads it).
    count : int
        The writer's digits.
    counts : list of int
        Of each digit, 0 to 9.
    before : float
        The starting model's accuracy on the writer's digits.
    after : float or None
        The adapted models' accuracy on them by cross-validation (None: no folds).
    folds : int
        The folds of the cross-validation (0: none).
    mnist_test_accuracy : float or None
        The adapted model on MNIST's 10,000 test digits (None: not measured).
    seconds : float
        The time of the final fine-tuning alone.
    source : dict
        What it was adapted on and from: the folder, the files' SHA-256, the starting
        weights' SHA-256, the settings (for the sidecar).
    """

    weights: Weights
    count: int
    counts: list[int]
    before: float
    after: float | None
    folds: int
    mnist_test_accuracy: float | None
    seconds: float
    source: dict[str, Any] = field(default_factory=dict)

    def metadata(self) -> dict[str, Any]:
        """The sidecar's fields (``model.json``)."""
        return {"model": self.weights.network.name,
                "test_accuracy": self.mnist_test_accuracy,
                "adapted": {"digits": self.count, "per_digit": self.counts,
                            "accuracy_before": self.before, "accuracy_after_cv": self.after,
                            "folds": self.folds, **self.source}}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (``mnist-cnn adapt --json``)."""
        return {"digits": self.count, "per_digit": self.counts, "before": self.before,
                "after": self.after, "folds": self.folds,
                "mnist_test_accuracy": self.mnist_test_accuracy, "seconds": self.seconds}


def adapt(digits: str | os.PathLike | LabelledDigits, out: str | os.PathLike | None = None,
          *, weights: WeightsLike | None = None, folds: int = 5, seed: int = 0,
          steps: int | None = None, mnist_test: bool = True,
          data: Any = None, data_dir: str | os.PathLike | None = None,
          device: str = "cpu") -> AdaptResult:
    """Fine-tune a model on a writer's own labelled digits.

    Parameters
    ----------
    digits : path or LabelledDigits
        A folder of labelled digit images (a ``labels.csv``, subfolders ``0`` to ``9``,
        or names starting with the digit), or digits already read.
    out : str or path-like, optional
        A folder for ``model.npz`` and its sidecar ``model.json``.
    weights : Weights, list of numpy.ndarray or path, optional
        The model to start from; default: the bundled one.
    folds : int
        Cross-validation folds for the "after" figure (at most one per digit; 0 or 1:
        none, which is quicker).
    seed : int
        Seeds the fine-tuning (and the folds).
    steps : int, optional
        Updates of the fine-tuning (default:
        :class:`~mnist_cnn.nets.engines.pytorch.fine_tune.FineTuning`'s).
    mnist_test : bool
        Measure the adapted model on MNIST's test set.
    data : sequence of numpy.ndarray, optional
        The six arrays of :func:`mnist_cnn.load_dataset`; default: loaded from
        ``data_dir``.
    data_dir : str or path-like, optional
        Where the MNIST files are.
    device : str
        Where to compute.

    Returns
    -------
    AdaptResult

    Raises
    ------
    LabelsError, ImageError
        No labelled digits, a wrong label, an unreadable image (one line naming it).
    MnistCnnError
        Invalid numbers, an output folder that is a file.
    """
    from dataclasses import replace

    from mnist_cnn.nets.engines.pytorch.fine_tune import FineTuning, fine_tune
    from mnist_cnn.nets.inference import predict_proba
    from mnist_cnn.reading.predictions import bundled_weights_path
    from mnist_cnn.storage.mnist_data import load_dataset
    from mnist_cnn.storage.weights_file import save_weights

    if folds < 0:
        raise MnistCnnError(f"folds must be 0 or more, got {folds}")
    if steps is not None and steps < 1:
        raise MnistCnnError(f"steps must be at least 1, got {steps}")
    if out is not None and Path(out).exists() and not Path(out).is_dir():
        raise MnistCnnError(f"{out} is a file, not a folder for the adapted model")
    start_path = weights if weights is not None else bundled_weights_path()
    start = as_weights(start_path)
    own = digits if isinstance(digits, LabelledDigits) else read_labelled_digits(digits)
    options = FineTuning() if steps is None else replace(FineTuning(), steps=steps)
    X_train, y_train, *_, X_test, y_test = data if data is not None else load_dataset(data_dir)

    def tuned(part: LabelledDigits) -> Weights:
        return fine_tune(start, part.images, part.labels, X_train, y_train, options, seed,
                         device)

    def correct(w: Weights, images: np.ndarray, labels: np.ndarray) -> int:
        return int((predict_proba(w, images[:, None], device=device).argmax(1)
                    == labels).sum())

    before = correct(start, own.images, own.labels) / len(own)
    folds = min(folds, len(own)) if folds > 1 else 0
    after = None
    if folds:
        order = np.random.default_rng(seed).permutation(len(own))
        right = 0
        for k in range(folds):
            held = order[k::folds]
            model = tuned(own.subset(np.setdiff1d(order, held)))
            right += correct(model, own.images[held], own.labels[held])
        after = right / len(own)
    began = time.perf_counter()
    adapted = tuned(own)
    seconds = time.perf_counter() - began
    mnist = (correct(adapted, np.asarray(X_test)[:, 0], np.asarray(y_test)) / len(y_test)
             if mnist_test else None)
    source = {"from": str(digits) if not isinstance(digits, LabelledDigits) else None,
              "files_sha256": own.sha256,
              "start": str(start_path) if isinstance(start_path, (str, os.PathLike))
              else "weights given in Python",
              "fine_tuning": {"steps": options.steps, "batch_size": options.batch_size,
                              "share": options.share, "learning_rate": options.learning_rate,
                              "keep": options.keep, "seed": seed}}
    result = AdaptResult(adapted, len(own), own.counts(), before, after, folds, mnist,
                         seconds, source)
    if out is not None:
        from mnist_cnn.storage.files import prepare_folder

        prepare_folder(out, "the output folder")
        save_weights(Path(out) / "model.npz", adapted, result.metadata())
    return result
