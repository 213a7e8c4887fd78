"""mnist_cnn.read_number and `mnist-cnn predict --number`: whole numbers, digit by digit."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from photolike import compose_number
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage
from test_segmentation import overlapping_zeros, written

from mnist_cnn import NumberReading, read_number
from mnist_cnn.errors import ImageError
from mnist_cnn.reading.images import load_grey
from mnist_cnn.reading.ink import find_ink
from mnist_cnn.reading.mnist_format import crop_to_ink

ROOT = Path(__file__).resolve().parents[1]


def test_a_printed_year_is_read_digit_by_digit_with_boxes_left_to_right():
    reading = read_number(written(["2024"]))
    assert isinstance(reading, NumberReading)
    assert reading.text == "2024" and len(reading.digits) == 4
    lefts = [d.box[1] for d in reading.digits]
    assert lefts == sorted(lefts)
    assert 0 < reading.probability <= min(d.probability for d in reading.digits)
    assert all(d.image.shape == (28, 28) for d in reading.digits)


def test_rows_are_read_top_to_bottom_and_joined_by_a_space():
    assert read_number(written(["86", "305"])).text == "86 305"


def test_a_page_photographed_askew_is_read_row_by_row():
    lines = ["12345678901234", "56789012345678"]
    tilted = ndimage.rotate(written(lines, size=60), -5, order=1, cval=225 / 255)
    assert read_number(tilted).text == " ".join(lines)


def test_two_overlapping_digits_are_read_as_two():
    assert read_number(overlapping_zeros()).text == "00"


def test_a_blank_page_is_an_image_error():
    with pytest.raises(ImageError, match="no ink found"):
        read_number(np.full((200, 300), 0.8, np.float32))


@pytest.fixture(scope="module")
def dev_inks(user_digits) -> list[tuple[np.ndarray, str]]:
    """Each real user's digit as its cropped ink, with its label."""
    return [(crop_to_ink(find_ink(load_grey(row["path"]), row["path"])), row["label"])
            for row in user_digits]


@pytest.mark.slow
@pytest.mark.parametrize("gap, cropped, at_least", [
    # Measured with the bundled models: 96, 93 and 76 of 100 (70 touching before the
    # ink had to stand out of the paper a few stroke widths around it too, 60 before
    # the columns where the outline dips were tried as cuts; close: a 9 of the dev set
    # that a person reads as 7 is read as 7 in three of them). The pictures change with
    # the dev digits' inks (the pictures made with the inks before the stand-out rule:
    # 95, 95, 74 against 95, 96, 70 without it); with those found before a lighter
    # stroke was brought to full strength, 95, 95 and 60; before the grain was judged
    # against the ink
    # around it, 95, 88 and 59 (93, 84 and 59 when a bold digit beside thin ones was
    # dropped as a blot; 89, 81 and 55 when, also, the faint rim of the ink found was
    # taken for faint digits and a dot above the row was a row of its own). Most
    # misreadings are of one digit that is misread alone too (a "9" with an open loop
    # reads as 7), or of overlapping digits read as one.
    ((0.15, 0.6), False, 0.9),  # written apart
    ((0.0, 0.15), False, 0.83),  # close
    ((-0.08, 0.0), False, 0.65),  # overlapping and touching
    # Written apart and cut at the digits' ink: 91 of 100 (88 before the stand-out rule;
    # 46 before a digit filling a corner of a picture cropped to the number was kept).
    ((0.15, 0.6), True, 0.8),
], ids=["apart", "close", "touching", "apart-cropped"])
def test_numbers_composed_of_real_users_digits_are_read_exactly(dev_inks, gap, cropped,
                                                                  at_least):
    rng = np.random.default_rng(int(gap[0] * 100) + 10 + 7 * cropped)
    # fewer than 100 would leave a threshold at the mercy of the draw
    right = composed_numbers_read_exactly(dev_inks, 100, rng, rng, gap, cropped=cropped)
    assert right / 100 >= at_least


def composed_numbers_read_exactly(dev_inks, count: int, numbers: np.random.Generator,
                                  rng: np.random.Generator, gap: tuple[float, float],
                                  cropped: bool = False, marks: str | None = None,
                                  paper: str = "plain") -> int:
    """How many of ``count`` numbers of 2 to 5 dev digits (drawn from ``numbers``),
    composed on photo-like paper (drawn from ``rng``), are read exactly; every
    misreading and the count are printed."""
    name = (f"gap {gap}{', cropped' if cropped else ''}{f', {marks}' if marks else ''}"
            f"{f', {paper} paper' if paper != 'plain' else ''}")
    right = 0
    for _ in range(count):
        picks = numbers.choice(len(dev_inks), int(numbers.integers(2, 6)))
        data, boxes = compose_number([dev_inks[i][0] for i in picks], rng, gap=gap,
                                     marks=marks, paper=paper)
        truth = "".join(dev_inks[i][1] for i in picks)
        picture = Image.open(io.BytesIO(data))
        if cropped:
            (top, left), (bottom, right_) = np.min(boxes, axis=0)[:2], np.max(boxes, axis=0)[2:]
            picture = picture.crop((left, top, right_, bottom))
        got = read_number(picture).text
        right += got == truth
        if got != truth:
            print(f"{name}: {truth} read as {got}")
    print(f"{name}: {right}/{count} read exactly")
    return right


@pytest.mark.slow
@pytest.mark.parametrize("marks", [None, "underlined", "framed", "boxed"])
def test_a_number_underlined_framed_or_in_a_forms_boxes_is_read_as_without_them(dev_inks,
                                                                                 marks):
    # The same 50 numbers each time, written apart; only the marks differ. Measured:
    # 49 of 50 without marks, and 48, 48 and 48 with them (48, 47, 47 and 46 before the
    # stand-out rule of ink.stand_out_locally); before the marks were set aside
    # (ink.is_underline, ink.is_frame), 3, 0 and 0.
    right = composed_numbers_read_exactly(dev_inks, 50, np.random.default_rng(25),
                                          np.random.default_rng(26), (0.15, 0.6),
                                          marks=marks)
    assert right / 50 >= 0.88


@pytest.mark.slow
@pytest.mark.parametrize("paper, at_least", [("ruled", 0.88), ("squared", 0.84),
                                              ("specked", 0.7), ("shadowed", 0.86)])
def test_a_number_on_ruled_squared_specked_or_shadowed_paper_is_read_as_on_plain(dev_inks, paper,
                                                                          at_least):
    # The digits of the 50 numbers above, written apart on a notebook's light lines
    # that cross them, among specks of dust, or with a shadow's straight edge across
    # the page. Measured: 49, 49, 47 and 47 of 50 (49 on plain paper; among specks 40
    # before a row's height was weighed by ink, a row of two digits and four specks
    # having a speck's height, each speck read as a 0, and before dots were left out,
    # a speck joined to a digit changing its shape); 48, 46, 41 and 39
    # before the ink had to stand out of the paper a few stroke widths around it too
    # (a band of the shadow along its edge joined the digits it crossed; on the same
    # pictures, 46 → 48 squared and 39 → 42 shadowed); 48 and 38 on lines before a
    # stroke running along a line was kept where it is darker than the line; 20 among
    # specks before the page's digits' height was weighed by ink (many specks had made
    # it a speck's: rows of dust were read, the tilt was the dust's, and digits were cut
    # between its rows).
    right = composed_numbers_read_exactly(dev_inks, 50, np.random.default_rng(25),
                                          np.random.default_rng(26), (0.15, 0.6),
                                          paper=paper)
    assert right / 50 >= at_least


@pytest.mark.slow
def test_a_small_number_of_digits_wider_than_tall_is_read_upright(dev_inks):
    # Most of their pieces wider than tall, these pages are tried turned. Read whole
    # each way, 2 of the 60 were read turned before (the three digits of "700", a
    # column once turned, taken as one character, "8 4", surer per digit than "730");
    # now a turned reading wins only if the pieces, each read alone, are together
    # twice as likely turned too (a 1 with a foot beside a wide 4, read whole turned as
    # "44", is not).
    wide = [i for i, (ink, _) in enumerate(dev_inks) if ink.shape[0] < ink.shape[1]]
    rng = np.random.default_rng(1)
    turned = []
    for _ in range(60):
        picks = rng.choice(wide, int(rng.integers(2, 4)))
        data, _ = compose_number([dev_inks[i][0] for i in picks], rng, gap=(0.15, 0.6),
                                 heights=(16, 29))
        reading = read_number(Image.open(io.BytesIO(data)))
        if reading.turned:
            turned.append(f"{''.join(dev_inks[i][1] for i in picks)} read turned "
                          f"{reading.turned} as {reading.text}")
    assert not turned, turned


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mnist_cnn", "predict", "--number", *args],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)


def test_predict_number_cli_prints_the_number_and_each_digits_probability(tmp_path):
    Image.fromarray((written(["2024"]) * 255).astype(np.uint8)).save(tmp_path / "year.png")
    (tmp_path / "bad.png").write_text("not a picture")
    proc = cli(str(tmp_path / "year.png"), str(tmp_path / "bad.png"))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stdout.startswith(f"{tmp_path / 'year.png'}: 2024  (2 ")
    assert proc.stdout.count("%") == 4 and "not an image" in proc.stderr
    proc = cli(str(tmp_path / "year.png"), "--json", "--save-preprocessed", str(tmp_path / "seen"))
    (record,) = json.loads(proc.stdout)
    assert record["number"] == "2024" and len(record["rows"]) == 1
    assert [d["digit"] for d in record["rows"][0]] == [2, 0, 2, 4]
    assert all(len(d["box"]) == 4 and len(d["top"]) == 3 for d in record["rows"][0])
    assert sorted(Path(p).name for p in record["preprocessed"]) == [
        f"year-{i}.png" for i in range(1, 5)]


def test_a_page_stored_sideways_is_read_turned_and_its_marks_left_out_are_reported():
    grey = written(["2046", "890"])
    h, w = grey.shape
    grey[h - 20:h - 15, 40:w - 40] = 0.1  # a line across under the rows
    reading = read_number(np.rot90(grey).copy())
    assert reading.text == "2046 890" and reading.turned in (90, 270)
    upright = read_number(grey)
    assert upright.turned == 0 and upright.text == "2046 890"
    record = upright.to_dict()
    assert record["turned"] == 0
    assert [m["reason"].split(" (")[0] for m in record["left_out"]] == [
        "a line across, not a digit"]
    assert len(record["left_out"][0]["box"]) == 4


def test_a_digit_written_over_another_is_read_as_two():
    font = ImageFont.load_default(size=90)
    image = Image.new("L", (200, 300), 225)
    draw = ImageDraw.Draw(image)
    draw.text((60, 20), "5", fill=30, font=font)
    draw.text((60, 92), "6", fill=30, font=font)  # just below: one character
    grey = np.asarray(image, np.float32) / 255
    assert read_number(grey).text.replace(" ", "") == "56"


def test_a_part_too_narrow_for_the_digit_it_is_read_as_is_no_digit(user_numbers_dir):
    # The 3 of "1234567890" (its lower curl written as a loop) was parted into a 2 and
    # its right edge, 12 px wide and 49 tall, read as 3 at 0.999: eleven digits. Of
    # MNIST's digits other than 1s none is under 0.3 times as wide as tall.
    reading = read_number(user_numbers_dir / "harkib__digit-recognition-CNN/images/image2.JPG")
    assert len(reading.digits) == 10, reading.text
