"""mnist_cnn.reading.scoring: the reader measured on labelled folders, and the
development sets' thresholds (every misreading printed, so a regression fails CI with
its pictures named)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from test_segmentation import written

from mnist_cnn.reading.scoring import (
    digits_matched,
    read_labelled_numbers,
    read_labelled_singles,
    table_rows,
)


@pytest.mark.parametrize("read, label, right", [
    ("1234", "1234", 4),
    ("12 34", "1234", 4),  # rows split differently: the digits still count
    ("12834", "1234", 3),  # a mark read as a digit costs one
    ("124", "1234", 3),  # a digit missed costs one
    ("1284", "1234", 3),  # a digit misread costs one
    ("", "1234", 0),
    ("99999999", "12", 0),  # never below 0
])
def test_digits_right_are_the_labels_less_the_edit_distance(read, label, right):
    assert digits_matched(read, label) == right


def test_a_labelled_folder_of_numbers_is_scored_per_kind(tmp_path):
    for name, text in (("a.png", ["2024"]), ("b.png", ["86", "305"])):
        Image.fromarray((written(text) * 255).astype(np.uint8)).save(tmp_path / name)
    Image.new("L", (200, 100), 200).save(tmp_path / "blank.png")
    (tmp_path / "labels.csv").write_text(
        "path,label_string,kind\na.png,2024,drawn\nb.png,86 305,drawn\nblank.png,7,photo\n")
    score = read_labelled_numbers(tmp_path)
    assert score.exact() == (2, 3) and score.digits() == (9, 10)
    assert score.exact("photo") == (0, 1)
    blank = score.wrong()[0]
    assert blank.read is None and "no ink" in blank.note
    assert table_rows(score, numbers=True)[-1] == \
        f"| {tmp_path.name} | **all** | 2/3 (66.7 %) | 9/10 (90.0 %) |"


def test_a_labelled_folder_is_read_turned_as_photos_taken_askew(tmp_path):
    lines = ["12345678901234", "56789012345678"]
    Image.fromarray((written(lines, size=60) * 255).astype(np.uint8)).save(tmp_path / "a.png")
    Image.new("L", (200, 100), 200).save(tmp_path / "blank.png")
    (tmp_path / "labels.csv").write_text(
        f"path,label_string,kind\na.png,{' '.join(lines)},drawn\nblank.png,7,photo\n")
    for turn in (-4, 4):
        score = read_labelled_numbers(tmp_path, turn=turn)
        assert score.exact() == (1, 2)  # the page read along its tilt; the blank refused
        assert "no ink" in score.wrong()[0].note


def _report(score) -> None:
    for r in score.wrong():
        print(f"misread: {r.path}: {r.label!r} as {r.read!r} {r.note}")
    print("\n".join(table_rows(score, numbers=False)))


@pytest.mark.slow
def test_real_users_single_digits_are_read_at_least_98_5_percent_right(user_digits_dir,
                                                                      user_digits_more_dir):
    # The goal is 99 %; the bundled models read 291 of 294 (98.98 %): a 4 with a
    # long slanted left arm read as 9, an open-looped 9 as 7 (a 7 to a person too), a 6
    # whose top curls into a small loop as 8.
    first = read_labelled_singles(user_digits_dir)
    more = read_labelled_singles(user_digits_more_dir)
    _report(first)
    _report(more)
    right = first.exact()[0] + more.exact()[0]
    total = first.exact()[1] + more.exact()[1]
    assert right / total >= 0.985


@pytest.mark.slow
def test_real_users_numbers_are_read_78_percent_exactly_and_98_percent_of_digits(
        user_numbers_dir):
    # The goals are 70 % and 98 %; the bundled models read 19 of 23 exactly
    # (82.6 %) and 439 of 445 digits (98.7 %).
    score = read_labelled_numbers(user_numbers_dir)
    for r in score.wrong():
        print(f"misread: {r.path}: {r.label!r} as {r.read!r} {r.note}")
    print("\n".join(table_rows(score, numbers=True)))
    exact, pictures = score.exact()
    right, digits = score.digits()
    assert exact / pictures >= 0.78 and right / digits >= 0.98
