"""What the network learned, as figures: kernels, feature maps, history, errors.

Every ``plot_*`` function returns a :class:`matplotlib.figure.Figure` built without
pyplot (no global state, no display needed): a notebook shows it inline, and
:func:`save_figure` writes it as a PNG (atomically). Figures have a fixed pixel size.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from mnist_cnn import defaults
from mnist_cnn.errors import MnistCnnError
from mnist_cnn.nets.spec import Conv, Weights
from mnist_cnn.storage.files import atomic_write
from mnist_cnn.storage.weights_file import WeightsLike, as_weights

__all__ = [
    "feature_maps",
    "matched_kernels",
    "plot_confusion",
    "plot_feature_maps",
    "plot_history",
    "plot_kernels",
    "plot_misclassified",
    "plot_sweep",
    "save_figure",
]

DPI = 100
_DIVERGING = "RdBu_r"


def _conv_weights(weights: WeightsLike, what: str) -> Weights:
    weights = as_weights(weights)
    if not weights.network.convolutional:
        raise MnistCnnError(f"{what} needs the cnn network's weights; these are of an MLP, "
                            "which has no convolution layers")
    return weights


def matched_kernels(weights: WeightsLike) -> np.ndarray:
    """The 32 first-layer kernels as they are matched against the image.

    Lasagne's Conv2DLayer computes a true convolution: the stored array ``W[k, 0]`` is
    rotated by 180 degrees before it slides over the image. So the pattern that makes
    feature map ``k`` respond most (the template laid over each 5x5 patch) is
    ``W[k, 0, ::-1, ::-1]``; that is what is returned and drawn.

    Returns
    -------
    numpy.ndarray
        Shape (32, 5, 5).
    """
    W = _conv_weights(weights, "the kernel figure")[0]
    return W[:, 0, ::-1, ::-1].copy()


def _as_image(image: Any, data_dir: str | os.PathLike | None,
              seed: int | None) -> tuple[np.ndarray, str]:
    """An (28, 28) float32 image, and a caption saying where it came from."""
    if image is None or isinstance(image, str) or isinstance(image, (int, np.integer)):
        if isinstance(image, str) and image != "random":
            raise MnistCnnError(f"image must be an array, a training-set index or 'random', "
                                f"got {image!r}")
        from mnist_cnn.storage.mnist_data import load_dataset

        X_train, y_train = load_dataset(data_dir)[:2]
        if image is None or image == "random":
            index = int(np.random.default_rng(seed).integers(len(X_train)))
        else:
            index = int(image)
        if not 0 <= index < len(X_train):
            raise MnistCnnError(f"image index {index} is outside the training set "
                                f"(0 .. {len(X_train) - 1})")
        return np.asarray(X_train[index, 0]), f"training image {index} (label {y_train[index]})"
    array = np.asarray(image, np.float32)
    if array.size != 784:
        raise MnistCnnError(f"an image must have 28x28 pixels, got shape {array.shape}")
    return array.reshape(28, 28), "given image"


def feature_maps(weights: WeightsLike, image: np.ndarray, layer: int = 1) -> np.ndarray:
    """The C1 or C2 feature maps of one image, after ReLU (before pooling).

    Parameters
    ----------
    weights : Weights, list of numpy.ndarray or path
        The cnn's weights in Lasagne's layout.
    image : numpy.ndarray
        28x28 pixels (any shape with 784 values), scaled as the training data.
    layer : {1, 2}
        1: the 32 maps of the first convolution (24x24); 2: of the second (8x8).

    Returns
    -------
    numpy.ndarray
        float32 array of shape (32, 24, 24) or (32, 8, 8).
    """
    from mnist_cnn.nets.engines.reference import layer_outputs

    weights = _conv_weights(weights, "feature maps")
    convs = [i for i, kind in enumerate(weights.network.layers) if isinstance(kind, Conv)]
    if layer not in range(1, len(convs) + 1):
        raise MnistCnnError(f"layer must be 1 or 2, got {layer}")
    x = np.asarray(image, np.float32).reshape(1, 1, 28, 28)
    return layer_outputs(weights, x)[convs[layer - 1]][0]


def _grid(fig: Figure, panels: np.ndarray, rows: int, cols: int, titles: Sequence[str],
          cmap: str, vmin: float, vmax: float) -> list:
    """Draw ``panels`` in a rows x cols grid of the figure; returns the images drawn."""
    images = []
    for i, ax in enumerate(fig.subplots(rows, cols, squeeze=False).ravel()):
        ax.set_xticks([])
        ax.set_yticks([])
        if i < len(panels):
            images.append(ax.imshow(panels[i], cmap=cmap, vmin=vmin, vmax=vmax,
                                    interpolation="nearest"))
            ax.set_title(titles[i], fontsize=8, pad=2)
        else:
            ax.set_axis_off()
    return images


def plot_kernels(weights: WeightsLike) -> Figure:
    """The 32 first-layer 5x5 kernels in a 4x8 grid, numbered from 0.

    Kernel ``k`` is ``weights[0][k, 0]`` (the blog's "kernels 3 and 4" are panels 3 and
    4 here if it counted from 0). All panels share one symmetric colour scale (red
    positive, blue negative) shown by the colour bar, and each kernel is drawn as it is
    matched against the image (see :func:`matched_kernels`).

    Returns
    -------
    matplotlib.figure.Figure
        1000 x 560 pixels.
    """
    kernels = matched_kernels(weights)
    vmax = float(np.abs(kernels).max()) or 1.0
    fig = Figure(figsize=(10, 5.6), dpi=DPI, layout="constrained")
    images = _grid(fig, kernels, 4, 8, [f"kernel {k}" for k in range(32)], _DIVERGING,
                   -vmax, vmax)
    fig.colorbar(images[0], ax=fig.axes, shrink=0.8, label="weight")
    fig.suptitle("First-layer kernels (C1), as matched against the image; numbered from 0")
    return fig


def plot_feature_maps(weights: WeightsLike, image: Any = defaults.FEATURE_MAP_IMAGE,
                      layer: int = 1, seed: int | None = defaults.FEATURE_MAP_SEED,
                      data_dir: str | os.PathLike | None = None) -> Figure:
    """The input digit and its 32 feature maps (after ReLU), labelled by kernel number.

    Parameters
    ----------
    weights : list of numpy.ndarray
        The cnn's weights in Lasagne's layout.
    image : array, int or "random"
        A 28x28 image, an index into the training set, or a random training image.
    layer : {1, 2}
        C1 maps (24x24) or C2 maps (8x8).
    seed : int, optional
        Seed of the random pick.
    data_dir : str or path-like, optional
        Where the MNIST files are (for an index or a random pick).

    Returns
    -------
    matplotlib.figure.Figure
        1100 x 520 pixels.
    """
    pixels, caption = _as_image(image, data_dir, seed)
    maps = feature_maps(weights, pixels, layer)
    fig = Figure(figsize=(11, 5.2), dpi=DPI, layout="constrained")
    left, right = fig.subfigures(1, 2, width_ratios=[1, 4])
    ax = left.subplots()
    ax.imshow(pixels, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_title("input\n" + caption.replace(" (", "\n("), fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    size = maps.shape[-1]
    images = _grid(right, maps, 4, 8, [f"kernel {k}" for k in range(32)], "viridis", 0,
                   float(maps.max()) or 1.0)
    right.colorbar(images[0], ax=right.axes, shrink=0.8, label="activation")
    fig.suptitle(f"C{layer} feature maps ({size}x{size}, after ReLU; shared colour scale)")
    return fig


def _history_rows(history: Sequence[Any]) -> list[Mapping[str, float]]:
    return [h if isinstance(h, Mapping) else vars(h) for h in history]


def plot_history(history: Sequence[Any]) -> Figure:
    """Training and validation loss, and validation accuracy, per epoch.

    Parameters
    ----------
    history : list of EpochStats or dict
        ``TrainResult.history``, or the ``history`` list of a ``model.json`` sidecar.

    Returns
    -------
    matplotlib.figure.Figure
        1000 x 400 pixels.
    """
    rows = _history_rows(history)
    if not rows:
        raise MnistCnnError("the history is empty: no epoch to plot")
    epochs = [r["epoch"] for r in rows]
    fig = Figure(figsize=(10, 4), dpi=DPI, layout="constrained")
    loss_ax, acc_ax = fig.subplots(1, 2)
    loss_ax.plot(epochs, [r["train_loss"] for r in rows], "o-", label="training (dropout)")
    loss_ax.plot(epochs, [r["val_loss"] for r in rows], "o-", label="validation")
    loss_ax.set(xlabel="epoch", ylabel="mean cross-entropy", title="Loss")
    loss_ax.legend()
    acc_ax.plot(epochs, [100 * r["val_accuracy"] for r in rows], "o-", color="C2")
    acc_ax.set(xlabel="epoch", ylabel="accuracy (%)", title="Validation accuracy")
    for ax in (loss_ax, acc_ax):
        ax.grid(alpha=0.3)
        ax.set_xlim(min(epochs) - 0.5, max(epochs) + 0.5)  # one epoch: a point, not a line
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    return fig


def _probabilities(weights: WeightsLike, X: np.ndarray, device: str,
                   proba: np.ndarray | None) -> np.ndarray:
    if proba is not None:
        return np.asarray(proba)
    from mnist_cnn.nets.inference import predict_proba

    return predict_proba(weights, X, device=device)


def plot_confusion(weights: WeightsLike, X: np.ndarray, y: np.ndarray,
                   device: str = defaults.DEVICE, proba: np.ndarray | None = None) -> Figure:
    """Confusion matrix (counts) of the network's predictions on a labelled set.

    ``proba`` (the network's probabilities for ``X``, from
    :func:`mnist_cnn.predict_proba`) saves computing them again.

    Returns
    -------
    matplotlib.figure.Figure
        700 x 620 pixels.
    """
    predicted = _probabilities(weights, X, device, proba).argmax(axis=1)
    counts = np.zeros((10, 10), np.int64)
    np.add.at(counts, (np.asarray(y, np.int64), predicted), 1)
    fig = Figure(figsize=(7, 6.2), dpi=DPI, layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(np.log1p(counts), cmap="Blues")
    for (i, j), c in np.ndenumerate(counts):
        if c:
            ax.text(j, i, str(c), ha="center", va="center", fontsize=8,
                    color="white" if i == j else "black")
    ax.set(xticks=range(10), yticks=range(10), xlabel="predicted digit",
           ylabel="true digit")
    accuracy = np.trace(counts) / max(counts.sum(), 1)
    ax.set_title(f"Confusion matrix: {counts.sum():,} images, "
                 f"{counts.sum() - np.trace(counts)} errors ({accuracy:.2%} correct)")
    fig.colorbar(image, ax=ax, shrink=0.8, label="log(1 + count)")
    return fig


def plot_misclassified(weights: WeightsLike, X: np.ndarray, y: np.ndarray,
                       n: int = 32, device: str = defaults.DEVICE,
                       proba: np.ndarray | None = None) -> Figure:
    """The first ``n`` (at most 32) misclassified images: true label, prediction, confidence.

    ``proba`` (the network's probabilities for ``X``) saves computing them again.

    Returns
    -------
    matplotlib.figure.Figure
        1000 x 560 pixels (4 rows of 8).
    """
    proba = _probabilities(weights, X, device, proba)
    predicted = proba.argmax(axis=1)
    wrong = np.flatnonzero(predicted != np.asarray(y))
    shown = wrong[: min(n, 32)]
    fig = Figure(figsize=(10, 5.6), dpi=DPI, layout="constrained")
    titles = [f"#{i}: {y[i]} → {predicted[i]} ({proba[i, predicted[i]]:.0%})" for i in shown]
    rows = max(1, -(-len(shown) // 8))
    _grid(fig, np.asarray(X)[shown, 0], rows, 8, titles, "gray", 0, 1)
    fig.suptitle(f"Misclassified: {len(wrong)} of {len(y):,}; showing {len(shown)} "
                 "(index: true → predicted (confidence))")
    return fig


def plot_sweep(report: Any) -> Figure:
    """Every run of a sweep as a dot, per experiment: test accuracy with the mean, its
    95 % interval and the claim; and each run's training time.

    Parameters
    ----------
    report : SweepReport
        :func:`mnist_cnn.reproduce`'s report.

    Returns
    -------
    matplotlib.figure.Figure
        1000 x (420 + 40 per experiment over 3) pixels.
    """
    stats = report.experiments
    if not stats:
        raise MnistCnnError("the sweep has no finished run to plot")
    fig = Figure(figsize=(10, 4.2 + 0.4 * max(0, len(stats) - 3)), dpi=DPI,
                 layout="constrained")
    acc_ax, time_ax = fig.subplots(1, 2, width_ratios=(2, 1), sharey=True)
    rng = np.random.default_rng(0)  # a fixed jitter: the figure is the same every time
    for row, e in enumerate(stats):
        runs = [r for r in report.runs if r.experiment == e.name]
        jitter = rng.uniform(-0.12, 0.12, len(runs))
        acc_ax.plot([100 * r.test_accuracy for r in runs], row + jitter, "o", color="C0",
                    alpha=0.7, label="a run" if row == 0 else None)
        time_ax.plot([r.seconds / 60 for r in runs], row + jitter, "o", color="C1",
                     alpha=0.7)
        a = e.accuracy
        if a.low is not None:
            acc_ax.plot([100 * a.low, 100 * a.high], [row + 0.3] * 2, "-", color="k", lw=2,
                        label="95 % interval of the mean" if row == 0 else None)
        acc_ax.plot([100 * a.mean], [row + 0.3], "|", color="k", ms=12)
        if e.claim is not None:
            acc_ax.plot([100 * e.claim], [row + 0.3], "*", color="C3", ms=12,
                        label="the claim" if row == 0 else None)
    acc_ax.set_yticks(range(len(stats)), [f"{e.name}\n({e.accuracy.n} runs)" for e in stats])
    acc_ax.invert_yaxis()
    acc_ax.set(xlabel="test accuracy (%)", title="Test accuracy per run")
    acc_ax.legend(loc="best", fontsize="small")
    time_ax.set(xlabel="training time (min)", title="Time per run")
    time_ax.set_xlim(left=0)
    for ax in (acc_ax, time_ax):
        ax.grid(alpha=0.3)
    return fig


def save_figure(fig: Figure, path: str | os.PathLike) -> Path:
    """Write a figure as PNG at its own pixel size, atomically; returns the path."""
    path = Path(path)
    with atomic_write(path) as f:
        fig.savefig(f, format="png", dpi=DPI)
    return path
