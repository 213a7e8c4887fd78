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
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import tempfile
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
from mnist_cnn.storage.files import read_npz

if TYPE_CHECKING:
    from mnist_cnn.training.settings import Settings

__all__ = ["NAME", "LasagneProgram", "LasagneTrainer", "evaluate", "make_trainer",
           "predict_proba"]

NAME = "lasagne"
PROGRAM = Path(__file__).with_name("program.py")


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
                 floatx: str = defaults.FLOATX, blas_threads: int | None = None) -> None:
        python, env = legacy.environment(floatx, blas_threads)
        self.folder = Path(tempfile.mkdtemp(prefix="mnist-cnn-lasagne-"))
        self._log = open(self.folder / "stderr.log", "w+b")
        try:
            self._process = subprocess.Popen(  # -I: the script's folder (numpy.py!) not on sys.path
                [str(python), "-I", str(PROGRAM), str(self.folder)], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=self._log, env=env, text=True,
                start_new_session=True)  # Ctrl-C goes to us; we stop the child
        except OSError as exc:
            self.close()
            raise EngineError(f"the legacy interpreter {python} could not start ({exc}); "
                              "run `mnist-cnn legacy setup` again") from None
        try:
            self.versions = self._receive()["versions"]
            built = self.call(command="build", model=model, learning_rate=learning_rate,
                              momentum=momentum, dropout=dropout, seed=seed, train=train)
            self.initial = self._read(built["built"])
            self.initial_order = built["order"]
        except BaseException:
            self.close()
            raise

    def call(self, **request: Any) -> dict:
        """Send one request and return its answer (the last of its messages)."""
        self._send(request)
        answer = self._receive()
        if "error" in answer:
            raise EngineError(f"the real Lasagne program failed: {answer['error']}")
        return answer

    def stream(self, **request: Any) -> Iterator[dict]:
        """Send one request and yield its messages until the one that says ``done``."""
        self._send(request)
        while True:
            message = self._receive()
            if "error" in message:
                raise EngineError(f"the real Lasagne program failed: {message['error']}")
            if message.get("done"):
                return
            yield message

    def _send(self, request: dict) -> None:
        try:
            self._process.stdin.write(json.dumps(request) + "\n")
            self._process.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            raise self._died() from None

    def _receive(self) -> dict:
        line = self._process.stdout.readline()
        if not line:
            raise self._died()
        return json.loads(line)

    def _died(self) -> EngineError:
        self._process.poll()
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
        self.call(command="predict", X=self.save("X", np.asarray(X, np.float32)),
                  out=str(out), batch_size=batch_size)
        return np.load(out, allow_pickle=False)

    def evaluate(self, X: np.ndarray, y: np.ndarray) -> Evaluation:
        """The tutorial's validation loop with the compiled ``val_fn``."""
        answer = self.call(command="evaluate", X=self.save("X_eval", np.asarray(X, np.float32)),
                           y=self.save("y_eval", np.asarray(y, np.int32)))
        return Evaluation(float(answer["loss"]), float(answer["accuracy"]))

    def get_state(self) -> dict[str, np.ndarray]:
        """Parameters, velocities and dropout stream states (``w0..``, ``v0..``, ``d0..``)."""
        return self._read(self.call(command="get_state",
                                     path=str(self.folder / "state.npz"))["saved"])

    def set_state(self, arrays: dict[str, np.ndarray]) -> None:
        """Set the parameters (``w0..``) and, if given, velocities and dropout stream
        states (``v0..``, ``d0..``)."""
        path = self.folder / "set.npz"
        np.savez(path, **arrays)
        self.call(command="set_state", path=str(path))

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
                process.kill()
                process.wait()
        if process is not None:
            with contextlib.suppress(OSError, ValueError):
                process.stdout.close()
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
        self.program.call(command="data",
                          X_train=self.program.save("X_train", np.asarray(X_train, np.float32)),
                          y_train=self.program.save("y_train", np.asarray(y_train, np.int32)))
        self.X_val, self.y_val = X_val, y_val
        self.set_state(TrainerState(weights, [np.zeros_like(w) for w in weights],
                                    list(dropout)))

    def train_epoch(self, order: np.ndarray, shuffled_from: tuple) -> Iterator[np.ndarray]:
        """The tutorial's loop over one epoch; yields the losses as the child reports them."""
        _, keys, pos, has_gauss, cached = shuffled_from
        messages = self.program.stream(
            command="epoch", batch_size=int(order.shape[1]),
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
