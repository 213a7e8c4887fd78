"""A writer's own labelled digits, read as ``predict`` reads images.

Three ways to label a folder, tried in this order:

* a ``labels.csv`` with a header holding ``path`` and ``label`` (other columns are
  ignored), paths relative to the folder;
* a subfolder per digit, ``0/`` to ``9/``, each holding that digit's images;
* file names starting with the digit: ``4.png``, ``4_closed.jpg``, ``7-crossed.png``.
"""

from __future__ import annotations

import csv
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mnist_cnn.errors import ImageError, MnistCnnError
from mnist_cnn.reading.images import preprocess_image

__all__ = ["IMAGE_SUFFIXES", "LabelledDigits", "LabelsError", "read_labelled_digits"]

#: The image files looked at in a folder.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
_MAX_DIGITS = 100_000
_MAX_CSV_BYTES = 10 << 20


class LabelsError(MnistCnnError):
    """A folder of labelled digits that cannot be used: no digits, a wrong label."""


@dataclass(frozen=True)
class LabelledDigits:
    """Digits with their labels, as the network's inputs.

    Attributes
    ----------
    images : numpy.ndarray
        float32 (N, 28, 28), as :func:`~mnist_cnn.reading.images.preprocess_image` makes
        them.
    labels : numpy.ndarray
        int64 (N,), 0 to 9.
    files : list of str
        Where each came from.
    sha256 : list of str
        Each file's SHA-256 (what a sidecar records instead of the images).
    """

    images: np.ndarray
    labels: np.ndarray
    files: list[str]
    sha256: list[str]

    def __len__(self) -> int:
        return len(self.labels)

    def counts(self) -> list[int]:
        """How many of each digit, 0 to 9."""
        return np.bincount(self.labels, minlength=10).tolist()

    def subset(self, index: np.ndarray) -> LabelledDigits:
        """The digits at ``index``."""
        return LabelledDigits(self.images[index], self.labels[index],
                              [self.files[i] for i in index], [self.sha256[i] for i in index])


def _label(text: str, where: str) -> int:
    if text.strip() not in {str(d) for d in range(10)}:
        raise LabelsError(f"{where}: the label {text.strip()!r} is not a digit 0 to 9")
    return int(text)


def _from_csv(folder: Path) -> list[tuple[Path, int]]:
    path = folder / "labels.csv"
    if path.stat().st_size > _MAX_CSV_BYTES:
        raise LabelsError(f"{path}: over {_MAX_CSV_BYTES >> 20} MB, too large for labels")
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise LabelsError(f"{path}: not a readable CSV file ({exc})") from None
    if not rows or not {"path", "label"} <= set(rows[0]):
        raise LabelsError(f"{path}: needs a header with `path` and `label` columns")
    found = []
    for line, row in enumerate(rows, start=2):
        name = (row.get("path") or "").strip()
        if not name:
            raise LabelsError(f"{path}, line {line}: no path")
        file = (folder / name).resolve()
        if folder.resolve() not in file.parents:
            raise LabelsError(f"{path}, line {line}: {name} is outside the folder")
        found.append((file, _label(row.get("label") or "", f"{path}, line {line}")))
    return found


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def read_labelled_digits(folder: str | os.PathLike) -> LabelledDigits:
    """Read and label the digit images of a folder (see this module's docstring).

    Raises
    ------
    LabelsError
        Not a folder, no labelled image in it, a label that is not a digit.
    ImageError
        An image that cannot be read, or holds no digit (the message names it).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise LabelsError(f"{folder}: not a folder of labelled digits")
    if (folder / "labels.csv").is_file():
        found = _from_csv(folder)
    elif any((folder / str(d)).is_dir() for d in range(10)):
        found = [(file, d) for d in range(10) if (folder / str(d)).is_dir()
                 for file in _files(folder / str(d))]
    else:
        found = [(file, int(file.name[0])) for file in _files(folder)
                 if file.name[0].isdigit() and file.name[0].isascii()]
    if not found:
        raise LabelsError(f"{folder}: no labelled digits: give a labels.csv (path,label), "
                          "subfolders 0 to 9, or file names starting with the digit")
    if len(found) > _MAX_DIGITS:
        raise LabelsError(f"{folder}: {len(found):,} digits, more than {_MAX_DIGITS:,}")
    images, hashes = [], []
    for file, _ in found:
        images.append(preprocess_image(file))  # checks the file first: size, kind
        digest = hashlib.sha256()
        try:
            with open(file, "rb") as f:
                while chunk := f.read(1 << 20):
                    digest.update(chunk)
        except OSError as exc:
            raise ImageError(f"{file}: cannot be read ({exc.strerror or exc})") from None
        hashes.append(digest.hexdigest())
    return LabelledDigits(np.stack(images).astype(np.float32),
                          np.array([label for _, label in found], np.int64),
                          [str(file) for file, _ in found], hashes)
