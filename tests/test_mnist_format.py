"""mnist_cnn.reading.mnist_format: a digit's ink is given MNIST's box, centre and strokes."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from mnist_cnn.reading.images import preprocess_image
from mnist_cnn.reading.mnist_format import (
    crop_to_ink,
    fit_box,
    in_mnist_format,
    mnist_format,
    place_centred,
    stroke_width,
    thicken,
)


def seven(height: int = 320, width: int = 200, pen: int = 3) -> np.ndarray:
    """A 7's ink (1 on 0), cropped, ``pen`` pixels wide."""
    image = Image.new("F", (width + 2 * pen, height + 2 * pen), 0.0)
    draw = ImageDraw.Draw(image)
    draw.line([(pen, pen), (pen + width, pen), (pen + width // 3, pen + height)],
              fill=1.0, width=pen)
    return crop_to_ink(np.array(image, np.float32))


def ink_box(image: np.ndarray) -> tuple[int, int]:
    rows, cols = np.flatnonzero(image.max(1) > 0), np.flatnonzero(image.max(0) > 0)
    return rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1


def test_crop_to_ink_keeps_exactly_the_inked_rectangle():
    ink = np.zeros((50, 60), np.float32)
    ink[10, 20] = ink[30, 45] = 0.5
    assert crop_to_ink(ink).shape == (21, 26)


def test_fit_box_scales_the_longer_side_and_keeps_the_aspect_ratio():
    assert fit_box(np.ones((100, 50), np.float32), 20).shape == (20, 10)
    assert fit_box(np.ones((5, 10), np.float32), 20).shape == (10, 20)


def test_stroke_width_measures_a_bar_and_thicken_grows_it_to_the_target():
    bar = np.zeros((60, 60), np.float32)
    bar[10:50, 28:31] = 1  # 3 px wide
    assert 2.5 <= stroke_width(bar) <= 3.5
    assert 7.5 <= stroke_width(thicken(bar, 3.0, 9.0)) <= 10.5


def test_place_centred_puts_the_centre_of_mass_at_mnists_centre():
    digit = np.zeros((12, 10), np.float32)
    digit[:3] = 1  # mass near the top
    digit[:, 0] = 1  # and the left
    com = ndimage.center_of_mass(place_centred(digit))
    assert abs(com[0] - 14) <= 0.5 and abs(com[1] - 14) <= 0.5


def test_a_digit_fits_a_20_pixel_box_centred_in_28_quantised_like_mnist():
    x = mnist_format(seven())
    assert x.shape == (28, 28) and x.dtype == np.float32
    height, width = ink_box(x)
    assert height == 20 and 11 <= width <= 15  # 320 x 200 plus the pen
    com = ndimage.center_of_mass(x)
    assert abs(com[0] - 14) <= 0.5 and abs(com[1] - 14) <= 0.5
    assert np.allclose(x * 256, np.round(x * 256)) and x.max() <= 255 / 256


def test_thin_pen_strokes_are_brought_to_mnist_stroke_width():
    x = mnist_format(seven(900, 560, pen=2))
    assert 2.0 <= stroke_width(x) <= 4.5  # MNIST's 5th..95th percentiles: 2.1 .. 4.5


def png(image: np.ndarray):
    data = io.BytesIO()
    Image.fromarray(image).save(data, format="PNG")
    return Image.open(data)


def test_an_mnist_digit_saved_as_png_light_or_dark_is_read_as_the_digit_itself(mnist):
    X_test = mnist[4]
    for i in range(20):
        byte = (X_test[i, 0] * 256).astype(np.uint8)
        assert np.array_equal(preprocess_image(png(byte)), X_test[i, 0])
        assert np.array_equal(preprocess_image(png(255 - byte)), X_test[i, 0])


def test_an_mnist_array_given_as_one_picture_is_read_as_itself(mnist):
    X_test = mnist[4]
    for i in range(20):
        assert np.array_equal(preprocess_image(X_test[i, 0]), X_test[i, 0])


def test_a_28x28_digit_off_centre_or_on_grainy_paper_is_not_taken_as_it_is(mnist):
    byte = (mnist[4][0, 0] * 256).astype(np.uint8)
    grey = byte / np.float32(255)
    assert in_mnist_format(grey) is not None
    off_centre = np.roll(grey, 3, axis=1)
    grainy = np.clip(grey + np.float32(1 / 255), 0, 1)
    small = place_centred(fit_box(crop_to_ink(grey), 10))
    for other in (off_centre, grainy, small, np.zeros((28, 28), np.float32)):
        assert in_mnist_format(other) is None
    com = ndimage.center_of_mass(preprocess_image(np.roll(byte, 3, axis=1)))
    assert abs(com[1] - 14) <= 0.5  # found and centred again


def test_mnist_images_in_a_larger_field_come_back_almost_unchanged(mnist):
    X_test = mnist[4]
    for i in range(20):
        field = np.zeros((36, 40), np.uint8)
        field[2:30, 9:37] = X_test[i, 0] * 256
        x = preprocess_image(png(field))
        assert np.abs(x - X_test[i, 0]).mean() < 0.06
