"""mnist_cnn.frontends.figures and `mnist-cnn visualize`: figures that show what their
titles say."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.signal import convolve2d

from mnist_cnn import save_weights
from mnist_cnn.errors import MnistCnnError
from mnist_cnn.frontends.figures import (
    feature_maps,
    matched_kernels,
    plot_confusion,
    plot_feature_maps,
    plot_history,
    plot_kernels,
    plot_misclassified,
    save_figure,
)
from mnist_cnn.nets.spec import init_weights

ROOT = Path(__file__).resolve().parents[1]


def trained_like_weights(seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [w + rng.normal(0, 0.05, w.shape).astype(np.float32) for w in init_weights("cnn")]


def assert_png(path: Path, size: tuple[int, int], min_spread: float = 20.0) -> None:
    """A PNG of the expected pixel size that is not blank (grey levels spread out)."""
    image = np.asarray(Image.open(path).convert("L"), np.float32)
    assert (image.shape[1], image.shape[0]) == size
    assert image.std() > min_spread, f"{path.name} looks blank (std {image.std():.1f})"


def test_kernel_figure_has_32_numbered_panels_and_a_colour_bar(tmp_path):
    fig = plot_kernels(trained_like_weights())
    panels = [ax for ax in fig.axes if ax.get_images() and ax.get_title().startswith("kernel")]
    assert [ax.get_title() for ax in panels] == [f"kernel {k}" for k in range(32)]
    assert len(fig.axes) == 33  # 32 panels and the colour bar
    limits = {ax.get_images()[0].get_clim() for ax in panels}
    assert len(limits) == 1 and limits.pop()[0] < 0  # one symmetric scale
    assert_png(save_figure(fig, tmp_path / "k.png"), (1000, 560))


def test_kernels_are_drawn_as_matched_against_the_image():
    weights = trained_like_weights()
    np.testing.assert_array_equal(matched_kernels(weights)[3], weights[0][3, 0, ::-1, ::-1])


@pytest.mark.parametrize("layer", [1, 2])
def test_feature_maps_equal_an_independent_scipy_computation(layer):
    weights = trained_like_weights(1)
    image = np.random.default_rng(2).random((28, 28), dtype=np.float32)
    W1, b1, W2, b2 = (w.astype(np.float64) for w in weights[:4])
    c1 = np.stack([np.maximum(convolve2d(image, W1[k, 0], mode="valid") + b1[k], 0)
                   for k in range(32)])
    expected = c1
    if layer == 2:
        pooled = c1.reshape(32, 12, 2, 12, 2).max(axis=(2, 4))
        expected = np.stack([np.maximum(sum(convolve2d(pooled[c], W2[k, c], mode="valid")
                                            for c in range(32)) + b2[k], 0)
                             for k in range(32)])
    maps = feature_maps(weights, image, layer)
    assert maps.shape == ((32, 24, 24) if layer == 1 else (32, 8, 8))
    np.testing.assert_allclose(maps, expected, atol=1e-5)


def test_feature_map_figure_shows_the_input_and_32_maps(tmp_path):
    image = np.zeros((28, 28), np.float32)
    image[6:22, 12:16] = 1.0
    fig = plot_feature_maps(trained_like_weights(), image, layer=1)
    titles = [ax.get_title() for ax in fig.axes if ax.get_images()]
    assert titles[0].startswith("input") and titles[1:] == [f"kernel {k}" for k in range(32)]
    assert_png(save_figure(fig, tmp_path / "f.png"), (1100, 520))


def test_history_figure_plots_each_epoch(tmp_path):
    history = [{"epoch": e, "train_loss": 1 / e, "val_loss": 0.5 / e, "val_accuracy": 0.9 + e / 100,
                "seconds": 1.0} for e in range(1, 6)]
    fig = plot_history(history)
    assert len(fig.axes[0].lines[0].get_xdata()) == 5
    assert_png(save_figure(fig, tmp_path / "h.png"), (1000, 400), min_spread=10)


def test_mlp_weights_get_a_clear_message_for_conv_figures():
    with pytest.raises(MnistCnnError, match="MLP"):
        plot_kernels(init_weights("mlp"))


@pytest.mark.mnist
def test_confusion_and_misclassified_figures_on_real_test_images(mnist, tmp_path):
    X, y = mnist[4][:500], mnist[5][:500]
    weights = trained_like_weights()
    fig = plot_confusion(weights, X, y)
    assert "500 images" in fig.axes[0].get_title()
    assert_png(save_figure(fig, tmp_path / "c.png"), (700, 620))
    fig = plot_misclassified(weights, X, y, n=16)
    titles = [ax.get_title() for ax in fig.axes if ax.get_images()]
    assert len(titles) == 16 and all("→" in t for t in titles)
    assert_png(save_figure(fig, tmp_path / "m.png"), (1000, 560))


def visualize(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mnist_cnn", "visualize", *args],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)


@pytest.mark.slow  # every figure, 10,000 test digits
@pytest.mark.mnist
def test_visualize_writes_every_figure_of_a_cnn(mnist_dir, tmp_path):
    weights = tmp_path / "model.npz"
    save_weights(weights, trained_like_weights(), metadata={"history": [
        {"epoch": 1, "train_loss": 0.4, "val_loss": 0.1, "val_accuracy": 0.97, "seconds": 9},
        {"epoch": 2, "train_loss": 0.2, "val_loss": 0.08, "val_accuracy": 0.98, "seconds": 9}]})
    proc = visualize("--weights", str(weights), "--out", str(tmp_path / "fig"),
                     "--image", "7")
    assert proc.returncode == 0, proc.stderr
    sizes = {"kernels.png": (1000, 560), "feature_maps_c1.png": (1100, 520),
             "feature_maps_c2.png": (1100, 520), "history.png": (1000, 400),
             "confusion.png": (700, 620), "misclassified.png": (1000, 560)}
    assert proc.stdout.split() == [str(tmp_path / "fig" / name) for name in sizes]
    for name, size in sizes.items():
        assert_png(tmp_path / "fig" / name, size, min_spread=10)


@pytest.mark.slow  # 10,000 test digits
@pytest.mark.mnist
def test_visualize_on_a_tutorial_mlp_file_makes_the_other_figures(mnist_dir, tmp_path):
    weights = tmp_path / "model.npz"
    np.savez(weights, *[w.astype(np.float64) for w in init_weights("mlp")])  # no sidecar
    proc = visualize("--weights", str(weights), "--out", str(tmp_path / "fig"))
    assert proc.returncode == 0, proc.stderr
    assert "MLP weights" in proc.stdout and "no sidecar" in proc.stdout
    assert sorted(p.name for p in (tmp_path / "fig").iterdir()) == [
        "confusion.png", "misclassified.png"]


@pytest.mark.parametrize("content", [None, b"not a zip"], ids=["missing", "malformed"])
def test_visualize_with_a_bad_weights_file_is_a_one_line_error(tmp_path, content):
    weights = tmp_path / "model.npz"
    if content is not None:
        weights.write_bytes(content)
    proc = visualize("--weights", str(weights), "--out", str(tmp_path / "fig"))
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("mnist-cnn: error: ")
    assert not (tmp_path / "fig").exists()


def test_visualize_with_a_bad_image_choice_is_a_one_line_error(tmp_path):
    weights = save_weights(tmp_path / "model.npz", trained_like_weights())
    proc = visualize("--weights", str(weights), "--image", "first")
    assert proc.returncode == 1 and "--image must be" in proc.stderr


@pytest.mark.mnist
def test_confusion_and_misclassified_figures_use_given_probabilities(mnist):
    X, y = mnist[4][:200], mnist[5][:200]
    always_zero = np.zeros((200, 10), np.float32)
    always_zero[:, 0] = 1.0
    errors = int((y != 0).sum())
    fig = plot_confusion(init_weights("cnn"), X, y, proba=always_zero)
    assert f"{errors} errors" in fig.axes[0].get_title()
    fig = plot_misclassified(init_weights("cnn"), X, y, proba=always_zero)
    assert fig.get_suptitle().startswith(f"Misclassified: {errors} of 200")


@pytest.mark.mnist
def test_the_default_feature_map_digit_is_a_telling_one_not_a_plain_1(mnist_dir):
    fig = plot_feature_maps(trained_like_weights(), data_dir=mnist_dir)
    titles = " ".join(ax.get_title() for ax in fig.axes)
    assert "training image 0" in titles and "(label 5)" in titles


def test_a_one_epoch_history_has_whole_epoch_ticks_and_a_visible_point():
    fig = plot_history([{"epoch": 1, "train_loss": 0.3, "val_loss": 0.2,
                         "val_accuracy": 0.95, "seconds": 9.0}])
    fig.canvas.draw()
    for ax in fig.axes:
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks == [1.0]
        assert all(line.get_marker() == "o" for line in ax.get_lines())
