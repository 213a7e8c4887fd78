"""mnist_cnn.reading.ink: each step finds a digit's ink against the paper, and only its ink."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
from photolike import compose_number
from PIL import Image, ImageDraw

from mnist_cnn.errors import ImageError
from mnist_cnn.reading.images import load_grey, preprocess_image
from mnist_cnn.reading.ink import (
    BLOB,
    FRAME,
    UNDERLINE,
    InkMap,
    digit_ink,
    faint_parts,
    find_digit,
    find_ink,
    find_lines,
    ink_bright,
    ink_levels,
    ink_mask,
    ink_pieces,
    map_ink,
    noise_level,
    polarity,
    remove_background,
    select_digit,
    smooth_noise,
    stroke_width,
    surrounded_by_paper,
    thicker_strokes_width,
    thickest_parts,
)


def page(size: tuple[int, int] = (300, 400), paper: float = 0.85) -> tuple[Image.Image, Any]:
    image = Image.new("F", (size[1], size[0]), paper)
    return image, ImageDraw.Draw(image)


def array(image: Image.Image) -> np.ndarray:
    return np.array(image, np.float32)


def five(draw: ImageDraw.ImageDraw, body: float, bar: float, x: int = 150, y: int = 80,
         pen: int = 8) -> None:
    """A 5 whose bar is written apart from its body, each with its own darkness."""
    draw.line([(x, y), (x + 90, y)], fill=bar, width=pen)
    draw.line([(x, y + 10), (x, y + 70)], fill=body, width=pen)
    draw.arc([(x - 10, y + 55), (x + 90, y + 150)], 200, 160, fill=body, width=pen)


def test_dark_ink_on_paper_is_inverted_and_light_ink_on_a_board_is_not():
    image, draw = page()
    draw.line([(200, 50), (200, 250)], fill=0.1, width=8)
    grey = array(image)
    assert ink_bright(grey)[150, 200] > ink_bright(grey)[150, 50]
    board = 1 - grey
    assert ink_bright(board)[150, 200] > ink_bright(board)[150, 50]


def cropped_zero(height: int, width: int, pen: int) -> np.ndarray:
    """A bold 0 photographed and cropped to its strokes: it touches all four sides."""
    image, draw = page((height, width), paper=0.8)
    draw.ellipse([(0, 0), (width - 1, height - 1)], outline=0.15, width=pen)
    noise = np.random.default_rng(1).normal(0, 0.02, (height, width))
    return np.clip(array(image) + noise, 0, 1).astype(np.float32)


def test_polarity_is_sure_on_a_page_and_unsure_on_a_digit_filling_its_picture():
    image, draw = page()
    draw.ellipse([(150, 80), (230, 220)], outline=0.15, width=12)
    assert polarity(array(image)).sure and polarity(array(image)).dark
    assert not polarity(cropped_zero(60, 45, 9)).sure


def test_a_margin_of_paper_continues_the_papers_level_and_grain_around_the_picture():
    grey = cropped_zero(120, 90, 18)
    out = surrounded_by_paper(grey)
    margin = 30  # a quarter of the longer side
    assert out.shape == (120 + 2 * margin, 90 + 2 * margin)
    assert np.array_equal(out[margin:-margin, margin:-margin], grey)
    around = np.concatenate([out[:margin].ravel(), out[-margin:].ravel()])
    assert abs(np.median(around) - 0.8) < 0.01  # the paper, not the ink on the border
    assert 0.015 < noise_level(around) < 0.025  # and its grain
    assert np.array_equal(surrounded_by_paper(grey), out)  # the same every time


@pytest.mark.parametrize(("height", "width", "pen"), [(120, 90, 18), (60, 45, 9)])
def test_a_digit_cropped_to_its_strokes_is_found_as_with_paper_around_it(height, width, pen):
    # Filling the picture, the 0 had been refused as "no ink found" (120x90) or read
    # with its inside as ink (60x45): the paper's fit ran through the strokes.
    seen = preprocess_image(cropped_zero(height, width, pen))
    assert seen[12:16, 12:16].max() == 0  # the paper inside the 0
    assert seen.sum() > 100  # and its ring


def test_polarity_survives_a_dark_shadow_over_a_third_of_the_page():
    image, draw = page()
    draw.line([(250, 60), (250, 240)], fill=0.1, width=8)
    grey = array(image)
    grey[:, :130] *= 0.55  # a sharp-edged shadow, darker than half the page
    assert ink_bright(grey)[150, 250] > 0.8


def test_polarity_survives_a_lighting_gradient_across_the_page():
    # Lit from one side: most of the paper lies on the ink's side of the picture's
    # middle grey, but not of the paper's own level.
    image, draw = page()
    draw.line([(200, 80), (200, 220)], fill=0.55, width=6)
    grey = np.clip(array(image) * np.linspace(0.5, 1.1, 400, dtype=np.float32)[None, :], 0, 1)
    assert ink_bright(grey)[150, 200] > ink_bright(grey)[150, 180] + 0.1


def test_background_removal_flattens_a_lighting_gradient_and_a_shadows_plateau():
    image, draw = page()
    draw.line([(200, 60), (200, 240)], fill=0.15, width=8)
    grey = array(image) * np.linspace(0.6, 1.0, 400)[None, :]  # darker to the left
    grey[200:, :] *= 0.6  # a shadow over the bottom third
    ink = remove_background(1 - grey)
    paper = np.ones_like(ink, bool)
    paper[:, 180:220] = False
    assert np.abs(ink[paper]).max() < 0.1  # the paper is flat, in and out of the shadow
    assert ink[150, 200] > 0.5


def test_a_shadows_sharp_edge_across_a_number_leaves_no_ink_beside_its_digits():
    # 30 numbers of three rings, each photographed with a shadow's straight edge at a
    # random angle, most of them across the digits. Measured: 4 of 30 with ink more
    # than 5 px beyond the digits (a corner of the shadow), 11 before the ink had to
    # stand out of the paper a few stroke widths around it too (a band of the shadow
    # along its edge, joined to the digits it crossed).
    ring = Image.new("F", (60, 90), 0)
    ImageDraw.Draw(ring).ellipse([4, 4, 55, 85], outline=1, width=9)
    beside = []
    for seed in range(30):
        data, boxes = compose_number([np.array(ring)] * 3, np.random.default_rng(seed),
                                     gap=(0.3, 0.5), paper="shadowed")
        mask = map_ink(load_grey(Image.open(io.BytesIO(data))), "shadowed").mask
        for top, left, bottom, right in boxes:
            mask[max(top - 5, 0):bottom + 5, max(left - 5, 0):right + 5] = False
        beside.append(int(mask.sum()))
    print("ink beside the digits, pixels:", beside)
    assert sum(b > 0 for b in beside) <= 5


def test_the_stroke_width_is_the_digits_not_a_longer_thinner_frame_around_it():
    # A 0 drawn 12 px wide in a box 3 px wide and three times as long around it: the
    # median along the strokes' middle lines would be the box's 3 px.
    image, draw = page()
    draw.ellipse([160, 90, 240, 210], outline=0, width=12)
    draw.rectangle([110, 50, 290, 250], outline=0, width=3)
    width = thicker_strokes_width(array(image) < 0.5)
    assert 10 <= width <= 14


def test_noise_is_measured_on_the_paper_and_smoothed_away():
    rng = np.random.default_rng(0)
    noisy = rng.normal(0, 0.05, (200, 200)).astype(np.float32)
    noisy[98:102, 20:180] += 0.6  # a stroke does not move the robust estimate
    assert noise_level(noisy) == pytest.approx(0.05, rel=0.1)
    assert noise_level(smooth_noise(noisy)) < 0.02


def test_thresholds_stand_above_the_noise_and_below_the_strokes():
    rng = np.random.default_rng(1)
    ink = rng.normal(0, 0.03, (200, 200)).astype(np.float32)
    ink[50:150, 95:105] = 0.8
    low, high = ink_levels(ink)
    assert 3 * 0.03 * 0.9 <= low < high < 0.8


def test_a_faint_stroke_touching_a_strong_one_is_kept_and_noise_is_not():
    rng = np.random.default_rng(2)
    ink = rng.normal(0, 0.02, (200, 200)).astype(np.float32)
    ink[40:160, 95:103] = 0.9  # strong
    ink[40:48, 103:170] = 0.25  # faint, attached: a 7's bar pressed lightly
    low, high = ink_levels(smooth_noise(ink))
    mask = ink_mask(smooth_noise(ink), low, high)
    assert mask[44, 160] and mask[100, 99]
    assert mask.mean() < 0.06


def test_paper_grain_next_to_a_stroke_is_not_ink_and_a_lightly_pressed_part_is():
    ink = np.zeros((60, 60), np.float32)
    ink[5:55, 20:24] = 0.5  # a stroke
    ink[10:40, 24:40] = 0.05  # the paper's grain beside it, just above the low threshold
    ink[50:54, 24:50] = 0.15  # a lightly pressed bar attached (under 1/3 of the stroke)
    low, high = 0.04, 0.2
    grainy = ink_mask(ink, low, high, grain=0.12)  # 12 noise levels of 0.01
    assert grainy[30, 22] and grainy[52, 45]
    assert not grainy[10:40, 25:40].any()
    # Without the grain's level (a clean drawing), what is above low and touches stays.
    assert ink_mask(ink, low, high)[10:40, 24:40].all()


def test_a_lighter_digit_touching_a_darker_one_keeps_its_strokes():
    ink = np.zeros((80, 120), np.float32)
    ink[10:70, 20:24] = 0.5  # a dark digit's stroke
    ink[40:44, 24:100] = 0.1  # a lighter digit's stroke touching it: its edges are
    ink[41:43, 24:100] = 0.13  # under a quarter of the dark one, its middle just above
    ink[10:30, 24:32] = 0.05  # the grain; the paper's grain beside the dark stroke
    mask = ink_mask(ink, 0.04, 0.2, grain=0.12)
    assert mask[40:44, 30:100].all()
    assert not mask[10:30, 26:32].any()


def test_grain_between_a_dark_stroke_and_a_light_one_close_by_does_not_bridge_them():
    ink = np.zeros((80, 80), np.float32)
    ink[10:70, 20:24] = 0.5  # a dark digit's stroke
    ink[10:70, 30:34] = 0.13  # a light digit's stroke, six pixels away
    ink[45:50, 24:30] = 0.05  # the paper's grain between them
    mask = ink_mask(ink, 0.04, 0.2, grain=0.12)
    assert mask[10:70, 30:34].all() and mask[10:70, 20:24].all()
    assert not mask[45:50, 24:30].all(axis=1).any()  # no row of grain joins them


def test_a_faint_rim_of_a_clean_drawing_stays_ink():
    image, draw = page(paper=1.0)
    draw.line([(100, 60), (100, 240)], fill=0.0, width=6)
    smooth = Image.fromarray(array(image)).resize((100, 75), Image.BILINEAR)  # grey rims
    ink_map = map_ink(array(smooth), "drawing")
    grey = array(smooth)
    assert ink_map.mask[grey < 0.99].all()  # down to its lightest edge pixels


def test_a_separate_faint_bar_with_some_strong_pixels_is_kept_whole():
    image, draw = page()
    five(draw, body=0.1, bar=0.65)  # the bar much lighter than the body...
    draw.line([(150, 80), (165, 80)], fill=0.1, width=8)  # ...but pressed at its start
    ink = smooth_noise(remove_background(ink_bright(array(image))))
    low, high = ink_levels(ink)
    assert ink_mask(ink, low, high)[80, 220]  # the bar's light end


def test_ruled_lines_are_found_and_a_digit_crossing_them_is_not():
    image, draw = page((400, 400))
    for y in range(20, 400, 50):
        draw.line([(0, y), (399, y + 4)], fill=0.6, width=2)  # tilted a little
    draw.line([(200, 60), (200, 300)], fill=0.1, width=10)  # a 1 across five lines
    ink = smooth_noise(remove_background(ink_bright(array(image))))
    low, _ = ink_levels(ink)
    lines = find_lines(ink > low)
    assert lines[20:30, 20:60].any() and lines[370:380, 340:380].any()
    assert not lines[60:300, 195:205].any()  # the 1, even where it crosses a line


def test_squared_paper_lines_are_found_both_ways():
    image, draw = page((400, 400))
    for v in range(10, 400, 40):
        draw.line([(0, v), (399, v)], fill=0.6, width=2)
        draw.line([(v, 0), (v, 399)], fill=0.6, width=2)
    ink = smooth_noise(remove_background(ink_bright(array(image))))
    lines = find_lines(ink > ink_levels(ink)[0])
    assert lines[10, 200] and lines[200, 10]


def test_a_stroke_along_a_light_ruled_line_stays_whole_and_the_line_is_not_ink():
    # A 0 whose top runs along a line of ruled paper: taken as the line, the top was
    # cut away (on squared paper a 0 fell apart and was read as "61").
    image, draw = page((300, 400))
    for y in range(20, 300, 50):
        draw.line([(0, y), (399, y)], fill=0.6, width=3)
    draw.ellipse([(150, 70), (250, 230)], outline=0.1, width=8)  # its top on the line at 70
    found = map_ink(array(image), "a 0 on ruled paper")
    assert found.mask[70:74, 192:208].all()  # the top, where it runs along the line
    assert not found.mask[66:75, 20:120].any() and not found.mask[266:275, 20:380].any()


def test_a_darker_stretch_of_a_line_away_from_the_writing_is_still_the_line():
    image, draw = page((300, 400))
    for y in range(20, 300, 50):
        draw.line([(0, y), (399, y)], fill=0.6, width=3)
    draw.line([(0, 270), (120, 270)], fill=0.1, width=3)  # a line printed darker there
    draw.line([(250, 60), (250, 240)], fill=0.1, width=10)  # a 1 across three lines
    found = map_ink(array(image), "a 1 on ruled paper")
    assert not found.mask[265:276, :].any()
    assert found.mask[60:240, 248:253].all()


def test_a_single_long_stroke_inside_the_picture_is_not_a_line():
    image, draw = page((200, 200))
    draw.line([(100, 2), (100, 197)], fill=0.1, width=12)  # a 1 in a tight crop
    ink = smooth_noise(remove_background(ink_bright(array(image))))
    assert not find_lines(ink > ink_levels(ink)[0]).any()


def test_one_ruled_line_running_on_past_a_digit_is_a_line_and_a_tight_crops_bar_is_not():
    # A digit written on a ruled line, the only one in the picture: the line read as
    # the digit's base turned most digits into 2s.
    image, draw = page((300, 400))
    draw.line([(0, 240), (399, 240)], fill=0.5, width=3)  # the ruled line
    draw.line([(200, 60), (200, 240)], fill=0.1, width=10)  # a 1 standing on it
    ink = smooth_noise(remove_background(ink_bright(array(image))))
    lines = find_lines(ink > ink_levels(ink)[0])
    assert lines[240, 50] and lines[240, 350] and not lines[150, 200]
    # A 4 cropped to its ink: its bar runs from side to side, as does the rest of it.
    image, draw = page((200, 160))
    draw.line([(10, 0), (0, 130), (159, 130)], fill=0.1, width=10)
    draw.line([(120, 60), (120, 199)], fill=0.1, width=10)
    ink = smooth_noise(remove_background(ink_bright(array(image))))
    assert not find_lines(ink > ink_levels(ink)[0]).any()


def test_a_page_edge_along_the_pictures_border_is_a_line():
    image, draw = page((300, 300))
    draw.rectangle([(0, 0), (299, 5)], fill=0.2)  # the table beyond the page's top edge
    draw.line([(150, 60), (150, 240)], fill=0.1, width=10)
    ink = smooth_noise(remove_background(ink_bright(array(image))))
    lines = find_lines(ink > ink_levels(ink)[0])
    assert lines[2, 100] and not lines[150, 150]


@pytest.mark.parametrize("height, width, thickness", [(960, 540, 90), (400, 400, 40)])
def test_a_shadows_edge_across_the_picture_is_not_ruled_lines(height, width, thickness):
    # A band of faint ink across the whole picture, tilted a little (the lit paper
    # just below a phone's shadow): the Hough transform sees it at two tilts, but it is
    # one thick band, not two ruled lines (as lines, a digit's bar lying in it was erased).
    rows, cols = np.mgrid[0:height, 0:width]
    top = 0.4 * height + 0.03 * cols
    assert not find_lines((rows >= top) & (rows < top + thickness)).any()


def test_specks_are_not_pieces_and_a_shadow_from_the_edge_is_dropped():
    mask = np.zeros((400, 400), bool)
    ink = np.zeros((400, 400), np.float32)
    mask[150:250, 195:205] = True  # the digit, a 1
    mask[10, 10] = True  # a speck
    mask[300:400, 0:120] = True  # a plateau coming in from the corner
    ink[mask] = 1.0
    labels, pieces, _ = ink_pieces(mask, ink)
    assert len(pieces) == 1
    assert (labels == pieces[0].label)[200, 200]


def test_small_digits_beside_a_table_along_the_border_are_not_specks():
    # A sheet photographed on a table: a dark band along the picture's side holds far
    # more ink than any digit; beside it, a short thin 1 was under 2 % of it, a speck.
    mask = np.zeros((400, 600), bool)
    mask[:, 560:] = True  # the table, 40 px wide, along the right side
    mask[150:250, 100:112] = True  # a 0's sides and top...
    mask[150:250, 160:172] = True
    mask[150:162, 100:172] = True
    mask[238:250, 100:172] = True
    mask[170:230, 300:303] = True  # ...and a short thin 1
    ink = mask.astype(np.float32)
    labels, pieces, _ = ink_pieces(mask, ink)
    kept = {int(labels[200, 105]), int(labels[200, 301])} - {0}
    assert kept == {p.label for p in pieces}  # the 0 and the 1, not the table


def test_a_box_drawn_around_a_digit_is_set_aside_and_a_round_0_holding_a_dot_is_not():
    rows, cols = np.mgrid[0:300, 0:500]
    mask = np.zeros((300, 500), bool)
    mask[40:260, 30:200] = True  # a box, 4 px lines
    mask[44:256, 34:196] = False
    mask[100:200, 110:118] = True  # the 1 inside it
    ring = np.hypot((rows - 150) / 1.3, cols - 380)
    mask |= (ring >= 60) & (ring < 70)  # a 0 as tall as the box...
    mask[142:158, 372:388] = True  # ...holding a dot
    labels, pieces, marks = ink_pieces(mask, mask.astype(np.float32))
    assert [(labels[40, 100] == p.label, why) for p, why in marks] == [(True, FRAME)]
    assert {p.label for p in pieces} == {labels[150, 114], labels[150, 380 - 65],
                                         labels[150, 380]}


def test_a_line_under_a_digit_is_set_aside_but_a_bar_over_its_digit_is_not():
    mask = np.zeros((300, 500), bool)
    mask[60:180, 100:108] = True  # a 1
    mask[200:206, 70:140] = True  # underlined, 20 px under it
    mask[60:66, 300:380] = True  # a 7's bar written apart...
    mask[72:180, 372:380] = True  # ...over its stem
    mask[290:296, 250:450] = True  # the page's edge, far under the 7
    labels, pieces, marks = ink_pieces(mask, mask.astype(np.float32))
    assert [(labels[203, 100] == p.label, why) for p, why in marks] == [(True, UNDERLINE)]
    assert labels[63, 340] in {p.label for p in pieces}
    assert labels[293, 300] in {p.label for p in pieces}


@pytest.mark.parametrize("mark", ["framed", "underlined"])
def test_a_digit_written_bold_in_a_thin_box_or_over_a_thin_line_is_the_digit(mark):
    # Measured against the thin mark, the bold digit's strokes were a blot's: the mark
    # was read as the digit (a box as 0, a line as 1 or 2).
    image, draw = page((400, 400))
    draw.line([(200, 100), (200, 300)], fill=0.1, width=40)  # a bold 1
    if mark == "framed":
        draw.rectangle([(120, 60), (280, 340)], outline=0.2, width=3)
    else:
        draw.line([(140, 340), (260, 340)], fill=0.2, width=3)
    digit = find_ink(array(image), mark) > 0.5
    assert digit[200, 200] and not digit[340, 140:260].any()


def test_the_digit_keeps_its_parts_and_the_central_one_wins_over_an_edge_blob():
    image, draw = page()
    five(draw, body=0.1, bar=0.1)
    draw.ellipse([(360, 10), (400, 60)], fill=0.1)  # a blot at the edge, as inky
    ink = smooth_noise(remove_background(ink_bright(array(image))))
    low, high = ink_levels(ink)
    digit = select_digit(ink_mask(ink, low, high), ink)
    assert digit[80, 200] and digit[120, 150]  # the bar and the body
    assert not digit[30, 390]


def test_digit_ink_reaches_1_on_the_strokes_and_0_away_from_them():
    image, draw = page()
    draw.line([(200, 60), (200, 240)], fill=0.4, width=8)  # a grey pen
    found = map_ink(array(image), "test")
    ink = digit_ink(found, found.mask)
    assert ink[150, 200] == pytest.approx(1.0, abs=0.05)
    assert ink[150, 100] == 0 and ink.max() <= 1


def test_a_5s_bar_written_apart_and_much_lighter_is_kept_at_full_strength():
    image, draw = page()
    five(draw, body=0.05, bar=0.6)  # a third of the body's contrast
    found = map_ink(array(image), "test")
    digit = select_digit(found.mask, found.seen)
    assert not digit[80, 200]  # too light for the page's thresholds...
    assert faint_parts(found, digit)[80, 200]  # ...but near the digit, lighter
    ink = find_ink(array(image), "test")
    assert ink[80, 200] > 0.9 and ink[120, 150] > 0.9


def test_a_stroke_pressed_lighter_and_touching_the_rest_reaches_full_strength():
    image, draw = page()
    draw.line([(120, 80), (260, 80)], fill=0.55, width=8)  # a 7's bar, pressed lightly
    draw.line([(260, 80), (180, 260)], fill=0.1, width=8)  # its stem
    ink = find_ink(array(image), "test")
    assert ink[80, 150] > 0.9 and ink[170, 220] > 0.9  # as in MNIST, black and white


def test_ink_far_weaker_than_the_digits_strokes_stays_faint():
    ink = np.zeros((80, 120), np.float32)
    ink[10:70, 20:26] = 0.6  # a stroke
    ink[30:40, 26:50] = 0.06  # grey paper taken in with it
    found = InkMap(ink, ink, ink > 0, np.zeros(ink.shape, bool), low=0.04, high=0.2)
    kept = digit_ink(found, found.mask)
    assert kept[40, 22] == pytest.approx(1.0)
    assert kept[30:40, 26:50].max() < 0.3


def test_a_blank_or_uniform_page_has_no_ink():
    rng = np.random.default_rng(0)
    with pytest.raises(ImageError, match="blank: no ink found"):
        map_ink(np.clip(rng.normal(0.8, 0.03, (300, 300)), 0, 1).astype(np.float32), "blank")
    with pytest.raises(ImageError, match="no ink found"):
        find_ink(np.full((50, 50), 0.5, np.float32), "flat")


def test_a_patch_of_shadow_inside_the_page_is_not_a_stroke_and_is_no_piece():
    mask = np.zeros((400, 400), bool)
    mask[100:200, 95:105] = True  # a 1, 10 px strokes
    mask[100:110, 150:220] = True  # a 7's bar
    mask[100:200, 210:220] = True  # and its stem
    mask[250:330, 280:360] = True  # a shadow's patch, 80 px thick, inside the page
    labels, pieces, _ = ink_pieces(mask, mask.astype(np.float32))
    assert len(pieces) == 2 and (labels > 0)[290, 320]  # labelled, but not a piece
    assert {labels[150, 100], labels[150, 215]} == {p.label for p in pieces}


def test_a_digit_written_bold_beside_a_thin_one_is_a_stroke_and_a_patch_as_thick_is_not():
    # Digits from different pens: a bold 0 is over BLOB times as thick as a thin 1, but
    # long for its thickness; a patch of shadow as thick is about as long as thick.
    rows, cols = np.mgrid[0:400, 0:400]
    mask = np.zeros((400, 400), bool)
    mask[100:200, 50:53] = True  # a 1, 3 px strokes
    ring = np.hypot(rows - 150, cols - 150)
    mask |= (ring >= 34) & (ring < 50)  # a 0, 16 px strokes
    mask[250:290, 300:340] = True  # a patch, 40 px thick
    labels, pieces, _ = ink_pieces(mask, mask.astype(np.float32))
    assert {p.label for p in pieces} == {labels[150, 51], labels[150, 105]}
    thick = thickest_parts(labels, mask, pieces)
    assert thick.max() > BLOB * stroke_width(thick)


def test_a_sliver_cut_by_the_pictures_edge_does_not_set_the_stroke_width():
    # A small bold 8 whose loops the blur filled is compact, as a blot is; it is one
    # only if far thicker than the page's strokes, and the 2 px sliver of a shadow's
    # edge along the border is no stroke to measure by.
    rows, cols = np.mgrid[0:300, 0:300]
    mask = np.zeros((300, 300), bool)
    mask[0:2, 40:260] = True
    mask |= (np.hypot(rows - 130, cols - 150) < 12) | (np.hypot(rows - 152, cols - 150) < 12)
    labels, pieces, _ = ink_pieces(mask, mask.astype(np.float32))
    assert labels[130, 150] in {p.label for p in pieces}


def test_the_strokes_width_is_the_thin_pieces_and_a_blot_is_over_blob_times_it():
    mask = np.zeros((200, 300), bool)
    mask[20:180, 40:48] = True  # 8 px strokes
    mask[20:180, 100:108] = True
    mask[60:140, 180:260] = True  # a blot
    from skimage.measure import label

    labels = label(mask)
    _, pieces, _ = ink_pieces(mask, mask.astype(np.float32))
    thick = thickest_parts(labels, mask, pieces)
    assert stroke_width(thick) == pytest.approx(8, abs=2)
    assert len(pieces) == 2  # the blot is left out...
    strokes = ink_pieces(mask[:, :150], mask[:, :150].astype(np.float32))[1]
    assert len(strokes) == 2  # ...and two strokes alone both stay
    assert BLOB * stroke_width(thick) < 80


def test_a_grids_rows_and_columns_of_digits_are_not_ruled_lines(user_numbers_dir):
    # A real filled-in form, 28 px a digit: its rows of digits and a column of 9s line up
    # well enough to gather a line's votes, but leave gaps that a ruled line has not.
    grey = load_grey(user_numbers_dir / "kvenkman__mnist_demo" / "images" / "filled3.jpg")
    ink = smooth_noise(remove_background(ink_bright(grey)))
    assert not find_lines(ink > ink_levels(ink)[0]).any()


def test_a_small_dim_photo_of_a_digit_filling_it_is_found_not_refused():
    rng = np.random.default_rng(3)
    image, draw = page((28, 28), paper=0.75)
    draw.ellipse([(8, 2), (19, 13)], outline=0.25, width=2)  # an 8, thin strokes
    draw.ellipse([(7, 12), (20, 26)], outline=0.25, width=2)
    grey = np.clip(array(image) + rng.normal(0, 0.03, (28, 28)), 0, 1).astype(np.float32)
    found = find_digit(grey, "small")
    assert found.ink.shape[0] > 28 and found.ink.max() == pytest.approx(1.0)
    assert found.others == 0


def test_a_small_photo_is_enlarged_without_a_dark_frame_taken_for_ink():
    # Enlarged with scipy's default border (a constant 0), its last row and column
    # turned black: in a noisy, low-contrast photo they were the strongest "ink", taken
    # for a page's edges, and the digit was refused as "no ink found".
    rng = np.random.default_rng(0)
    image, draw = page((60, 60), paper=0.92)
    draw.line([(18, 14), (40, 14), (30, 28), (42, 36), (38, 46), (18, 46)], fill=0.75, width=4)
    grey = np.clip(array(image) + rng.normal(0, 0.04, (60, 60)), 0, 1).astype(np.float32)
    ink = find_digit(grey, "small").ink  # a 3, its rows 12 to 48 of 60
    assert ink.shape == (96, 96)
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    assert 0.15 < rows[0] / 96 and rows[-1] / 96 < 0.85 and cols[-1] / 96 < 0.8


def test_two_digits_side_by_side_are_counted_as_others():
    image, draw = page((200, 400))
    draw.line([(100, 50), (100, 150)], fill=0.1, width=8)  # a 1...
    draw.ellipse([(200, 50), (280, 150)], outline=0.1, width=8)  # ...and a 0
    draw.ellipse([(330, 60), (336, 66)], fill=0.1)  # a dot is not a digit
    assert find_digit(array(image), "10").others == 1


def test_a_small_photo_on_flat_grey_paper_is_enlarged_and_fills_mnists_box(
        user_digits_more_dir):
    # A real 28x28 JPEG of a photographed 8: grey paper (0.9) without measurable noise.
    # At its own size the smoothing joins its loops into a blob whose faint rim spans the
    # picture, and the 8 shrank to 13 of the 20 rows MNIST's digits fill; enlarged
    # first, as a noisy photo is, it fills them.
    path = (user_digits_more_dir / "SamDaQueen__Custom-Digit-Image-Recognition-with-MNIST-"
            "trained-on-CNN" / "self_digits" / "8.jpeg")
    assert find_digit(load_grey(path), "8.jpeg").ink.shape[0] > 28
    rows = np.flatnonzero((preprocess_image(path) > 0.5).any(axis=1))
    assert rows[-1] - rows[0] + 1 >= 19


def test_a_small_clean_drawing_is_read_at_its_own_size():
    grey = np.zeros((28, 28), np.float32)
    grey[6:22, 12:16] = 1.0  # a 1 on black, as MNIST's own digits
    assert find_digit(grey, "1").ink.shape == (28, 28)
