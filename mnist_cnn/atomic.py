"""Write files so that a reader never sees a half-written one."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, text: bool = False) -> Iterator[IO]:
    """Open a temporary file beside ``path``; rename it to ``path`` only on success.

    If the ``with`` block raises (or the process dies), ``path`` keeps its old content
    and the temporary file is removed.

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

    Examples
    --------
    >>> with atomic_write("history.csv", text=True) as f:  # doctest: +SKIP
    ...     f.write("epoch,loss\\n")
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp makes the file private (0600); give it the mode a plain open() would.
        os.chmod(tmp, _final_mode(path))
        with os.fdopen(fd, "w" if text else "wb", **({"encoding": "utf-8"} if text else {})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _final_mode(path: Path) -> int:
    """The existing file's mode, else 0666 less the process umask."""
    try:
        return path.stat().st_mode & 0o777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask
