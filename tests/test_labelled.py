"""mnist_cnn.reading.labelled: a writer's digits labelled three ways, bad folders refused."""

from __future__ import annotations

import numpy as np
import pytest
from photolike import drawn_seven
from PIL import Image

from mnist_cnn.errors import ImageError
from mnist_cnn.reading.images import preprocess_image
from mnist_cnn.reading.labelled import LabelsError, read_labelled_digits


def seven(path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(drawn_seven()).save(path)


def test_a_labels_csv_subfolders_and_file_names_give_the_same_digits(tmp_path):
    seven(tmp_path / "csv" / "a.png")
    (tmp_path / "csv" / "labels.csv").write_text("path,label,kind\na.png,7,drawn\n")
    seven(tmp_path / "folders" / "7" / "a.png")
    seven(tmp_path / "names" / "7_mine.png")
    (tmp_path / "names" / "notes.txt").write_text("not a digit")
    read = [read_labelled_digits(tmp_path / kind) for kind in ("csv", "folders", "names")]
    for digits in read:
        assert len(digits) == 1 and digits.labels.tolist() == [7]
        assert digits.counts()[7] == 1 and len(digits.sha256[0]) == 64
        np.testing.assert_array_equal(digits.images[0],
                                      preprocess_image(tmp_path / "names" / "7_mine.png"))


@pytest.mark.parametrize("make, message", [
    (lambda d: d.mkdir(), "no labelled digits: give a labels.csv"),
    (lambda d: (d.mkdir(), (d / "labels.csv").write_text("path,label\na.png,x\n")),
     r"labels.csv, line 2: the label 'x' is not a digit 0 to 9"),
    (lambda d: (d.mkdir(), (d / "labels.csv").write_text("file,digit\na.png,7\n")),
     "needs a header with `path` and `label`"),
    (lambda d: (d.mkdir(), (d / "labels.csv").write_text("path,label\n../x.png,7\n")),
     "is outside the folder"),
    (lambda d: d.write_text("a file"), "not a folder of labelled digits"),
])
def test_a_folder_that_cannot_be_used_is_refused_in_one_line(tmp_path, make, message):
    make(tmp_path / "digits")
    with pytest.raises(LabelsError, match=message) as caught:
        read_labelled_digits(tmp_path / "digits")
    assert "\n" not in str(caught.value)


def test_an_unreadable_image_is_named(tmp_path):
    (tmp_path / "4").mkdir()
    (tmp_path / "4" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(ImageError, match=r"broken\.png"):
        read_labelled_digits(tmp_path)
