"""Make a photo, scan or drawing of a digit look like an MNIST digit, step by step.

MNIST digits were made by scaling each black-and-white NIST digit to fit a 20x20 box
(keeping its aspect ratio; anti-aliasing gives grey levels) and placing it in a 28x28
field with its centre of mass at the centre; ink is white (high) on black (0). A photo
or scan of a digit on paper is the opposite polarity, unevenly lit, rarely centred, and
often drawn with a pen much thinner than MNIST's strokes. :func:`preprocess_image` goes
through the same steps as MNIST did; each step is a public function of its own.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ImageError

__all__ = [
    "crop_to_ink",
    "describe",
    "estimate_background",
    "find_ink",
    "fit_box",
    "ink_bright",
    "load_grey",
    "place_centred",
    "preprocess_image",
    "stroke_width",
    "thicken",
]

#: Images above this many pixels are refused (a guard against decompression bombs).
MAX_PIXELS = 50_000_000
#: Image files above this size are refused: 4 bytes per pixel of the largest image.
MAX_FILE_BYTES = 4 * MAX_PIXELS
#: Larger images are box-reduced to about this longer side before any other step.
_WORK_MAX_SIDE = 1024
#: A larger digit is first reduced to 4x MNIST's size (an 80 px box), where its strokes
#: are measured and thickened, before the final 20 px.
_FINE = 4
#: MNIST's median stroke width in its 20 px box, measured as 2 * area / boundary pixels
#: of the ink above 0.5 on the training set (5th percentile 2.1, median 2.8).
_TARGET_STROKE = 2.8
_THIN_STROKE = 2.0
#: MNIST's mean centre of mass, in pixel-index coordinates (measured: 13.99, 14.00).
_CENTRE = 14.0


# ------------------------------------------------------------------------- loading

def describe(src: Any) -> str:
    """How an image is named in messages: its path, or what kind of object it is."""
    if isinstance(src, (str, os.PathLike)):
        return str(src)
    if isinstance(src, np.ndarray):
        return f"array of shape {src.shape}"
    return type(src).__name__


def _open(path: Path):
    """The image in a file (read whole, through :func:`mnist_cnn.files.open_regular`)."""
    import io

    from PIL import Image, UnidentifiedImageError

    from .files import FileFormatError, open_regular

    try:
        with open_regular(path, "image") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except FileFormatError as exc:
        raise ImageError(str(exc)) from None
    except OSError as exc:
        raise ImageError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if not data:
        raise ImageError(f"{path}: empty file (0 bytes)")
    if len(data) > MAX_FILE_BYTES:
        raise ImageError(f"{path}: over {MAX_FILE_BYTES >> 20} MB, larger than any image of "
                         f"at most {MAX_PIXELS / 1e6:.0f} megapixels; scale it down first")
    try:
        return Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not an image, or a format Pillow cannot read") from None


def load_grey(src: Any) -> np.ndarray:
    """Float32 greyscale in [0, 1]: EXIF orientation applied, transparency on white."""
    from PIL import Image, ImageOps

    name = describe(src)
    if isinstance(src, np.ndarray):
        array = np.asarray(src)
        if array.ndim == 2 and array.dtype.kind == "f":
            peak = float(np.nanmax(array)) if array.size else 0.0
            return np.clip(np.nan_to_num(array / (255.0 if peak > 1 else 1.0)), 0, 1).astype(
                np.float32)
        if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)):
            raise ImageError(f"{name}: expected an image array (H, W), (H, W, 3) or "
                             "(H, W, 4)")
        if array.dtype != np.uint8:
            scale = 255.0 if array.max() <= 1 else 1.0
            array = np.clip(array * scale, 0, 255).astype(np.uint8)
        image = Image.fromarray(array.squeeze(axis=2) if array.ndim == 3 and
                                array.shape[2] == 1 else array)
    elif isinstance(src, (str, os.PathLike)):
        image = _open(Path(src))
    elif isinstance(src, Image.Image):
        image = src
    else:
        raise ImageError(f"{name}: expected a file path, a PIL image or a numpy array")

    width, height = image.size
    if width * height > MAX_PIXELS:
        raise ImageError(f"{name}: {width}x{height} is {width * height / 1e6:.0f} megapixels, "
                         f"over the {MAX_PIXELS / 1e6:.0f}-megapixel limit (a decompression "
                         "bomb?); scale it down first")
    if width == 0 or height == 0:
        raise ImageError(f"{name}: the image has no pixels")
    try:
        image = ImageOps.exif_transpose(image)
        factor = -(-max(image.size) // _WORK_MAX_SIDE)
        if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
            rgba = image.convert("RGBA")
            image = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba)
        if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
            grey = np.asarray(image, np.float32)
            grey = grey / max(float(grey.max()), 1.0)
            image = Image.fromarray((grey * 255).astype(np.uint8))
        image = image.convert("L")
        if factor > 1:
            image = image.reduce(factor)
        return np.asarray(image, np.float32) / 255.0
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{name}: truncated or corrupt image ({exc})") from None
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{name}: refused as a decompression bomb ({exc})") from None


# ------------------------------------------------------------------------- the ink

def _mad(values: np.ndarray) -> float:
    """Robust standard deviation (median absolute deviation, scaled for a normal law)."""
    from scipy.stats import median_abs_deviation

    return float(median_abs_deviation(values, axis=None, scale="normal"))


def estimate_background(image: np.ndarray, bright_ink: bool = True) -> np.ndarray:
    """A smooth quadratic surface through the background (uneven lighting, grey paper).

    The image is cut into blocks (about 16 across) whose medians are almost free of
    noise. With ``bright_ink`` the surface is fitted by least squares to the darker half
    of them, then again to every block not far above it, a few times; otherwise (ink of
    unknown polarity) to the middle half, then to every block not far from it.
    """
    h, w = image.shape
    size = max(2, min(h, w) // 16)
    bh, bw = h // size, w // size
    blocks = np.median(image[:bh * size, :bw * size].reshape(bh, size, bw, size)
                       .transpose(0, 2, 1, 3).reshape(bh, bw, -1), axis=2).ravel()
    rows, cols = np.mgrid[0:bh, 0:bw]
    r = ((rows + 0.5) * size / h - 0.5).ravel()
    c = ((cols + 0.5) * size / w - 0.5).ravel()
    basis = np.stack([np.ones_like(r), r, c, r * r, r * c, c * c], axis=1)
    q25, q50, q75 = np.percentile(blocks, [25, 50, 75])
    keep = blocks <= q50 if bright_ink else (blocks >= q25) & (blocks <= q75)
    for _ in range(4):
        coef = np.linalg.lstsq(basis[keep], blocks[keep], rcond=None)[0]
        residual = blocks - basis @ coef
        spread = _mad(residual[keep])
        keep = (residual if bright_ink else np.abs(residual)) < 3 * spread + 0.01
    R, C = np.mgrid[0:h, 0:w].astype(np.float32)
    R, C = R / h - 0.5, C / w - 0.5
    return (coef[0] + coef[1] * R + coef[2] * C + coef[3] * R * R + coef[4] * R * C
            + coef[5] * C * C).astype(np.float32)


def ink_bright(grey: np.ndarray) -> np.ndarray:
    """The image with the ink bright: dark ink on light paper is inverted."""
    from scipy import ndimage

    # The background fills the frame of the image even when the digit fills its middle:
    # a frame clearly lighter (darker) than the middle of the grey range is paper (board).
    h, w = grey.shape
    m = max(1, min(h, w) // 20)
    frame = np.median(np.concatenate([grey[:m].ravel(), grey[-m:].ravel(),
                                      grey[:, :m].ravel(), grey[:, -m:].ravel()]))
    low, high = np.percentile(grey, [1, 99])
    if abs(frame - (low + high) / 2) > 0.15 * (high - low):
        return 1.0 - grey if frame > (low + high) / 2 else grey
    # Ambiguous (a little ink on a page with a lighting gradient): around a background
    # fitted without assuming a polarity, the ink is the larger of the two extremes.
    residual = ndimage.uniform_filter(grey - estimate_background(grey, bright_ink=False), 3)
    return 1.0 - grey if -residual.min() > residual.max() else grey


def find_ink(grey: np.ndarray, name: str) -> np.ndarray:
    """Ink intensity in [0, 1] (ink high, background 0), specks and lighting removed."""
    from scipy import ndimage

    grey = ink_bright(grey)
    ink = grey - estimate_background(grey)
    # Strokes are found on a 3x3 average, which divides pixel noise by 3 but keeps the
    # strength of a 3-pixel pen line: thin strokes on a large page still stand out.
    smooth = ndimage.uniform_filter(ink, 3)
    noise = _mad(ink) + 1e-4
    peak = float(smooth.max())
    if peak < max(0.05, 2.5 * noise):
        raise ImageError(f"{name}: no ink found (a blank or almost uniform image)")
    # Hysteresis: pixels above the noise, in components that reach half the peak.
    weak = ink > max(3 * noise, 0.1 * peak)
    labels, _ = ndimage.label(weak, structure=np.ones((3, 3)))
    strong = np.unique(labels[(smooth > 0.5 * peak) & weak])
    strong = strong[strong > 0]
    sizes = ndimage.sum_labels(np.ones_like(ink), labels, strong)
    keep = strong[sizes >= max(0.05 * sizes.max(), 2)]
    strokes = np.isin(labels, keep)
    # Keep the anti-aliased rim around the kept strokes, nothing else.
    digit = ndimage.binary_dilation(strokes, iterations=2)
    floor = min(2 * noise, 0.1 * peak)
    level = float(np.percentile(ink[strokes], 90))
    ink = np.clip((ink - floor) / max(level - floor, 1e-6), 0, 1) * digit
    return ink.astype(np.float32)


def crop_to_ink(ink: np.ndarray) -> np.ndarray:
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


def preprocess_image(src: Any) -> np.ndarray:
    """Turn a photo, scan or drawing of one digit into the network's 28x28 input.

    The steps follow how MNIST was made: EXIF orientation applied; transparency
    composited onto white; greyscale; polarity detected (dark ink on light paper becomes
    white on black); uneven lighting and grey paper removed (a smooth surface fitted to
    the background is subtracted); specks dropped and the image cropped to the ink;
    strokes thinner than MNIST's (a fine pen on a large image) thickened to MNIST's
    width; scaled to fit 20x20 keeping the aspect ratio, with area-averaging
    (anti-aliasing); placed in 28x28 with the centre of mass at the centre; quantised
    to 256 grey levels and divided by 256 as the training data.

    Parameters
    ----------
    src : path, PIL.Image.Image or numpy.ndarray
        An image file, an image, or an array (H, W) / (H, W, 3|4), uint8 or [0, 1] float.

    Returns
    -------
    numpy.ndarray
        float32 array of shape (28, 28), values 0 .. 255/256.

    Raises
    ------
    ImageError
        Not an image, an empty, truncated or unreadable file, over 50 megapixels, or
        no ink found.

    Examples
    --------
    >>> x = preprocess_image("my_digit.jpg")  # doctest: +SKIP
    >>> x.shape
    (28, 28)
    """
    name = describe(src)
    digit = crop_to_ink(find_ink(load_grey(src), name))
    if max(digit.shape) > _FINE * 20:
        # Work at 4x MNIST's size; a thin stroke made faint by the averaging is brought
        # back to full strength.
        digit = fit_box(digit, _FINE * 20)
        digit = np.clip(digit / max(float(np.percentile(digit[digit > 0], 95)), 1e-6), 0, 1)
    scale = max(digit.shape) / 20  # pixels here per pixel of MNIST's 20 px box
    width = stroke_width(digit)
    if width / scale < _THIN_STROKE:
        digit = crop_to_ink(thicken(digit, width, _TARGET_STROKE * scale))
    canvas = place_centred(fit_box(digit, 20))
    return (np.round(canvas * 255) / 256).astype(np.float32)
