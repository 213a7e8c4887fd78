"""mnist_cnn.atomic: a file is replaced whole or not at all."""

from __future__ import annotations

import os
import stat

import pytest

from mnist_cnn.atomic import atomic_write


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "model.npz"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_write(path) as f:
        f.write(b"half")
        raise RuntimeError("disk full")
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["model.npz"]


def test_new_files_get_the_usual_permissions_not_private_ones(tmp_path):
    old = os.umask(0o022)
    try:
        with atomic_write(tmp_path / "a.png") as f:
            f.write(b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.png").stat().st_mode) == 0o644


def test_replacing_a_file_keeps_its_mode(tmp_path):
    path = tmp_path / "history.csv"
    path.write_text("old")
    path.chmod(0o640)
    with atomic_write(path, text=True) as f:
        f.write("new")
    assert path.read_text() == "new" and stat.S_IMODE(path.stat().st_mode) == 0o640
