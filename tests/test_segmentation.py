"""mnist_cnn.reading.segmentation: a number's ink cut into characters, in rows, and parted."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from mnist_cnn.errors import ImageError
from mnist_cnn.reading.ink import map_ink
from mnist_cnn.reading.mnist_format import MNIST_STROKE, stroke_width
from mnist_cnn.reading.segmentation import (
    MAX_CHARACTERS,
    MAX_PIECES,
    PART,
    Character,
    character_image,
    cut_candidates,
    find_characters,
    piece_splits,
    read_page,
    split,
)


def written(lines: list[str], size: int = 80) -> np.ndarray:
    """Dark text on light paper, one string per row (Pillow's own scalable font)."""
    font = ImageFont.load_default(size=size)
    image = Image.new("L", (120 + size * max(map(len, lines)), 60 + 2 * size * len(lines)), 225)
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(lines):
        draw.text((40, 30 + 2 * size * i), line, fill=30, font=font)
    return np.asarray(image, np.float32) / 255


def boxes(row) -> list[tuple[int, int, int, int]]:
    return [c.bbox for c in row]


def test_digits_in_rows_read_top_to_bottom_and_left_to_right():
    page = read_page(written(["12", "345"]), "rows")
    assert [len(row) for row in page.rows] == [2, 3]
    for row in page.rows:
        lefts = [c.bbox[1] for c in row]
        assert lefts == sorted(lefts)
    assert page.rows[0][0].bbox[2] <= page.rows[1][0].bbox[0]
    assert 55 <= page.row_height(1) <= 85


@pytest.mark.parametrize("ring", [True, False], ids=["small 0", "small bar"])
def test_a_small_ring_beside_a_digit_is_a_digit_of_its_own_and_a_small_stroke_is_joined(ring):
    mask = np.zeros((120, 240), bool)
    for left in (20, 60, 100):
        mask[20:80, left:left + 6] = True  # three 1s, 60 px tall
    if ring:  # a 0 written small: a ring 24 px tall, 10 px from the last 1
        mask[56:80, 116:134] = True
        mask[60:76, 120:130] = False
    else:  # a stroke as small, as near (a 4's cross-stroke written apart)
        mask[56:80, 116:122] = True
    _, _, rows, left_out = find_characters(mask, mask.astype(np.float32))
    assert not left_out
    assert [c.bbox for c in rows[0]][2:] == (
        [(20, 100, 80, 106), (56, 116, 80, 134)] if ring else [(20, 100, 80, 122)])


def test_pieces_over_each_other_are_one_character_and_dust_is_left_out():
    mask = np.zeros((200, 400), bool)
    mask[40:50, 60:120] = True  # a 5's bar, written apart...
    mask[56:140, 60:70] = True  # ...above its body
    mask[130:140, 60:120] = True
    mask[60:140, 200:210] = True  # a 1
    mask[100:104, 300:304] = True  # a dot of dust, far from both
    _, pieces, rows, left_out = find_characters(mask, mask.astype(np.float32))
    assert len(pieces) == 3 and len(rows) == 1 and not left_out  # the dust is not a piece
    five, one = rows[0]
    assert len(five.labels) == 2 and five.bbox == (40, 60, 140, 120)
    assert one.bbox == (60, 200, 140, 210)


def test_touching_digits_are_cut_at_the_thinnest_column():
    mask = np.zeros((160, 240), bool)
    mask[30:130, 40:60] = mask[30:130, 70:90] = mask[30:40, 40:90] = True  # a bold 0...
    mask[30:130, 150:170] = mask[30:130, 180:200] = mask[30:40, 150:200] = True  # and 0
    mask[120:124, 90:150] = True  # joined by a thin stroke, columns 90 to 149
    page = read_page(1 - 0.8 * mask.astype(np.float32), "touching")
    (character,) = page.rows[0]
    columns = cut_candidates(page, character, row_height=character.height)
    assert columns and 92 <= columns[0] <= 148
    left, right = split(page, character, columns[0])
    assert left.bbox[3] == right.bbox[1] == columns[0]
    assert min(left.height, right.height) >= PART * character.height


def overlapping_zeros() -> np.ndarray:
    """Two rings 70 px wide, 60 px apart (their strokes cross in columns 115 to 125),
    dark on light: the ink where they overlap is four strokes thick, thicker than
    either ring's middle."""
    rows, cols = np.mgrid[0:160, 0:260]
    mask = np.zeros((160, 260), bool)
    for centre in (90, 150):
        r = np.hypot((cols - centre) / 35, (rows - 80) / 50)
        mask |= (r > 0.8) & (r < 1.0)
    return 1 - 0.8 * mask.astype(np.float32)


def test_overlapping_digits_are_cut_where_their_outline_dips():
    page = read_page(overlapping_zeros(), "overlapping")
    (character,) = page.rows[0]
    columns = cut_candidates(page, character, row_height=character.height)
    overlap = [c for c in columns if 115 <= c <= 125]
    assert overlap, f"no cut where the rings overlap: {columns}"
    left, right = split(page, character, overlap[0])
    assert min(left.height, right.height) >= PART * character.height


def test_a_narrow_character_has_no_cut_and_one_piece_no_parting():
    page = read_page(written(["1"]), "one")
    (character,) = page.rows[0]
    assert cut_candidates(page, character, row_height=character.height) == []
    assert piece_splits(page, character) == []


def test_pieces_written_close_can_be_parted_between_them():
    mask = np.zeros((150, 200), bool)
    mask[40:120, 40:50] = True  # a 1, under...
    mask[20:28, 30:140] = mask[28:120, 130:140] = True  # ...the bar of a 7 beside it
    page = read_page(1 - 0.8 * mask.astype(np.float32), "close")
    (character,) = [c for row in page.rows for c in row]  # stacked: one character
    ((one, seven),) = piece_splits(page, character)
    assert np.allclose(one.bbox, (40, 40, 120, 50), atol=1)  # the ink's edge: +-1 px
    assert np.allclose(seven.bbox, (20, 30, 120, 140), atol=1)


def specks(count: int, seed: int = 0) -> np.ndarray:
    """A 3000x2000 light page with ``count`` dark squares of 2 to 4 pixels."""
    rng = np.random.default_rng(seed)
    page = np.full((2000, 3000), 235 / 255, np.float32)
    for _ in range(count):
        y, x, size = rng.integers(0, 1996), rng.integers(0, 2996), rng.integers(2, 5)
        page[y:y + size, x:x + size] = rng.integers(0, 60) / 255
    return page


@pytest.mark.parametrize("count, refusal", [
    (5000, r"separate marks of ink, more than a written number has \(at most 1,000"),
    (2000, r"characters, more than a written number has \(at most 300"),
])
def test_a_page_of_thousands_of_specks_is_refused_in_one_line(count, refusal):
    with pytest.raises(ImageError, match=f"^specks: [0-9,]+ {refusal}.*crop the picture"):
        read_page(specks(count), "specks")


def test_a_page_under_the_caps_is_read_whatever_its_pieces():
    page = read_page(specks(300), "specks")
    assert 0 < sum(len(row) for row in page.rows) <= MAX_CHARACTERS
    assert len(page.pieces) <= MAX_PIECES


def test_a_part_with_no_ink_on_one_side_of_the_cut_is_an_empty_sliver():
    page = read_page(written(["7"]), "seven")
    seven = page.rows[0][0]
    top, left, bottom, right = seven.bbox
    wider = Character(seven.labels, (top, left - 30, bottom, right))  # ink starts at left
    empty, rest = split(page, wider, left - 10)
    assert empty.height == 1 and rest.bbox[0] == top and rest.bbox[2] == bottom


def test_an_underline_and_a_mark_at_the_border_are_left_out_with_a_reason():
    grey = np.vstack([written(["457"]), np.full((300, 360), 225 / 255, np.float32)])
    h, w = grey.shape
    grey[210:216, 40:w - 60] = 0.1  # an underline
    rng = np.random.default_rng(0)
    for row in range(200, h):  # a ragged dark band along the left edge, 3 digits tall
        grey[row, :int(rng.integers(4, 9))] = 0.15
    page = read_page(grey, "underlined")
    assert [len(row) for row in page.rows] == [3]
    reasons = sorted(why.split(",")[0] for _, why in page.left_out)
    assert reasons == ["a line across", "at the picture's border"]


def cropped_to_ink(grey: np.ndarray) -> np.ndarray:
    ink = np.argwhere(grey < 0.5)
    (top, left), (bottom, right) = ink.min(axis=0), ink.max(axis=0) + 1
    return grey[top:bottom, left:right]


def test_a_number_cropped_to_its_digits_keeps_the_digit_that_fills_a_corner():
    # A taller 7, then 2 and 4 level with its middle, the picture cut at the ink: the 7
    # fills two corners, where a page's edge or a shadow would lie in a photo of a page.
    seven, rest = cropped_to_ink(written(["7"], size=100)), cropped_to_ink(written(["24"]))
    grey = np.full((len(seven), seven.shape[1] + 12 + rest.shape[1]), 225 / 255, np.float32)
    grey[:, :seven.shape[1]] = seven
    top = (len(seven) - len(rest)) // 2
    grey[top:top + len(rest), -rest.shape[1]:] = rest
    page = read_page(grey, "cropped")
    assert [len(row) for row in page.rows] == [3]
    assert page.left_out == []


def test_digits_of_a_grids_rows_touching_are_cut_between_the_rows():
    mask = np.zeros((160, 400), bool)
    for top in (20, 90):  # two rows of five strokes, 40 px tall
        for left in range(40, 340, 60):
            mask[top:top + 40, left:left + 8] = True
            mask[top:top + 6, left:left + 20] = True
    mask[60:90, 100:108] = True  # the second column's digits touch across the rows
    _, _, rows, _ = find_characters(mask, mask.astype(np.float32))
    assert [len(row) for row in rows] == [5, 5]
    assert all(c.height <= 60 for row in rows for c in row)  # not 110: cut


@pytest.mark.parametrize("degrees", [-8, -4, 4, 8])
def test_rows_of_a_tilted_page_are_found_along_the_tilt(degrees):
    # Turned a few degrees, a long row drifts across the height bands of a level page
    # (and fell apart into three to five rows).
    lines = ["12345678901234", "56789012345678"]
    grey = ndimage.rotate(written(lines, size=60), degrees, order=1, cval=225 / 255)
    page = read_page(grey, "a tilted page")
    assert [len(row) for row in page.rows] == [14, 14]
    for row in page.rows:
        lefts = [c.bbox[1] for c in row]
        assert lefts == sorted(lefts)


def test_a_tall_digit_alone_in_its_row_is_not_cut():
    mask = np.zeros((200, 400), bool)
    for left in range(40, 340, 60):  # one row of strokes 40 px tall...
        mask[40:80, left:left + 8] = True
    mask[40:150, 100:108] = False
    mask[40:150, 160:168] = True  # ...one with a long tail (a 9's), crossing no other row
    _, _, rows, _ = find_characters(mask, mask.astype(np.float32))
    assert len(rows) == 1 and max(c.height for c in rows[0]) == 110


def test_a_digit_taller_than_its_row_is_given_strokes_thinner_in_proportion():
    image = Image.new("L", (520, 260), 230)
    draw = ImageDraw.Draw(image)
    for left in (40, 140, 340, 440):  # 1s, 80 px tall, in a fine pen
        draw.line([(left, 40), (left, 120)], fill=20, width=3)
    draw.line([(220, 40), (280, 40), (240, 200)], fill=20, width=3)  # a 7, its tail long
    page = read_page(np.asarray(image, np.float32) / 255, "a tall 7")
    (row,) = page.rows
    seven = max(row, key=lambda c: c.height)
    height = page.row_height(0)
    assert seven.height / height > 1.8
    # Read alone, the 7 gets MNIST's width; in its row, as a 7 of the row's height
    # would: its ink (its strokes' width times their length) in proportion.
    alone = character_image(page, seven)
    in_row = character_image(page, seven, height)
    assert abs(stroke_width(alone) - MNIST_STROKE) < 0.6
    assert abs(in_row.sum() / alone.sum() - height / seven.height) < 0.1
    one = row[0]  # a digit of the row's height is given MNIST's width either way
    assert np.array_equal(character_image(page, one), character_image(page, one, height))


def test_a_digit_written_lighter_than_the_others_is_found_with_them():
    font = ImageFont.load_default(size=80)
    image = Image.new("L", (560, 200), 225)
    draw = ImageDraw.Draw(image)
    for left, text, fill in ((40, "20", 30), (200, "4", 170), (300, "6", 30)):
        draw.text((left, 40), text, fill=fill, font=font)  # the 4 in a lighter pen
    grey = ndimage.gaussian_filter(np.asarray(image, np.float32) / 255, 1.0)
    grey = grey + np.random.default_rng(0).normal(0, 0.01, grey.shape).astype(np.float32)
    # Too light for the page's thresholds, set by the dark digits...
    assert not map_ink(grey, "lighter").mask[:, 200:280].any()
    page = read_page(grey, "lighter")  # ...but a digit-sized piece of faint ink in the row
    assert page.ink.mask[:, 200:280].any() and [len(row) for row in page.rows] == [4]


def test_the_faint_rim_of_the_digits_found_is_not_taken_for_a_faint_digit():
    # Blurred digits on grainy paper: the ink's faint edge, left out of the mask as
    # grain, once came back as "faint digits", fattening them and joining close ones.
    whole = 0
    for seed in range(12):
        rng = np.random.default_rng(seed)
        grey = ndimage.gaussian_filter(written(["2015"], size=int(rng.integers(40, 90))),
                                       rng.uniform(1, 2.5))
        grey = np.clip(grey + rng.normal(0, rng.uniform(0.01, 0.03), grey.shape), 0, 1
                       ).astype(np.float32)
        page = read_page(grey, "blurred")
        assert np.array_equal(page.ink.mask, map_ink(grey, "blurred").mask)
        whole += [len(row) for row in page.rows] == [4]
    assert whole >= 10  # 6 of 12 when the rims were added


def test_dust_scattered_over_the_page_more_specks_than_digits_is_left_out():
    # Eight dots in two bands of their own above and below "47": counted one each, they
    # outnumbered the digits and were read as rows of 0s and 1s.
    grey = written(["47"])
    for column in range(45, 245, 25):
        grey[8:16, column:column + 8] = grey[170:178, column + 10:column + 18] = 0.1
    page = read_page(grey, "dusty")
    assert [len(row) for row in page.rows] == [2]
    assert len(page.left_out) == 16
    assert {why for _, why in page.left_out} == {
        "far smaller than the page's digits (a dot, dust)"}


def test_a_dot_above_the_row_is_dust_not_a_row_of_its_own():
    grey = written(["2046"])
    grey[28:40, 228:240] = 0.1  # a dot up and right of the 6, above the row's band
    page = read_page(grey, "dot")
    assert [len(row) for row in page.rows] == [4]
    assert [(c.bbox, why) for c, why in page.left_out] == [
        ((27, 227, 41, 241), "far smaller than the page's digits (a dot, dust)")]


def test_specks_in_the_rows_band_outnumbering_its_digits_are_dust():
    # Four dots in line with "47", beyond a third of a height from the 7: counted one
    # each, the row's median height was a dot's, and "47" was read as "4710101010".
    grey = written(["47"])
    for column in (190, 210, 230, 250):
        grey[90:98, column:column + 8] = 0.1
    page = read_page(grey, "specked")
    assert [len(row) for row in page.rows] == [2]
    assert [why for _, why in page.left_out] == [
        "far smaller than the row's digits (a dot, dust)"] * 4


def test_a_digit_written_small_in_pieces_is_one_character():
    mask = np.zeros((120, 260), bool)
    for left in (20, 60):
        mask[20:80, left:left + 6] = True  # two 1s, 60 px tall
    mask[40:46, 120:134] = True  # a 5 two thirds as tall, far from them: its bar,
    mask[52:62, 120:125] = True  # its stem,
    mask[66:80, 120:140] = True  # its belly, each under half the row's height
    _, _, rows, left_out = find_characters(mask, mask.astype(np.float32))
    assert not left_out
    assert len(rows) == 1 and [len(c.labels) for c in rows[0]] == [1, 1, 3]
    assert rows[0][2].bbox == (40, 120, 80, 140)


@pytest.mark.parametrize("dot", [True, False], ids=["dot", "short bar"])
def test_a_dot_near_a_digit_is_dust_and_a_short_bar_as_near_is_joined_to_it(dot):
    mask = np.zeros((120, 240), bool)
    for left in (20, 60, 100):
        mask[20:80, left:left + 6] = True  # three 1s, 60 px tall
    if dot:  # a speck of dust 6 px square, 6 px right of the last 1's top
        mask[22:28, 112:118] = True
    else:  # a 5's bar written apart as short, as near: twice as long as thick
        mask[22:28, 112:124] = True
    _, _, rows, left_out = find_characters(mask, mask.astype(np.float32))
    if dot:
        assert [c.bbox for c in rows[0]][2] == (20, 100, 80, 106)
        assert [(c.bbox, why) for c, why in left_out] == [
            ((22, 112, 28, 118), "far smaller than the page's digits (a dot, dust)")]
    else:
        assert [c.bbox for c in rows[0]][2] == (20, 100, 80, 124) and not left_out
