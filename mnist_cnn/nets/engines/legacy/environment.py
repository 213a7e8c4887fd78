"""The original stack, Theano 0.8.2 and Lasagne 0.1, in a virtual environment of its own.

Both still install from PyPI and run unmodified, but only on an older Python with an
older numpy: Theano 0.8.2 fails to import on Python 3.10 and later
(``collections.MutableMapping`` is gone), Theano 1.0.5 (which runs on 3.8 to 3.11 with
numpy 1.23 or older) no longer has the ``theano.tensor.signal.downsample`` module that
Lasagne 0.1 imports, and numpy 2 breaks both. So :func:`setup` finds a Python 3.6 to 3.9,
builds a virtual environment in the cache folder with pinned versions known to work,
points Theano at the OpenBLAS that numpy's wheel ships (without a BLAS Theano falls
back to a much slower convolution), and proves it all with a small compiled function.
A new environment is built beside the one in use and takes its place (``ready.json``,
replaced in one rename) only once proven: a failed setup leaves the working one as it
was.
The ``lasagne`` engine (:mod:`mnist_cnn.nets.engines.legacy.engine`) runs the tutorial's program
there.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mnist_cnn.errors import EngineError
from mnist_cnn.storage.files import atomic_write

__all__ = ["LegacyPython", "environment", "find_interpreter", "home", "setup"]

#: Pinned versions per interpreter, each tried here (``pip install`` from PyPI).
PINS = {
    (3, 6): ["numpy==1.11.3", "scipy==0.18.1", "six==1.16.0", "Theano==0.8.2", "Lasagne==0.1"],
    (3, 7): ["numpy==1.19.5", "scipy==1.5.4", "six==1.16.0", "setuptools<81",
             "Theano==0.8.2", "Lasagne==0.1"],
    (3, 8): ["numpy==1.19.5", "scipy==1.5.4", "six==1.16.0", "setuptools<81",
             "Theano==0.8.2", "Lasagne==0.1"],
    (3, 9): ["numpy==1.19.5", "scipy==1.5.4", "six==1.16.0", "setuptools<81",
             "Theano==0.8.2", "Lasagne==0.1"],
}
#: Interpreters tried, best first.
VERSIONS = ((3, 9), (3, 8), (3, 7), (3, 6))
_PROOF = r"""
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import numpy as np, theano, theano.tensor as T, lasagne
start = time.time()
x = T.matrix("x")
f = theano.function([x], T.nnet.relu(T.dot(x, x.T)).sum())
a = np.arange(12, dtype=theano.config.floatX).reshape(3, 4) / 10
ok = abs(float(f(a)) - float(np.maximum(a.dot(a.T), 0).sum())) < 1e-4
print(json.dumps({"ok": ok, "theano": theano.__version__, "lasagne": lasagne.__version__,
                  "numpy": np.__version__, "blas": theano.config.blas.ldflags,
                  "python": "%d.%d.%d" % sys.version_info[:3],
                  "seconds": time.time() - start}))
"""


@dataclass(frozen=True)
class LegacyPython:
    """An interpreter that can run the original stack."""

    path: Path
    version: tuple[int, int]


def _version(python: str | os.PathLike) -> tuple[int, int] | None:
    try:
        out = subprocess.run([str(python), "-c", "import sys; print(*sys.version_info[:2])"],
                             capture_output=True, text=True, timeout=60, check=True).stdout
        major, minor = (int(n) for n in out.split())
        return major, minor
    except (OSError, subprocess.SubprocessError, ValueError):
        return None


def _candidates() -> list[Path]:
    """Interpreters from pyenv, uv and the PATH, in the order of :data:`VERSIONS`."""
    found: list[Path] = []
    pyenv_root = os.environ.get("PYENV_ROOT") or (shutil.which("pyenv") and subprocess.run(
        ["pyenv", "root"], capture_output=True, text=True, timeout=60).stdout.strip())
    for major, minor in VERSIONS:
        if pyenv_root:
            versions = Path(pyenv_root) / "versions"
            found += sorted(versions.glob(f"{major}.{minor}.*/bin/python"), reverse=True)
        if shutil.which("uv"):
            out = subprocess.run(["uv", "python", "find", f"{major}.{minor}"],
                                 capture_output=True, text=True, timeout=60)
            if out.returncode == 0 and out.stdout.strip():
                found.append(Path(out.stdout.strip()))
        on_path = shutil.which(f"python{major}.{minor}")
        if on_path:
            found.append(Path(on_path))
    return found


def find_interpreter(python: str | os.PathLike | None = None) -> LegacyPython:
    """A Python 3.6 to 3.9 for the original stack: ``python``, else the best one found.

    Raises
    ------
    EngineError
        If ``python`` is not such an interpreter, or none is found; the message says
        how to get one.
    """
    how = ("install one with `uv python install 3.9` or `pyenv install 3.9`, then run "
           "`mnist-cnn legacy setup` again (or name it with --python PATH)")
    if python is not None:
        version = _version(python)
        if version not in PINS:
            got = "is not a Python interpreter" if version is None else (
                f"is Python {version[0]}.{version[1]}")
            raise EngineError(f"{python} {got}; Theano 0.8.2 and Lasagne 0.1 need Python "
                              "3.6 to 3.9")
        return LegacyPython(Path(python), version)
    for candidate in _candidates():
        version = _version(candidate)
        if version in PINS:
            return LegacyPython(candidate, version)
    raise EngineError(f"no Python 3.6 to 3.9 found for Theano 0.8.2 and Lasagne 0.1: {how}")


def home() -> Path:
    """Where the environment lives: ``$MNIST_CNN_LEGACY_DIR``, else in the cache folder."""
    from mnist_cnn.storage.mnist_data import default_cache_dir

    env = os.environ.get("MNIST_CNN_LEGACY_DIR")
    return Path(env) if env else default_cache_dir() / "legacy" / "theano-0.8.2-lasagne-0.1"


def _openblas(venv: Path) -> Path | None:
    """The OpenBLAS inside the venv's numpy wheel (``numpy.libs/`` or ``numpy/.libs/``)."""
    for pattern in ("lib/python3.*/site-packages/numpy.libs/libopenblas*.so*",
                    "lib/python3.*/site-packages/numpy/.libs/libopenblas*.so*"):
        for path in sorted(venv.glob(pattern)):
            return path
    return None


def _flags(built: Path, floatx: str = "float32") -> str:
    """Theano's flags for the environment built in ``built`` (its BLAS and its own
    compilation cache)."""
    blas = built / "blas"
    return (f"device=cpu,floatX={floatx},base_compiledir={built / 'theano-cache'},"
            f"blas.ldflags=-L{blas} -lopenblas -Wl\\,-rpath\\,{blas}")


def environment(floatx: str = "float32",
                blas_threads: int | None = None) -> tuple[Path, dict[str, str]]:
    """The legacy interpreter and the environment variables to run it with.

    Parameters
    ----------
    floatx : {"float32", "float64"}
        Theano's ``floatX``: the precision of the program's variables.
    blas_threads : int, optional
        OpenBLAS's threads (default: OpenBLAS's own choice). Another count is another
        valid float32 arithmetic of the same library: its sums run in another order.

    Raises
    ------
    EngineError
        If :func:`setup` has not been run (or its environment is gone).
    """
    folder = home()
    try:
        ready = json.loads((folder / "ready.json").read_text())
        python = Path(ready["python_path"])
        built = Path(ready.get("built", folder))  # older setups built in the folder itself
    except (OSError, ValueError, KeyError, TypeError):
        raise EngineError("the lasagne engine runs the real Theano 0.8.2 and Lasagne 0.1, "
                          "which are not set up: run `mnist-cnn legacy setup` once (it "
                          "needs a Python 3.6 to 3.9 and the internet)") from None
    if not python.exists():
        raise EngineError(f"the legacy environment in {folder} is incomplete: run "
                          "`mnist-cnn legacy setup` again")
    env = {**os.environ, "THEANO_FLAGS": _flags(built, floatx), "PYTHONNOUSERSITE": "1"}
    env.pop("PYTHONPATH", None)
    if blas_threads is not None:
        env["OPENBLAS_NUM_THREADS"] = env["OMP_NUM_THREADS"] = str(blas_threads)
    return python, env


def setup(python: str | os.PathLike | None = None, verbose: bool = True) -> dict:
    """Build (or rebuild) the legacy environment and prove that it works.

    Parameters
    ----------
    python : str or path-like, optional
        The interpreter to use (3.6 to 3.9); default: the best one found (pyenv, uv,
        ``python3.9`` ... on the PATH).
    verbose : bool
        Say what it is doing.

    Returns
    -------
    dict
        The versions that run, the BLAS flags, and where the environment is.

    Raises
    ------
    EngineError
        No suitable interpreter, a failed install (pip's last lines are quoted), or a
        failed proof.
    """
    legacy = find_interpreter(python)
    folder = home()

    def say(text: str) -> None:
        if verbose:
            print(text, flush=True)

    say(f"Using Python {legacy.version[0]}.{legacy.version[1]} at {legacy.path}")
    try:
        (folder / "builds").mkdir(parents=True, exist_ok=True)
        built = Path(tempfile.mkdtemp(prefix="build-", dir=folder / "builds"))
    except OSError as exc:
        raise EngineError(f"cannot create the legacy environment in {folder} "
                          f"({exc.strerror or exc}); set MNIST_CNN_LEGACY_DIR to a "
                          "writable folder") from None
    try:
        ready = _build(legacy, built, say)
        with atomic_write(folder / "ready.json", text=True) as f:
            f.write(json.dumps(ready, indent=2))
    except BaseException:
        shutil.rmtree(built, ignore_errors=True)
        raise
    for old in [*(folder / "builds").iterdir(), folder / "venv", folder / "blas",
                folder / "theano-cache"]:
        if old != built and old.exists():
            shutil.rmtree(old, ignore_errors=True)
    say(f"Ready: Theano {ready['theano']}, Lasagne {ready['lasagne']}, numpy "
        f"{ready['numpy']} on Python {ready['python']}, BLAS {ready['blas']}")
    return ready


def _build(legacy: LegacyPython, built: Path, say) -> dict:
    """A proven environment in the new folder ``built``; what ``ready.json`` records."""
    venv = built / "venv"
    _run([str(legacy.path), "-m", "venv", str(venv)], "creating the virtual environment")
    venv_python = venv / "bin" / "python"
    say(f"Installing {', '.join(PINS[legacy.version])} into {venv}")
    _run([str(venv_python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
          "--no-input", *PINS[legacy.version]], "installing the original stack")
    blas = _openblas(venv)
    if blas is None:
        raise EngineError(f"no OpenBLAS found in the numpy of {venv}; Theano would be very "
                          "slow without one")
    link = built / "blas" / "libopenblas.so"
    link.parent.mkdir()
    link.symlink_to(blas)
    say("Compiling a small Theano function (the first compilation takes a while)...")
    env = {**os.environ, "THEANO_FLAGS": _flags(built), "PYTHONNOUSERSITE": "1"}
    env.pop("PYTHONPATH", None)
    out = _run([str(venv_python), "-c", _PROOF], "proving Theano and Lasagne", env=env)
    try:
        proof = json.loads(out.strip().splitlines()[-1])
        ok = proof.get("ok") is True
    except (ValueError, IndexError, AttributeError):
        proof, ok = out.strip()[-200:], False
    if not ok:
        raise EngineError(f"Theano computed a wrong result in {venv}: {proof}")
    return {**proof, "python_path": str(venv_python), "built": str(built),
            "home": str(built.parent.parent)}


def _run(command: list[str], what: str, env: dict[str, str] | None = None) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=1800, env=env)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EngineError(f"{what} failed: {exc}") from None
    if done.returncode != 0:
        tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        raise EngineError(f"{what} failed (exit {done.returncode}): {tail}")
    return done.stdout
