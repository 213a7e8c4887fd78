"""Recognise your own images: the network's answer for photos, scans and drawings.

Each image is made to look like an MNIST digit by :func:`mnist_cnn.reading.images.preprocess_image`
and classified by the model bundled with the package (or any weights file).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from mnist_cnn import defaults
from mnist_cnn.errors import ImageError
from mnist_cnn.nets.inference import ensemble_proba
from mnist_cnn.reading.images import describe, preprocess_image, read_digit
from mnist_cnn.storage.files import atomic_write
from mnist_cnn.storage.weights_file import WeightsLike

__all__ = ["ImageError", "Prediction", "Unreadable", "bundled_models", "bundled_weights_path",
           "predict", "preprocess_image"]


@dataclass(frozen=True)
class Prediction:
    """The network's answer for one image.

    Attributes
    ----------
    source : str
        The file name, or a description of the image.
    digit : int
        The most probable digit.
    probability : float
        Its probability (0..1).
    top : list of (int, float)
        The most probable digits with their probabilities, best first.
    image : numpy.ndarray
        The 28x28 input the network saw.
    box : tuple of int or None
        Where the digit is in a number's picture, ``(top, left, bottom, right)``
        (:func:`mnist_cnn.read_number`); None for a single digit.
    other_digits : int
        For a picture read as one digit: how many other marks in it look like digits
        too. Several mean a number, which :func:`mnist_cnn.read_number` reads whole.
    """

    source: str
    digit: int
    probability: float
    top: list[tuple[int, float]] = field(default_factory=list)
    image: np.ndarray = field(default_factory=lambda: np.zeros((28, 28), np.float32),
                              repr=False)
    box: tuple[int, int, int, int] | None = None
    other_digits: int = 0

    @classmethod
    def of(cls, source: str, proba: np.ndarray, top: int, image: np.ndarray,
           box: tuple[int, int, int, int] | None = None) -> Prediction:
        """The prediction of the network's probabilities ``proba`` (10,) for ``image``,
        listing the ``top`` most probable digits (ties: the smaller digit first)."""
        order = np.argsort(-proba, kind="stable")[:top]
        return cls(source, int(order[0]), float(proba[order[0]]),
                   [(int(d), float(proba[d])) for d in order], image, box)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready record of ``mnist-cnn predict --json`` (without the image)."""
        record: dict[str, Any] = {
            "digit": self.digit, "probability": self.probability,
            "top": [{"digit": d, "probability": p} for d, p in self.top]}
        if self.box is not None:
            record["box"] = list(self.box)
        if self.other_digits:
            record["other_digits"] = self.other_digits
        return record

    def save_input(self, path: str | os.PathLike, scale: int = 10) -> Path:
        """Write the 28x28 input the network saw, enlarged ``scale`` times, as a PNG
        (atomically); returns its path."""
        from PIL import Image

        pixels = np.clip(np.round(self.image * 256), 0, 255).astype(np.uint8)
        big = Image.fromarray(pixels).resize((28 * scale, 28 * scale),
                                             Image.Resampling.NEAREST)
        with atomic_write(path) as f:
            big.save(f, format="PNG")
        return Path(path)


@dataclass(frozen=True)
class Unreadable:
    """An image that could not be read, in the place of its prediction.

    Attributes
    ----------
    source : str
        The file name, or a description of the image.
    error : str
        Why, in one line (the :class:`ImageError`'s message).
    """

    source: str
    error: str

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready record of ``mnist-cnn predict --json``."""
        return {"error": self.error}


def bundled_weights_path() -> Path:
    """The model shipped with the package (trained by this project; see its sidecar):
    seed 0 of :func:`bundled_models`, the one :func:`mnist_cnn.adapt` and the drawing
    page start from."""
    return Path(str(resources.files("mnist_cnn") / "bundled" / "cnn-50epochs.npz"))


def bundled_models() -> list[Path]:
    """The models shipped with the package, trained alike from the seeds of
    :data:`mnist_cnn.defaults.BUNDLED_SEEDS` (see their sidecars); :func:`predict` and
    :func:`mnist_cnn.read_number` average their probabilities unless given weights."""
    folder = bundled_weights_path().parent
    return [bundled_weights_path()] + [folder / f"cnn-50epochs-seed{seed}.npz"
                                       for seed in defaults.BUNDLED_SEEDS[1:]]


def predict(images: Any, weights: WeightsLike | None = None, top: int = defaults.TOP,
            device: str = defaults.DEVICE, engine: str = defaults.INFERENCE_ENGINE,
            errors: str = "raise") -> list[Prediction | Unreadable]:
    """Classify one image or many.

    Parameters
    ----------
    images : path, PIL image, array, or a list of them
        Each is preprocessed with :func:`~mnist_cnn.reading.images.preprocess_image`; an array
        of shape (N, 1, 28, 28) is taken as network inputs already (like ``X_test``).
    weights : Weights, list of numpy.ndarray or path, optional
        Default: the models bundled with the package, their probabilities
        averaged (:func:`bundled_models`).
    top : int
        How many digits to list in ``Prediction.top`` (1 to 10).
    device : str
        ``auto``, ``cpu``, ``cuda`` or ``mps``.
    engine : str
        The inference engine; ``auto`` classifies a few images with numpy (no PyTorch
        import: a fast start) and many with PyTorch (see :func:`mnist_cnn.nets.engines.choose`).
    errors : {"raise", "return"}
        What an image that cannot be used gives: an :class:`ImageError` raised, or an
        :class:`Unreadable` in its place in the returned list (the other images are
        classified).

    Returns
    -------
    list of Prediction
        One per image, in order (an :class:`Unreadable` where one failed, with
        ``errors="return"``).

    Raises
    ------
    ImageError
        If an image cannot be read or holds no digit (the message names it).

    Examples
    --------
    >>> [p.digit for p in predict(["three.png", "seven.jpg"])]  # doctest: +SKIP
    [3, 7]
    """
    from PIL import Image

    if errors not in ("raise", "return"):
        raise ValueError(f"errors must be 'raise' or 'return', got {errors!r}")
    if not 1 <= top <= 10:
        raise ValueError(f"top must be between 1 and 10, got {top}")
    if isinstance(images, np.ndarray) and images.ndim == 4:
        if images.shape[1:] != (1, 28, 28):
            raise ImageError(f"a batch array must have shape (N, 1, 28, 28), got "
                             f"{images.shape}")
        inputs = list(np.asarray(images, np.float32)[:, 0])
        names = [f"image {i}" for i in range(len(images))]
        others = [0] * len(inputs)
    else:
        single = isinstance(images, (str, os.PathLike, np.ndarray, Image.Image))
        items = [images] if single else list(images)
        names = [describe(item) for item in items]
        inputs, others = [], []
        for item in items:
            try:
                image, count = read_digit(item)
                inputs.append(image)
                others.append(count)
            except ImageError as exc:
                if errors == "raise":
                    raise
                inputs.append(Unreadable(describe(item), " ".join(str(exc).split())))
    good = [x for x in inputs if not isinstance(x, Unreadable)]
    models = [weights] if weights is not None else bundled_models()
    batch = np.stack(good)[:, None] if good else np.zeros((0, 1, 28, 28), np.float32)
    proba = iter(ensemble_proba(models, batch, device=device, engine=engine))
    counts = iter(others)
    return [x if isinstance(x, Unreadable)
            else replace(Prediction.of(name, next(proba), top, x), other_digits=next(counts))
            for name, x in zip(names, inputs, strict=True)]
