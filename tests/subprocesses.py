"""Helpers for tests that start the command as a real process."""

from __future__ import annotations

import signal


def default_sigint() -> None:
    """For ``preexec_fn``: Ctrl-C as in a terminal. A shell without job control starts
    background jobs (a CI script's, say) with SIGINT ignored, and Python then installs
    no KeyboardInterrupt handler in the child."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
