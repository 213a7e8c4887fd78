"""mnist_cnn.storage.weights_file: the tutorial's model.npz format, its sidecar, and bad files."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
from reference import forward

from mnist_cnn import WeightsError, load_weights, predict_proba, read_metadata, save_weights
from mnist_cnn.nets.spec import init_weights


def test_saved_file_is_exactly_the_tutorials_format(tmp_path):
    weights = init_weights("cnn", seed=3)
    path = save_weights(tmp_path / "model.npz", weights)
    with np.load(path, allow_pickle=False) as f:
        assert sorted(f.files) == [f"arr_{i}" for i in range(8)]
        # The tutorial's own loading code:
        param_values = [f["arr_%d" % i] for i in range(len(f.files))]  # noqa: UP031
    assert all((a == b).all() for a, b in zip(param_values, weights, strict=True))
    assert zipfile.ZipFile(path).namelist() == [f"arr_{i}.npy" for i in range(8)]


def test_sidecar_describes_the_weights(tmp_path):
    path = save_weights(tmp_path / "m", init_weights("mlp"), metadata={"seed": 4})
    assert path.name == "m.npz"
    meta = json.loads((tmp_path / "m.json").read_text())
    assert meta["model"] == "mlp" and meta["seed"] == 4
    assert meta["param_shapes"][0] == [784, 800]
    assert read_metadata(path)["weights_sha256"] == meta["weights_sha256"]


def test_sidecar_of_another_file_is_ignored(tmp_path):
    path = save_weights(tmp_path / "model.npz", init_weights("cnn", 0))
    sidecar = (tmp_path / "model.json").read_text()
    np.savez(path, *init_weights("cnn", 1))  # replaced by hand, sidecar left behind
    (tmp_path / "model.json").write_text(sidecar)
    assert read_metadata(path) is None


def test_tutorial_float64_file_without_sidecar_loads_and_predicts_like_lasagne(tmp_path):
    weights64 = [w.astype(np.float64) for w in init_weights("cnn", seed=7)]
    weights64[1] += 0.05
    path = tmp_path / "model.npz"
    np.savez(path, *weights64)  # what the tutorial writes with floatX=float64
    loaded = load_weights(path)
    assert all(w.dtype == np.float32 for w in loaded)
    x = np.random.default_rng(0).random((5, 1, 28, 28), dtype=np.float32)
    np.testing.assert_allclose(predict_proba(path, x, device="cpu"), forward(weights64, x),
                               atol=1e-5)


def test_saving_bad_weights_leaves_the_existing_file_untouched(tmp_path):
    path = save_weights(tmp_path / "model.npz", init_weights("cnn"))
    before = path.read_bytes()
    with pytest.raises(WeightsError):
        save_weights(path, init_weights("cnn")[:5])
    bad = init_weights("cnn")
    bad[2][0, 0, 0, 0] = np.nan
    with pytest.raises(WeightsError, match="NaN"):
        save_weights(path, bad)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json", "model.npz"]


def write_npz(path, *arrays, **named):
    np.savez(path, *arrays, **named)
    return path


@pytest.mark.parametrize("case, make, message", [
    ("missing", lambda p: p.parent / "nope.npz", "no weights file"),
    ("wrong count", lambda p: write_npz(p, *init_weights("cnn")[:7]), "match none"),
    ("wrong shape", lambda p: write_npz(p, *[np.zeros((3, 3)), *init_weights("cnn")[1:]]),
     "match none"),
    ("object array", lambda p: write_npz(p, np.array([{"x": 1}], dtype=object)),
     "Python objects"),
    ("extra key", lambda p: write_npz(p, *init_weights("cnn"), note=np.zeros(1)),
     "members"),
    ("integers", lambda p: write_npz(p, *[w.astype(np.int32) for w in init_weights("cnn")]),
     "floating-point"),
    ("not a zip", lambda p: (p.write_bytes(b"hello, world" * 10), p)[1], "not a valid"),
    ("npy", lambda p: (np.save(p, np.zeros(3)), p.with_suffix(".npz.npy"))[1], "single"),
    ("empty", lambda p: (p.write_bytes(b""), p)[1], "not a valid"),
])
def test_bad_weights_files_give_a_clear_error(tmp_path, case, make, message):
    path = make(tmp_path / "model.npz")
    with pytest.raises(WeightsError, match=message):
        load_weights(path)


def test_truncated_weights_file_gives_a_clear_error(tmp_path):
    path = save_weights(tmp_path / "model.npz", init_weights("cnn"))
    data = path.read_bytes()
    for cut in (len(data) // 2, len(data) - 30):
        path.write_bytes(data[:cut])
        with pytest.raises(WeightsError, match=r"not a valid weights file"):
            load_weights(path)


def test_weights_of_another_network_than_asked_are_refused(tmp_path):
    path = save_weights(tmp_path / "model.npz", init_weights("mlp"))
    with pytest.raises(WeightsError, match="do not fit the cnn network"):
        load_weights(path, model="cnn")
