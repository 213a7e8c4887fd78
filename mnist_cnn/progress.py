"""Progress bars: tqdm's, as a widget in Jupyter and as text in a terminal."""

from __future__ import annotations

import importlib.util
import sys
from typing import Any

__all__ = ["progress_bar", "show_progress"]


def _in_jupyter() -> bool:
    return "ipykernel" in sys.modules


def show_progress(progress: bool | None) -> bool:
    """Whether to show progress: as asked, else when standard error is a terminal or the
    code runs in a Jupyter kernel."""
    if progress is not None:
        return progress
    return sys.stderr.isatty() or _in_jupyter()


def progress_bar(**options: Any) -> Any:
    """A tqdm bar: Jupyter's widget where ipywidgets is installed (``pip install
    mnist-cnn[notebook]``), text on standard error otherwise, never tqdm's warning that
    the widget is missing."""
    if _in_jupyter() and importlib.util.find_spec("ipywidgets") is not None:
        from tqdm.notebook import tqdm
    else:
        from tqdm.std import tqdm
        options.setdefault("file", sys.stderr)
    return tqdm(**options)
