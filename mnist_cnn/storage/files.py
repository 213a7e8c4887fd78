"""The one place where files are opened and written.

Reading: only regular files are opened (a FIFO or a device would block or never end);
an ``.npz`` archive is read member by member, its ``.npy`` headers checked before any
data is read (no pickle, no object arrays, no size the caller did not allow); JSON is
read with a size cap. Every failure is an error whose message names the file.

Writing: :func:`atomic_write` writes to a temporary file beside the target and renames
it only when complete; :func:`write_together` does that for several files, renamed in
one step that Ctrl-C or SIGTERM cannot split; :func:`remove_stale_temporaries` removes
what a killed process left behind.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import re
import stat
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from mnist_cnn.errors import MnistCnnError
from mnist_cnn.interrupts import deferred_signals

__all__ = [
    "FileFormatError",
    "NpyHeader",
    "atomic_write",
    "check_writable_folder",
    "is_running",
    "npz_bytes",
    "open_regular",
    "read_json",
    "read_npz",
    "remove_stale_temporaries",
    "write_together",
]

#: ``.npy`` headers longer than this are refused (numpy's own safe limit).
MAX_NPY_HEADER = 10_000
#: The kinds of data type a member may have: booleans, integers and floats.
_NUMERIC_KINDS = "biuf"
#: Temporary files are named ``.<final name>.<pid>.<random>.tmp``.
_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[^.]+\.tmp$")


class FileFormatError(MnistCnnError, ValueError):
    """A file is missing, not a regular file, or not of the expected format."""


# ------------------------------------------------------------------------ reading

def open_regular(path: str | os.PathLike, what: str = "file") -> IO[bytes]:
    """Open a regular file for reading in binary mode, refusing anything else.

    The file is opened without blocking and checked with ``fstat`` on the open
    descriptor, so a FIFO, a socket or a device is refused, never read (reading a FIFO
    waits forever for a writer).

    Raises
    ------
    FileFormatError
        Missing, a folder, not a regular file, or unreadable; the message names it.
    """
    path = Path(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise FileFormatError(f"no {what} at {path}") from None
    except IsADirectoryError:
        raise FileFormatError(f"{path} is a folder, not a {what}") from None
    except PermissionError:
        raise FileFormatError(f"{path} cannot be read (permission denied)") from None
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise FileFormatError(f"{path} cannot be opened ({reason})") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = "a folder" if stat.S_ISDIR(mode) else "not a regular file"
        raise FileFormatError(f"{path} is {kind}; a {what} must be a regular file")
    if hasattr(os, "set_blocking"):
        os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def read_json(path: str | os.PathLike, what: str, max_bytes: int) -> Any:
    """Parse a JSON file of at most ``max_bytes`` bytes.

    Raises
    ------
    FileFormatError
        Not a regular file, too large, not UTF-8 or not valid JSON.
    """
    with open_regular(path, what) as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise FileFormatError(f"{path} is over {max_bytes:,} bytes, too large for a {what}")
    return parse_json(data, f"{path} is not a valid {what}")


def parse_json(data: bytes | str, problem: str) -> Any:
    """Parse JSON text; ``problem`` starts the :class:`FileFormatError` if it is not."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        return json.loads(text, parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise FileFormatError(f"{problem} (not JSON: {str(exc)[:80]})") from None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


@dataclass(frozen=True)
class NpyHeader:
    """What a ``.npy`` member of an archive declares, read before any of its data.

    Attributes
    ----------
    name : str
        The key (the member's file name without ``.npy``).
    dtype : numpy.dtype
    shape : tuple of int
    fortran_order : bool
    """

    name: str
    dtype: np.dtype
    shape: tuple[int, ...]
    fortran_order: bool

    @property
    def nbytes(self) -> int:
        """Bytes of data the header declares."""
        count = 1
        for n in self.shape:
            count *= n
        return count * self.dtype.itemsize


_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError,
               RuntimeError, NotImplementedError, ValueError, KeyError, SyntaxError)


def _read_header(member: IO[bytes], name: str, source: str) -> NpyHeader:
    """Read a ``.npy`` member's magic string and header, leaving it at the data."""
    version = np.lib.format.read_magic(member)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(
            member, max_header_size=MAX_NPY_HEADER)
    elif version in ((2, 0), (3, 0)):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(
            member, max_header_size=MAX_NPY_HEADER)
    else:
        raise FileFormatError(f"{source}: member {name!r} has .npy version {version}")
    if dtype.hasobject:
        raise FileFormatError(f"{source} holds Python objects (pickled data) in {name!r}, "
                              "which are never loaded; it must hold plain numeric arrays")
    if dtype.kind not in _NUMERIC_KINDS or dtype.subdtype is not None or dtype.names:
        raise FileFormatError(f"{source}: member {name!r} has data type {dtype}, not plain "
                              "numbers")
    return NpyHeader(name, dtype, tuple(int(n) for n in shape), bool(fortran))


def read_npz(path: str | os.PathLike, what: str,
             check: Callable[[dict[str, NpyHeader]], None] | None = None,
             error: type[MnistCnnError] = FileFormatError) -> dict[str, np.ndarray]:
    """Read a ``.npz`` archive of numeric arrays, validating before allocating.

    Every member must be a ``.npy`` file of plain numbers. Their headers are read first
    and passed to ``check``, which raises unless the keys, data types and shapes are
    what the caller expects; only then is any array read, each at exactly the size its
    header declares.

    Parameters
    ----------
    path : str or path-like
        The archive.
    what : str
        What the file is, for messages ("weights file", "checkpoint").
    check : callable, optional
        Validates the headers (by key) before any data is read; raises ``error``.
    error : type
        The error type raised for a file that is not usable.

    Returns
    -------
    dict
        Key -> array, in the archive's order (native byte order).

    Raises
    ------
    MnistCnnError
        Of type ``error``, naming the file and what is wrong with it.
    """
    path = Path(path)
    try:
        with open_regular(path, what) as f:
            magic = f.read(6)
            if magic == b"\x93NUMPY":
                raise error(f"{path} is a single .npy array; a {what} is an .npz archive "
                            "as written by numpy.savez")
            if not magic.startswith(b"PK"):
                raise error(f"{path} is not a valid {what} (not an .npz/zip archive)")
            f.seek(0)
            return _read_archive(f, path, what, check, error)
    except MnistCnnError as exc:
        raise (exc if isinstance(exc, error) else error(str(exc))) from None
    except _ZIP_ERRORS as exc:
        raise error(f"{path} is not a valid {what} (truncated or corrupt: "
                    f"{_first_line(exc)})") from None


def _read_archive(f: IO[bytes], path: Path, what: str,
                  check: Callable[[dict[str, NpyHeader]], None] | None,
                  error: type[MnistCnnError]) -> dict[str, np.ndarray]:
    with zipfile.ZipFile(f) as archive:
        infos = archive.infolist()
        headers: dict[str, NpyHeader] = {}
        for info in infos:
            if not info.filename.endswith(".npy") or info.is_dir():
                raise error(f"{path}: member {info.filename!r} is not a .npy array; a "
                            f"{what} holds only numpy arrays")
            name = info.filename[:-4]
            if name in headers:
                raise error(f"{path}: member {info.filename!r} appears twice")
            with archive.open(info) as member:
                headers[name] = _read_header(member, name, str(path))
        if check is not None:
            check(headers)
        return {name: _read_member(archive, info, headers[name], path)
                for name, info in zip(headers, infos, strict=True)}


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, header: NpyHeader,
                 path: Path) -> np.ndarray:
    with archive.open(info) as member:
        _read_header(member, header.name, str(path))
        data = member.read(header.nbytes + 1)
    if len(data) != header.nbytes:
        raise FileFormatError(f"{path}: member {info.filename!r} holds {len(data):,} bytes "
                              f"of data, its header declares {header.nbytes:,}")
    array = np.frombuffer(data, header.dtype).reshape(
        header.shape, order="F" if header.fortran_order else "C")
    return array.astype(array.dtype.newbyteorder("="), order="C", copy=True)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# ------------------------------------------------------------------------ writing

@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, text: bool = False) -> Iterator[IO]:
    """Open a temporary file beside ``path``; rename it to ``path`` only on success.

    If the ``with`` block raises, ``path`` keeps its old content and the temporary file
    is removed; if the process is killed, the temporary file (named after the process)
    is removed by the next :func:`remove_stale_temporaries` in that folder.

    Parameters
    ----------
    path : str or path-like
        The final file name. Its folder is created if needed.
    text : bool
        Open in text mode (UTF-8) instead of binary.

    Yields
    ------
    file object
        Write the content to it.

    Raises
    ------
    OSError
        Naming the final path (never the temporary one).

    Examples
    --------
    >>> with atomic_write("history.csv", text=True) as f:  # doctest: +SKIP
    ...     f.write("epoch,loss\\n")
    """
    path = Path(path)
    with _name_errors(path):
        with _staged(path, text) as (f, tmp):
            yield f
        _replace([(tmp, path)])


def write_together(contents: dict[Path, bytes]) -> None:
    """Write several files so that they are replaced in one step.

    Each file is first written completely under a temporary name; if any write fails, none
    of the files is touched. The renames then run with Ctrl-C and SIGTERM held off (see
    :func:`mnist_cnn.interrupts.deferred_signals`), so an interrupted process leaves all or
    none of the files replaced; only SIGKILL or a power loss can split them, which is why
    readers check that files belong together (a sidecar records its weights' SHA-256).
    """
    staged: list[tuple[Path, Path]] = []
    try:
        for path, data in contents.items():
            with _name_errors(path), _staged(path, False) as (f, tmp):
                f.write(data)
            staged.append((tmp, path))
        with _name_errors(next(iter(contents))):
            _replace(staged)
    finally:
        for tmp, _ in staged:
            with contextlib.suppress(OSError):
                tmp.unlink()


def _temporary_prefix(path: Path) -> str:
    return f".{path.name}.{os.getpid()}."


@contextlib.contextmanager
def _staged(path: Path, text: bool) -> Iterator[tuple[IO, Path]]:
    """A complete, synced temporary file beside ``path``; removed if the block raises."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=_temporary_prefix(path), suffix=".tmp",
                                dir=path.parent)
    tmp = Path(name)
    try:
        os.chmod(tmp, _final_mode(path))  # mkstemp makes it 0600; give it open()'s mode
        with os.fdopen(fd, "w" if text else "wb",
                       **({"encoding": "utf-8"} if text else {})) as f:
            yield f, tmp
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _replace(pairs: Sequence[tuple[Path, Path]]) -> None:
    """Rename each (temporary, final) pair with Ctrl-C and SIGTERM held off meanwhile."""
    with deferred_signals():
        for tmp, final in pairs:
            os.replace(tmp, final)


@contextlib.contextmanager
def _name_errors(path: Path) -> Iterator[None]:
    """Re-raise the system's OSError so that it names ``path`` (never a temporary file).

    Errors of other libraries that derive from OSError (a failed download) pass as
    they are.
    """
    try:
        yield
    except OSError as exc:
        if type(exc).__module__ != "builtins" or exc.errno is None:
            raise
        if exc.errno == errno.ENOSPC:
            raise OSError(exc.errno, "no space left on the device", str(path)) from None
        named = exc.filename is not None and not str(exc.filename).endswith(".tmp")
        raise type(exc)(exc.errno, exc.strerror or str(exc),
                        str(exc.filename) if named else str(path)) from None


def _final_mode(path: Path) -> int:
    """The existing file's mode, else 0666 less the process umask."""
    try:
        return path.stat().st_mode & 0o777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporary files that killed processes left in ``folder``.

    A temporary file names the process that writes it; it is stale once that process
    no longer runs. Those of running processes (another run in the same folder) stay.

    Returns
    -------
    list of pathlib.Path
        The files removed.
    """
    removed: list[Path] = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = _TEMP.match(entry.name)
        if match is None or is_running(int(match["pid"])):
            continue
        with contextlib.suppress(OSError):
            entry.unlink()
            removed.append(entry)
    return removed


def is_running(pid: int) -> bool:
    """Whether a process ``pid`` exists (this one included)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):
        return True  # exists but is another user's, or not a valid pid here
    return True


def check_writable_folder(folder: str | os.PathLike, what: str) -> Path:
    """Create ``folder`` if needed and prove that a file can be written there.

    Raises
    ------
    FileFormatError
        If it is a file, or cannot be created or written to; the message names it.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise FileFormatError(f"{what} {folder} is a file, not a folder; choose a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder) as f:
            f.write(b"\0" * 65536)
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        reason = ("no space left on the device" if exc.errno == errno.ENOSPC
                  else exc.strerror or str(exc))
        raise FileFormatError(f"cannot write to {what} {folder} ({reason}); choose "
                              "another folder") from None
    return folder


def npz_bytes(*arrays: np.ndarray, **named: np.ndarray) -> bytes:
    """The bytes that ``numpy.savez`` writes for these arrays."""
    buffer = io.BytesIO()
    np.savez(buffer, *arrays, **named)
    return buffer.getvalue()


def prepare_folder(folder: str | os.PathLike, what: str) -> Path:
    """Before a run writes into ``folder``: create it if needed, prove that it takes
    files (:func:`check_writable_folder`), and remove what killed runs left half-written
    in it (:func:`remove_stale_temporaries`).

    Raises
    ------
    FileFormatError
        If the folder cannot be written to (the message names it as ``what``).
    """
    path = check_writable_folder(folder, what)
    remove_stale_temporaries(path)
    return path
