"""mnist_cnn.reading.predictions and `mnist-cnn predict`: your own images, classified like MNIST."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from photolike import VARIANTS, drawn_seven, photo_like, save_pngs
from PIL import Image
from test_segmentation import written

from mnist_cnn import evaluate, load_weights
from mnist_cnn.nets.inference import ensemble_proba, predict_proba
from mnist_cnn.reading.images import preprocess_image
from mnist_cnn.reading.predictions import (
    Prediction,
    bundled_models,
    bundled_weights_path,
    predict,
)

ROOT = Path(__file__).resolve().parents[1]


def test_bundled_weights_load_and_have_a_sidecar():
    weights = load_weights(bundled_weights_path())
    assert weights[0].shape == (32, 1, 5, 5)
    meta = json.loads(bundled_weights_path().with_suffix(".json").read_text())
    assert meta["model"] == "cnn" and meta["epochs"] == 50


def test_the_bundled_ensemble_is_five_seeds_of_one_recipe_each_with_its_sidecar():
    paths = bundled_models()
    assert paths[0] == bundled_weights_path() and len(paths) == 5
    settings = []
    for path in paths:
        assert load_weights(path)[0].shape == (32, 1, 5, 5)
        meta = json.loads(path.with_suffix(".json").read_text())
        settings.append({k: meta["hyperparameters"][k] for k in (
            "model", "num_epochs", "batch_size", "learning_rate", "recipe", "augment",
            "schedule", "seed")})
    assert [s.pop("seed") for s in settings] == [0, 1, 2, 3, 4]
    assert all(s == settings[0] for s in settings)


def test_predict_without_weights_averages_the_bundled_models(tmp_path):
    Image.fromarray(drawn_seven()).save(tmp_path / "seven.png")
    x = preprocess_image(tmp_path / "seven.png")[None, None]
    each = [predict_proba(path, x)[0] for path in bundled_models()]
    averaged = predict(x)[0]
    assert averaged.probability == pytest.approx(float(np.mean(each, axis=0)[7]), abs=1e-6)
    single = predict(x, bundled_weights_path())[0]
    assert single.probability == pytest.approx(float(each[0][7]), abs=1e-6)
    assert ensemble_proba(bundled_models(), x).sum() == pytest.approx(1.0, abs=1e-5)


@pytest.mark.mnist
def test_bundled_weights_score_at_least_99_percent_on_mnist_test(mnist):
    result = evaluate(bundled_weights_path(), mnist[4], mnist[5])
    assert result.accuracy >= 0.99


def test_predict_accepts_paths_arrays_pil_images_and_batches(tmp_path):
    Image.fromarray(drawn_seven()).save(tmp_path / "seven.png")
    single = predict(tmp_path / "seven.png")
    assert len(single) == 1 and isinstance(single[0], Prediction)
    assert single[0].digit == 7 and single[0].source.endswith("seven.png")
    mixed = predict([tmp_path / "seven.png", drawn_seven(), Image.fromarray(drawn_seven())],
                    top=3)
    assert [p.digit for p in mixed] == [7, 7, 7]
    assert len(mixed[0].top) == 3 and mixed[0].top[0] == (7, mixed[0].probability)
    assert mixed[0].top[0][1] >= mixed[0].top[1][1] >= mixed[0].top[2][1]
    batch = np.stack([preprocess_image(drawn_seven())] * 2)[:, None]
    assert [p.digit for p in predict(batch)] == [7, 7]


@pytest.mark.mnist
@pytest.mark.slow

def test_a_small_faint_photo_whose_strokes_are_wider_than_their_core_is_read(mnist):
    # A 7 of MNIST's test set, small and low in contrast (one of read_photolike.py's
    # small-low-contrast pictures): its strokes barely reach the higher threshold, in a
    # core a third of their width, and at three core widths they fell under it: "no
    # ink found" before the local measure gave way to the first one.
    X_test, y_test = mnist[4:]
    rng = np.random.default_rng([0, VARIANTS.index("small-low-contrast")])
    for i in rng.choice(len(X_test), 200, replace=False):
        picture = photo_like(X_test[i, 0], rng, "small-low-contrast")
        if i == 4459:
            break
    assert predict(Image.open(io.BytesIO(picture)))[0].digit == y_test[4459] == 7

@pytest.mark.parametrize("variant", VARIANTS)
def test_photo_like_digits_are_recognised_with_the_bundled_weights(mnist, variant):
    X_test, y_test = mnist[4], mnist[5]
    rng = np.random.default_rng(VARIANTS.index(variant))
    picks = rng.choice(len(X_test), 50, replace=False)
    images = [Image.open(io.BytesIO(photo_like(X_test[i, 0], rng, variant))) for i in picks]
    predicted = np.array([p.digit for p in predict(images)])
    accuracy = (predicted == y_test[picks]).mean()
    print(f"{variant}: {accuracy:.1%}")
    assert accuracy >= 0.94  # at most 3 of 50 wrong (100 per variant: see the README)


@pytest.mark.mnist
@pytest.mark.slow
def test_the_10000_mnist_test_digits_saved_as_png_files_are_read_as_the_arrays(mnist, tmp_path):
    X_test, y_test = mnist[4], mnist[5]
    weights = load_weights(bundled_weights_path())
    paths = save_pngs((X_test[:, 0] * 256).astype(np.uint8), tmp_path)
    direct = predict(X_test, weights)
    via_png = predict(paths, weights)
    assert np.array_equal(np.stack([p.image for p in via_png])[:, None], X_test)
    assert [p.digit for p in via_png] == [p.digit for p in direct]
    print(f"array and PNG {np.mean([p.digit for p in direct] == y_test):.2%}")


@pytest.mark.mnist
@pytest.mark.slow
def test_mnist_digits_placed_off_centre_in_a_larger_picture_lose_at_most_0_2_points(
        mnist, tmp_path):
    X_test, y_test = mnist[4][:3000], mnist[5][:3000]  # 3,000 keep it short
    weights = load_weights(bundled_weights_path())
    direct = predict(X_test, weights)
    fields = np.zeros((len(X_test), 40, 44), np.uint8)  # not MNIST's format: found, centred
    fields[:, 3:31, 11:39] = X_test[:, 0] * 256
    paths = save_pngs(fields, tmp_path)
    via_png = predict(paths, weights)
    array_acc = np.mean([p.digit for p in direct] == y_test)
    png_acc = np.mean([p.digit for p in via_png] == y_test)
    print(f"array {array_acc:.2%}, PNG off centre {png_acc:.2%}")
    assert array_acc - png_acc <= 0.002 + 1e-9


# ----------------------------------------------------------------------- the CLI


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mnist_cnn", "predict", *args],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)


def test_predict_cli_prints_one_line_per_image_and_saves_what_the_network_saw(tmp_path):
    Image.fromarray(drawn_seven()).save(tmp_path / "a.png")
    Image.fromarray(drawn_seven(dark_on_light=False)).save(tmp_path / "b.jpg")
    proc = cli(str(tmp_path), "--top", "2", "--save-preprocessed", str(tmp_path / "seen"))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith(f"{tmp_path / 'a.png'}: 7 (")
    assert "top 2:" in lines[0]
    seen = Image.open(tmp_path / "seen" / "a.png")
    assert seen.size == (280, 280) and np.asarray(seen).std() > 20


def test_predict_cli_reports_bad_files_and_still_classifies_the_others(tmp_path):
    Image.fromarray(drawn_seven()).save(tmp_path / "good.png")
    (tmp_path / "empty.png").write_bytes(b"")
    proc = cli(str(tmp_path / "*.png"), "--json")
    assert proc.returncode == 1
    records = {Path(r["file"]).name: r for r in json.loads(proc.stdout)}
    assert records["good.png"]["digit"] == 7 and len(records["good.png"]["top"]) == 3
    assert "empty file" in records["empty.png"]["error"]
    proc = cli(str(tmp_path / "good.png"), str(tmp_path / "empty.png"))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("mnist-cnn: error: ") and "empty file" in proc.stderr
    assert "good.png: 7" in proc.stdout


def test_predict_cli_with_the_tutorials_weights_file(tmp_path):
    weights = load_weights(bundled_weights_path())
    np.savez(tmp_path / "model.npz", *[w.astype(np.float64) for w in weights])
    Image.fromarray(drawn_seven()).save(tmp_path / "seven.png")
    proc = cli(str(tmp_path / "seven.png"), "--weights", str(tmp_path / "model.npz"))
    assert proc.returncode == 0 and ": 7 (" in proc.stdout


def test_predict_cli_with_no_matching_file_is_an_error(tmp_path):
    proc = cli(str(tmp_path / "nothing-*.png"))
    assert proc.returncode == 1 and "no file matches" in proc.stderr


def test_a_picture_of_several_digits_is_read_as_one_and_the_cli_suggests_number(tmp_path):
    Image.fromarray((written(["2024"]) * 255).astype(np.uint8)).save(tmp_path / "year.png")
    Image.fromarray(drawn_seven()).save(tmp_path / "seven.png")
    several, one = predict([tmp_path / "year.png", tmp_path / "seven.png"])
    assert several.other_digits >= 2 and one.other_digits == 0
    assert "other_digits" not in one.to_dict()
    proc = cli(str(tmp_path / "year.png"), str(tmp_path / "seven.png"))
    assert proc.returncode == 0
    notes = proc.stderr.strip().splitlines()
    assert len(notes) == 1 and "year.png looks like several digits" in notes[0]
    assert "predict --number" in notes[0]
