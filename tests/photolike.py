"""Photo-like digit images made from MNIST test digits, to measure `preprocess_image`.

Each digit is enlarged to 170-560 px, drawn on a canvas of up to 1000 px at a random
place, with paper (or board) tone, a lighting gradient, sensor noise and JPEG
compression. Variants:

* ``dark-on-light``: dark ink on light grey paper (a photo or scan of paper);
* ``thin-pen``: the same, but with the strokes thinned at high resolution to a pen of
  a few pixels (a fine pen on a large image);
* ``light-on-dark``: chalk-like light strokes on a dark board;

and the failures seen in real users' photos:

* ``ruled-paper`` / ``squared-paper``: lines across the whole page, in a lighter ink;
* ``shadow``: a small digit in a large photo, a sharp-edged shadow over part of it;
* ``faint-part``: one side of the digit pressed harder than the other (down to 30 %);
* ``small-low-contrast``: a 40-80 px picture, pen and paper close in tone;
* ``specks``: dust and dots of ink around the digit;
* ``cropped``: the photo cropped to the digit's strokes, a margin of 0 to 2 % of its
  size left (its strokes touch the picture's sides);
* ``framed``: a box drawn around the digit (a form's box), apart from its strokes;
* ``underlined``: a line drawn under the digit;
* ``on-a-line``: the digit written on one ruled line, the only one in the picture.
"""

from __future__ import annotations

import io
from itertools import pairwise
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

VARIANTS = ("dark-on-light", "thin-pen", "light-on-dark", "ruled-paper", "squared-paper",
            "shadow", "faint-part", "small-low-contrast", "specks", "cropped", "framed",
            "underlined", "on-a-line")


def save_pngs(images: list[np.ndarray] | np.ndarray, folder: Path) -> list[Path]:
    """Write uint8 greyscale pictures as ``folder/0.png``, ``1.png``, ...; their paths."""
    paths = [Path(folder) / f"{i}.png" for i in range(len(images))]
    for path, image in zip(paths, images, strict=True):
        Image.fromarray(image).save(path)
    return paths


def drawn_seven(size: int = 600, pen: int = 3, dark_on_light: bool = True) -> np.ndarray:
    """A '7' drawn with a thin pen, off-centre, on a large uint8 canvas."""
    image = Image.new("L", (size, size), 230 if dark_on_light else 20)
    draw = ImageDraw.Draw(image)
    ink = 30 if dark_on_light else 240
    draw.line([(100, 80), (300, 80), (170, 400)], fill=ink, width=pen)
    return np.asarray(image)


def _resize(image: np.ndarray, size: tuple[int, int], resample=Image.Resampling.BICUBIC):
    out = Image.fromarray(image.astype(np.float32), mode="F").resize(size, resample)
    return np.asarray(out, np.float32)


def thin(mask: np.ndarray) -> np.ndarray:
    """Zhang-Suen thinning of a boolean image to one-pixel-wide strokes."""
    img = mask.astype(np.uint8)
    while True:
        changed = False
        for step in (0, 1):
            P = np.pad(img, 1)
            p2, p3, p4 = P[:-2, 1:-1], P[:-2, 2:], P[1:-1, 2:]
            p5, p6, p7 = P[2:, 2:], P[2:, 1:-1], P[2:, :-2]
            p8, p9 = P[1:-1, :-2], P[:-2, :-2]
            ring = [p2, p3, p4, p5, p6, p7, p8, p9, p2]
            neighbours = sum(ring[:8])
            transitions = sum(((ring[i] == 0) & (ring[i + 1] == 1)).astype(np.uint8)
                              for i in range(8))
            if step == 0:
                side = (p2 * p4 * p6 == 0) & (p4 * p6 * p8 == 0)
            else:
                side = (p2 * p4 * p8 == 0) & (p2 * p6 * p8 == 0)
            remove = (img == 1) & (neighbours >= 2) & (neighbours <= 6) & (transitions == 1) & side
            if remove.any():
                img[remove] = 0
                changed = True
        if not changed:
            return img.astype(bool)


def _jpeg(image: np.ndarray, rng: np.random.Generator) -> bytes:
    pixels = np.clip(image * 255, 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=int(rng.integers(60, 92)))
    return buffer.getvalue()


def _digit_ink(digit: np.ndarray, size: int, thin_pen: bool) -> np.ndarray:
    if thin_pen:
        skeleton = thin(_resize(digit, (112, 112)) > 0.4).astype(np.float32)
        return np.clip(_resize(skeleton, (size, size), Image.Resampling.BILINEAR) * 2.5, 0, 1)
    return np.clip((_resize(digit, (size, size)) - 0.3) * 2.5, 0, 1)


def _lines(height: int, width: int, rng: np.random.Generator, squared: bool,
           spacing: int | None = None, thickest: int | None = None) -> np.ndarray:
    """A ruled (or squared) page's lines: 1.0 on the lines, 0 between them; ``spacing``
    pixels apart and up to ``thickest`` thick (by default from the page's size)."""
    if spacing is None:
        spacing = int(rng.integers(max(12, min(height, width) // 12),
                                   max(13, min(height, width) // 5)))
    thickness = int(rng.integers(1, (thickest or max(2, spacing // 12)) + 1))
    lines = np.zeros((height, width), np.float32)
    for start in range(int(rng.integers(0, spacing)), height, spacing):
        lines[start:start + thickness] = 1
    if squared:
        for start in range(int(rng.integers(0, spacing)), width, spacing):
            lines[:, start:start + thickness] = 1
    return lines


def photo_like(digit: np.ndarray, rng: np.random.Generator, variant: str) -> bytes:
    """A JPEG file's bytes showing one MNIST digit (28x28 in [0, 1]) as described above."""
    if variant == "small-low-contrast":
        size = int(rng.integers(36, 64))
        canvas = (int(size * rng.uniform(1.1, 1.4)),) * 2
    elif variant == "shadow":
        size = int(28 * rng.uniform(4, 8))
        canvas = (int(rng.integers(900, 1200)), int(rng.integers(900, 1200)))
    else:
        size = int(28 * rng.uniform(6, 20))
        canvas = tuple(int(rng.integers(int(size * 1.15), max(int(size * 1.15) + 1, 1000)))
                       for _ in range(2))
    height, width = canvas
    ink = _digit_ink(digit, size, variant == "thin-pen")
    if variant == "faint-part":
        angle = rng.uniform(0, 2 * np.pi)
        r, c = np.mgrid[0:size, 0:size] / size - 0.5
        ink = ink * np.clip(0.65 + 0.7 * (np.cos(angle) * c + np.sin(angle) * r), 0.3, 1)
    top = int(rng.integers(0, height - size + 1))
    left = int(rng.integers(0, width - size + 1))
    if variant == "shadow":  # small, but not at the very edge of a large photo
        top = int(rng.integers(height // 5, height - size - height // 5))
        left = int(rng.integers(width // 5, width - size - width // 5))
    field = np.zeros((height, width), np.float32)
    field[top:top + size, left:left + size] = ink
    if variant in ("framed", "underlined"):
        draw_marks(field, [_ink_box(field)], variant, rng)
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * cols / width + np.sin(angle) * rows / height)
    gradient = rng.uniform(0.1, 0.25) * (ramp - ramp.mean())
    if variant == "light-on-dark":
        board, chalk = rng.uniform(0.05, 0.3), rng.uniform(0.7, 0.95)
        image = board + gradient + (chalk - board) * field
    else:
        paper, pen = rng.uniform(0.55, 0.9), rng.uniform(0.05, 0.3)
        if variant == "small-low-contrast":
            pen = paper - rng.uniform(0.15, 0.3)
        image = paper + gradient - (paper - pen) * field
        if variant in ("ruled-paper", "squared-paper", "on-a-line"):
            if variant == "on-a-line":  # the line through the digit's lowest ink
                lines = np.zeros((height, width), np.float32)
                base = _ink_box(field)[2] - 1
                lines[base:base + max(1, size // 60)] = 1
            else:
                lines = _lines(height, width, rng, variant == "squared-paper")
            strength = rng.uniform(0.25, 0.5) * (paper - pen)
            image = np.minimum(image, paper + gradient - strength * lines)
        if variant == "shadow":  # a straight-edged shadow across a corner or a side
            shade = _shade(height, width, rng, 0.3, 0.1)
            image = image * (1 - rng.uniform(0.3, 0.5) * shade)
        if variant == "specks":
            _specks(image, rng, 29, max(2, size // 40), pen)
    image = image + rng.normal(0, rng.uniform(0.01, 0.04), image.shape)
    if variant == "cropped":
        margin = int(rng.integers(0, int(0.02 * size) + 1))
        top, left, bottom, right = _ink_box(field, above=0)
        image = image[max(top - margin, 0):bottom + margin,
                      max(left - margin, 0):right + margin]
    return _jpeg(image, rng)


def _shade(height: int, width: int, rng: np.random.Generator, nearest: float,
           spread: float) -> np.ndarray:
    """A straight-edged shadow in [0, 1] over a ``height`` x ``width`` picture: its edge
    at a random angle, ``nearest`` to ``nearest + spread`` (in the picture's sizes)
    from the middle, sharp or softened over up to 2 % of the picture."""
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    a = rng.uniform(0, 2 * np.pi)
    side = np.cos(a) * (cols / width - 0.5) + np.sin(a) * (rows / height - 0.5)
    offset = nearest + spread * rng.uniform()
    softness = rng.uniform(0.002, 0.02)
    return 1 / (1 + np.exp(-(side - offset) / softness))


def _specks(image: np.ndarray, rng: np.random.Generator, most: int, largest: int,
            pen: float) -> None:
    """Draw 5 to ``most`` square specks of ``pen`` anywhere in ``image``, each 2 to
    2 * ``largest`` pixels across."""
    height, width = image.shape
    for _ in range(int(rng.integers(5, most + 1))):
        r, c = int(rng.integers(0, height)), int(rng.integers(0, width))
        radius = int(rng.integers(1, largest + 1))
        image[max(0, r - radius):r + radius, max(0, c - radius):c + radius] = pen


def _ink_box(field: np.ndarray, above: float = 0.1) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) of the ink over ``above`` in ``field``."""
    rows = np.flatnonzero(field.max(axis=1) > above)
    cols = np.flatnonzero(field.max(axis=0) > above)
    return rows[0], cols[0], rows[-1] + 1, cols[-1] + 1


def draw_marks(field: np.ndarray, boxes: list[tuple[int, int, int, int]], marks: str,
               rng: np.random.Generator) -> None:
    """Draw, in ``field`` (ink 1 on 0), marks that are not digits around the digits in
    ``boxes`` (top, left, bottom, right): ``"underlined"``, a line under them;
    ``"framed"``, a box around them; ``"boxed"``, a box around each, side by side (a
    form's boxes)."""
    b = np.array(boxes)
    height = int(np.median(b[:, 2] - b[:, 0]))
    width = max(2, int(height * rng.uniform(0.02, 0.05)))
    h, w = field.shape

    def rectangle(top: int, left: int, bottom: int, right: int) -> None:
        top, left = max(top, 0), max(left, 0)
        bottom, right = min(bottom, h - 1), min(right, w - 1)
        field[top:top + width, left:right] = 1
        field[bottom - width:bottom, left:right] = 1
        field[top:bottom, left:left + width] = 1
        field[top:bottom, right - width:right] = 1

    margin = int(height * rng.uniform(0.12, 0.25))
    top, left, bottom, right = b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max()
    if marks == "underlined":
        y = min(bottom + margin, h - width - 1)
        field[y:y + width, max(left - margin, 0):min(right + margin, w - 1)] = 1
    elif marks == "framed":
        rectangle(top - margin, left - margin, bottom + margin + width,
                  right + margin + width)
    elif marks == "boxed":  # the walls between the boxes halfway between the digits
        walls = [left - margin] + [(r0 + l1 - width) // 2 for (_, _, _, r0), (_, l1, _, _)
                                   in pairwise(boxes)] + [right + margin]
        for l0, r0 in pairwise(walls):
            rectangle(top - margin, l0, bottom + margin + width, r0 + width)


def compose_number(inks: list[np.ndarray], rng: np.random.Generator,
                   gap: tuple[float, float] = (-0.05, 0.5),
                   baseline: float = 0.12, sizes: float = 0.15, marks: str | None = None,
                   paper: str = "plain", heights: tuple[int, int] = (50, 140)
                   ) -> tuple[bytes, list[tuple[int, int, int, int]]]:
    """A JPEG of a number written with the given digits' ink (each cropped, in [0, 1]),
    and each digit's box (top, left, bottom, right).

    Each digit is scaled to a common height (drawn from ``heights``, the upper bound
    excluded; times 1 +- ``sizes``), set on a baseline
    that wanders by up to ``baseline`` heights, after a gap drawn from ``gap`` (in
    heights; below 0 the digits overlap and may touch), on photo-like paper; with
    ``marks`` (:func:`draw_marks`), the number is underlined, framed or boxed. The
    ``paper`` is ``"plain"``, ``"ruled"`` (a notebook's light lines, 0.8 to 1.5 digit
    heights apart, wherever they fall on the digits), ``"squared"`` (squares of 0.4 to
    0.8 digit heights), ``"specked"`` (5 to 30 dark specks anywhere, up to a
    twelfth of a digit's height across) or ``"shadowed"`` (a straight-edged shadow,
    30 to 50 % darker, its edge at any angle within a fifth of the picture of its
    middle: across the digits more often than not).
    """
    height = int(rng.integers(*heights))
    scaled = []
    for ink in inks:
        h = max(8, int(height * rng.uniform(1 - sizes, 1 + sizes)))
        w = max(2, round(ink.shape[1] * h / ink.shape[0]))
        scaled.append(np.clip(_resize(ink, (w, h), Image.Resampling.BILINEAR), 0, 1))
    margin = height
    lefts, x = [], margin
    for i, digit in enumerate(scaled):
        if i:
            x += int(rng.uniform(*gap) * height)
        lefts.append(x)
        x += digit.shape[1]
    field = np.zeros((3 * height, x + margin), np.float32)
    boxes = []
    for left, digit in zip(lefts, scaled, strict=True):
        bottom = 2 * height + int(rng.uniform(-baseline, baseline) * height)
        top = bottom - digit.shape[0]
        boxes.append((top, left, bottom, left + digit.shape[1]))
        field[top:bottom, left:left + digit.shape[1]] = np.maximum(
            field[top:bottom, left:left + digit.shape[1]], digit)
    if marks:
        draw_marks(field, boxes, marks, rng)
    h, w = field.shape
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = np.cos(angle) * cols / w + np.sin(angle) * rows / h
    level, pen = rng.uniform(0.6, 0.9), rng.uniform(0.05, 0.3)
    blank = level + rng.uniform(0.05, 0.2) * (ramp - ramp.mean())
    image = blank - (level - pen) * field
    if paper == "specked":
        _specks(image, rng, 30, max(2, height // 25), pen)
    elif paper == "shadowed":
        shade = _shade(h, w, rng, -0.2, 0.4)
        image = image * (1 - rng.uniform(0.3, 0.5) * shade)
    elif paper != "plain":
        spacing = (0.4, 0.8) if paper == "squared" else (0.8, 1.5)
        lines = _lines(h, w, rng, paper == "squared",
                       int(height * rng.uniform(*spacing)), max(1, height // 40))
        image = np.minimum(image, blank - rng.uniform(0.25, 0.5) * (level - pen) * lines)
    image = image + rng.normal(0, rng.uniform(0.01, 0.03), image.shape)
    return _jpeg(image, rng), boxes


def top_ends(digit: np.ndarray) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """The two highest ends of an MNIST digit's skeleton (scikit-image's), as (row,
    column): for a 4, the tops of its two arms, which a writer who closes 4s joins."""
    from skimage.morphology import skeletonize

    points = {tuple(p) for p in np.argwhere(skeletonize(digit > 0.35))}
    ends = sorted((r, c) for r, c in points
                  if sum((r + dr, c + dc) in points for dr in (-1, 0, 1)
                         for dc in (-1, 0, 1) if dr or dc) == 1)
    if len(ends) < 2:
        return None
    first = ends[0]
    return first, min(ends[1:], key=lambda e: (e[0], -abs(e[1] - first[1])))


def slash_ends(digit: np.ndarray) -> tuple[tuple[int, int], tuple[int, int]]:
    """A stroke across an MNIST digit, from a pixel below and left of its ink's box to a
    pixel above and right of it, as (row, column): a slashed zero, as programmers
    write it."""
    rows, cols = np.nonzero(digit > 0.35)
    return (int(rows.max()) + 1, int(cols.min()) - 1), (int(rows.min()) - 1, int(cols.max()) + 1)


def skeleton_drawing(digit: np.ndarray, close_top: bool = False, slash: bool = False,
                     pen: int = 18) -> np.ndarray:
    """An MNIST digit redrawn as a person draws it on the page's pad: its skeleton
    (scikit-image's) traced with a round pen on a 280x280 white canvas, uint8.

    With ``close_top`` the two highest ends of the skeleton are joined by a stroke
    (:func:`top_ends`): an open-topped 4 becomes a closed one, as some writers draw it.
    With ``slash`` a stroke crosses it (:func:`slash_ends`): a slashed zero.
    """
    from skimage.morphology import skeletonize

    points = {tuple(p) for p in np.argwhere(skeletonize(digit > 0.35))}
    lines = [((c0, r0), (c1, r1)) for r0, c0 in points for r1, c1 in points
             if (r0, c0) < (r1, c1) and max(abs(r0 - r1), abs(c0 - c1)) == 1]
    ends = top_ends(digit) if close_top else None
    for stroke in (ends, slash_ends(digit) if slash else None):
        if stroke is not None:
            (r0, c0), (r1, c1) = stroke
            lines.append(((c0, r0), (c1, r1)))
    image = Image.new("L", (280, 280), 255)
    draw = ImageDraw.Draw(image)
    half = pen / 2
    for (x0, y0), (x1, y1) in lines:
        draw.line([(x0 * 10 + 5, y0 * 10 + 5), (x1 * 10 + 5, y1 * 10 + 5)], fill=0, width=pen)
        for x, y in ((x0, y0), (x1, y1)):
            draw.ellipse([x * 10 + 5 - half, y * 10 + 5 - half, x * 10 + 5 + half,
                          y * 10 + 5 + half], fill=0)
    return np.asarray(image)


def writer_drawings(X: np.ndarray, y: np.ndarray, digit: int, count: int,
                    close_top: bool = False, slash: bool = False) -> list[np.ndarray]:
    """A writer's ``digit``: the first ``count`` of it in MNIST's ``X`` (N, 1, 28, 28),
    ``y`` redrawn by :func:`skeleton_drawing` (with ``close_top``, of those whose skeleton
    has two top ends)."""
    chosen = [d for d in X[y == digit, 0] if not close_top or top_ends(d) is not None]
    return [skeleton_drawing(d, close_top=close_top, slash=slash) for d in chosen[:count]]
