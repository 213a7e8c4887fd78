"""Shared fixtures: the real MNIST files, a per-test cache, a local HTTP server."""

from __future__ import annotations

import csv
import http.server
import os
import threading
from pathlib import Path

import numpy as np
import pytest

from mnist_cnn.errors import DataError, EngineError
from mnist_cnn.nets.engines.legacy import environment as legacy
from mnist_cnn.storage.mnist_data import FILES, default_data_dir, find_mnist_files, load_dataset

# Resolved once, before any test changes the environment (see _private_cache).
REAL_DATA_DIR = default_data_dir()
LEGACY_DIR = legacy.home()
USER_DIGITS_DIR = Path(os.environ.get(
    "MNIST_CNN_USER_DIGITS", Path(__file__).resolve().parents[2] / "shared" / "user_digits"))
# The other development sets lie beside it unless named.
USER_DIGITS_MORE_DIR = Path(os.environ.get("MNIST_CNN_USER_DIGITS_MORE",
                                           USER_DIGITS_DIR.parent / "user_digits_more"))
USER_NUMBERS_DIR = Path(os.environ.get("MNIST_CNN_USER_NUMBERS",
                                       USER_DIGITS_DIR.parent / "user_numbers"))


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """Folder of the verified original MNIST files ($MNIST_DATA_DIR or the user cache).

    Skipped when the files are not there, unless MNIST_REQUIRE_DATA=1 (as in CI),
    which turns the skip into a failure.
    """
    try:
        find_mnist_files(REAL_DATA_DIR)
    except DataError:
        message = (f"the MNIST files are not in {REAL_DATA_DIR}; set MNIST_DATA_DIR "
                   "(e.g. MNIST_DATA_DIR=../shared/data/mnist) or run `mnist-cnn download`")
        if os.environ.get("MNIST_REQUIRE_DATA") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return REAL_DATA_DIR


def _dev_set(folder: Path, variable: str) -> Path:
    """A development set's folder; skipped when it has no labels.csv, unless
    MNIST_REQUIRE_DATA=1 (as in CI)."""
    if not (folder / "labels.csv").is_file():
        message = f"no labels.csv in {folder}; set {variable} to the development set's folder"
        if os.environ.get("MNIST_REQUIRE_DATA") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return folder


@pytest.fixture(scope="session")
def user_digits_dir() -> Path:
    """The first development set of single digits ($MNIST_CNN_USER_DIGITS)."""
    return _dev_set(USER_DIGITS_DIR, "MNIST_CNN_USER_DIGITS")


@pytest.fixture(scope="session")
def user_digits() -> list[dict[str, str]]:
    """The development set of real users' digits ($MNIST_CNN_USER_DIGITS, by default
    ../shared/user_digits beside the project): rows of its labels.csv, each with the
    image's full ``path``, its ``label`` and ``kind`` (photo, scan, drawn).

    Skipped when it is not there, unless MNIST_REQUIRE_DATA=1 (as in CI).
    """
    folder = _dev_set(USER_DIGITS_DIR, "MNIST_CNN_USER_DIGITS")
    with open(folder / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return [{**row, "path": str(folder / row["path"])} for row in rows]


@pytest.fixture(scope="session")
def user_digits_more_dir() -> Path:
    """The second development set of single digits ($MNIST_CNN_USER_DIGITS_MORE, by
    default beside user_digits)."""
    return _dev_set(USER_DIGITS_MORE_DIR, "MNIST_CNN_USER_DIGITS_MORE")


@pytest.fixture(scope="session")
def user_numbers_dir() -> Path:
    """The development set of whole numbers ($MNIST_CNN_USER_NUMBERS, by default
    beside user_digits)."""
    return _dev_set(USER_NUMBERS_DIR, "MNIST_CNN_USER_NUMBERS")


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("array-cache")


@pytest.fixture(scope="session")
def mnist(mnist_dir: Path, session_cache: Path) -> tuple[np.ndarray, ...]:
    """The tutorial's six arrays, loaded once for the whole session."""
    return load_dataset(mnist_dir, download=False, cache_dir=session_cache)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never write into the user's real cache during tests (the legacy environment of
    the lasagne engine, set up once with `mnist-cnn legacy setup`, is only read)."""
    monkeypatch.setenv("MNIST_CNN_CACHE_DIR", str(tmp_path / "user-cache"))
    monkeypatch.setenv("MNIST_CNN_LEGACY_DIR", str(LEGACY_DIR))


@pytest.fixture(scope="session")
def theano_engine():
    """The theano engine's module (on PyTensor, Python 3.11 or newer); PyTensor missing
    is a skip, or a failure with MNIST_CNN_REQUIRE_THEANO=1 (as in CI)."""
    try:
        import pytensor
    except ImportError:
        if os.environ.get("MNIST_CNN_REQUIRE_THEANO") == "1":
            pytest.fail("PyTensor is not installed: pip install '.[theano]'")
        pytest.skip("PyTensor is not installed (pip install '.[theano]'; Python >= 3.11)")
    from mnist_cnn.nets.engines import symbolic as pytensor

    return pytensor


@pytest.fixture(scope="module")
def drawing_server():
    """The drawing page's server with the bundled model, serving on 127.0.0.1 in a
    thread for the module's tests."""
    from mnist_cnn.frontends.drawing_page import make_server, serve_in_thread

    server = make_server()
    serve_in_thread(server)
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def real_lasagne() -> None:
    """The real Theano 0.8.2 and Lasagne 0.1 are set up (`mnist-cnn legacy setup`).

    Skipped when they are not, unless MNIST_CNN_REQUIRE_LASAGNE=1 (as in CI), which
    turns the skip into a failure.
    """

    os.environ.setdefault("MNIST_CNN_LEGACY_DIR", str(LEGACY_DIR))
    try:
        legacy.environment()
    except EngineError as exc:
        if os.environ.get("MNIST_CNN_REQUIRE_LASAGNE") == "1":
            pytest.fail(str(exc))
        pytest.skip(str(exc))


class MirrorServer:
    """A real HTTP server on 127.0.0.1 that serves files under per-path behaviours.

    ``routes`` maps a URL path to ``(mode, payload)``; the modes: ``"ok"``, ``"404"``,
    ``"corrupt"`` (same length, wrong bytes), ``"truncate"`` (announces the full length,
    sends half, closes), ``"stall"`` (sends the headers and a few bytes, then waits).
    ``requests`` lists the paths asked for.
    """

    def __init__(self) -> None:
        self.routes: dict[str, tuple[str, bytes]] = {}
        self.requests: list[str] = []
        self.stop = threading.Event()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                server.requests.append(self.path)
                mode, payload = server.routes.get(self.path, ("404", b""))
                if mode == "404":
                    self.send_error(404, "Not Found")
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if mode == "ok":
                    self.wfile.write(payload)
                elif mode == "corrupt":
                    self.wfile.write(bytes(b ^ 0xFF for b in payload[:64]) + payload[64:])
                elif mode == "truncate":
                    self.wfile.write(payload[: len(payload) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                elif mode == "stall":
                    self.wfile.write(payload[:100])
                    self.wfile.flush()
                    server.stop.wait(10)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, prefix: str) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/{prefix.strip('/')}/"

    def serve(self, prefix: str, folder: Path, mode: str = "ok",
              only: str | None = None) -> None:
        """Serve the four MNIST files of ``folder`` under ``/prefix/`` with ``mode``."""
        for spec in FILES:
            body = (folder / spec.name).read_bytes()
            chosen = mode if only in (None, spec.name) else "ok"
            self.routes[f"/{prefix}/{spec.name}"] = (chosen, body)


@pytest.fixture
def mirror_server():
    server = MirrorServer()
    server.thread.start()
    yield server
    server.stop.set()
    server.httpd.shutdown()
    server.httpd.server_close()
