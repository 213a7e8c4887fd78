"""MNIST as the Lasagne tutorial loads it: find, verify, download, parse and cache.

Data flows one way: the four original IDX files (``.gz`` or uncompressed) are located,
checked against their published hashes, downloaded when missing (mirrors in order,
hash-checked before they are renamed into place), parsed strictly, and cached as
float32 ``.npy`` arrays, so that a warm :func:`load_dataset` only memory-maps them after
checking their SHA-256.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import struct
import tempfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from mnist_cnn import defaults
from mnist_cnn.errors import DataError, DownloadError, MNISTFormatError
from mnist_cnn.progress import show_progress
from mnist_cnn.storage.files import FileFormatError, atomic_write, open_regular

__all__ = [
    "FILES",
    "MIRRORS",
    "MnistFile",
    "default_cache_dir",
    "default_data_dir",
    "download_mnist",
    "find_mnist_files",
    "iterate_minibatches",
    "load_dataset",
    "load_mnist_images",
    "load_mnist_labels",
    "minibatch_indices",
    "read_idx",
]

#: Where the files are fetched from, tried in this order: LeCun's site, then the two
#: public mirrors that serve the same bytes.
MIRRORS: tuple[str, ...] = (
    "http://yann.lecun.com/exdb/mnist/",
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)

IMAGE_MAGIC = 2051
LABEL_MAGIC = 2049
_CACHE_VERSION = "arrays-v2"


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

#: No MNIST file is larger uncompressed; an IDX file declaring more is refused.
MAX_IDX_BYTES = max(f.raw_size for f in FILES)

_ARRAY_NAMES = ("train_images", "train_labels", "test_images", "test_labels")
_SHAPES = {
    "train_images": (60000, 1, 28, 28),
    "train_labels": (60000,),
    "test_images": (10000, 1, 28, 28),
    "test_labels": (10000,),
}
_DTYPES = {"train_images": np.dtype(np.float32), "train_labels": np.dtype(np.uint8),
           "test_images": np.dtype(np.float32), "test_labels": np.dtype(np.uint8)}


# --------------------------------------------------------------------------- folders

def default_cache_dir() -> Path:
    """Per-user cache folder of mnist-cnn (``MNIST_CNN_CACHE_DIR`` overrides it).

    Returns
    -------
    pathlib.Path
        e.g. ``~/.cache/mnist-cnn`` on Linux, ``~/Library/Caches/mnist-cnn`` on macOS.
    """
    import pooch

    return Path(pooch.create(path=pooch.os_cache("mnist-cnn"), base_url="",
                             env="MNIST_CNN_CACHE_DIR").abspath)


def default_data_dir() -> Path:
    """Folder of the MNIST files when none is given: ``MNIST_DATA_DIR``, else the cache.

    Returns
    -------
    pathlib.Path
        ``$MNIST_DATA_DIR`` if set, else ``default_cache_dir() / "mnist"``.
    """
    import pooch

    return Path(pooch.create(path=default_cache_dir() / "mnist", base_url="",
                             env="MNIST_DATA_DIR").abspath)


def _resolve_data_dir(data_dir: str | os.PathLike | None) -> Path:
    return Path(data_dir).expanduser() if data_dir is not None else default_data_dir()


# --------------------------------------------------------------------- verification

def _check(path: Path, spec: MnistFile) -> str | None:
    """``None`` if ``path`` holds ``spec``'s exact bytes, else what is wrong with it."""
    import pooch

    raw = not path.name.endswith(".gz")
    size, algorithm, digest = (
        (spec.raw_size, "sha256", spec.raw_sha256) if raw else (spec.size, "md5", spec.md5))
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            return f"{path} is not a regular file"
        found = pooch.file_hash(str(path), alg=algorithm) if info.st_size == size else None
        if found == digest:
            return None
    except OSError as exc:
        return f"{path} cannot be read ({exc.strerror or exc})"
    found_text = f"{info.st_size:,} bytes" + (f" with {algorithm.upper()} {found}"
                                              if found else "")
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
            if candidate.exists() or candidate.is_symlink():
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
    timeout: float = defaults.DOWNLOAD_TIMEOUT,
    progress: bool | None = None,
) -> dict[str, Path]:
    """Make sure the four MNIST files are in ``data_dir``, downloading those missing.

    Files already present and intact are kept (no network request). A missing or
    corrupt file is fetched from each mirror in turn with pooch's downloader: it goes
    to a temporary file in the same folder, is checked against the published MD5 and
    only then renamed into place, so a failed or corrupt download leaves nothing.

    Parameters
    ----------
    data_dir : str or path-like, optional
        Destination folder (created if needed); default :func:`default_data_dir`.
    mirrors : sequence of str
        Base URLs tried in order.
    timeout : float
        Seconds to wait for a server to connect or to send more data.
    progress : bool, optional
        Show a progress bar per file; default: when standard error is a terminal, or in Jupyter.

    Returns
    -------
    dict
        Published file name -> path of a verified copy.

    Raises
    ------
    DownloadError
        If a file could not be fetched from any mirror; the message says what was
        wrong with the file on disk, names every URL tried with its failure, and where
        to put the files by hand.

    Examples
    --------
    >>> paths = download_mnist("~/data/mnist")  # doctest: +SKIP
    """
    folder = _resolve_data_dir(data_dir)
    found, problems = _scan(folder)
    progress = show_progress(progress)
    for spec in FILES:
        if spec.name in problems:
            found[spec.name] = _download_one(spec, folder, mirrors, timeout, progress,
                                             problems[spec.name])
    return found


class _HashingWriter:
    """A file wrapper that computes the MD5 of what is written through it."""

    def __init__(self, f: IO[bytes]) -> None:
        self.f, self.md5 = f, hashlib.md5()

    def write(self, data: bytes) -> int:
        self.md5.update(data)
        return self.f.write(data)

    def flush(self) -> None:
        self.f.flush()


class _NotTheFile(Exception):
    """The downloaded bytes are not the published file."""


def _download_one(spec: MnistFile, folder: Path, mirrors: Sequence[str], timeout: float,
                  progress: bool, problem: str) -> Path:
    """Fetch one file from the first mirror that delivers its exact bytes."""
    import pooch

    failures = []
    target = folder / spec.name
    for base in mirrors:
        url = base.rstrip("/") + "/" + spec.name
        downloader = pooch.HTTPDownloader(progressbar=progress, timeout=timeout)
        try:
            with atomic_write(target) as f:
                writer = _HashingWriter(f)
                downloader(url, writer, None)
                if writer.md5.hexdigest() != spec.md5:
                    raise _NotTheFile
            return target
        except PermissionError as exc:
            raise DownloadError(f"cannot write MNIST files to {folder} ({exc.strerror}); "
                                "choose another folder with --data-dir or "
                                "MNIST_DATA_DIR") from None
        except Exception as exc:  # every failure is reported, per URL
            failures.append(f"{url}: {_describe_failure(exc, timeout)}")
    first = (f"could not download {spec.name}" if problem.endswith("is missing")
             else f"{problem}, and a fresh copy could not be downloaded")
    raise DownloadError(
        f"{first} ({'; '.join(failures)}). Download the files by hand "
        f"({', '.join(s.name for s in FILES)}) and put them in {folder}, or set "
        "MNIST_DATA_DIR to the folder that holds them.")


def _describe_failure(exc: Exception, timeout: float) -> str:
    import requests
    import urllib3

    if isinstance(exc, _NotTheFile):
        return "the downloaded bytes do not match the published MD5 (discarded)"
    if isinstance(exc, requests.exceptions.HTTPError) and exc.response is not None:
        return f"HTTP {exc.response.status_code} {exc.response.reason}".rstrip()
    stalled = isinstance(exc, requests.exceptions.ConnectionError) and exc.args and \
        isinstance(exc.args[0], urllib3.exceptions.ReadTimeoutError)
    if isinstance(exc, requests.exceptions.Timeout) or stalled:
        return f"timed out: the server sent nothing for {timeout:g} s"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return "the connection broke off before the end of the file"
    if isinstance(exc, requests.exceptions.ConnectionError):
        return "connection failed or broke off"
    if isinstance(exc, requests.exceptions.RequestException):
        return f"download failed ({type(exc).__name__})"
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
        Not a regular file, not gzip-readable, wrong magic number, truncated data,
        trailing bytes, or larger than any MNIST file.
    """
    path = Path(path)
    try:
        with open_regular(path, "MNIST file") as f:
            data = f.read(MAX_IDX_BYTES + 1)
    except FileFormatError as exc:
        raise MNISTFormatError(str(exc)) from None
    if data[:2] == b"\x1f\x8b":
        try:
            inflater = zlib.decompressobj(wbits=31)
            data = inflater.decompress(data, MAX_IDX_BYTES + 1)
            if not inflater.eof and len(data) <= MAX_IDX_BYTES:
                raise EOFError("compressed file ended before the end-of-stream marker")
        except (OSError, EOFError, zlib.error) as exc:
            raise MNISTFormatError(f"{path}: not a valid gzip file ({exc})") from None
        if inflater.eof and inflater.unused_data:  # MNIST's files are one gzip member each
            raise MNISTFormatError(
                f"{path}: {len(inflater.unused_data):,} bytes after the end of the gzip "
                "stream (a second member, or trailing data); download the file again")
    if len(data) > MAX_IDX_BYTES:
        raise MNISTFormatError(f"{path}: over {MAX_IDX_BYTES:,} bytes, larger than any "
                               "MNIST file")
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


def load_mnist_pair(images_path: str | os.PathLike,
                    labels_path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels as the tutorial prepares them: (N, 1, 28, 28) float32 / 256.

    Raises
    ------
    MNISTFormatError
        If either file is not valid, or their counts differ.
    """
    images = load_mnist_images(images_path)
    labels = load_mnist_labels(labels_path)
    if len(images) != len(labels):
        raise MNISTFormatError(f"{images_path} has {len(images):,} images but "
                               f"{labels_path} has {len(labels):,} labels")
    return np.divide(images.reshape(-1, 1, 28, 28), 256, dtype=np.float32), labels.copy()


# -------------------------------------------------------------------- array cache

def _sha256(path: Path) -> str:
    """SHA-256 of a file's bytes (read through a memory map: no copy)."""
    if path.stat().st_size == 0:
        return hashlib.sha256(b"").hexdigest()
    return hashlib.sha256(np.memmap(path, np.uint8, mode="r")).hexdigest()


def _read_cache(folder: Path) -> dict[str, np.ndarray] | None:
    """The cached arrays, or None unless every file is exactly what was written."""
    try:
        with open_regular(folder / "manifest.json", "cache manifest") as f:
            manifest = json.loads(f.read(1 << 16))
        if not isinstance(manifest, dict) or manifest.get("md5") != [s.md5 for s in FILES]:
            return None
        digests = manifest.get("sha256")
        if not isinstance(digests, dict):
            return None
        arrays = {}
        for name in _ARRAY_NAMES:
            path = folder / f"{name}.npy"
            if not stat.S_ISREG(path.stat().st_mode) or digests.get(name) != _sha256(path):
                return None
            arrays[name] = np.load(path, mmap_mode="c", allow_pickle=False)
    except (OSError, ValueError, FileFormatError):
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
        digests = {}
        for name, array in arrays.items():
            np.save(tmp / f"{name}.npy", array)
            digests[name] = _sha256(tmp / f"{name}.npy")
        (tmp / "manifest.json").write_text(json.dumps(
            {"md5": [s.md5 for s in FILES], "sha256": digests}))
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
        Where the parsed arrays are cached; default :func:`default_cache_dir`. A cache
        whose files do not match the SHA-256 recorded when it was written is rebuilt.
    progress : bool, optional
        Download progress bars; default: when standard error is a terminal, or in Jupyter.

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
        X_train, y_train = load_mnist_pair(paths[0], paths[1])
        X_test, y_test = load_mnist_pair(paths[2], paths[3])
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
    rng: np.random.RandomState | int | None = None,
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
    rng : numpy.random.RandomState or int, optional
        Source of the order when shuffling (a seed makes it reproducible); the
        tutorial's is the global ``np.random``.

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
    rng: np.random.RandomState | int | None = None,
) -> np.ndarray:
    """Indices of the tutorial's mini-batches: shape (n // batchsize, batchsize).

    As the tutorial's ``iterate_minibatches``: the order is ``arange(n)``, shuffled in
    place by ``rng.shuffle`` (a ``RandomState``, or one seeded with ``rng``) when
    ``shuffle``; the last incomplete batch is dropped. The training loop uses it with
    the generator that initialised the network, as the tutorial uses ``np.random``.

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
        if not isinstance(rng, np.random.RandomState):
            rng = np.random.RandomState(rng)
        rng.shuffle(indices)
    count = n // batchsize
    return indices[: count * batchsize].reshape(count, batchsize)
