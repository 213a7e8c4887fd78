"""MNIST as the Lasagne tutorial loads it: find, verify, download, parse and cache.

Data flows one way: the four original IDX files (``.gz`` or uncompressed) are located,
checked against their published hashes, downloaded when missing (pooch: mirrors in
order, hash-checked, written atomically, progress bar), parsed strictly, and cached as
float32 ``.npy`` arrays so that a warm :func:`load_dataset` only memory-maps them.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import shutil
import struct
import sys
import tempfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DataError, DownloadError, MNISTFormatError

__all__ = [
    "FILES",
    "MIRRORS",
    "MnistFile",
    "default_cache_dir",
    "default_data_dir",
    "download_mnist",
    "file_digest",
    "find_mnist_files",
    "iterate_minibatches",
    "load_dataset",
    "load_mnist_images",
    "load_mnist_labels",
    "minibatch_indices",
    "read_idx",
]

#: Where the files are fetched from, tried in this order (see REFERENCE.md).
MIRRORS: tuple[str, ...] = (
    "http://yann.lecun.com/exdb/mnist/",
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)

IMAGE_MAGIC = 2051
LABEL_MAGIC = 2049
_CACHE_VERSION = "arrays-v1"


@dataclass(frozen=True)
class MnistFile:
    """One of the four original MNIST files and the facts that identify it.

    Attributes
    ----------
    name : str
        The published (gzipped) file name.
    md5 : str
        MD5 of the gzipped file, as published by LeCun.
    size : int
        Size in bytes of the gzipped file.
    raw_sha256 : str
        SHA-256 of the uncompressed IDX content.
    raw_size : int
        Size in bytes of the uncompressed IDX content.
    """

    name: str
    md5: str
    size: int
    raw_sha256: str
    raw_size: int

    @property
    def raw_name(self) -> str:
        """The uncompressed file name (the published name without ``.gz``)."""
        return self.name[: -len(".gz")]


#: The four files, in the order train images, train labels, test images, test labels.
FILES: tuple[MnistFile, ...] = (
    MnistFile(
        "train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873", 9912422,
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db", 47040016,
    ),
    MnistFile(
        "train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432", 28881,
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5", 60008,
    ),
    MnistFile(
        "t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3", 1648877,
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7", 7840016,
    ),
    MnistFile(
        "t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c", 4542,
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2", 10008,
    ),
)

_ARRAY_NAMES = ("train_images", "train_labels", "test_images", "test_labels")
_SHAPES = {
    "train_images": (60000, 1, 28, 28),
    "train_labels": (60000,),
    "test_images": (10000, 1, 28, 28),
    "test_labels": (10000,),
}
_DTYPES = {"train_images": "float32", "train_labels": "uint8",
           "test_images": "float32", "test_labels": "uint8"}


# --------------------------------------------------------------------------- folders

def default_cache_dir() -> Path:
    """Per-user cache folder of mnist-cnn (``MNIST_CNN_CACHE_DIR`` overrides it).

    Returns
    -------
    pathlib.Path
        e.g. ``~/.cache/mnist-cnn`` on Linux, ``~/Library/Caches/mnist-cnn`` on macOS.
    """
    env = os.environ.get("MNIST_CNN_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("mnist-cnn", appauthor=False))


def default_data_dir() -> Path:
    """Folder of the MNIST files when none is given: ``MNIST_DATA_DIR``, else the cache.

    Returns
    -------
    pathlib.Path
        ``$MNIST_DATA_DIR`` if set, else ``default_cache_dir() / "mnist"``.
    """
    env = os.environ.get("MNIST_DATA_DIR")
    if env:
        return Path(env).expanduser()
    return default_cache_dir() / "mnist"


def _resolve_data_dir(data_dir: str | os.PathLike | None) -> Path:
    return Path(data_dir).expanduser() if data_dir is not None else default_data_dir()


# --------------------------------------------------------------------- verification

def file_digest(path: str | os.PathLike, algorithm: str) -> str:
    """Hex digest of a file's bytes (``algorithm``: a hashlib name such as ``"md5"``)."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check(path: Path, spec: MnistFile) -> str | None:
    """Return ``None`` if ``path`` holds ``spec``'s exact bytes, else what is wrong."""
    raw = not path.name.endswith(".gz")
    size, algorithm, digest = (
        (spec.raw_size, "sha256", spec.raw_sha256) if raw else (spec.size, "md5", spec.md5)
    )
    try:
        found_size = path.stat().st_size
        found = file_digest(path, algorithm) if found_size == size else None
    except OSError as exc:
        return f"{path} cannot be read ({exc.strerror or exc})"
    if found == digest:
        return None
    found_text = f"{found_size:,} bytes" + (f" with {algorithm.upper()} {found}" if found else "")
    return (f"{path} is corrupt or incomplete: expected {size:,} bytes with "
            f"{algorithm.upper()} {digest}, found {found_text}")


def find_mnist_files(data_dir: str | os.PathLike | None = None) -> dict[str, Path]:
    """Locate and verify the four MNIST files in a folder.

    Each file may be gzipped (the published name) or uncompressed (without ``.gz``);
    either must match its published hash exactly.

    Parameters
    ----------
    data_dir : str or path-like, optional
        Folder to look in; default :func:`default_data_dir`.

    Returns
    -------
    dict
        Published file name -> path of a verified copy.

    Raises
    ------
    DataError
        If a file is missing or corrupt; the message names each one.
    """
    folder = _resolve_data_dir(data_dir)
    found, problems = _scan(folder)
    if problems:
        raise DataError(_problems_message(problems, folder))
    return found


def _scan(folder: Path) -> tuple[dict[str, Path], dict[str, str]]:
    """Verified paths by file name, and a problem text for each file not found valid."""
    found: dict[str, Path] = {}
    problems: dict[str, str] = {}
    for spec in FILES:
        issues = []
        for candidate in (folder / spec.name, folder / spec.raw_name):
            if candidate.exists():
                issue = _check(candidate, spec)
                if issue is None:
                    found[spec.name] = candidate
                    break
                issues.append(issue)
        else:
            problems[spec.name] = "; ".join(issues) or f"{spec.name} is missing"
    return found, problems


def _problems_message(problems: dict[str, str], folder: Path) -> str:
    names = ", ".join(spec.name for spec in FILES)
    return (f"MNIST data is not usable in {folder}: {'; '.join(problems.values())}. "
            f"Run `mnist-cnn download`, or put the original files ({names}; gzipped or "
            f"not) in that folder, or set MNIST_DATA_DIR to the folder that holds them.")


# ------------------------------------------------------------------------ downloads

def download_mnist(
    data_dir: str | os.PathLike | None = None,
    mirrors: Sequence[str] = MIRRORS,
    timeout: float = 30.0,
    progress: bool | None = None,
) -> dict[str, Path]:
    """Make sure the four MNIST files are in ``data_dir``, downloading those missing.

    Files already present and intact are kept (no network request). A missing or
    corrupt file is fetched from each mirror in turn with pooch: the download goes to a
    temporary file in the same folder, is checked against the published MD5 and only
    then renamed into place, so a failed or corrupt download never leaves a file behind.

    Parameters
    ----------
    data_dir : str or path-like, optional
        Destination folder (created if needed); default :func:`default_data_dir`.
    mirrors : sequence of str
        Base URLs tried in order; each must end with ``/``.
    timeout : float
        Seconds to wait for a server to connect or to send more data.
    progress : bool, optional
        Show a progress bar per file; default: when standard error is a terminal.

    Returns
    -------
    dict
        Published file name -> path of a verified copy.

    Raises
    ------
    DownloadError
        If a file could not be fetched from any mirror; the message names every URL
        tried with its failure, and where to put the files by hand.

    Examples
    --------
    >>> paths = download_mnist("~/data/mnist")  # doctest: +SKIP
    """
    import pooch

    folder = _resolve_data_dir(data_dir)
    found, problems = _scan(folder)
    if progress is None:
        progress = sys.stderr.isatty()
    logger = pooch.get_logger()
    level = logger.level
    if not progress:  # pooch announces each download on its logger: that is progress too
        logger.setLevel(logging.WARNING)
    try:
        for spec in FILES:
            if spec.name in problems:
                found[spec.name] = _download_one(spec, folder, mirrors, timeout, progress)
    finally:
        logger.setLevel(level)
    return found


def _download_one(spec: MnistFile, folder: Path, mirrors: Sequence[str], timeout: float,
                  progress: bool) -> Path:
    """Fetch one file from the first mirror that delivers its exact bytes."""
    import pooch

    failures = []
    for base in mirrors:
        url = base.rstrip("/") + "/" + spec.name
        downloader = pooch.HTTPDownloader(progressbar=progress, timeout=timeout)
        try:
            return Path(pooch.retrieve(url, known_hash=f"md5:{spec.md5}", fname=spec.name,
                                       path=folder, downloader=downloader))
        except PermissionError as exc:
            raise DownloadError(f"cannot write MNIST files to {folder}: {exc.strerror}; "
                                "choose another folder with --data-dir or "
                                "MNIST_DATA_DIR") from exc
        except Exception as exc:  # every failure is reported, per URL
            failures.append(f"{url}: {_describe_failure(exc, timeout)}")
    raise DownloadError(
        f"could not download {spec.name} ({'; '.join(failures)}). Download the "
        f"files by hand ({', '.join(s.name for s in FILES)}) and put them in "
        f"{folder}, or set MNIST_DATA_DIR to the folder that holds them.")


def _describe_failure(exc: Exception, timeout: float) -> str:
    import requests

    if isinstance(exc, requests.exceptions.HTTPError) and exc.response is not None:
        return f"HTTP {exc.response.status_code} {exc.response.reason}".rstrip()
    if isinstance(exc, requests.exceptions.Timeout):
        return f"timed out after {timeout:g} s"
    if isinstance(exc, requests.exceptions.ConnectionError):
        return "connection failed or broke off"
    if isinstance(exc, requests.exceptions.RequestException):
        return f"download failed ({type(exc).__name__})"
    if isinstance(exc, ValueError) and "hash" in str(exc).lower():
        return "the downloaded bytes do not match the published MD5 (discarded)"
    return f"{type(exc).__name__}: {exc}"


# -------------------------------------------------------------------------- parsing

def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file of unsigned bytes (gzipped or not), strictly.

    Parameters
    ----------
    path : str or path-like
        The file; gzip is recognised by its content, not by its name.

    Returns
    -------
    numpy.ndarray
        uint8 array with the dimensions given in the header.

    Raises
    ------
    MNISTFormatError
        Not gzip-readable, wrong magic number, truncated data or trailing bytes.
    """
    path = Path(path)
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise MNISTFormatError(f"{path}: not a valid gzip file ({exc})") from exc
    return _parse_idx(data, str(path))


def _parse_idx(data: bytes, source: str) -> np.ndarray:
    if len(data) < 4:
        raise MNISTFormatError(f"{source}: {len(data)} bytes is too short for an IDX header")
    magic = struct.unpack(">I", data[:4])[0]
    ndim = data[3]
    if data[:3] != b"\x00\x00\x08" or ndim not in (1, 3):
        raise MNISTFormatError(
            f"{source}: magic number {magic} (0x{magic:08x}) is not an MNIST IDX magic "
            f"({IMAGE_MAGIC} for images, {LABEL_MAGIC} for labels)")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise MNISTFormatError(f"{source}: truncated header ({len(data)} bytes)")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    expected = header + int(np.prod(dims, dtype=np.int64))
    if len(data) < expected:
        raise MNISTFormatError(
            f"{source}: truncated: the header announces shape {dims} ({expected:,} bytes) "
            f"but there are only {len(data):,} bytes")
    if len(data) > expected:
        raise MNISTFormatError(
            f"{source}: {len(data) - expected:,} trailing bytes after the data of shape {dims}")
    return np.frombuffer(data, np.uint8, offset=header).reshape(dims)


def load_mnist_images(path: str | os.PathLike) -> np.ndarray:
    """Read an MNIST image file (magic 2051) as a uint8 array of shape (N, 28, 28).

    Raises
    ------
    MNISTFormatError
        If the file is not a valid image file of 28x28 images.
    """
    images = read_idx(path)
    if images.ndim != 3:
        raise MNISTFormatError(f"{path}: this is a label file (magic {LABEL_MAGIC}), "
                               f"an image file (magic {IMAGE_MAGIC}) was expected")
    if images.shape[1:] != (28, 28):
        raise MNISTFormatError(f"{path}: images are {images.shape[1]}x{images.shape[2]}, "
                               "MNIST images are 28x28")
    return images


def load_mnist_labels(path: str | os.PathLike) -> np.ndarray:
    """Read an MNIST label file (magic 2049) as a uint8 array of shape (N,).

    Raises
    ------
    MNISTFormatError
        If the file is not a valid label file or a label is above 9.
    """
    labels = read_idx(path)
    if labels.ndim != 1:
        raise MNISTFormatError(f"{path}: this is an image file (magic {IMAGE_MAGIC}), "
                               f"a label file (magic {LABEL_MAGIC}) was expected")
    if labels.size and labels.max() > 9:
        bad = int(np.argmax(labels > 9))
        raise MNISTFormatError(f"{path}: label {labels[bad]} at index {bad} is above 9")
    return labels


def _load_pair(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    images = load_mnist_images(images_path)
    labels = load_mnist_labels(labels_path)
    if len(images) != len(labels):
        raise MNISTFormatError(f"{images_path} has {len(images):,} images but "
                               f"{labels_path} has {len(labels):,} labels")
    # The tutorial's preparation: (N, 1, 28, 28) float32 divided by 256.
    return np.divide(images.reshape(-1, 1, 28, 28), 256, dtype=np.float32), labels.copy()


# -------------------------------------------------------------------- array cache

def _read_cache(folder: Path) -> dict[str, np.ndarray] | None:
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
        if manifest.get("md5") != [spec.md5 for spec in FILES]:
            return None
        arrays = {name: np.load(folder / f"{name}.npy", mmap_mode="c", allow_pickle=False)
                  for name in _ARRAY_NAMES}
    except (OSError, ValueError):
        return None
    for name, array in arrays.items():
        if array.shape != _SHAPES[name] or array.dtype != _DTYPES[name]:
            return None
    return arrays


def _write_cache(folder: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write the arrays to a temporary folder and rename it into place; never raises."""
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    except OSError:
        return  # an unwritable cache only costs speed
    try:
        for name, array in arrays.items():
            np.save(tmp / f"{name}.npy", array)
        (tmp / "manifest.json").write_text(json.dumps({"md5": [s.md5 for s in FILES]}))
        if folder.exists():
            stale = folder.with_name(tmp.name + "-stale")
            folder.rename(stale)
            shutil.rmtree(stale, ignore_errors=True)
        tmp.rename(folder)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------- public API

def load_dataset(
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    cache_dir: str | os.PathLike | None = None,
    progress: bool | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return MNIST exactly as the Lasagne tutorial's ``load_dataset()`` does.

    Images are float32 of shape (N, 1, 28, 28) divided by 256 (values 0 .. 255/256),
    labels uint8. The last 10,000 training images are the validation set.

    Parameters
    ----------
    data_dir : str or path-like, optional
        Folder of the four original files; default ``$MNIST_DATA_DIR``, else the
        per-user cache (:func:`default_data_dir`).
    download : bool
        Fetch missing or corrupt files (:func:`download_mnist`); if False, raise.
    cache_dir : str or path-like, optional
        Where the parsed arrays are cached; default :func:`default_cache_dir`.
    progress : bool, optional
        Download progress bars; default: when standard error is a terminal.

    Returns
    -------
    X_train, y_train, X_val, y_val, X_test, y_test : numpy.ndarray
        50,000 / 10,000 / 10,000 examples. The image arrays are copy-on-write memory
        maps of the cache: writable, and writing never changes the cache.

    Raises
    ------
    DataError
        Files missing or corrupt and ``download=False``, or the download failed.
    MNISTFormatError
        A file has the right name but is not valid IDX data.

    Examples
    --------
    >>> X_train, y_train, X_val, y_val, X_test, y_test = load_dataset()  # doctest: +SKIP
    >>> X_train.shape, X_train.dtype
    ((50000, 1, 28, 28), dtype('float32'))
    """
    folder = _resolve_data_dir(data_dir)
    found, problems = _scan(folder)
    if problems:
        if not download:
            raise DataError(_problems_message(problems, folder))
        found = download_mnist(folder, progress=progress)
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    cache = cache / _CACHE_VERSION
    arrays = _read_cache(cache)
    if arrays is None:
        paths = [found[spec.name] for spec in FILES]
        X_train, y_train = _load_pair(paths[0], paths[1])
        X_test, y_test = _load_pair(paths[2], paths[3])
        arrays = dict(zip(_ARRAY_NAMES, (X_train, y_train, X_test, y_test), strict=True))
        _write_cache(cache, arrays)
        arrays = _read_cache(cache) or arrays  # the same memory maps as a warm load
    X, y = arrays["train_images"], arrays["train_labels"]
    return (X[:-10000], y[:-10000], X[-10000:], y[-10000:],
            arrays["test_images"], arrays["test_labels"])


def iterate_minibatches(
    inputs: np.ndarray,
    targets: np.ndarray,
    batchsize: int,
    shuffle: bool = False,
    rng: np.random.Generator | int | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(inputs, targets)`` mini-batches as the tutorial's generator does.

    The last incomplete batch is dropped.

    Parameters
    ----------
    inputs, targets : numpy.ndarray
        Arrays of the same length.
    batchsize : int
        Examples per batch (>= 1).
    shuffle : bool
        Visit the examples in a random order.
    rng : numpy.random.Generator or int, optional
        Source of the order when shuffling (a seed makes it reproducible).

    Yields
    ------
    tuple of numpy.ndarray
        A batch of inputs and the matching targets.

    Examples
    --------
    >>> X, y = np.zeros((10, 1, 28, 28), np.float32), np.arange(10)
    >>> [len(b) for b, _ in iterate_minibatches(X, y, 4)]
    [4, 4]
    """
    if len(inputs) != len(targets):
        raise ValueError(f"inputs has {len(inputs)} examples but targets has {len(targets)}")
    for excerpt in minibatch_indices(len(inputs), batchsize, shuffle, rng):
        yield inputs[excerpt], targets[excerpt]


def minibatch_indices(
    n: int,
    batchsize: int,
    shuffle: bool = False,
    rng: np.random.Generator | int | None = None,
) -> np.ndarray:
    """Indices of the tutorial's mini-batches: shape (n // batchsize, batchsize).

    The order is ``arange(n)``, shuffled in place by ``rng`` when ``shuffle``; the last
    incomplete batch is dropped. :func:`iterate_minibatches` and the trainer share it,
    so both visit the examples in the same order for the same generator state.

    Examples
    --------
    >>> minibatch_indices(5, 2)
    array([[0, 1],
           [2, 3]])
    """
    if batchsize < 1:
        raise ValueError(f"batchsize must be at least 1, got {batchsize}")
    indices = np.arange(n)
    if shuffle:
        np.random.default_rng(rng).shuffle(indices)
    count = n // batchsize
    return indices[: count * batchsize].reshape(count, batchsize)
