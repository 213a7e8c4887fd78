"""The ``lasagne`` engine: the real Theano 0.8.2 and Lasagne 0.1, running the tutorial.

The original libraries need a Python 3.6 to 3.9 and numpy 1.x (see
:mod:`mnist_cnn.nets.engines.legacy.environment`, set up once with ``mnist-cnn legacy
setup``). This engine runs the tutorial's program
(:mod:`mnist_cnn.nets.engines.legacy.program`: its build functions, ``iterate_minibatches``,
``nesterov_momentum`` and the compiled ``train_fn`` and ``val_fn``) in that interpreter, as
a child process spoken to in JSON lines, with arrays crossing as ``.npy``/``.npz`` files
that are read back without pickle.

The training loop of :mod:`mnist_cnn.training.loop` drives it like any engine: the child
receives the loop's weights, velocities and dropout streams, shuffles every epoch with
``np.random`` from the loop's generator state (and checks that it gets the loop's
order), and reports its losses while it trains.

The child is supervised: every line it prints must be one of the protocol's JSON
objects (anything else stops it with one clear error); it says it is alive every
:data:`HEARTBEAT` seconds and is stopped and reported after :data:`SILENCE_LIMIT`
seconds without a sign of life; it runs in a process group of its own that is killed
with it, and dies with its parent. Its temporary folder names its owner; a folder whose
owner no longer runs (killed with SIGKILL, say) is removed when the next program starts.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mnist_cnn import defaults
from mnist_cnn.errors import EngineError
from mnist_cnn.nets.engines import TrainerState, check_cpu_tutorial, cpu_only
from mnist_cnn.nets.engines.legacy import environment as legacy
from mnist_cnn.nets.spec import Weights
from mnist_cnn.results import Evaluation
from mnist_cnn.storage.files import is_running, read_npz

if TYPE_CHECKING:
    from mnist_cnn.training.settings import Settings

__all__ = ["HEARTBEAT", "NAME", "SILENCE_LIMIT", "LasagneProgram", "LasagneTrainer",
           "evaluate", "make_trainer", "predict_proba", "remove_stale_folders"]

NAME = "lasagne"
PROGRAM = Path(__file__).with_name("program.py")
#: Seconds between the child's heartbeats.
HEARTBEAT = 5.0
#: Seconds without any line from the child after which it is stopped and reported.
SILENCE_LIMIT = 60.0
#: The prefix of the children's temporary folders (in :func:`tempfile.gettempdir`).
FOLDER_PREFIX = "mnist-cnn-lasagne-"
_OWNER = "owner.json"
_MAX_LINE = 1 << 20


def _started(pid: int) -> str | None:
    """When process ``pid`` started (Linux: clock ticks since boot), to tell it from a
    later process given the same pid; None where unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return None


def _alive(pid: int, started: str | None) -> bool:
    return is_running(pid) and (started is None or _started(pid) in (None, started))


def remove_stale_folders(parent: str | os.PathLike | None = None) -> list[Path]:
    """Remove the legacy programs' temporary folders whose owner no longer runs.

    A folder's ``owner.json`` names the process that made it and its child; when the
    owner is gone (it exited without cleaning up, or was killed), a child still running
    from it is killed and the folder removed. A folder without an owner file is removed
    once it is an hour old.

    Parameters
    ----------
    parent : path-like, optional
        Where the folders are; default: the temporary directory.

    Returns
    -------
    list of Path
        The folders removed.
    """
    removed = []
    for folder in Path(parent or tempfile.gettempdir()).glob(FOLDER_PREFIX + "*"):
        try:
            if not folder.is_dir() or folder.is_symlink():
                continue
            owner_file = folder / _OWNER
            if owner_file.is_file():
                owner = json.loads(owner_file.read_text()[:1000])
                if _alive(int(owner["pid"]), owner.get("started")):
                    continue
                child = owner.get("child")
                if child and _alive(int(child), owner.get("child_started")):
                    with contextlib.suppress(OSError):
                        os.killpg(int(child), signal.SIGKILL)
            elif time.time() - folder.stat().st_mtime < 3600:
                continue
        except (OSError, ValueError, KeyError, TypeError):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        if not folder.exists():
            removed.append(folder)
    return removed


class LasagneProgram:
    """The tutorial's program in the legacy interpreter, for one network.

    Parameters
    ----------
    model : str
        The tutorial's network name.
    learning_rate, momentum : float
        ``nesterov_momentum``'s settings.
    dropout : bool
        False compiles ``train_fn`` from the deterministic output (no dropout).
    seed : int, optional
        ``np.random.seed(seed)`` before the network is built, as a seeded tutorial would;
        :attr:`initial` then holds what Lasagne drew.
    train : bool
        False compiles only the deterministic functions (``val_fn``, prediction).
    floatx : {"float32", "float64"}
        Theano's ``floatX`` in the child.
    blas_threads : int, optional
        OpenBLAS's threads in the child (see
        :func:`mnist_cnn.nets.engines.legacy.environment.environment`).
    silence_limit : float
        Seconds without a line from the child (it sends a heartbeat every
        :data:`HEARTBEAT` seconds) after which it is stopped and reported.

    Raises
    ------
    EngineError
        The legacy environment is not set up, the child cannot start, stops, stalls or
        answers out of protocol.

    Attributes
    ----------
    versions : dict
        Theano's, Lasagne's, numpy's and Python's versions in the child.
    initial : dict
        The parameters, velocities and dropout stream states right after building
        (``w0..``, ``v0..``, ``d0..``) and the state of ``np.random`` then
        (``order_keys`` and :attr:`initial_order`).
    """

    def __init__(self, model: str, learning_rate: float = defaults.LEARNING_RATE,
                 momentum: float = defaults.MOMENTUM, dropout: bool = True,
                 seed: int | None = None, train: bool = True,
                 floatx: str = defaults.FLOATX, blas_threads: int | None = None,
                 silence_limit: float = SILENCE_LIMIT) -> None:
        python, env = legacy.environment(floatx, blas_threads)
        self.python = python
        self.silence_limit = silence_limit
        remove_stale_folders()
        self.folder = Path(tempfile.mkdtemp(prefix=FOLDER_PREFIX))
        owner = {"pid": os.getpid(), "started": _started(os.getpid())}
        (self.folder / _OWNER).write_text(json.dumps(owner))
        self._log = open(self.folder / "stderr.log", "w+b")
        self._lines: queue.Queue[str | None] = queue.Queue()
        try:
            self._process = subprocess.Popen(  # -I: the script's folder (numpy.py!) not on sys.path
                [str(python), "-I", str(PROGRAM), str(self.folder), str(os.getpid()),
                 str(HEARTBEAT)], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=self._log, env=env, text=True,
                errors="replace", start_new_session=True)  # Ctrl-C goes to us; we stop it
        except OSError as exc:
            self.close()
            raise EngineError(f"the legacy interpreter {python} could not start ({exc}); "
                              "run `mnist-cnn legacy setup` again") from None
        child = self._process.pid
        (self.folder / _OWNER).write_text(json.dumps(
            {**owner, "child": child, "child_started": _started(child)}))
        threading.Thread(target=self._read_lines, daemon=True).start()
        try:
            ready = self._receive("versions")
            if not isinstance(ready["versions"], dict):
                raise self._out_of_protocol(json.dumps(ready))
            self.versions = {str(k): str(v) for k, v in ready["versions"].items()}
            built = self.call("built", "order", command="build", model=model,
                              learning_rate=learning_rate, momentum=momentum,
                              dropout=dropout, seed=seed, train=train)
            self.initial = self._read(built["built"])
            self.initial_order = built["order"]
        except BaseException:
            self.close()
            raise

    def call(self, *expect: str, **request: Any) -> dict:
        """Send one request and return its answer, which must hold the keys ``expect``."""
        self._send(request)
        return self._receive(*expect)

    def stream(self, *expect: str, **request: Any) -> Iterator[dict]:
        """Send one request and yield its messages (each holding the keys ``expect``)
        until the one that says ``done``."""
        self._send(request)
        while True:
            message = self._receive()
            if message.get("done") is True:
                return
            self._check(message, expect)
            yield message

    def _send(self, request: dict) -> None:
        try:
            self._process.stdin.write(json.dumps(request) + "\n")
            self._process.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            raise self._died() from None

    def _read_lines(self) -> None:
        """The child's standard output, line by line, into a queue (None: it closed)."""
        with contextlib.suppress(OSError, ValueError):
            while line := self._process.stdout.readline(_MAX_LINE):
                self._lines.put(line)
        self._lines.put(None)

    def _receive(self, *expect: str) -> dict:
        """The child's next message other than a heartbeat; it must hold ``expect``."""
        while True:
            try:
                line = self._lines.get(timeout=self.silence_limit)
            except queue.Empty:
                self._kill()
                raise EngineError(
                    f"the real Lasagne program gave no sign of life for "
                    f"{self.silence_limit:g} s and was stopped; run again, or `mnist-cnn "
                    "legacy setup` if it happens again") from None
            if line is None:
                raise self._died()
            try:
                message = json.loads(line)
            except ValueError:
                raise self._out_of_protocol(line) from None
            if not isinstance(message, dict):
                raise self._out_of_protocol(line)
            if message != {"alive": True}:
                return self._check(message, expect)

    def _check(self, message: dict, expect: Sequence[str]) -> dict:
        if "error" in message:
            raise EngineError(f"the real Lasagne program failed: "
                              f"{' '.join(str(message['error']).split())[:500]}")
        if not all(key in message for key in expect):
            raise self._out_of_protocol(json.dumps(message))
        return message

    def _out_of_protocol(self, line: str) -> EngineError:
        self._kill()
        shown = " ".join(line.split())[:80]
        return EngineError(f"the legacy interpreter {self.python} answered out of protocol "
                           f"({shown!r}); run `mnist-cnn legacy setup` again")

    def _kill(self) -> None:
        """Stop the child and everything it started (its process group)."""
        process = getattr(self, "_process", None)
        if process is not None and process.poll() is None:
            with contextlib.suppress(OSError):
                os.killpg(process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)

    def _died(self) -> EngineError:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(timeout=5)
        self._log.flush()
        self._log.seek(0)
        tail = [s for s in self._log.read().decode(errors="replace").splitlines() if s.strip()]
        where = f": {' | '.join(tail[-3:])}" if tail else ""
        return EngineError(f"the real Lasagne program stopped (exit "
                           f"{self._process.returncode}){where}")

    def save(self, name: str, array: np.ndarray) -> str:
        """Write an array for the child to read; returns its path."""
        path = self.folder / f"{name}.npy"
        np.save(path, np.ascontiguousarray(array))
        return str(path)

    def _read(self, path: str) -> dict[str, np.ndarray]:
        return read_npz(path, "file from the legacy program", error=EngineError)

    def predict_proba(self, X: np.ndarray, batch_size: int) -> np.ndarray:
        """The compiled deterministic output for images ``X``."""
        out = self.folder / "proba.npy"
        self.call("saved", command="predict", X=self.save("X", np.asarray(X, np.float32)),
                  out=str(out), batch_size=batch_size)
        return np.load(out, allow_pickle=False)

    def evaluate(self, X: np.ndarray, y: np.ndarray) -> Evaluation:
        """The tutorial's validation loop with the compiled ``val_fn``."""
        answer = self.call("loss", "accuracy", command="evaluate",
                           X=self.save("X_eval", np.asarray(X, np.float32)),
                           y=self.save("y_eval", np.asarray(y, np.int32)))
        return Evaluation(float(answer["loss"]), float(answer["accuracy"]))

    def get_state(self) -> dict[str, np.ndarray]:
        """Parameters, velocities and dropout stream states (``w0..``, ``v0..``, ``d0..``)."""
        return self._read(self.call("saved", command="get_state",
                                     path=str(self.folder / "state.npz"))["saved"])

    def set_state(self, arrays: dict[str, np.ndarray]) -> None:
        """Set the parameters (``w0..``) and, if given, velocities and dropout stream
        states (``v0..``, ``d0..``)."""
        path = self.folder / "set.npz"
        np.savez(path, **arrays)
        self.call("set", command="set_state", path=str(path))

    def close(self) -> None:
        """Stop the child and remove its folder."""
        process = getattr(self, "_process", None)
        if process is not None and process.poll() is None:
            with contextlib.suppress(OSError, ValueError):
                process.stdin.write(json.dumps({"command": "quit"}) + "\n")
                process.stdin.close()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._kill()
        if process is not None:
            with contextlib.suppress(OSError, ValueError):
                process.stdout.close()
        if hasattr(self, "_log"):
            self._log.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> LasagneProgram:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


class LasagneTrainer:
    """The lasagne engine's trainer: the tutorial's own epoch loop, in the child."""

    device = "cpu"

    def __init__(self, weights: Weights, dropout: Sequence[np.ndarray], learning_rate: float,
                 momentum: float, data: Sequence[np.ndarray],
                 floatx: str = defaults.FLOATX) -> None:
        self.network = weights.network
        self.dtype = np.dtype(floatx)
        self.program = LasagneProgram(weights.network.name, learning_rate, momentum,
                                      floatx=floatx)
        self.versions = {f"legacy {k}": v for k, v in self.program.versions.items()}
        X_train, y_train, X_val, y_val = data
        self.program.call("loaded", command="data",
                          X_train=self.program.save("X_train", np.asarray(X_train, np.float32)),
                          y_train=self.program.save("y_train", np.asarray(y_train, np.int32)))
        self.X_val, self.y_val = X_val, y_val
        self.set_state(TrainerState(weights, [np.zeros_like(w) for w in weights],
                                    list(dropout)))

    def train_epoch(self, order: np.ndarray, shuffled_from: tuple) -> Iterator[np.ndarray]:
        """The tutorial's loop over one epoch; yields the losses as the child reports them."""
        _, keys, pos, has_gauss, cached = shuffled_from
        messages = self.program.stream(
            "losses", command="epoch", batch_size=int(order.shape[1]),
            order=self.program.save("order", order),
            order_keys=self.program.save("order_keys", np.asarray(keys, np.uint32)),
            pos=int(pos), has_gauss=int(has_gauss), cached_gaussian=float(cached))
        try:
            for message in messages:
                yield np.asarray(message["losses"], np.float64)
        except GeneratorExit:  # stopped mid-epoch: the child's state is no longer usable
            self.program.close()
            raise

    def validate(self) -> Evaluation:
        """Loss and accuracy on the validation set, without dropout."""
        return self.evaluate(self.X_val, self.y_val)

    def evaluate(self, X: np.ndarray, y: np.ndarray) -> Evaluation:
        """Loss and accuracy on a labelled set, with the tutorial's ``val_fn``."""
        return self.program.evaluate(X, y)

    def get_state(self) -> TrainerState:
        """Weights and velocities (Lasagne layout), and the dropout streams' states."""
        arrays = self.program.get_state()
        count = len(self.network.param_shapes())
        return TrainerState(
            Weights([arrays[f"w{i}"] for i in range(count)], self.network, self.dtype.name),
            [np.asarray(arrays[f"v{i}"], self.dtype) for i in range(count)],
            [np.asarray(arrays[f"d{i}"], np.int64)
             for i in range(len(self.network.dropout_shapes(1)))])

    def set_state(self, state: TrainerState) -> None:
        """Continue from a saved state."""
        arrays = {f"w{i}": np.asarray(w, self.dtype) for i, w in enumerate(state.weights)}
        arrays.update({f"v{i}": np.asarray(v, self.dtype)
                       for i, v in enumerate(state.velocities)})
        arrays.update({f"d{i}": np.asarray(d, np.int32) for i, d in enumerate(state.dropout)})
        self.program.set_state(arrays)

    def close(self) -> None:
        """Stop the legacy program."""
        self.program.close()


def check_settings(settings: Settings) -> None:
    """Raise EngineError unless ``settings`` are the tutorial's on the CPU."""
    check_cpu_tutorial(NAME, settings)


def make_trainer(weights: Weights, dropout: Sequence[np.ndarray], settings: Settings,
                 data: Sequence[np.ndarray]) -> LasagneTrainer:
    """The lasagne engine's trainer (see :class:`LasagneTrainer`); the threads are those of
    numpy's BLAS (or Theano's)."""
    check_settings(settings)
    return LasagneTrainer(weights, dropout, settings.learning_rate, settings.momentum, data,
                          settings.floatx)


def predict_proba(weights: Weights, X: np.ndarray, device: str = "cpu",
                  batch_size: int | None = None) -> np.ndarray:
    """Softmax outputs (N, 10) of the real Lasagne network's deterministic output."""
    cpu_only(NAME, device)
    with LasagneProgram(weights.network.name, train=False) as program:
        program.set_state({f"w{i}": np.asarray(w, np.float32) for i, w in enumerate(weights)})
        return program.predict_proba(X, batch_size or defaults.INFERENCE_BATCH["cpu"])


def evaluate(weights: Weights, X: np.ndarray, y: np.ndarray, device: str = "cpu",
             batch_size: int | None = None) -> Evaluation:
    """Mean cross-entropy and accuracy on a labelled set, without dropout."""
    return Evaluation.from_proba(predict_proba(weights, X, device, batch_size), y)
