"""Choose the PyTorch device to compute on, and the settings that make it fast and exact."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import platform
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import torch

from mnist_cnn.errors import EngineError

DEVICES = ("auto", "cpu", "cuda", "mps")
T = TypeVar("T")
R = TypeVar("R")


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Turn ``"auto"``, ``"cpu"``, ``"cuda"`` (or ``"cuda:N"``) or ``"mps"`` into a device.

    ``"auto"`` picks CUDA when PyTorch sees a CUDA GPU, else the CPU.

    Raises
    ------
    EngineError
        If the named device is not available here.
    """
    if isinstance(device, torch.device):
        return device
    name = str(device).lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            build = torch.version.cuda or "none (a CPU-only build)"
            raise EngineError(f"device {name!r} was asked for but PyTorch sees no CUDA GPU "
                                f"(its CUDA version: {build}); use --device cpu or auto")
        return torch.device(name)
    if name == "mps":
        if not torch.backends.mps.is_available():
            raise EngineError("device 'mps' was asked for but Apple's Metal backend is "
                                "not available here; use --device cpu or auto")
        return torch.device("mps")
    raise EngineError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")


@contextlib.contextmanager
def exact_float32() -> Iterator[None]:
    """While it runs, cuDNN computes in full float32 (not TF32), deterministically.

    cuDNN may use TF32 (a 10-bit mantissa) for float32 convolutions by default, and
    algorithms whose sums run in a varying order; the tutorial's math is float32 and a
    seed should give the same weights, so training and inference turn both off. The
    other cuDNN settings are left as they are; nothing changes on a CPU.
    """
    cudnn = torch.backends.cudnn
    previous = cudnn.conv.fp32_precision, cudnn.deterministic
    cudnn.conv.fp32_precision, cudnn.deterministic = "ieee", True
    try:
        yield
    finally:
        cudnn.conv.fp32_precision, cudnn.deterministic = previous


class ThreadFitter:
    """How many threads to compute on: a fixed number, or the cores that other processes
    leave free.

    PyTorch's threads meet at a barrier in every operation; when another process keeps one
    of their cores busy, each operation waits for the thread that shares a core (the
    performance page of the documentation has the figures). So the cores that other
    processes use are measured from the system's CPU time (``/proc/stat``) less this
    process's own over the last interval, and the count is the cores of this process's
    affinity that remain. It costs one small file read per measure; where there is no
    ``/proc/stat`` the count stays as it is. It sets nothing itself: :class:`Lanes` runs
    work on that many threads.

    Parameters
    ----------
    threads : int or "auto"
        A fixed number of threads, or ``"auto"`` to fit them to the free cores.
    """

    #: A core counts as taken when others use more than this share of one.
    busy = 0.5

    def __init__(self, threads: int | str = "auto") -> None:
        self.cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
            os.cpu_count() or 1)
        self.most = max(1, min(self.cores, torch.get_num_threads()))
        self.auto = threads == "auto"
        self.count = self.most if self.auto else int(threads)
        self._last = self._sample()

    @staticmethod
    def _sample() -> tuple[float, float, float] | None:
        """(busy CPU seconds of the whole system, this process's CPU seconds, wall time)."""
        try:
            with open("/proc/stat", encoding="ascii") as f:
                fields = f.readline().split()
        except OSError:
            return None
        ticks = [int(v) for v in fields[1:8]]  # user nice system idle iowait irq softirq
        busy = (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")
        own = os.times()
        return busy, own.user + own.system, time.monotonic()

    def others(self) -> float | None:
        """Cores kept busy by other processes since the last call (None if unknown)."""
        now = self._sample()
        last, self._last = self._last, now
        if now is None or last is None or now[2] - last[2] < 0.05:
            return None
        return max(0.0, (now[0] - last[0]) - (now[1] - last[1])) / (now[2] - last[2])

    def refit(self) -> int:
        """Fit the count to what the machine had free in the last interval (``auto``
        only); returns the thread count now."""
        taken = self.others() if self.auto else None
        if taken is not None:
            self.count = max(1, min(self.most, self.cores - int(taken + 1 - self.busy)))
        return self.count


class Lanes:
    """Pieces of work run side by side on a :class:`ThreadFitter`'s count of threads,
    each piece on one thread, the results returned in the pieces' order.

    While the lanes are open PyTorch's own threads are set to 1, so every operation runs
    on the thread that calls it and sums in one fixed order: how many threads run the
    pieces, and which, changes the time and never a result. This thread is the first
    lane; the others come from a pool that grows as the count does.

    Parameters
    ----------
    threads : int or "auto"
        As for :class:`ThreadFitter`.
    """

    def __init__(self, threads: int | str = "auto") -> None:
        self.fitter = ThreadFitter(threads)
        self.before = torch.get_num_threads()
        torch.set_num_threads(1)
        self._pool: ThreadPoolExecutor | None = None
        self._workers = 0

    def refit(self) -> int:
        """See :meth:`ThreadFitter.refit`."""
        return self.fitter.refit()

    def map(self, function: Callable[[T], R], pieces: Sequence[T]) -> list[R]:
        """``[function(p) for p in pieces]``, run on up to the fitted count of threads."""
        lanes = min(self.fitter.count, len(pieces))
        if lanes <= 1:
            return [function(p) for p in pieces]
        if self._pool is None or self._workers < lanes - 1:
            if self._pool is not None:
                self._pool.shutdown()
            self._workers = lanes - 1
            self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="mnist-cnn")

        def lane(first: int) -> list[R]:
            return [function(pieces[i]) for i in range(first, len(pieces), lanes)]

        others = [self._pool.submit(lane, first) for first in range(1, lanes)]
        results: list[Any] = [None] * len(pieces)
        results[0::lanes] = lane(0)
        for first, future in enumerate(others, start=1):
            results[first::lanes] = future.result()
        return results

    def close(self) -> None:
        """Stop the pool and set PyTorch's threads back to what they were."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        torch.set_num_threads(self.before)


@functools.cache
def keep_freed_memory() -> bool:
    """Let this process reuse freed memory instead of returning it to the OS (glibc only).

    glibc serves large blocks (a batch's activations are megabytes) with fresh ``mmap``
    calls and gives them back on ``free``, so every training step pays page faults to
    touch new memory. Raising glibc's mmap and trim thresholds keeps those blocks in the
    heap for the next step. It is a process-wide allocator setting, made once; returns
    False where it does not apply (not glibc).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(mallopt(m_mmap_threshold, 256 << 20) and mallopt(m_trim_threshold, 1 << 30))


#: oneMKL's code paths by number (``MKL_CBWR_*`` in its ``mkl_service.h``).
_MKL_BRANCHES = {1: "off", 2: "auto", 3: "compatible", 4: "sse2", 6: "ssse3", 7: "sse4_1",
                 8: "sse4_2", 9: "avx", 10: "avx2", 12: "avx512", 14: "avx512_e1"}
_MKL_BRANCH, _MKL_COMPATIBLE = 1, 3


@functools.cache
def same_sums_on_every_cpu() -> str:
    """Put the oneMKL inside PyTorch on its "compatible" code path, once per process.

    PyTorch's x86-64 builds compute matrix products (the dense layers) with oneMKL, which
    picks its kernels by CPU: on an Intel CPU with AVX-512 they round otherwise than on
    an AMD one, and their sums there even depend on where the arrays happen to lie in
    memory (a run resumed from its checkpoint ended on other weights than the same run
    trained at once). oneMKL's conditional numerical reproducibility mode
    "compatible" computes the same sums on every x86-64 CPU, wherever the arrays lie; it
    costs the tutorial's network little, as its time goes to the convolutions. oneMKL
    takes a mode only before its first product, so the engine sets it when it is
    imported; a mode the user chose with ``MKL_CBWR`` is left as it is.

    Returns
    -------
    str
        The mode in force (``"compatible"``; ``"off"`` when oneMKL had computed before
        it could be set; the user's mode), or ``"no oneMKL"`` where PyTorch's build has
        none or does not expose its settings (Apple silicon, ARM, Windows).
    """
    try:
        lib = ctypes.CDLL(str(next((Path(torch.__file__).parent / "lib").glob(
            "libtorch_cpu.*"))))
        get, set_mode = lib.mkl_serv_cbwr_get, lib.mkl_serv_cbwr_set
    except (StopIteration, OSError, AttributeError):
        return "no oneMKL"
    get.restype = set_mode.restype = ctypes.c_int
    if "MKL_CBWR" not in os.environ:
        set_mode(_MKL_COMPATIBLE)  # refused (and left off) once oneMKL has computed
    branch = get(_MKL_BRANCH)
    return _MKL_BRANCHES.get(branch, f"branch {branch}")


@functools.cache
def cpu_kind() -> str:
    """This CPU's name and the vector instructions PyTorch's kernels use on it, such as
    ``"AMD EPYC, AVX512"``: float32 runs repeat byte for byte on CPUs of one kind."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            names = [line.split(":", 1)[1].strip() for line in f
                     if line.startswith("model name")]
    except OSError:
        names = []
    name = names[0] if names else platform.machine()
    return f"{name}, {torch.backends.cpu.get_cpu_capability()}"
