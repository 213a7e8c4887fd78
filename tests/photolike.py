"""Photo-like digit images made from MNIST test digits, to measure `preprocess_image`.

Each digit is enlarged to 170-560 px, drawn on a canvas of up to 1000 px at a random
place, with paper (or board) tone, a lighting gradient, sensor noise and JPEG
compression. Variants:

* ``dark-on-light``: dark ink on light grey paper (a photo or scan of paper);
* ``thin-pen``: the same, but with the strokes thinned at high resolution to a pen of
  a few pixels (a fine pen on a large image);
* ``light-on-dark``: chalk-like light strokes on a dark board.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw

VARIANTS = ("dark-on-light", "thin-pen", "light-on-dark")


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


def photo_like(digit: np.ndarray, rng: np.random.Generator, variant: str) -> bytes:
    """A JPEG file's bytes showing one MNIST digit (28x28 in [0, 1]) as described above."""
    size = int(28 * rng.uniform(6, 20))
    if variant == "thin-pen":
        skeleton = thin(_resize(digit, (112, 112)) > 0.4).astype(np.float32)
        ink = np.clip(_resize(skeleton, (size, size), Image.Resampling.BILINEAR) * 2.5, 0, 1)
    else:
        ink = np.clip((_resize(digit, (size, size)) - 0.3) * 2.5, 0, 1)
    height = int(rng.integers(int(size * 1.15), max(int(size * 1.15) + 1, 1000)))
    width = int(rng.integers(int(size * 1.15), max(int(size * 1.15) + 1, 1000)))
    top = int(rng.integers(0, height - size + 1))
    left = int(rng.integers(0, width - size + 1))
    field = np.zeros((height, width), np.float32)
    field[top:top + size, left:left + size] = ink
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * cols / width + np.sin(angle) * rows / height)
    gradient = rng.uniform(0.1, 0.25) * (ramp - ramp.mean())
    if variant == "light-on-dark":
        board, chalk = rng.uniform(0.05, 0.3), rng.uniform(0.7, 0.95)
        image = board + gradient + (chalk - board) * field
    else:
        paper, pen = rng.uniform(0.55, 0.9), rng.uniform(0.05, 0.3)
        image = paper + gradient - (paper - pen) * field
    image = image + rng.normal(0, rng.uniform(0.01, 0.04), image.shape)
    pixels = np.clip(image * 255, 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=int(rng.integers(60, 92)))
    return buffer.getvalue()
