"""mnist_cnn.storage.files: files replaced whole or not at all; user files read safely."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from mnist_cnn.storage.files import (
    FileFormatError,
    atomic_write,
    check_writable_folder,
    open_regular,
    read_npz,
    remove_stale_temporaries,
    write_together,
)


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


def test_files_written_together_appear_together(tmp_path):
    a, b = tmp_path / "model.npz", tmp_path / "model.json"
    write_together({a: b"weights", b: b"{}"})
    assert a.read_bytes() == b"weights" and b.read_bytes() == b"{}"
    assert sorted(os.listdir(tmp_path)) == ["model.json", "model.npz"]


def test_temporaries_of_dead_processes_are_removed_and_live_ones_kept(tmp_path):
    dead = tmp_path / ".model.npz.999999999.abc123.tmp"  # no such process
    live = tmp_path / f".model.npz.{os.getpid()}.def456.tmp"
    other = tmp_path / "notes.tmp"
    for path in (dead, live, other):
        path.write_bytes(b"x")
    assert remove_stale_temporaries(tmp_path) == [dead]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, other.name])


def test_a_fifo_is_refused_without_reading_it(tmp_path):
    fifo = tmp_path / "model.npz"
    os.mkfifo(fifo)
    with pytest.raises(FileFormatError, match="not a regular file"):
        open_regular(fifo, "weights file")


def test_npz_headers_are_checked_before_any_data_is_read(tmp_path):
    path = tmp_path / "a.npz"
    np.savez(path, big=np.zeros((1000, 1000)))
    seen = {}

    def check(headers):
        seen.update({k: (h.shape, str(h.dtype)) for k, h in headers.items()})
        raise FileFormatError("too big")

    with pytest.raises(FileFormatError, match="too big"):
        read_npz(path, "test file", check)
    assert seen == {"big": ((1000, 1000), "float64")}


def test_a_file_given_as_the_output_folder_is_refused(tmp_path):
    (tmp_path / "run").write_text("x")
    with pytest.raises(FileFormatError, match="is a file, not a folder"):
        check_writable_folder(tmp_path / "run", "the output folder")
