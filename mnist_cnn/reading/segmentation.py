"""Find the digits of a written number: characters in rows, and where touching ones part.

A number written on paper is a row of digits (or several rows), each one or a few
pieces of ink (a 5's bar, a 4's cross-stroke); neighbours may touch. The steps:

* the page's ink is found as for one digit (:func:`mnist_cnn.reading.ink.map_ink`), and its
  pieces (:func:`mnist_cnn.reading.ink.ink_pieces`);
* pieces at the picture's border unlike the digits inside (a page's edge, a shadow's
  edge) are left out, and so are lines across (an underline, a dash) and boxes drawn
  around digits (:func:`mnist_cnn.reading.ink.ink_pieces`);
* pieces stacked over each other are one character (:func:`find_characters`); one as
  tall as two or more rows of the others is cut between them (a grid's touching rows);
* characters that share a height band form a row; rows read top to bottom, characters
  left to right; dots and dust far smaller than the digits are left out, in a row or in
  a band of their own above or below it (a small ring is a 0 written small, not dust);
  what is left out is kept with the reason (:attr:`Page.left_out`);
* a character may be two or more digits: written close, with a stroke over the other
  (:func:`piece_splits` parts its pieces), or touching (:func:`cut_candidates` lists
  the columns where its ink is thinnest or its outline dips between two digits,
  :func:`split` parts it there).
  :func:`character_image` gives any character or part in MNIST's format; which parting
  is right is for the network to say (:func:`mnist_cnn.reading.numbers.read_number`).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from functools import reduce
from itertools import pairwise

import numpy as np

from mnist_cnn.errors import ImageError
from mnist_cnn.reading.grouping import column_neighbours, groups
from mnist_cnn.reading.ink import (
    InkMap,
    Piece,
    digit_ink,
    ink_pieces,
    is_line,
    is_stroke,
    one_over_another,
    stroke_width,
    thickest_parts,
)
from mnist_cnn.reading.mnist_format import MNIST_STROKE, crop_to_ink, mnist_format

__all__ = ["MAX_CHARACTERS", "MAX_PIECES", "PART", "Character", "Page", "character_image",
           "cut_candidates", "find_characters", "piece_splits", "read_page", "split",
           "stack_splits"]

#: A page with more separate pieces of ink than this is refused before they are grouped
#: (specks, a texture, a photo of something else); a number, even a filled-in grid of
#: digits, has far fewer.
MAX_PIECES = 1000
#: A page with more characters than this is refused before they are read.
MAX_CHARACTERS = 300

#: Pieces are one character when they overlap horizontally by half the narrower one
#: and lie within this fraction of the taller one's height of each other vertically.
_STACK_GAP = 0.3
#: A character under this fraction of its row's height is part of a neighbour (a 5's
#: bar written apart), or dust; so is any part of a parted character.
PART = 0.5
#: A small character that closes a loop around paper (a 0 written smaller than the other
#: digits, as many people write it) is a digit of its own from this much of its row's
#: height; its loop holds at least ``_HOLE`` of its box.
_RING, _HOLE = 0.3, 0.1
#: Small characters one over another within this fraction of their row's height are
#: one digit written in pieces when together they are as tall as a digit; two specks
#: of dust (each a few hundredths of the height) are not.
_BROKEN_GAP = 0.25
#: A piece of ink under this fraction of the page's digits' height each way, and about
#: as long as thick (its longer side under ``_ROUND`` times its stroke width, 2 area /
#: perimeter: a square's or a disc's is twice it, a bar half again as long as thick
#: 2.5 times it), is a dot or a speck of dust, not a part of a digit near it (a 5's bar
#: written apart is longer than thick).
_DOT, _ROUND = 0.15, 2.2
_FAR_SMALLER = "far smaller than the page's digits (a dot, dust)"
#: A faint piece of ink is a digit when it is this much of its row's height.
_FAINT = 0.6
#: A character this many times as tall as the page's digits (:func:`_digit_height`) is
#: digits one over another.
_TWO_HIGH = 1.6
#: A character at least this many row heights wide may be touching digits.
_MAY_TOUCH = 0.75
#: Where the outline of touching digits dips (between their tops) or rises (between
#: their bottoms) by at least this much of a row height, they may part.
_DIP = 0.1
#: A page may be tilted up to this many degrees either way; tilts are tried this far apart.
_MAX_TILT, _TILT_STEP = 10.0, 0.5


@dataclass(frozen=True)
class Character:
    """One character of a number: one digit, or touching digits not yet parted.

    Attributes
    ----------
    labels : tuple of int
        Its pieces' numbers in :attr:`Page.labels`.
    bbox : tuple of int
        ``(top, left, bottom, right)`` in the page's pixels, bottom and right excluded.
    """

    labels: tuple[int, ...]
    bbox: tuple[int, int, int, int]

    @property
    def height(self) -> int:
        return self.bbox[2] - self.bbox[0]

    @property
    def width(self) -> int:
        return self.bbox[3] - self.bbox[1]

    def pixels(self, labels: np.ndarray) -> np.ndarray:
        """bool, its box's shape: which of the pixels in its box are its pieces' ink
        (``labels`` is :attr:`Page.labels`)."""
        top, left, bottom, right = self.bbox
        return np.isin(labels[top:bottom, left:right], self.labels)


@dataclass(frozen=True)
class Page:
    """A page's ink and its characters, in rows.

    Attributes
    ----------
    ink : InkMap
        The ink found (:func:`mnist_cnn.reading.ink.map_ink`).
    labels : numpy.ndarray
        int: each pixel's piece of ink.
    rows : list of list of Character
        Top to bottom; each row left to right.
    pieces : dict
        Each piece of ink (:class:`mnist_cnn.reading.ink.Piece`) by its number.
    left_out : list of (Character, str)
        Marks that do not look like digits, and why (:func:`find_characters`).
    """

    ink: InkMap
    labels: np.ndarray
    rows: list[list[Character]]
    pieces: dict[int, Piece]
    left_out: list[tuple[Character, str]]

    def row_height(self, row: int) -> float:
        """The median height of a row's characters."""
        return float(np.median([c.height for c in self.rows[row]]))


def _stacked(a: Piece, b: Piece) -> bool:
    """Whether two pieces are parts of one character: one over the other
    (:func:`mnist_cnn.reading.ink.one_over_another`), close."""
    gap = max(a.bbox[0], b.bbox[0]) - min(a.bbox[2], b.bbox[2])
    taller = max(a.bbox[2] - a.bbox[0], b.bbox[2] - b.bbox[0])
    return one_over_another(a, b) and gap <= _STACK_GAP * taller


def _character(group: list[Piece]) -> Character:
    return Character(tuple(p.label for p in group),
                     (min(p.bbox[0] for p in group), min(p.bbox[1] for p in group),
                      max(p.bbox[2] for p in group), max(p.bbox[3] for p in group)))


def _levelled(c: Character, slope: float) -> tuple[float, float]:
    """A character's top and bottom as on the page levelled: less the tilt's drop at
    its middle column (``slope``: rows down per column across)."""
    shift = slope * (c.bbox[1] + c.bbox[3]) / 2
    return c.bbox[0] - shift, c.bbox[2] - shift


def _median(ordered: list[float]) -> float:
    """The median of a sorted list (as numpy's: the mean of the middle two)."""
    half = len(ordered) // 2
    return ordered[half] if len(ordered) % 2 else (ordered[half - 1] + ordered[half]) / 2


def _banded(characters: list[Character], slope: float) -> list[list[Character]]:
    """Characters in rows along ``slope``: each joins the row whose height band (its
    characters' median top to median bottom) holds its middle."""
    rows: list[list[Character]] = []
    tops: list[list[float]] = []  # each row's, kept sorted
    bottoms: list[list[float]] = []
    for c in sorted(characters, key=lambda c: -c.height):  # tall ones set the bands
        top, bottom = _levelled(c, slope)
        middle = (top + bottom) / 2
        for row, row_tops, row_bottoms in zip(rows, tops, bottoms, strict=True):
            if _median(row_tops) <= middle <= _median(row_bottoms):
                row.append(c)
                bisect.insort(row_tops, top)
                bisect.insort(row_bottoms, bottom)
                break
        else:
            rows.append([c])
            tops.append([top])
            bottoms.append([bottom])
    order = np.argsort([np.median([sum(_levelled(c, slope)) / 2 for c in row]) for row in rows],
                       kind="stable")
    return [sorted(rows[i], key=lambda c: c.bbox[1]) for i in order]


def _tilt(characters: list[Character], sized: set[Character]) -> float:
    """The page's tilt, as a slope (rows down per column across): 0 for a level page;
    for a page turned a few degrees (a phone held askew, a sheet scanned crooked), the
    tilt within :data:`_MAX_TILT` degrees along which its digits fall into the fewest
    rows (of those, the one that lines up their middles best), when that is fewer than
    level: a long row drifts across the height bands of a level page and falls apart.
    Only the digit-sized characters (``sized``: :func:`_digit_sized`) count: rows of
    marks far smaller than the page's digits (dust, not a 0 written small) do not, nor
    do such marks line up."""
    if len(characters) < 3:
        return 0.0

    def digit_rows(rows: list[list[Character]]) -> int:
        return sum(any(c in sized for c in row) for row in rows)

    level = digit_rows(_banded(characters, 0.0))
    if level == 1:
        return 0.0
    slopes = np.tan(np.deg2rad(np.arange(-_MAX_TILT, _MAX_TILT + 1e-9, _TILT_STEP)))
    banded = {float(s): _banded(characters, float(s)) for s in slopes}
    fewest = min(digit_rows(rows) for rows in banded.values())
    if fewest == level:
        return 0.0

    def spread(slope: float) -> float:
        middles = [[sum(_levelled(c, slope)) / 2 for c in row if c in sized]
                   for row in banded[slope]]
        return float(sum(np.abs(np.subtract(m, np.median(m))).sum() for m in middles if m))

    return min((s for s, rows in banded.items() if digit_rows(rows) == fewest),
               key=lambda s: (spread(s), abs(s)))


def _rows(characters: list[Character], sized: set[Character]) -> list[list[Character]]:
    """Characters in rows, top to bottom, each left to right: each joins the row whose
    height band holds its middle, along the page's tilt (:func:`_tilt`, set by the
    digit-sized ones, ``sized``)."""
    return _banded(characters, _tilt(characters, sized))


def find_characters(mask: np.ndarray, ink: np.ndarray, name: str = "the picture"
                    ) -> tuple[np.ndarray, list[Piece], list[list[Character]],
                               list[tuple[Character, str]]]:
    """The characters of a number, in rows.

    Parameters
    ----------
    mask : numpy.ndarray
        Where the ink is (bool).
    ink : numpy.ndarray
        Its intensity.
    name : str
        The picture's name, for messages.

    Returns
    -------
    labels : numpy.ndarray
        int: each pixel's piece of ink (:func:`mnist_cnn.reading.ink.ink_pieces`).
    pieces : list of Piece
        The pieces.
    rows : list of list of Character
        Top to bottom; each left to right. Dots are left out first
        (:func:`_without_dots`). A character under half its row's height (its
        characters' heights weighed by ink, :func:`_digit_height`) is joined to the
        nearest one within a third of a height (a 5's bar written apart), or to small
        ones over and under it that make a digit's height together, or left out (dust),
        unless it is a small ring over 0.3 of the row's height (a 0 written small). A
        row whose characters are all that small beside the page's digits is left out
        whole (dust above or below the digits' band).
    left_out : list of (Character, str)
        What does not look like a digit, and why: marks at the picture's border
        unlike the digits inside, lines across (an underline, a dash), boxes drawn
        around the digits, dust.

    Raises
    ------
    ImageError
        Over :data:`MAX_PIECES` pieces of ink or :data:`MAX_CHARACTERS` characters.
    """
    labels, pieces, marks = ink_pieces(mask, ink)
    advice = "crop the picture to the number, or check that it shows one"
    if len(pieces) > MAX_PIECES:
        raise ImageError(f"{name}: {len(pieces):,} separate marks of ink, more than a "
                         f"written number has (at most {MAX_PIECES:,} are read); {advice}")
    kept, left_out = _at_border(pieces, mask.shape)
    left_out += [(_character([p]), why) for p, why in marks]
    mass = {p.label: p.mass for p in kept}
    kept, dots = _without_dots(kept, mass)
    left_out += [(_character([p]), _FAR_SMALLER) for p in dots]
    characters = _characters(kept)
    if len(characters) > MAX_CHARACTERS:
        raise ImageError(f"{name}: {len(characters):,} characters, more than a written "
                         f"number has (at most {MAX_CHARACTERS} are read); {advice}")
    characters, lines = _flat_lines(characters, labels)
    left_out += lines
    characters = _rows_parted(characters, labels, _digit_height(characters, mass))
    height = _digit_height(characters, mass)
    sized = {c for c in characters if _digit_sized(c, height, labels)}
    rows = []
    for row in _rows(characters, sized):
        if not any(c in sized for c in row):
            # A row of its own only because it lies above or below the digits' band.
            left_out += [(c, _FAR_SMALLER) for c in row]
            continue
        row, dust = _with_small_parts_joined(row, labels, _digit_height(row, mass))
        rows.append(row)
        left_out += [(c, "far smaller than the row's digits (a dot, dust)") for c in dust]
    return labels, pieces, rows, left_out


def _without_dots(pieces: list[Piece], mass: dict[int, float]
                  ) -> tuple[list[Piece], list[Piece]]:
    """The pieces, and apart from them the dots (:data:`_DOT`: small each way beside
    the page's digits' height, :func:`_digit_height` of the pieces with their ``mass``,
    and about as long as thick), which would otherwise join a digit near them and
    change its shape."""
    height = _digit_height([_character([p]) for p in pieces], mass)
    kept, dots = [], []
    for p in pieces:
        dot = p.size < _DOT * height and p.size < _ROUND * p.width
        (dots if dot else kept).append(p)
    return kept, dots


def _digit_height(characters: list[Character], mass: dict[int, float]) -> float:
    """The page's digits' height: the median of the characters' heights, each counted
    by its ink (specks of dust scattered over the page, however many, weigh little
    beside the digits)."""
    if not characters:
        return 0.0
    heights = np.array([c.height for c in characters], float)
    weights = np.array([sum(mass[label] for label in c.labels) for c in characters])
    order = np.argsort(heights, kind="stable")
    reached = np.cumsum(weights[order])
    return float(heights[order][np.searchsorted(reached, reached[-1] / 2)])


def _in_a_corner(bbox: tuple[int, int, int, int], shape: tuple[int, ...]) -> bool:
    """Whether a box touches two adjacent sides of the picture (top and bottom together
    are a tight crop, not a corner)."""
    top, left, bottom, right = bbox
    return (top == 0 or bottom == shape[0]) and (left == 0 or right == shape[1])


def _characters(pieces: list[Piece]) -> list[Character]:
    return [_character(g) for g in groups(
        pieces, column_neighbours([p.bbox for p in pieces]), _stacked)]


def _at_border(pieces: list[Piece], shape: tuple[int, ...]
               ) -> tuple[list[Piece], list[tuple[Character, str]]]:
    """The pieces to read, and those at the picture's border left out with the reason.

    When some ink lies inside the picture, a piece at its border is kept only if sized
    like the digits inside (between half and twice their height) and not in a corner.
    The others are a page's edge, the table beside it, a shadow's edge, a mark cut off.
    """
    inside = [p for p in pieces if not p.at_edge]
    if not inside or len(inside) == len(pieces):
        return pieces, []
    height = float(np.median([c.height for c in _characters(inside)]))
    kept, left_out = list(inside), []
    for p in pieces:
        if not p.at_edge:
            continue
        tall = (p.bbox[2] - p.bbox[0]) / height
        # Digits as tall as half the picture: it is cropped to the number, and a digit at
        # its end may fill a corner.
        corner = _in_a_corner(p.bbox, shape) and height < shape[0] / 2
        if PART <= tall <= 2 and not corner:
            kept.append(p)
        else:
            left_out.append((_character([p]), "at the picture's border, unlike the digits "
                             "inside (a page's edge, a shadow, a mark cut off)"))
    return kept, left_out


def _flat_lines(characters: list[Character], labels: np.ndarray
                  ) -> tuple[list[Character], list[tuple[Character, str]]]:
    """The characters that are not lines across, and those that are, with the reason:
    :func:`mnist_cnn.reading.ink.is_line` with their thickest stroke (an underline, a
    dash)."""
    from scipy import ndimage

    distance = ndimage.distance_transform_edt(labels > 0)
    kept, left_out = [], []
    for c in characters:
        window = (slice(c.bbox[0], c.bbox[2]), slice(c.bbox[1], c.bbox[3]))
        stroke = 2 * float(distance[window][c.pixels(labels)].max())
        if is_line(c.width, c.height, stroke):
            left_out.append((c, "a line across, not a digit (an underline, a dash)"))
        else:
            kept.append(c)
    return kept, left_out


def _rows_parted(characters: list[Character], labels: np.ndarray, height: float
                 ) -> list[Character]:
    """The characters, those as tall as two or more of the page's digits (``height``
    tall) cut between the rows of the others that they cross, along the page's tilt
    (digits of a grid's rows touching, or written close); a tall digit that crosses one
    row (a 9's long tail) stays whole, and so does one beside dust."""
    if len(characters) < 3:
        return characters
    regular = [c for c in characters if c.height < _TWO_HIGH * height]
    sized = {c for c in regular if _digit_sized(c, height, labels)}
    slope = _tilt(regular, sized)
    bands = [(float(np.median([_levelled(c, slope)[0] for c in row])),
              float(np.median([_levelled(c, slope)[1] for c in row])))
             for row in _banded([c for c in regular if c in sized], slope)]
    found = list(regular)
    for c in characters:
        if c.height >= _TWO_HIGH * height:
            shift = slope * (c.bbox[1] + c.bbox[3]) / 2  # the bands where this one stands
            crossed = [(t + shift, b + shift) for t, b in bands
                       if c.bbox[0] <= (t + b) / 2 + shift <= c.bbox[2]]
            found += _stacked_digits(c, crossed, labels) if len(crossed) > 1 else [c]
    return found


def _stacked_digits(character: Character, bands: list[tuple[float, float]],
                    labels: np.ndarray) -> list[Character]:
    """A character cut between rows (``(top, bottom)`` bands, top to bottom), each cut
    at the row of pixels where its ink is thinnest between one band's middle and the
    next one's (of equally thin ones, the one midway)."""
    from scipy import ndimage

    top, left, bottom, _ = character.bbox
    pixels = character.pixels(labels)
    thickness = ndimage.uniform_filter1d(pixels.sum(axis=1).astype(float), 3)
    middles = [int((t + b) / 2) - top for t, b in bands]
    cuts = [0]
    for lo, hi in pairwise(middles):
        thinnest = lo + np.flatnonzero(thickness[lo:hi] == thickness[lo:hi].min())
        cuts.append(int(thinnest[np.argmin(np.abs(thinnest - (lo + hi) / 2))]))
    cuts.append(bottom - top)
    parts = []
    for start, stop in pairwise(cuts):
        cols = np.flatnonzero(pixels[start:stop].any(axis=0))
        if len(cols):
            parts.append(Character(character.labels, (top + start, left + int(cols[0]),
                                                      top + stop, left + int(cols[-1]) + 1)))
    return parts


def _with_small_parts_joined(row: list[Character], labels: np.ndarray, height: float
                             ) -> tuple[list[Character], list[Character]]:
    """A row whose characters far shorter than its digits, ``height`` tall
    (:func:`_digit_height`), are joined to the nearest character within a third of a
    height, unless they are small rings (:func:`_ring`), and those farther away to each
    other where together they are a digit written small in pieces; the rest of them
    (dust)."""
    full, small_ones, loose, dust = [], [], [], []
    for c in row:
        (full if _digit_sized(c, height, labels) else small_ones).append(c)
    for small in small_ones:
        near = min(full, key=lambda c: _gap(c, small))
        if _gap(near, small) <= height / 3:
            full[full.index(near)] = _character_of(near, small)
        else:
            loose.append(small)
    # Loose ones one over another may be a digit written small in pieces (a 5's bar
    # apart from its belly), as tall as a digit together.
    for group in groups(loose, column_neighbours([c.bbox for c in loose]),
                        lambda a, b: _vertical_gap(a, b) <= _BROKEN_GAP * height):
        whole = reduce(_character_of, group)
        if len(group) > 1 and _digit_sized(whole, height, labels):
            full.append(whole)
        else:
            dust += group
    return sorted(full, key=lambda c: c.bbox[1]), dust


def _digit_sized(character: Character, height: float, labels: np.ndarray) -> bool:
    """Whether a character may be a digit beside digits ``height`` tall: at least
    :data:`PART` of their height, or a small ring from :data:`_RING` of it (a 0 written
    small)."""
    return character.height >= PART * height or (character.height >= _RING * height
                                                 and _ring(character, labels))


def _ring(character: Character, labels: np.ndarray) -> bool:
    """Whether a character's ink closes a loop around paper that fills at least
    :data:`_HOLE` of its box (a small 0; a 5's bar or a speck of dust does not)."""
    from scipy import ndimage

    pixels = character.pixels(labels)
    hole = ndimage.binary_fill_holes(pixels) & ~pixels
    return bool(hole.sum() >= _HOLE * pixels.size)


def _vertical_gap(a: Character, b: Character) -> int:
    """The vertical distance between two characters' boxes (0 if they overlap)."""
    return max(a.bbox[0] - b.bbox[2], b.bbox[0] - a.bbox[2], 0)


def _gap(a: Character, b: Character) -> int:
    """The horizontal distance between two characters' boxes (0 if they overlap)."""
    return max(a.bbox[1] - b.bbox[3], b.bbox[1] - a.bbox[3], 0)


def _character_of(a: Character, b: Character) -> Character:
    return Character(a.labels + b.labels, (min(a.bbox[0], b.bbox[0]), min(a.bbox[1], b.bbox[1]),
                                           max(a.bbox[2], b.bbox[2]), max(a.bbox[3], b.bbox[3])))


def read_page(grey: np.ndarray, name: str) -> Page:
    """A greyscale page's ink and characters (:func:`mnist_cnn.reading.ink.map_ink`,
    :func:`find_characters`).

    Raises
    ------
    ImageError
        If no ink stands out of the paper, or the page has too many pieces of ink or
        characters (:func:`find_characters`).
    """
    from dataclasses import replace

    from mnist_cnn.reading.ink import map_ink

    page = map_ink(grey, name)
    labels, pieces, rows, left_out = find_characters(page.mask, page.seen, name)
    faint = _faint_digits(page, rows, labels, pieces)
    if faint.any():
        page = replace(page, mask=page.mask | faint)
        labels, pieces, rows, left_out = find_characters(page.mask, page.seen, name)
    return Page(page, labels, rows, {p.label: p for p in pieces}, left_out)


def _faint_digits(page: InkMap, rows: list[list[Character]], main_labels: np.ndarray,
                  main: list[Piece]) -> np.ndarray:
    """Digits written fainter than the others (a lighter pen, a stroke in shadow): ink
    above a third of the page's higher threshold, in pieces apart from the ink found
    and as tall as the digits of a row (most of its height, its middle in the row).

    A piece of faint ink that holds ink found already is that ink with its faint rim
    (the grain beside a stroke that :func:`mnist_cnn.reading.ink.ink_mask` leaves out),
    not a digit apart: added, the rim would fatten the digits and join close ones."""
    from skimage.measure import label

    from mnist_cnn.reading.ink import faint_ink

    faint = label(faint_ink(page), connectivity=2)
    apart = (faint > 0) & ~np.isin(faint, np.unique(faint[page.mask]))
    labels, pieces, _ = ink_pieces(apart, page.seen)
    found = np.zeros_like(page.mask)
    if not pieces:
        return found
    # A faint piece is a stroke as the page's strokes are (a shadow, faint too, is a
    # thick patch).
    stroke = stroke_width(thickest_parts(main_labels, page.mask, main), main) if main else np.inf
    thickest = thickest_parts(labels, labels > 0, pieces)
    pieces = [p for p, t in zip(pieces, thickest, strict=True) if is_stroke(p, t, stroke)]
    bands = [(min(c.bbox[0] for c in row), max(c.bbox[2] for c in row),
              float(np.median([c.height for c in row]))) for row in rows]
    for piece in pieces:
        top, _, bottom, _ = piece.bbox
        middle = (top + bottom) / 2
        if any(t <= middle <= b and bottom - top >= _FAINT * h for t, b, h in bands):
            found |= labels == piece.label
    return found


def cut_candidates(page: Page, character: Character, row_height: float,
                   limit: int = 3) -> list[int]:
    """Columns where a character may be touching digits to part.

    Only a character at least 0.75 row heights wide is a candidate, and each part is
    left at least a quarter of a row height. Two kinds of column, at most ``limit`` of
    each:

    * the local minima of its ink's thickness (pixels per column, lightly smoothed),
      thinnest first: two digits joined by a thin stroke;
    * where its outline dips between two tops, or rises between two bottoms, by at
      least :data:`_DIP` of a row height, deepest first: two digits overlapping, where
      the ink between them is not thin (both digits' strokes) but the outline above or
      below them still shows where one ends and the other begins.

    Returns
    -------
    list of int
        Page columns, for :func:`split`.
    """
    from scipy import ndimage

    left = character.bbox[1]
    if character.width < _MAY_TOUCH * row_height:
        return []
    pixels = character.pixels(page.labels)
    thickness = ndimage.uniform_filter1d(pixels.sum(axis=0).astype(float), 3)
    margin = max(2, int(0.25 * row_height))
    inner = np.arange(margin, character.width - margin)
    if not len(inner):
        return []
    t = thickness[inner]
    lower = np.r_[True, t[1:] <= t[:-1]] & np.r_[t[:-1] <= t[1:], True]
    minima = inner[lower]
    minima = minima[np.argsort(thickness[minima], kind="stable")]
    chosen: list[int] = []
    for column in minima:  # one per valley: skip neighbours of a chosen column
        if all(abs(column - c) > margin // 2 for c in chosen):
            chosen.append(int(column))
        if len(chosen) == limit:
            break
    inked = pixels.any(axis=0)
    height = pixels.shape[0]
    tops = np.where(inked, pixels.argmax(axis=0), height)  # the outline's row, per column
    bottoms = np.where(inked, height - 1 - pixels[::-1].argmax(axis=0), -1)
    for outline in (tops, -bottoms):  # a dip of either outline is a local maximum here
        dips = [c for c in _dips(outline, margin, _DIP * row_height) if c not in chosen]
        chosen += dips[:limit]
    return [left + c for c in chosen]


def _dips(outline: np.ndarray, margin: int, least: float) -> list[int]:
    """The columns, ``margin`` or more from either end, where ``outline`` (a row number
    per column: the top outline's is largest where it dips) has a local maximum that
    stands at least ``least`` above its lowest value on each side (two digits' tops),
    deepest first (the middle of a flat maximum)."""
    # (scipy.signal.find_peaks does this with its prominences, but importing
    # scipy.signal takes about half a second, longer than reading a number)
    lowest_before = np.minimum.accumulate(outline)
    lowest_after = np.minimum.accumulate(outline[::-1])[::-1]
    found = []
    n = len(outline)
    start = 1
    while start < n - 1:
        end = start
        while end + 1 < n and outline[end + 1] == outline[start]:
            end += 1
        if end + 1 < n and outline[start - 1] < outline[start] > outline[end + 1]:
            depth = outline[start] - max(lowest_before[start - 1], lowest_after[end + 1])
            middle = (start + end) // 2
            if depth >= least and margin <= middle < n - margin:
                found.append((-depth, middle))
        start = end + 1
    return [int(c) for _, c in sorted(found)]


def _pieces_in(page: Page, character: Character) -> list[Piece]:
    """A character's pieces whose middles lie in its box (a part cut from a taller or
    wider character keeps the whole one's pieces)."""
    top, left, bottom, right = character.bbox
    return [p for p in (page.pieces[label] for label in character.labels)
            if top <= p.centroid[0] < bottom and left <= p.centroid[1] < right]


def piece_splits(page: Page, character: Character) -> list[tuple[Character, Character]]:
    """A character of several pieces parted between them, left to right: each way of
    taking the leftmost pieces (by their middles) as one character and the rest as
    another (digits written close, one's stroke reaching over the other's)."""
    pieces = sorted(_pieces_in(page, character), key=lambda p: p.centroid[1])
    return [(_character(pieces[:i]), _character(pieces[i:])) for i in range(1, len(pieces))]


def stack_splits(page: Page, character: Character) -> list[tuple[Character, Character]]:
    """A character of several pieces parted between them top to bottom, where the upper
    pieces end above the lower ones' middle (one digit written over another)."""
    pieces = sorted(_pieces_in(page, character), key=lambda p: p.centroid[0])
    found = []
    for i in range(1, len(pieces)):
        upper, lower = _character(pieces[:i]), _character(pieces[i:])
        if upper.bbox[2] <= (lower.bbox[0] + lower.bbox[2]) / 2:
            found.append((upper, lower))
    return found


def split(page: Page, character: Character, column: int) -> tuple[Character, Character]:
    """A character parted at a page column: its columns before it, and from it on, each
    box fitted to its ink (a side without ink gets a one-pixel box, too short to read)."""
    top, left, _, right = character.bbox
    pixels = character.pixels(page.labels)
    parts = []
    for start, stop in ((left, column), (column, right)):
        rows = np.flatnonzero(pixels[:, start - left:stop - left].any(axis=1))
        if not len(rows):  # no ink on this side: the part is an empty sliver
            rows = np.array([0, 0])
        parts.append(Character(character.labels, (top + int(rows[0]), start,
                                                  top + int(rows[-1]) + 1, stop)))
    return parts[0], parts[1]


def character_image(page: Page, character: Character,
                    row_height: float | None = None, turn: int = 0) -> np.ndarray:
    """A character (its pieces, within its box's columns) as the network's 28x28 input
    (:func:`mnist_cnn.reading.ink.digit_ink`,
    :func:`mnist_cnn.reading.mnist_format.mnist_format`), turned ``turn`` degrees
    counter-clockwise (0, 90, 180 or 270) as :func:`numpy.rot90` turns a page.

    A number's digits are written with one pen, and MNIST scaled each digit to its box:
    a digit taller than its row (``row_height``; a 9's or a 7's long tail) is given
    strokes thinner in proportion when a fine pen's are thickened, as a digit of the
    row's height is given MNIST's width.
    """
    top, left, bottom, right = character.bbox
    # The window holds the character and the rim digit_ink adds (two pixels); its
    # columns are the box's: the same result as on the whole page, at the box's cost.
    window = (slice(max(top - 2, 0), bottom + 2), slice(left, right))
    pixels = np.isin(page.labels[window], character.labels)
    ink = digit_ink(page.ink.crop(window), pixels)
    if not (ink > 0).any():  # a sliver of a stroke, faded away by the smoothing
        return np.zeros((28, 28), np.float32)
    stroke = MNIST_STROKE * min(1.0, (row_height or character.height) / character.height)
    return mnist_format(crop_to_ink(np.rot90(ink, turn // 90)), stroke)
