"""mnist_cnn.nets.engines.legacy: the child process supervised, the environment swapped.

Fake legacy interpreters (small Python scripts that stall, print garbage or die) stand
in for Theano where the point is what the parent does; the last test kills a parent of
the real program with SIGKILL.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from subprocesses import default_sigint

from mnist_cnn.errors import EngineError
from mnist_cnn.nets.engines.legacy import environment as legacy
from mnist_cnn.nets.engines.legacy.engine import (
    FOLDER_PREFIX,
    LasagneProgram,
    remove_stale_folders,
)
from mnist_cnn.reading.predictions import bundled_weights_path

ROOT = Path(__file__).resolve().parents[1]
READY = {"ready": True, "versions": {"theano": "0.8.2", "lasagne": "0.1", "numpy": "1",
                                     "python": "3.9.0"}}


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie waiting for its reaper does not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture
def fake_interpreter(tmp_path, monkeypatch):
    """Make the legacy environment's interpreter a script whose body is given: it
    receives ``-I program.py FOLDER PARENT_PID HEARTBEAT`` like the real one."""
    home = tmp_path / "legacy"
    home.mkdir()
    monkeypatch.setenv("MNIST_CNN_LEGACY_DIR", str(home))
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the children's folders land here
    monkeypatch.setattr("tempfile.tempdir", None)

    def make(body: str) -> Path:
        script = home / "python"
        script.write_text(f"#!{sys.executable}\nimport json, os, sys, time\n"
                          f"import numpy as np\n"
                          f"READY = {READY!r}\n"
                          "def send(m):\n    print(json.dumps(m), flush=True)\n"
                          + textwrap.dedent(body))
        script.chmod(0o755)
        (home / "ready.json").write_text(json.dumps({"python_path": str(script)}))
        return script

    return make


def children_folders(tmp_path: Path) -> list[Path]:
    return list(tmp_path.glob(FOLDER_PREFIX + "*"))


@pytest.mark.parametrize("body, shown", [
    ("print('Python 3.9.18 (default)')", "Python 3.9.18 (default)"),
    ("send([1, 2])", "[1, 2]"),
    ("send({'ready': True})", '"ready": true'),
    ("send(READY); sys.stdin.readline(); send({'built': 1})", '"built": 1'),
    ("sys.stdout.write('x' * 3_000_000 + '\\n'); sys.stdout.flush()", "xxxxxxxx"),
])
def test_a_child_out_of_protocol_is_stopped_with_one_clear_error(fake_interpreter, tmp_path,
                                                                 body, shown):
    script = fake_interpreter(body)
    with pytest.raises(EngineError, match="answered out of protocol") as caught:
        LasagneProgram("cnn", train=False, silence_limit=20)
    message = str(caught.value)
    assert str(script) in message and shown in message and "\n" not in message
    assert children_folders(tmp_path) == []


def test_a_stalled_child_is_reported_and_killed_after_the_silence_limit(fake_interpreter,
                                                                        tmp_path):
    fake_interpreter("send(READY)\ntime.sleep(600)")
    start = time.monotonic()
    with pytest.raises(EngineError, match="no sign of life for 2 s and was stopped"):
        LasagneProgram("cnn", train=False, silence_limit=2)
    waited = time.monotonic() - start
    print(f"a stalled child reported after {waited:.1f} s (limit 2 s)")
    assert 2 <= waited < 8
    assert children_folders(tmp_path) == []


def test_heartbeats_keep_a_slow_child_alive_past_the_silence_limit(fake_interpreter):
    fake_interpreter("""
        send(READY)
        request = json.loads(sys.stdin.readline())
        for _ in range(8):  # 4 s of work, a sign of life every 0.5 s
            time.sleep(0.5)
            send({"alive": True})
        path = os.path.join(sys.argv[3], "initial.npz")
        np.savez(path, order_keys=np.zeros(624, np.uint32))
        send({"built": path, "order": [624, 0, 0.0]})
        sys.stdin.readline()
    """)
    with LasagneProgram("cnn", train=False, silence_limit=2) as program:
        assert program.versions["lasagne"] == "0.1" and program.initial_order == [624, 0, 0.0]
        folder = program.folder
        assert folder.is_dir()
    assert not folder.exists()


def test_a_child_that_dies_is_reported_with_its_exit_code_and_last_words(fake_interpreter):
    fake_interpreter("send(READY); sys.stderr.write('MemoryError: boom\\n'); sys.exit(3)")
    with pytest.raises(EngineError, match=r"stopped \(exit 3\): MemoryError: boom"):
        LasagneProgram("cnn", train=False, silence_limit=20)


def test_the_command_line_says_one_line_when_the_child_speaks_garbage(fake_interpreter,
                                                                      mnist_dir, tmp_path):
    fake_interpreter("print('garbage')")
    env = {**os.environ, "MNIST_DATA_DIR": str(mnist_dir)}
    done = subprocess.run([sys.executable, "-m", "mnist_cnn", "evaluate", "--engine",
                           "lasagne", "--weights", str(bundled_weights_path())], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert "answered out of protocol ('garbage')" in done.stderr


def test_stale_folders_of_dead_owners_are_removed_and_their_children_killed(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    orphan = subprocess.Popen(["sleep", "600"], start_new_session=True)
    try:
        stale = tmp_path / f"{FOLDER_PREFIX}stale"
        stale.mkdir()
        (stale / "weights.npz").write_bytes(b"x" * 1000)
        (stale / "owner.json").write_text(json.dumps({"pid": dead.pid, "child": orphan.pid}))
        mine = tmp_path / f"{FOLDER_PREFIX}mine"
        mine.mkdir()
        (mine / "owner.json").write_text(json.dumps({"pid": os.getpid()}))
        young = tmp_path / f"{FOLDER_PREFIX}young"  # made a moment ago, no owner file yet
        young.mkdir()
        assert remove_stale_folders(tmp_path) == [stale]
        assert mine.is_dir() and young.is_dir()
        orphan.wait(timeout=10)
        assert orphan.returncode == -signal.SIGKILL
    finally:
        orphan.kill()


@pytest.mark.usefixtures("real_lasagne")
@pytest.mark.lasagne
def test_the_real_child_dies_with_its_killed_parent_and_its_folder_goes_at_the_next_start():
    parent = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent("""
            import time
            from mnist_cnn.nets.engines.legacy.engine import LasagneProgram
            program = LasagneProgram("cnn", train=False)
            print(program._process.pid, program.folder, flush=True)
            time.sleep(600)
        """)], cwd=ROOT, stdout=subprocess.PIPE, text=True, preexec_fn=default_sigint)
    try:
        child, folder = parent.stdout.readline().split()
        child = int(child)
        assert alive(child) and Path(folder).is_dir()
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 10
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(child)
    assert Path(folder).is_dir()  # SIGKILL left it behind ...
    with LasagneProgram("cnn", train=False):
        assert not Path(folder).exists()  # ... and the next program removed it


def test_a_failed_setup_keeps_the_working_environment(tmp_path, monkeypatch):
    home = tmp_path / "legacy"
    monkeypatch.setenv("MNIST_CNN_LEGACY_DIR", str(home))
    working = home / "builds" / "build-good"
    (working / "venv" / "bin").mkdir(parents=True)
    (working / "venv" / "bin" / "python").write_text("")
    ready = json.dumps({"python_path": str(working / "venv" / "bin" / "python"),
                        "built": str(working)})
    (home / "ready.json").write_text(ready)
    fake = tmp_path / "python3.9"  # says it is 3.9; cannot make a venv
    fake.write_text("#!/bin/sh\ncase \"$*\" in *version_info*) echo 3 9;; "
                    "*) echo 'Error: ensurepip is not available' >&2; exit 1;; esac\n")
    fake.chmod(0o755)
    with pytest.raises(EngineError, match="creating the virtual environment failed "
                                          r"\(exit 1\): Error: ensurepip"):
        legacy.setup(fake, verbose=False)
    assert (home / "ready.json").read_text() == ready
    assert sorted(p.name for p in (home / "builds").iterdir()) == ["build-good"]
    python, env = legacy.environment()
    assert python == working / "venv" / "bin" / "python"
    assert f"-L{working / 'blas'}" in env["THEANO_FLAGS"]
