"""Exceptions raised by mnist-cnn.

Every error the package raises on purpose derives from :class:`MnistCnnError`, so the
command line can print its one-line message instead of a traceback.
"""

from __future__ import annotations


class MnistCnnError(Exception):
    """Base class of the errors that mnist-cnn raises with a message meant for users."""


class MNISTFormatError(MnistCnnError, ValueError):
    """An MNIST file is not valid IDX data (wrong magic, truncated, trailing bytes...)."""


class DataError(MnistCnnError):
    """MNIST files are missing, corrupt, or cannot be fetched."""


class DownloadError(DataError):
    """Every download source failed."""


class WeightsError(MnistCnnError, ValueError):
    """A weights file or weights list is not usable (wrong count, shape, dtype...)."""


class TrainingError(MnistCnnError):
    """Training cannot go on (non-finite loss, unusable checkpoint, bad settings...)."""


class TrainingInterrupted(TrainingError):
    """Training was stopped by Ctrl-C (SIGINT) or SIGTERM.

    Attributes
    ----------
    epoch : int
        The epoch that was running.
    checkpoint : path or None
        The checkpoint to resume from, if one was saved.
    signal : int
        The signal that stopped it (``signal.SIGINT`` or ``signal.SIGTERM``).
    """

    def __init__(self, message: str, epoch: int, checkpoint: object = None,
                 signal: int = 2) -> None:
        super().__init__(message)
        self.epoch = epoch
        self.checkpoint = checkpoint
        self.signal = signal

    def __reduce__(self) -> tuple:
        # Whole across processes (a sweep's runs report their interruption this way).
        return type(self), (str(self), self.epoch, self.checkpoint, self.signal)


class EngineError(MnistCnnError):
    """An engine is unknown, not installed, or cannot do what was asked (the message
    says how to get it)."""


class ImageError(MnistCnnError):
    """An image cannot be read or holds no digit; the message names the image."""
