"""mnist_cnn.storage.mnist_data: IDX parsing, file checks, downloads, the array cache,
mini-batches."""

from __future__ import annotations

import gzip
import shutil
import struct
import time
from pathlib import Path

import numpy as np
import pytest

from mnist_cnn import DataError, DownloadError, MNISTFormatError, load_dataset
from mnist_cnn.storage.mnist_data import (
    FILES,
    download_mnist,
    find_mnist_files,
    iterate_minibatches,
    load_mnist_images,
    load_mnist_labels,
    load_mnist_pair,
    minibatch_indices,
    read_idx,
)

# ---------------------------------------------------------------- small IDX files


def idx_bytes(array: np.ndarray, magic: int | None = None) -> bytes:
    array = np.asarray(array, np.uint8)
    magic = magic if magic is not None else 0x0800 + array.ndim
    return struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write(path: Path, data: bytes, compress: bool = False) -> Path:
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


@pytest.fixture
def small_images() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (3, 28, 28), dtype=np.uint8)


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gz"])
def test_idx_images_and_labels_round_trip_raw_and_gzipped(tmp_path, small_images, compress):
    images = load_mnist_images(write(tmp_path / "i", idx_bytes(small_images), compress))
    labels = load_mnist_labels(write(tmp_path / "l", idx_bytes(np.array([0, 9, 5])), compress))
    np.testing.assert_array_equal(images, small_images)
    np.testing.assert_array_equal(labels, [0, 9, 5])
    assert images.dtype == labels.dtype == np.uint8


def test_wrong_magic_number_is_a_format_error(tmp_path, small_images):
    path = write(tmp_path / "f", idx_bytes(small_images, magic=0x0D03))
    with pytest.raises(MNISTFormatError, match="magic number 3331"):
        read_idx(path)


def test_truncated_data_is_a_format_error(tmp_path, small_images):
    path = write(tmp_path / "f", idx_bytes(small_images)[:-10])
    with pytest.raises(MNISTFormatError, match="truncated"):
        read_idx(path)


def test_truncated_header_is_a_format_error(tmp_path):
    with pytest.raises(MNISTFormatError, match="truncated header"):
        read_idx(write(tmp_path / "f", struct.pack(">II", 2051, 3)))


def test_trailing_bytes_are_a_format_error(tmp_path, small_images):
    path = write(tmp_path / "f", idx_bytes(small_images) + b"\0\0")
    with pytest.raises(MNISTFormatError, match="2 trailing bytes"):
        read_idx(path)


@pytest.mark.parametrize("after", [gzip.compress(b"\0\0\0\x01"), b"junk"],
                         ids=["second member", "trailing bytes"])
def test_a_gzip_with_anything_after_its_one_member_is_refused_naming_the_file(
        tmp_path, small_images, after):
    path = write(tmp_path / "labels.gz", gzip.compress(idx_bytes(small_images)) + after)
    with pytest.raises(MNISTFormatError, match=f"{path}: {len(after)} bytes after the end "
                                               "of the gzip stream"):
        read_idx(path)


def test_truncated_gzip_is_a_format_error(tmp_path, small_images):
    data = gzip.compress(idx_bytes(small_images))
    path = write(tmp_path / "f.gz", data[: len(data) // 2])
    with pytest.raises(MNISTFormatError, match="not a valid gzip"):
        read_idx(path)


def test_label_above_9_is_a_format_error(tmp_path):
    path = write(tmp_path / "l", idx_bytes(np.array([1, 2, 10, 3])))
    with pytest.raises(MNISTFormatError, match="label 10 at index 2 is above 9"):
        load_mnist_labels(path)


def test_label_file_given_as_images_is_a_format_error(tmp_path):
    path = write(tmp_path / "l", idx_bytes(np.array([1, 2])))
    with pytest.raises(MNISTFormatError, match="label file"):
        load_mnist_images(path)


def test_image_label_count_mismatch_is_a_format_error(tmp_path, small_images):
    """Files with the right names but 3 images and 2 labels: load_dataset refuses them."""
    images = write(tmp_path / "i", idx_bytes(small_images))
    labels = write(tmp_path / "l", idx_bytes(np.array([1, 2])))
    with pytest.raises(MNISTFormatError, match=r"3 images but .* 2 labels"):
        load_mnist_pair(images, labels)


# ---------------------------------------------------------------- the real files


@pytest.mark.mnist
def test_real_mnist_has_the_tutorials_shapes_dtypes_and_scaling(mnist):
    X_train, y_train, X_val, y_val, X_test, y_test = mnist
    assert X_train.shape == (50000, 1, 28, 28)
    assert X_val.shape == (10000, 1, 28, 28)
    assert X_test.shape == (10000, 1, 28, 28)
    assert y_train.shape == (50000,) and y_val.shape == y_test.shape == (10000,)
    assert {a.dtype for a in (X_train, X_val, X_test)} == {np.dtype(np.float32)}
    assert {a.dtype for a in (y_train, y_val, y_test)} == {np.dtype(np.uint8)}
    assert X_train.min() == 0 and X_train.max() == np.float32(255 / 256)
    all_train = np.concatenate([X_train, X_val])
    assert float(all_train.mean(dtype=np.float64)) * 256 == pytest.approx(33.318, abs=5e-4)
    counts = np.bincount(np.concatenate([y_train, y_val]), minlength=10)
    assert counts.tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert X_test.mean() * 256 == pytest.approx(33.79, abs=0.01)


@pytest.mark.mnist
def test_uncompressed_files_give_the_same_arrays(mnist, mnist_dir, tmp_path):
    for spec in FILES:
        raw = gzip.decompress((mnist_dir / spec.name).read_bytes())
        (tmp_path / spec.raw_name).write_bytes(raw)
    arrays = load_dataset(tmp_path, download=False, cache_dir=tmp_path / "cache")
    for a, b in zip(arrays, mnist, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.mnist
def test_corrupt_file_on_disk_is_named_with_expected_and_found(mnist_dir, tmp_path):
    for spec in FILES:
        shutil.copy(mnist_dir / spec.name, tmp_path / spec.name)
    name = "t10k-labels-idx1-ubyte.gz"
    data = (tmp_path / name).read_bytes()
    (tmp_path / name).write_bytes(data[:1000])
    with pytest.raises(DataError, match=rf"{name} is corrupt or incomplete: expected 4,542 "
                                        r"bytes with MD5 ec29112d.*found 1,000 bytes"):
        load_dataset(tmp_path, download=False)
    with pytest.raises(DataError, match="corrupt"):
        find_mnist_files(tmp_path)


def test_missing_files_without_download_explain_where_to_put_them(tmp_path):
    with pytest.raises(DataError) as info:
        load_dataset(tmp_path, download=False)
    text = str(info.value)
    assert str(tmp_path) in text and "MNIST_DATA_DIR" in text
    assert all(spec.name in text for spec in FILES)


@pytest.mark.mnist
def test_warm_load_reuses_the_cache_and_equals_the_cold_load(mnist_dir, tmp_path):
    cold = load_dataset(mnist_dir, download=False, cache_dir=tmp_path)
    assert (tmp_path / "arrays-v2" / "manifest.json").is_file()
    warm = load_dataset(mnist_dir, download=False, cache_dir=tmp_path)
    assert isinstance(warm[0], np.memmap)
    for a, b in zip(cold, warm, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.mnist
def test_writing_into_loaded_arrays_never_changes_the_cache(mnist_dir, tmp_path):
    X_train, *_ = load_dataset(mnist_dir, download=False, cache_dir=tmp_path)
    X_train[0] = 7.0
    again, *_ = load_dataset(mnist_dir, download=False, cache_dir=tmp_path)
    assert again[0].max() < 1.0


@pytest.mark.mnist
def test_corrupt_cache_is_rebuilt_not_used(mnist, mnist_dir, tmp_path):
    load_dataset(mnist_dir, download=False, cache_dir=tmp_path)
    cached = tmp_path / "arrays-v2" / "train_images.npy"
    cached.write_bytes(cached.read_bytes()[:5000])
    arrays = load_dataset(mnist_dir, download=False, cache_dir=tmp_path)
    np.testing.assert_array_equal(arrays[0], mnist[0])
    assert cached.stat().st_size > 100_000_000


# ------------------------------------------------------------------- downloads


def leftovers(folder: Path) -> list[str]:
    """Files in the folder that are not verified MNIST files (temporary or partial)."""
    return sorted(p.name for p in folder.iterdir() if p.name not in {s.name for s in FILES})


@pytest.mark.mnist
def test_download_fetches_and_verifies_all_four_files(mirror_server, mnist_dir, tmp_path):
    mirror_server.serve("a", mnist_dir)
    paths = download_mnist(tmp_path / "data", mirrors=[mirror_server.url("a")], timeout=5)
    assert sorted(p.name for p in paths.values()) == sorted(s.name for s in FILES)
    assert find_mnist_files(tmp_path / "data") == paths
    assert leftovers(tmp_path / "data") == []


@pytest.mark.mnist
def test_download_falls_back_to_the_next_mirror_after_a_404(mirror_server, mnist_dir, tmp_path):
    mirror_server.serve("good", mnist_dir)
    mirrors = [mirror_server.url("missing"), mirror_server.url("good")]
    download_mnist(tmp_path, mirrors=mirrors, timeout=5)
    assert "/missing/train-images-idx3-ubyte.gz" in mirror_server.requests
    assert len(find_mnist_files(tmp_path)) == 4


@pytest.mark.mnist
def test_truncated_body_is_rejected_and_the_next_mirror_used(mirror_server, mnist_dir, tmp_path):
    mirror_server.serve("short", mnist_dir, mode="truncate")
    mirror_server.serve("good", mnist_dir)
    download_mnist(tmp_path, mirrors=[mirror_server.url("short"), mirror_server.url("good")],
                   timeout=5)
    assert len(find_mnist_files(tmp_path)) == 4
    assert leftovers(tmp_path) == []


@pytest.mark.mnist
def test_wrong_bytes_fail_the_hash_and_leave_no_file(mirror_server, mnist_dir, tmp_path):
    mirror_server.serve("bad", mnist_dir, mode="corrupt", only="t10k-labels-idx1-ubyte.gz")
    with pytest.raises(DownloadError, match="do not match the published MD5"):
        download_mnist(tmp_path, mirrors=[mirror_server.url("bad")], timeout=5)
    assert not (tmp_path / "t10k-labels-idx1-ubyte.gz").exists()
    assert leftovers(tmp_path) == []


@pytest.mark.mnist
def test_stalled_server_times_out(mirror_server, mnist_dir, tmp_path):
    mirror_server.serve("slow", mnist_dir, mode="stall")
    start = time.monotonic()
    with pytest.raises(DownloadError, match=r"timed out: the server sent nothing for 0\.5 s"):
        download_mnist(tmp_path, mirrors=[mirror_server.url("slow")], timeout=0.5)
    assert time.monotonic() - start < 8
    assert leftovers(tmp_path) == []


def test_every_source_failing_names_each_url_and_the_manual_fix(mirror_server, tmp_path):
    mirrors = [mirror_server.url("one"), mirror_server.url("two")]
    with pytest.raises(DownloadError) as info:
        download_mnist(tmp_path, mirrors=mirrors, timeout=5)
    text = str(info.value)
    for url in mirrors:
        assert f"{url}train-images-idx3-ubyte.gz: HTTP 404" in text
    assert str(tmp_path) in text and "MNIST_DATA_DIR" in text
    assert all(spec.name in text for spec in FILES)


@pytest.mark.mnist
def test_files_already_present_make_no_network_request(mirror_server, mnist_dir, tmp_path):
    mirror_server.serve("a", mnist_dir)
    download_mnist(tmp_path, mirrors=[mirror_server.url("a")], timeout=5)
    count = len(mirror_server.requests)
    download_mnist(tmp_path, mirrors=[mirror_server.url("a")], timeout=5)
    load_dataset(tmp_path, cache_dir=tmp_path / "cache")
    load_dataset(tmp_path, cache_dir=tmp_path / "cache")
    assert len(mirror_server.requests) == count == 4


@pytest.mark.mnist
def test_corrupt_local_file_is_replaced_by_a_download(mirror_server, mnist_dir, tmp_path):
    mirror_server.serve("a", mnist_dir)
    for spec in FILES:
        shutil.copy(mnist_dir / spec.name, tmp_path / spec.name)
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(b"garbage")
    download_mnist(tmp_path, mirrors=[mirror_server.url("a")], timeout=5)
    assert mirror_server.requests == ["/a/train-labels-idx1-ubyte.gz"]
    assert len(find_mnist_files(tmp_path)) == 4


# ----------------------------------------------------------------- mini-batches


def test_minibatches_drop_the_last_incomplete_batch():
    X, y = np.arange(10).reshape(10, 1), np.arange(10)
    batches = list(iterate_minibatches(X, y, 4))
    assert [b[1].tolist() for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7]]


def test_shuffled_minibatches_are_seedable_and_visit_each_example_once():
    first = minibatch_indices(100, 10, shuffle=True, rng=3)
    assert (first == minibatch_indices(100, 10, shuffle=True, rng=3)).all()
    assert not (first == minibatch_indices(100, 10, shuffle=True, rng=4)).all()
    assert sorted(first.ravel().tolist()) == list(range(100))
    X = np.arange(100)
    batches = [b for b, _ in iterate_minibatches(X, X, 10, shuffle=True, rng=3)]
    np.testing.assert_array_equal(np.stack(batches), first)


def test_minibatches_reject_mismatched_lengths():
    with pytest.raises(ValueError, match="inputs has 3 examples but targets has 2"):
        list(iterate_minibatches(np.zeros(3), np.zeros(2), 1))
