"""Read a user's image, and make a photo, scan or drawing of a digit look like MNIST.

:func:`load_grey` reads a file, a PIL image or an array into greyscale, refusing what is
not an image or too large; :func:`preprocess_image` then finds the digit's ink
(:mod:`mnist_cnn.reading.ink`) and gives it MNIST's format (:mod:`mnist_cnn.reading.mnist_format`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from mnist_cnn.errors import ImageError

__all__ = ["MAX_FILE_BYTES", "MAX_PIXELS", "MIN_SIDE", "decode_image", "describe", "load_grey",
           "preprocess_image", "read_digit"]

#: Images above this many pixels are refused (a guard against decompression bombs).
MAX_PIXELS = 50_000_000
#: Image files above this size are refused: 4 bytes per pixel of the largest image.
MAX_FILE_BYTES = 4 * MAX_PIXELS
#: Larger images are box-reduced to about this longer side before any other step.
_WORK_MAX_SIDE = 1024
#: Smaller images are refused: a digit needs a few pixels each way (MNIST's are 28).
MIN_SIDE = 8


def describe(src: Any) -> str:
    """How an image is named in messages: its path, or what kind of object it is."""
    if isinstance(src, (str, os.PathLike)):
        return str(src)
    if isinstance(src, np.ndarray):
        return f"array of shape {src.shape}"
    return type(src).__name__


def _open(path: Path):
    """The image in a file (read whole, through :func:`mnist_cnn.storage.files.open_regular`)."""
    from mnist_cnn.storage.files import FileFormatError, open_regular

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
    return decode_image(data, str(path))


def decode_image(data: bytes, name: str):
    """A PIL image of an image file's bytes (not yet decoded pixel by pixel), or an
    :class:`ImageError` naming ``name``: not an image, a declared size over
    :data:`MAX_PIXELS` (Pillow's decompression-bomb guard), or a corrupt header."""
    import io
    import struct

    from PIL import Image, UnidentifiedImageError

    try:
        return Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image, or a format Pillow cannot read") from None
    except Image.DecompressionBombError:
        raise ImageError(f"{name}: declares a size over {MAX_PIXELS / 1e6:.0f} megapixels "
                         "(a decompression bomb?); scale it down first") from None
    except (OSError, SyntaxError, ValueError, struct.error) as exc:
        raise ImageError(f"{name}: truncated or corrupt image ({_one_line(exc)})") from None


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())[:200]


def _check_size(name: str, width: int, height: int) -> None:
    if width * height > MAX_PIXELS:
        raise ImageError(f"{name}: {width}x{height} is {width * height / 1e6:.0f} megapixels, "
                         f"over the {MAX_PIXELS / 1e6:.0f}-megapixel limit (a decompression "
                         "bomb?); scale it down first")
    if min(width, height) < MIN_SIDE:
        raise ImageError(f"{name}: {width}x{height} pixels is too small to hold a digit "
                         f"(at least {MIN_SIDE}x{MIN_SIDE} is needed; MNIST's are 28x28)")


def load_grey(src: Any) -> np.ndarray:
    """Float32 greyscale in [0, 1]: EXIF orientation applied, transparency on white (on
    black for light strokes drawn on transparency).

    Raises
    ------
    ImageError
        Not an image, unreadable, truncated or corrupt, over :data:`MAX_PIXELS` or
        under :data:`MIN_SIDE` pixels a side. Pillow's warnings (a large image, corrupt
        EXIF data) are not shown: the size is checked here, and bad EXIF is ignored.
    """
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _load_grey(src)


def _load_grey(src: Any) -> np.ndarray:
    from PIL import Image, ImageOps

    name = describe(src)
    if isinstance(src, np.ndarray):
        array = np.asarray(src)
        if array.ndim == 2 and array.dtype.kind == "f":
            _check_size(name, array.shape[1], array.shape[0])
            grey = np.nan_to_num(array.astype(np.float32), posinf=0.0, neginf=0.0)
            return np.clip(grey / (255.0 if grey.max() > 1 else 1.0), 0, 1)
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

    _check_size(name, *image.size)
    try:
        if image.getexif().get(0x0112, 1) != 1:  # an orientation tag: turn the pixels
            image = ImageOps.exif_transpose(image)
        factor = -(-max(image.size) // _WORK_MAX_SIDE)
        if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
            rgba = image.convert("RGBA")
            image = Image.alpha_composite(Image.new("RGBA", rgba.size, _backdrop(rgba)), rgba)
        if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
            grey = np.nan_to_num(np.asarray(image, np.float32), posinf=0.0, neginf=0.0)
            grey = grey / max(float(grey.max()), 1.0)
            image = Image.fromarray((grey * 255).astype(np.uint8))
        if image.mode != "L":  # (a conversion to the same mode would copy the pixels)
            image = image.convert("L")
        if factor > 1:
            image = image.reduce(factor)
        return np.asarray(image, np.float32) / 255.0
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{name}: refused as a decompression bomb ({_one_line(exc)})") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{name}: truncated or corrupt image ({_one_line(exc)})") from None


def _backdrop(rgba) -> str:
    """What a transparent picture is shown on: white, unless it is light strokes on
    transparency (its opaque pixels under half the picture, most of them light), which
    white would hide."""
    pixels = np.asarray(rgba)
    opaque = pixels[..., 3] >= 128
    if opaque.mean() < 0.5 and opaque.any():
        grey = np.asarray(rgba.convert("L"))[opaque]
        if np.median(grey) > 127:
            return "black"
    return "white"


def preprocess_image(src: Any) -> np.ndarray:
    """Turn a photo, scan or drawing of one digit into the network's 28x28 input.

    The steps: EXIF orientation applied, transparency composited onto white, greyscale
    (:func:`load_grey`); a picture in MNIST's format already (an MNIST digit saved as an
    image file) is taken as it is (:func:`mnist_cnn.reading.mnist_format.in_mnist_format`);
    otherwise the digit's ink found against the paper, whatever the
    polarity, lighting, shadows, ruled lines and specks (:func:`mnist_cnn.reading.ink.find_ink`);
    then MNIST's format: cropped to the ink, a fine pen's strokes thickened to MNIST's
    width, scaled to fit 20x20 keeping the aspect ratio with anti-aliasing, placed in
    28x28 with the centre of mass at the centre, quantised to 256 grey levels and
    divided by 256 as the training data (:func:`mnist_cnn.reading.mnist_format.mnist_format`).

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
    return read_digit(src)[0]


def read_digit(src: Any) -> tuple[np.ndarray, int]:
    """:func:`preprocess_image`'s 28x28 input, and how many other marks in the picture
    look like digits too (:func:`mnist_cnn.reading.ink.other_digits`: a picture of a
    number, to read with :func:`mnist_cnn.read_number`).

    Raises
    ------
    ImageError
        As :func:`preprocess_image`.
    """
    from mnist_cnn.reading.ink import find_digit
    from mnist_cnn.reading.mnist_format import crop_to_ink, in_mnist_format, mnist_format

    grey = load_grey(src)
    as_is = in_mnist_format(grey)
    if as_is is not None:
        return as_is, 0
    found = find_digit(grey, describe(src))
    return mnist_format(crop_to_ink(found.ink)), found.others
