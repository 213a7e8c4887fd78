"""How well the reader reads labelled folders of real users' digits and numbers.

A folder of single digits has a ``labels.csv`` with ``path``, ``label`` and ``kind``
columns; a folder of numbers the same with ``label_string`` (rows separated by a
space) in place of ``label``, as in the project's development sets. The figures here
are the ones the README and the tests quote: accuracy per kind, and for numbers the
pictures read exactly and the digits read right (their number less the edit distance
between the reading and the label).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Reading", "SetScore", "digits_matched", "read_labelled_numbers",
           "read_labelled_singles", "table_rows"]


def digits_matched(read: str, label: str) -> int:
    """How many of ``label``'s digits ``read`` gets right: their number less the edit
    distance between the two (a digit missed, added or misread costs one each).

    Spaces (row breaks) are ignored.

    Examples
    --------
    >>> digits_matched("1234", "1234"), digits_matched("12834", "1234"), digits_matched("", "12")
    (4, 3, 0)
    """
    a, b = read.replace(" ", ""), label.replace(" ", "")
    distance = list(range(len(b) + 1))  # of a[:i] to b[:j], row by row
    for i in range(1, len(a) + 1):
        diagonal, distance[0] = distance[0], i
        for j in range(1, len(b) + 1):
            diagonal, distance[j] = distance[j], min(diagonal + (a[i - 1] != b[j - 1]),
                                                     distance[j] + 1, distance[j - 1] + 1)
    return max(0, len(b) - distance[-1])


@dataclass(frozen=True)
class Reading:
    """One picture read: what it should say, what was read (``None``: refused)."""

    path: str
    kind: str
    label: str
    read: str | None
    note: str = ""

    @property
    def exact(self) -> bool:
        return self.read is not None and self.read.replace(" ", "") == self.label.replace(" ", "")

    @property
    def matched(self) -> int:
        return digits_matched(self.read or "", self.label)


@dataclass
class SetScore:
    """A folder's readings and its figures."""

    name: str
    readings: list[Reading] = field(default_factory=list)

    def kinds(self) -> list[str]:
        return sorted({r.kind for r in self.readings})

    def exact(self, kind: str | None = None) -> tuple[int, int]:
        """Pictures read exactly (digits in order; rows may be split differently), and
        how many there are."""
        chosen = [r for r in self.readings if kind in (None, r.kind)]
        return sum(r.exact for r in chosen), len(chosen)

    def digits(self, kind: str | None = None) -> tuple[int, int]:
        """Digits read right (aligned), and how many there are."""
        chosen = [r for r in self.readings if kind in (None, r.kind)]
        return (sum(r.matched for r in chosen),
                sum(len(r.label.replace(" ", "")) for r in chosen))

    def wrong(self) -> list[Reading]:
        return [r for r in self.readings if not r.exact]


def _rows(folder: Path, column: str) -> list[dict[str, str]]:
    with open(folder / "labels.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows or not {"path", column} <= set(rows[0]):
        raise ValueError(f"{folder / 'labels.csv'}: needs `path` and `{column}` columns")
    return rows


def _picture(path: Path, turn: float) -> str | np.ndarray:
    """The picture at ``path``; unless ``turn`` is 0, turned ``turn`` degrees
    counter-clockwise in its own frame, as a photo taken askew (the corners turned out
    are lost, those turned in continue its edges). A picture that cannot be loaded is
    left to the reader to refuse."""
    from scipy import ndimage

    from mnist_cnn.errors import ImageError
    from mnist_cnn.reading.images import load_grey

    if not turn:
        return str(path)
    try:
        grey = load_grey(path)
    except ImageError:
        return str(path)
    return np.clip(ndimage.rotate(grey, turn, reshape=False, order=1, mode="nearest"), 0, 1)


def read_labelled_singles(folder: str | os.PathLike, turn: float = 0.0,
                          **predict_args: Any) -> SetScore:
    """Read every single digit of a labelled folder with :func:`mnist_cnn.predict`
    (``predict_args`` passed on), each picture turned ``turn`` degrees
    counter-clockwise in its frame (:func:`scipy.ndimage.rotate`, its edges continued)
    to measure how a photo taken askew is read; a picture refused counts as wrong."""
    from mnist_cnn.reading.predictions import Prediction, predict

    folder = Path(folder)
    rows = _rows(folder, "label")
    found = predict([_picture(folder / row["path"], turn) for row in rows], errors="return",
                    **predict_args)
    score = SetScore(folder.name)
    for row, p in zip(rows, found, strict=True):
        ok = isinstance(p, Prediction)
        score.readings.append(Reading(row["path"], row.get("kind", ""), row["label"],
                                      str(p.digit) if ok else None,
                                      "" if ok else p.error))
    return score


def read_labelled_numbers(folder: str | os.PathLike,
                          progress: Callable[[str], None] | None = None,
                          turn: float = 0.0, **read_args: Any) -> SetScore:
    """Read every number of a labelled folder with :func:`mnist_cnn.read_number`
    (``read_args`` passed on), each picture turned ``turn`` degrees counter-clockwise as
    in :func:`read_labelled_singles`; a picture refused counts as read as nothing."""
    from mnist_cnn.errors import ImageError
    from mnist_cnn.reading.numbers import read_number

    folder = Path(folder)
    score = SetScore(folder.name)
    for row in _rows(folder, "label_string"):
        if progress:
            progress(row["path"])
        try:
            read, note = read_number(_picture(folder / row["path"], turn),
                                     **read_args).text, ""
        except ImageError as exc:
            read, note = None, str(exc)
        score.readings.append(Reading(row["path"], row.get("kind", ""), row["label_string"],
                                      read, note))
    return score


def table_rows(score: SetScore, numbers: bool) -> list[str]:
    """Markdown table rows: per kind and in all, exact pictures (and, for numbers,
    digits read right)."""
    lines = []
    for kind in [*score.kinds(), None]:
        right, total = score.exact(kind)
        cells = [score.name, kind or "**all**", f"{right}/{total} ({100 * right / total:.1f} %)"]
        if numbers:
            good, digits = score.digits(kind)
            cells.append(f"{good}/{digits} ({100 * good / digits:.1f} %)")
        lines.append("| " + " | ".join(cells) + " |")
    return lines
