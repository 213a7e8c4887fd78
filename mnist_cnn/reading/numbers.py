"""Read a whole written number: its digits left to right, rows top to bottom.

The page is cut into characters (:mod:`mnist_cnn.reading.segmentation`); each is classified
like a single digit. A character of several pieces, or wide enough to be touching
digits, is also tried parted between its pieces and at the columns where its ink is
thinnest; each part is read the same way, and the reading the network is surest of
wins: the product of its digits' probabilities, a parting weighed by how likely a
character that wide is to be several digits (a slashed 0 is one) and its shorter part
to be a digit (a 9's loop cut from its tail is not), and each part by whether it is
as wide as the digit it is read as (a sliver is a 1 or no digit). A character of pieces
one over another is also tried as two digits, weighed by how tall it is. The models'
probabilities are averaged (the bundled ones by default); a page stored sideways
is read turned.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mnist_cnn import defaults
from mnist_cnn.nets.inference import ensemble_proba
from mnist_cnn.reading.images import describe, load_grey
from mnist_cnn.reading.mnist_format import crop_to_ink
from mnist_cnn.reading.predictions import Prediction, bundled_models
from mnist_cnn.reading.segmentation import (
    PART,
    Character,
    Page,
    character_image,
    cut_candidates,
    piece_splits,
    read_page,
    split,
    stack_splits,
)
from mnist_cnn.storage.weights_file import WeightsLike, as_weights

__all__ = ["LeftOut", "NumberReading", "read_number"]

#: Touching digits are parted at most this many times over in one character.
_DEPTH = 3
#: A parting's score is scaled by how likely a character this wide (in row heights) is
#: to be more than one digit: not at all up to ``_ONE_WIDE``, surely from ``_TWO_WIDE``.
_ONE_WIDE, _TWO_WIDE = 0.5, 1.0
#: A parting's score is scaled down too when its shorter part is under this much of
#: the row's height (:func:`_short_part_prior`).
_FULL_PART = 0.7
#: A stacking's score is scaled by how likely a character this tall (height over width)
#: is to be two digits one over another.
_ONE_HIGH, _TWO_HIGH = 1.5, 2.2
#: A page whose pieces' median height over width is under this is tried turned.
_SIDEWAYS = 0.95
#: It is read turned only if the network finds its pieces read alone turned, all
#: together, this many times as likely as upright: most pictures are upright, and a few
#: pieces (a 1 with a foot, a wide 4) may be likelier turned by chance.
_TURNED_ODDS = 2.0
#: MNIST keeps each digit's aspect ratio: of its 53,258 training digits other than 1s,
#: 16 are under 0.4 times as wide as tall (their ink's box in the 28x28 field) and none
#: under 0.3; a part of a character that narrow is a 1, or no digit
#: (:func:`_shape_prior`).
_NARROW, _NARROWEST = 0.4, 0.25


def _parting_prior(width: float, height: float) -> float:
    """How plausible it is that a character ``width`` wide in a row ``height`` tall is
    two or more digits (a slashed 0 or a wide 4 is one; "11" may be narrow)."""
    return float(np.clip((width / height - _ONE_WIDE) / (_TWO_WIDE - _ONE_WIDE), 0.05, 1.0))


@dataclass(frozen=True)
class LeftOut:
    """A mark on the page not read as a digit.

    Attributes
    ----------
    box : tuple of int
        ``(top, left, bottom, right)`` in the picture as read.
    reason : str
        Why: an underline or dash, dust, a page's edge or shadow at the border.
    """

    box: tuple[int, int, int, int]
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """Its JSON-ready record in ``predict --number --json``."""
        return {"box": list(self.box), "reason": self.reason}


@dataclass(frozen=True)
class NumberReading:
    """The network's reading of a written number.

    Attributes
    ----------
    source : str
        The file name, or a description of the image.
    rows : list of list of Prediction
        Each row's digits, left to right; rows top to bottom. Each digit's ``box`` is
        ``(top, left, bottom, right)`` in the picture (as read: pictures over 1024 px
        are reduced first, and turned by ``turned``).
    left_out : list of LeftOut
        Marks that were not read as digits, and why (an underline, dust, a page's edge).
    turned : int
        Degrees counter-clockwise the picture was turned to read it: 0, or 90 or 270
        for a page stored sideways (its pieces of ink wider than tall, and the network
        surer of the digits turned, and of the pieces read alone).
    """

    source: str
    rows: list[list[Prediction]]
    left_out: list[LeftOut] = field(default_factory=list)
    turned: int = 0

    @property
    def digits(self) -> list[Prediction]:
        """Every digit, row after row."""
        return [p for row in self.rows for p in row]

    @property
    def text(self) -> str:
        """The number as written: ``"2024"``; rows are separated by a space."""
        return " ".join("".join(str(p.digit) for p in row) for row in self.rows)

    @property
    def probability(self) -> float:
        """The product of the digits' probabilities: how sure the network is of the
        whole reading."""
        return float(np.prod([p.probability for p in self.digits]))

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready record of ``mnist-cnn predict --number --json``."""
        return {"number": self.text, "probability": self.probability,
                "turned": self.turned,
                "rows": [[p.to_dict() for p in row] for row in self.rows],
                "left_out": [m.to_dict() for m in self.left_out]}


def _short_part_prior(part: float, height: float) -> float:
    """How plausible it is that the shorter part of a parting, ``part`` tall in a row
    ``height`` tall, is a digit of its own: hardly (0.05) at :data:`PART` of the row's
    height (a 9's loop cut from its tail), surely from :data:`_FULL_PART`."""
    return float(np.clip((part / height - PART) / (_FULL_PART - PART), 0.05, 1.0))


def _shape_prior(image: np.ndarray, digit: int) -> float:
    """How plausible it is that a part of a character, ``image`` in MNIST's format, is
    the ``digit`` the network reads: a 1 is any width, any other digit is hardly (0.05)
    :data:`_NARROWEST` times as wide as tall and surely from :data:`_NARROW` (the right
    half of a 3 cut from it, read as 3, is not a 3)."""
    if digit == 1 or not image.any():
        return 1.0
    height, width = crop_to_ink(image).shape
    aspect = width / height
    return float(np.clip((aspect - _NARROWEST) / (_NARROW - _NARROWEST), 0.05, 1.0))


def _stacking_prior(height: float, width: float) -> float:
    """How plausible it is that a character ``height`` tall and ``width`` wide is two
    digits one over another: not at all up to :data:`_ONE_HIGH` times as tall as wide
    (a digit, a 5 with its bar apart), surely from :data:`_TWO_HIGH`."""
    return float(np.clip((height / max(width, 1) - _ONE_HIGH) / (_TWO_HIGH - _ONE_HIGH),
                         0.05, 1.0))


def _read(page: Page, character: Character, height: float, classify, seen: dict,
          depth: int = 0) -> tuple[float, list[tuple[Character, np.ndarray, np.ndarray]]]:
    """A character's best reading: its score (the product of its digits'
    probabilities, times :func:`_parting_prior` for each parting) and its digits,
    ``(part, 28x28 image, probabilities)`` each. ``seen`` keeps each part's image and
    probabilities, read once however many partings share it."""
    if (character, height) not in seen:
        image = character_image(page, character, height)
        seen[character, height] = image, classify([image])[0]
    image, proba = seen[character, height]
    digit = int(proba.argmax())
    # A part of a parting must have the shape of the digit it is read as.
    shape = _shape_prior(image, digit) if depth else 1.0
    best = shape * float(proba[digit]), [(character, image, proba)]
    if depth >= _DEPTH:
        return best
    prior = _parting_prior(character.width, height)
    for left, right in piece_splits(page, character) + [
            split(page, character, c) for c in cut_candidates(page, character, height)]:
        short = min(left.height, right.height)
        if short < PART * height:
            continue
        weight = prior * _short_part_prior(short, height)
        left_score, left_digits = _read(page, left, height, classify, seen, depth + 1)
        if weight * left_score <= best[0]:
            continue
        right_score, right_digits = _read(page, right, height, classify, seen, depth + 1)
        if weight * left_score * right_score > best[0]:
            best = weight * left_score * right_score, left_digits + right_digits
    # One digit written over another: each part at least a third of the character.
    prior = _stacking_prior(character.height, character.width)
    for upper, lower in stack_splits(page, character):
        if min(upper.height, lower.height) < character.height / 3:
            continue
        upper_score, upper_digits = _read(page, upper, upper.height, classify, seen, depth + 1)
        lower_score, lower_digits = _read(page, lower, lower.height, classify, seen, depth + 1)
        # Two pieces one over another in a character this tall are unlikely to be one
        # digit (an "8" read from a 5 over a 6): that reading is weighed by 1 - prior.
        if prior * upper_score * lower_score > max(1 - prior, 0.05) * best[0]:
            best = prior * upper_score * lower_score, upper_digits + lower_digits
    return best


def read_number(src: Any, weights: WeightsLike | None = None, top: int = defaults.TOP,
                device: str = defaults.DEVICE,
                engine: str = defaults.INFERENCE_ENGINE) -> NumberReading:
    """Read the digits of a number written in a photo, scan or drawing.

    Parameters
    ----------
    src : path, PIL.Image.Image or numpy.ndarray
        The picture, as for :func:`mnist_cnn.predict`.
    weights : Weights, list of numpy.ndarray or path, optional
        Default: the models bundled with the package, their probabilities
        averaged (:func:`mnist_cnn.reading.predictions.bundled_models`).
    top : int
        How many digits to list in each digit's ``top`` (1 to 10).
    device, engine : str
        As for :func:`mnist_cnn.predict`.

    Returns
    -------
    NumberReading
        ``.text`` is the number (``"2024"``); ``.digits`` have a probability each.

    Raises
    ------
    ImageError
        If the picture cannot be read or holds no ink.

    Examples
    --------
    >>> read_number("year.jpg").text  # doctest: +SKIP
    '2024'
    """
    if not 1 <= top <= 10:
        raise ValueError(f"top must be between 1 and 10, got {top}")
    name = describe(src)
    grey = load_grey(src)
    page = read_page(grey, name)
    models = [as_weights(w) for w in ([weights] if weights is not None else bundled_models())]

    def classify(images: list[np.ndarray]) -> np.ndarray:
        return ensemble_proba(models, np.stack(images)[:, None], device=device, engine=engine)

    turned, rows = 0, _read_rows(page, name, classify, top)
    if _sideways(page):
        # Turned either way, a reading the network is surer of, per digit, wins if the
        # page's pieces of ink read alone are likelier turned that way too.
        pieces = _pieces_sureness(page, classify)
        for turn in (90, 270):
            if pieces[turn] - pieces[0] <= np.log(_TURNED_ODDS):
                continue
            other = read_page(np.rot90(grey, turn // 90), name)
            other_rows = _read_rows(other, name, classify, top)
            if _sureness(other_rows) > _sureness(rows):
                turned, page, rows = turn, other, other_rows
    return NumberReading(name, rows, [LeftOut(c.bbox, why) for c, why in page.left_out],
                         turned)


def _sideways(page: Page) -> bool:
    """Whether the page may be stored sideways: most of its pieces of ink are wider
    than tall (a digit is taller than wide; a bar or a dash is a few of them)."""
    pieces = list(page.pieces.values())
    return len(pieces) >= 2 and float(np.median(
        [(p.bbox[2] - p.bbox[0]) / (p.bbox[3] - p.bbox[1]) for p in pieces])) < _SIDEWAYS


def _sureness(rows: list[list[Prediction]]) -> float:
    """How sure the network is of a reading, per digit: the mean log-probability."""
    digits = [p.probability for row in rows for p in row]
    return float(np.mean(np.log(np.maximum(digits, 1e-12)))) if digits else -np.inf


def _pieces_sureness(page: Page, classify) -> dict[int, float]:
    """How sure the network is of a page's pieces of ink, each read alone as it stands
    and turned 90 and 270 degrees: the sum of the log-probabilities of their likeliest
    digits, by turn.

    The reading of the whole page turned is not enough: a row of digits turned the
    wrong way is a column, whose digits may be taken as one character one over
    another, and one sure guess at such a character can outweigh, per digit, three
    digits read right."""
    alone = [Character((label,), page.pieces[label].bbox)
             for row in page.rows for character in row for label in character.labels]
    sureness = dict.fromkeys((0, 90, 270), 0.0)
    if not alone:
        return sureness
    for turn in sureness:
        proba = classify([character_image(page, piece, turn=turn) for piece in alone])
        sureness[turn] = float(np.sum(np.log(np.maximum(proba.max(axis=1), 1e-12))))
    return sureness


def _read_rows(page: Page, name: str, classify, top: int) -> list[list[Prediction]]:
    """Each row's digits, characters parted where the network is surer (:func:`_read`)."""
    rows, seen = [], {}
    for r, row in enumerate(page.rows):
        height = page.row_height(r)
        digits = []
        for character in row:
            for part, image, proba in _read(page, character, height, classify, seen)[1]:
                digits.append(Prediction.of(
                    f"{name} (row {r + 1}, digit {len(digits) + 1})", proba, top, image,
                    part.bbox))
        rows.append(digits)
    return rows
