"""Give a digit's ink MNIST's format: a 20x20 box in a 28x28 field, MNIST's strokes.

MNIST digits were made by scaling each black-and-white NIST digit to fit a 20x20 box
(keeping its aspect ratio; anti-aliasing gives grey levels) and placing it in a 28x28
field with its centre of mass at the centre; ink is white (high) on black (0), and the
strokes are about 2.8 px wide. :func:`mnist_format` does the same to a digit's ink
(:func:`mnist_cnn.reading.ink.find_ink`), thickening a fine pen's strokes on the way.
"""

from __future__ import annotations

import numpy as np

__all__ = ["MNIST_STROKE", "crop_to_ink", "fit_box", "in_mnist_format", "mnist_format",
           "place_centred", "stroke_width", "thicken"]

#: A larger digit is first reduced to 4x MNIST's size (an 80 px box), where its strokes
#: are measured and thickened, before the final 20 px.
_FINE = 4
#: MNIST's median stroke width in its 20 px box, measured as 2 * area / boundary pixels
#: of the ink above 0.5 on the training set (5th percentile 2.1, median 2.8).
MNIST_STROKE = 2.8
_THIN_STROKE = 2.0
#: MNIST's mean centre of mass, in pixel-index coordinates (measured: 13.99, 14.00).
_CENTRE = 14.0
#: The longer side of every MNIST digit's ink, in pixels (20; 19 for 13 of the 70,000,
#: whose anti-aliased edge rounded to 0); the centre of mass lies within half a pixel of
#: :data:`_CENTRE` in all 70,000.
_MNIST_SIDES = (19, 20)


def crop_to_ink(ink: np.ndarray) -> np.ndarray:
    """The smallest rectangle that holds all the ink (every pixel above 0)."""
    rows = np.flatnonzero(ink.max(axis=1) > 0)
    cols = np.flatnonzero(ink.max(axis=0) > 0)
    return ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]


def _resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize a [0, 1] float image; area averaging when shrinking (anti-aliasing)."""
    from PIL import Image

    shrink = height <= image.shape[0] and width <= image.shape[1]
    resample = Image.Resampling.BOX if shrink else Image.Resampling.BILINEAR
    out = Image.fromarray(image.astype(np.float32), mode="F").resize((width, height), resample)
    return np.clip(np.asarray(out, np.float32), 0, 1)


def stroke_width(image: np.ndarray) -> float:
    """Mean stroke width in pixels: 2 * area / boundary pixels of the ink above 0.5."""
    from scipy import ndimage

    mask = image > 0.5
    boundary = mask & ~ndimage.binary_erosion(mask)
    return 2.0 * mask.sum() / max(int(boundary.sum()), 1)


def thicken(image: np.ndarray, width: float, target: float) -> np.ndarray:
    """Grow strokes from ``width`` to about ``target`` pixels (octagonal dilation)."""
    from scipy import ndimage

    cross = ndimage.generate_binary_structure(2, 1)
    steps = round((target - width) / 2)
    padded = np.pad(image, steps)
    for i in range(steps):
        padded = (ndimage.grey_dilation(padded, size=(3, 3)) if i % 2 == 0
                  else ndimage.grey_dilation(padded, footprint=cross))
    return padded


def fit_box(digit: np.ndarray, box: int) -> np.ndarray:
    """Scale so that the longer side is ``box`` pixels, keeping the aspect ratio."""
    h, w = digit.shape
    if max(h, w) == box:
        return digit
    scale = box / max(h, w)
    return _resize(digit, max(1, round(h * scale)), max(1, round(w * scale)))


def place_centred(digit: np.ndarray) -> np.ndarray:
    """Put a digit of at most 20x20 in a 28x28 field, centre of mass at the centre."""
    from scipy import ndimage

    h, w = digit.shape
    com_r, com_c = ndimage.center_of_mass(digit)
    top = int(np.clip(round(_CENTRE - com_r), 0, 28 - h))
    left = int(np.clip(round(_CENTRE - com_c), 0, 28 - w))
    canvas = np.zeros((28, 28), np.float32)
    canvas[top:top + h, left:left + w] = digit
    return canvas


def in_mnist_format(grey: np.ndarray) -> np.ndarray | None:
    """The picture itself as the network's input, if it is in MNIST's format already.

    A 28x28 picture whose background is exactly black (or exactly white: the ink dark)
    and whose ink has MNIST's box and centre (a longer side of 19 or 20 pixels, the
    centre of mass within half a pixel of the field's centre) is what :func:`mnist_format`
    makes; making it again would only move its faint edges and round its levels (an
    MNIST digit saved as a PNG file would not be read as the digit itself).

    Parameters
    ----------
    grey : numpy.ndarray
        float greyscale in [0, 1] (:func:`mnist_cnn.reading.images.load_grey`).

    Returns
    -------
    numpy.ndarray or None
        float32 (28, 28), ink light on 0, quantised to 256 levels as :func:`mnist_format`
        quantises (an MNIST array given as a picture keeps its levels); None for any
        other picture.
    """
    from scipy import ndimage

    if grey.shape != (28, 28):
        return None
    for ink in (grey, 1.0 - grey):
        inked = ink > 0
        if not inked.any() or inked.mean() > 0.5:  # the background is the most common level
            continue
        centre = np.array(ndimage.center_of_mass(ink))
        if (max(crop_to_ink(ink).shape) in _MNIST_SIDES
                and np.all(np.abs(centre - _CENTRE) <= 0.5 + 1e-6)):
            return _quantised(ink)
    return None


def _quantised(canvas: np.ndarray) -> np.ndarray:
    """A [0, 1] canvas in the training data's 256 levels, divided by 256 as they are.

    Levels that are already the training data's (multiples of 1/256 under 1: an MNIST
    array given as a picture) are kept; any other level is rounded from 255 steps.
    """
    levels = canvas * 256
    if canvas.max() < 1 and np.all(np.abs(levels - np.round(levels)) < 1e-3):
        return canvas.astype(np.float32)
    return (np.round(canvas * 255) / 256).astype(np.float32)


def mnist_format(digit: np.ndarray, stroke: float = MNIST_STROKE) -> np.ndarray:
    """A digit's ink, cropped (:func:`crop_to_ink`), as the network's 28x28 input.

    A large digit is first reduced to 4x MNIST's size, where a thin stroke made faint
    by the averaging is brought back to full strength; strokes thinner than MNIST's (a
    fine pen on a large image) are thickened to ``stroke`` (:func:`thicken`); the digit
    is scaled to fit 20x20 keeping its aspect ratio (:func:`fit_box`), placed in 28x28
    with its centre of mass at the centre (:func:`place_centred`), quantised to 256
    grey levels and divided by 256 as the training data.

    Parameters
    ----------
    digit : numpy.ndarray
        float, ink in [0, 1] on 0, cropped to the ink.
    stroke : float
        The width, in pixels of the 20 px box, that a fine pen's strokes are thickened
        to: MNIST's median (:data:`MNIST_STROKE`) by default; less for a digit that
        MNIST's scaling would have made thinner
        (:func:`mnist_cnn.reading.segmentation.character_image`).

    Returns
    -------
    numpy.ndarray
        float32 array of shape (28, 28), values 0 .. 255/256.
    """
    if max(digit.shape) > _FINE * 20:
        digit = fit_box(digit, _FINE * 20)
        digit = np.clip(digit / max(float(np.percentile(digit[digit > 0], 95)), 1e-6), 0, 1)
    scale = max(digit.shape) / 20  # pixels here per pixel of MNIST's 20 px box
    width = stroke_width(digit)
    if width / scale < min(_THIN_STROKE, stroke):
        digit = crop_to_ink(thicken(digit, width, stroke * scale))
    return _quantised(place_centred(fit_box(digit, 20)))
