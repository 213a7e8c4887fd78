"""``mnist-cnn draw``: a local web page where the network reads the digit you draw.

The server is the standard library's :class:`http.server.ThreadingHTTPServer`: nothing to
install, quick to import, and enough for one person's browser on 127.0.0.1. It serves one
page (``mnist_cnn/frontends/page/draw.html``, shipped in the package: no CDN, works offline)
and one JSON endpoint:

``POST /api/read`` with an image file as the body (PNG, JPEG, ... at most
:data:`MAX_UPLOAD` bytes) answers ``{"digit", "probabilities", "input", "feature_maps"}``:
the network's answer, the 28x28 image it saw after preprocessing
(:func:`mnist_cnn.reading.images.preprocess_image`) and the 32 C1 feature maps of that image,
or a 4xx with ``{"error": "..."}``. The numpy engine computes (no PyTorch import: the
first answer is fast).

With a folder to collect into (``mnist-cnn draw --collect DIR``), two more endpoints
teach the page the user's handwriting: ``POST /api/collect?digit=D`` keeps a drawing
whose answer was wrong as a ``D`` (``DIR/D/<hash>.png``), and ``POST /api/adapt``
fine-tunes the starting model on everything kept (``mnist-cnn adapt``, in a process of
its own; saved to ``DIR/adapted/model.npz``); the page then reads with the adapted
model.
``GET /api/status`` says whether collecting is on and how many drawings are kept.
Without a folder nothing is ever written, and no part of a request names a file.

Under abuse the server stays bounded: at most :data:`DECODERS` images are decoded at
once, each of at most :data:`MAX_PIXELS` pixels, with at most :data:`WAITING` more
waiting their turn; a request beyond that is answered 503 with ``Retry-After``. An
upload over :data:`MAX_UPLOAD` is answered 413 at once and its body read and discarded
(up to :data:`MAX_DISCARD` bytes) so that a client that sends everything before reading
still gets the answer. A connection that sends nothing for :data:`IDLE_TIMEOUT` seconds
is closed.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import hashlib
import json
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import numpy as np

from mnist_cnn.errors import ImageError, MnistCnnError
from mnist_cnn.storage.weights_file import WeightsLike, as_weights

__all__ = [
    "ADAPT_TIMEOUT",
    "DECODERS",
    "IDLE_TIMEOUT",
    "MAX_DISCARD",
    "MAX_PIXELS",
    "MAX_UPLOAD",
    "WAITING",
    "DrawingServer",
    "TooManyPixels",
    "make_server",
    "read_drawing",
    "serve_in_thread",
]

#: Uploads over this many bytes are refused (413).
MAX_UPLOAD = 5 << 20
#: Of a refused upload, at most this many bytes are read and discarded before closing.
MAX_DISCARD = 64 << 20
#: Images larger than this are refused (413) before their pixels are decoded.
MAX_PIXELS = 25_000_000
#: Images decoded at once; more requests wait, up to :data:`WAITING` of them.
DECODERS = 2
#: Requests that may wait for a decoder; beyond them the answer is 503 with Retry-After.
WAITING = 8
#: Seconds a connection may stay silent (while sending a request or between requests).
IDLE_TIMEOUT = 30.0
#: Seconds ``/api/adapt`` may take.
ADAPT_TIMEOUT = 600.0


class TooManyPixels(ImageError):
    """An upload over :data:`MAX_PIXELS` (answered 413, not 422)."""


def read_drawing(data: bytes, weights: WeightsLike) -> dict[str, Any]:
    """What the page shows for one image: the digit, the ten probabilities, the 28x28
    input the network saw and its 32 C1 feature maps (each scaled to [0, 1] by the
    largest value of all 32).

    Parameters
    ----------
    data : bytes
        An image file's content.
    weights : Weights, list of numpy.ndarray or path
        A cnn's weights.

    Returns
    -------
    dict
        ``digit`` (int), ``probabilities`` (10 floats), ``input`` (28 rows of 28 floats
        in [0, 1]), ``feature_maps`` (32 maps of 24 rows of 24 floats in [0, 1]).

    Raises
    ------
    TooManyPixels
        If the image is over :data:`MAX_PIXELS` (checked before its pixels are decoded).
    ImageError
        If the data is not a usable image.
    """
    from mnist_cnn.nets.engines.reference import layer_outputs
    from mnist_cnn.reading.images import decode_image, preprocess_image

    image = decode_image(data, "the upload")
    if image.width * image.height > MAX_PIXELS:
        raise TooManyPixels(f"the upload is {image.width}x{image.height} pixels, over the page's "
                         f"{MAX_PIXELS / 1e6:.0f}-megapixel limit; scale it down first")
    x = preprocess_image(image)
    net = as_weights(weights)
    outputs = layer_outputs(net, x[None, None])
    maps = outputs[0][0]
    maps = maps / max(float(maps.max()), 1e-6)
    probabilities = outputs[-1][0]
    return {"digit": int(probabilities.argmax()),
            "probabilities": [round(float(p), 5) for p in probabilities],
            "input": np.round(x * 256 / 255, 3).tolist(),
            "feature_maps": np.round(maps, 2).tolist()}


class DrawingServer(ThreadingHTTPServer):
    """The page's server: its weights loaded once, the page held in memory, a bounded
    pool of decoders. Making one sets how this process's C heap (glibc) returns memory
    to the system: large buffers at once, two heaps for all threads."""

    daemon_threads = True
    request_queue_size = 64  # a burst of connections waits; it is not refused

    def __init__(self, address: tuple[str, int], weights: WeightsLike,
                 collect: str | Path | None = None) -> None:
        _return_large_buffers_promptly()
        self.weights = self.start = as_weights(weights)
        self.start_source = weights
        self.collect = None if collect is None else Path(collect)
        self.adapting = threading.Lock()
        self.decoders = threading.BoundedSemaphore(DECODERS)
        self._admitted = 0
        self._admission = threading.Lock()
        if self.weights.network.name != "cnn":
            raise MnistCnnError(f"the drawing page shows C1 feature maps: it needs the cnn's "
                                f"weights, not {self.weights.network.name}'s")
        self.page = (resources.files("mnist_cnn") / "frontends" / "page" / "draw.html").read_bytes()
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A browser that closes its connection is no error; anything else is one line."""
        import sys

        error = sys.exc_info()[1]
        if not isinstance(error, ConnectionError):
            print(f"mnist-cnn draw: error while answering {client_address[0]}: "
                  f"{type(error).__name__}: {error}", file=sys.stderr)

    @contextlib.contextmanager
    def decoder(self):
        """A decoder for one image, waiting for one if all are busy; yields False (and
        waits for none) when :data:`WAITING` requests already wait."""
        with self._admission:
            admitted = self._admitted < DECODERS + WAITING
            self._admitted += admitted
        if not admitted:
            yield False
            return
        try:
            with self.decoders:
                yield True
        finally:
            with self._admission:
                self._admitted -= 1
                idle = self._admitted == 0
            if idle:
                _release_free_memory()

    def adapt(self) -> tuple[int, dict[str, Any]]:
        """Run ``mnist-cnn adapt`` on the collect folder from the starting model; on
        success read with the adapted model. Returns the HTTP status and the reply."""
        import subprocess
        import sys

        from mnist_cnn.storage.weights_file import load_weights, save_weights

        out = self.collect / "adapted"
        start = self.start_source
        if not isinstance(start, (str, Path)):  # weights given in Python: a file for the child
            start = save_weights(self.collect / ".start" / "model.npz", self.start)
        try:
            done = subprocess.run(
                [sys.executable, "-m", "mnist_cnn", "adapt", str(self.collect), "--out",
                 str(out), "--weights", str(start), "--folds", "0", "--json"],
                capture_output=True, text=True, timeout=ADAPT_TIMEOUT)
        except subprocess.TimeoutExpired:
            return HTTPStatus.GATEWAY_TIMEOUT, {"error": f"adapting took over "
                                                         f"{ADAPT_TIMEOUT:.0f} s; stopped"}
        if done.returncode != 0:
            said = done.stderr.strip().splitlines()
            return HTTPStatus.UNPROCESSABLE_ENTITY, {
                "error": said[-1].removeprefix("mnist-cnn: error: ") if said else
                f"adapting failed (exit {done.returncode})"}
        reply = json.loads(done.stdout)
        self.weights = load_weights(reply["model"])
        return HTTPStatus.OK, reply

    def collected(self) -> int:
        """How many drawings are kept in the collect folder."""
        if self.collect is None:
            return 0
        return sum(1 for d in range(10) if (self.collect / str(d)).is_dir()
                   for f in (self.collect / str(d)).glob("*.png"))

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"


class _Handler(BaseHTTPRequestHandler):
    server: DrawingServer
    server_version = "mnist-cnn-draw"
    protocol_version = "HTTP/1.1"
    default_request_version = "HTTP/1.0"  # no HTTP/0.9: every answer has a status line
    disable_nagle_algorithm = True  # small JSON answers go out at once
    timeout = IDLE_TIMEOUT

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: the terminal shows the address and errors only

    #: The methods each path takes (answered 405 with ``Allow`` otherwise).
    allowed: ClassVar[dict[str, str]] = {
        "/": "GET, HEAD, OPTIONS", "/index.html": "GET, HEAD, OPTIONS",
        "/api/read": "POST, OPTIONS", "/api/collect": "POST, OPTIONS",
        "/api/adapt": "POST, OPTIONS", "/api/status": "GET, HEAD, OPTIONS"}

    def _send(self, status: int, body: bytes, content_type: str,
              headers: dict[str, str] | None = None, head: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json", headers)

    def _route(self, method: str) -> bool:
        """Whether this path takes ``method``; answers 404 or 405 (with ``Allow``) if not."""
        path = self.path.split("?")[0]
        allowed = self.allowed.get(path)
        if allowed is None:
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no page at {self.path[:100]}"})
            return False
        if method not in allowed.split(", "):
            self._json(HTTPStatus.METHOD_NOT_ALLOWED,
                       {"error": f"{path} takes {allowed}, not {method}"}, {"Allow": allowed})
            return False
        return True

    def do_GET(self) -> None:
        self._get(head=False)

    def do_HEAD(self) -> None:
        self._get(head=True)

    def _get(self, head: bool) -> None:
        """The page, or ``/api/status``: whether collecting is on, how many drawings are
        kept, whether the page reads with an adapted model."""
        if not self._route(self.command):
            return
        if self.path.split("?")[0] == "/api/status":
            status = {"collect": self.server.collect is not None,
                      "collected": self.server.collected(),
                      "adapted": self.server.weights is not self.server.start}
            self._send(HTTPStatus.OK, json.dumps(status).encode(), "application/json",
                       head=head)
            return
        self._send(HTTPStatus.OK, self.server.page, "text/html; charset=utf-8", head=head)

    def do_OPTIONS(self) -> None:
        if self._route("OPTIONS"):
            allowed = self.allowed[self.path.split("?")[0]]
            self._send(HTTPStatus.NO_CONTENT, b"", "text/plain", {"Allow": allowed})

    def do_POST(self) -> None:
        if not self._route("POST"):
            return
        path = self.path.split("?")[0]
        if path == "/api/adapt":
            self._adapt()
            return
        digit = None
        if path == "/api/collect":
            digit = self._digit()
            if digit is None:
                return
        data = self._body()
        if data is None:
            return
        with self.server.decoder() as admitted:
            if not admitted:
                self._json(HTTPStatus.SERVICE_UNAVAILABLE,
                           {"error": "the page is busy reading other images; try again in "
                                     "a second"}, {"Retry-After": "1"})
                return
            try:
                result = read_drawing(data, self.server.weights)
            except ImageError as exc:
                status = (HTTPStatus.REQUEST_ENTITY_TOO_LARGE
                          if isinstance(exc, TooManyPixels) else HTTPStatus.UNPROCESSABLE_ENTITY)
                self._json(status, {"error": " ".join(str(exc).split())})
                return
        if digit is not None:
            result = {"saved": self._keep(data, digit), "collected": self.server.collected()}
        self._json(HTTPStatus.OK, result)

    def _body(self) -> bytes | None:
        """The request's body (an image of 1 byte to :data:`MAX_UPLOAD`), or None after
        answering why not."""
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._json(HTTPStatus.LENGTH_REQUIRED, {"error": "send a Content-Length"})
            return None
        if not 0 < length <= MAX_UPLOAD:
            # Answer first (a client that waits after the headers reads it now), then read
            # what a client that sends everything first still sends, so that closing does
            # not reset the connection before it reads the answer.
            self.close_connection = True
            self._json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE if length > 0 else
                       HTTPStatus.BAD_REQUEST,
                       {"error": f"an image of 1 byte to {MAX_UPLOAD >> 20} MB is expected, "
                                 f"got {length:,} bytes"}, {"Connection": "close"})
            self._discard(min(max(length, 0), MAX_DISCARD))
            return None
        data = self.rfile.read(length)
        if len(data) < length:
            self.close_connection = True
            return None  # the client went away mid-body
        return data

    def _collecting(self) -> bool:
        if self.server.collect is None:
            self.close_connection = True  # the body, if any, is not read
            self._json(HTTPStatus.FORBIDDEN,
                       {"error": "this page keeps no drawings: start it with "
                                 "`mnist-cnn draw --collect DIR`"})
            return False
        return True

    def _digit(self) -> int | None:
        """The ``digit`` query parameter (0 to 9), or None after answering 400 or 403."""
        if not self._collecting():
            return None
        values = parse_qs(urlsplit(self.path).query).get("digit", [])
        if len(values) != 1 or values[0] not in {str(d) for d in range(10)}:
            self.close_connection = True
            self._json(HTTPStatus.BAD_REQUEST,
                       {"error": "say which digit it is: /api/collect?digit=0 to 9"})
            return None
        return int(values[0])

    def _keep(self, data: bytes, digit: int) -> str:
        """Write a drawing into the collect folder (named by its hash); its name there."""
        from mnist_cnn.storage.files import atomic_write

        folder = self.server.collect / str(digit)
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{hashlib.sha256(data).hexdigest()[:16]}.png"
        with atomic_write(folder / name) as f:
            f.write(data)
        return f"{digit}/{name}"

    def _adapt(self) -> None:
        """Fine-tune the starting model on the kept drawings (``mnist-cnn adapt``, in a
        process of its own: this one stays small and quick, without PyTorch); read with
        the adapted model from now on."""
        if not self._collecting():
            return
        if self.headers.get("Content-Length", "0") != "0":
            self.close_connection = True
        if not self.server.adapting.acquire(blocking=False):
            self._json(HTTPStatus.SERVICE_UNAVAILABLE,
                       {"error": "already adapting; wait for it"}, {"Retry-After": "5"})
            return
        try:
            status, reply = self.server.adapt()
        finally:
            self.server.adapting.release()
        self._json(status, reply)

    def _discard(self, length: int) -> None:
        """Read and drop up to ``length`` bytes of the request's body."""
        with contextlib.suppress(OSError):
            self.wfile.flush()
            while length > 0:
                chunk = self.rfile.read(min(length, 1 << 16))
                if not chunk:
                    break
                length -= len(chunk)

    def do_PUT(self) -> None:
        self._route(self.command)

    do_DELETE = do_PATCH = do_PUT  # noqa: N815


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name and "libc.so" in name:
        with contextlib.suppress(OSError):
            return ctypes.CDLL(name)
    return None


def _return_large_buffers_promptly() -> None:
    """Ask glibc to hand buffers of 1 MB or more straight back to the system when freed,
    and to keep two heaps, not one per thread: otherwise each of the server's threads
    keeps the memory of the images it decoded, and a burst leaves the process near its
    peak (measured with ``scripts/bench_server.py``)."""
    libc = _glibc()
    if libc is not None:
        with contextlib.suppress(AttributeError):
            libc.mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD (a fixed one)
            libc.mallopt(-8, 2)  # M_ARENA_MAX


def _release_free_memory() -> None:
    """Give freed heap memory back to the system (glibc keeps it otherwise)."""
    libc = _glibc()
    if libc is not None:
        with contextlib.suppress(AttributeError):
            libc.malloc_trim(0)


def make_server(weights: WeightsLike | None = None, host: str = "127.0.0.1",
                port: int = 0, collect: str | Path | None = None) -> DrawingServer:
    """A drawing page's server, bound but not yet serving.

    Parameters
    ----------
    weights : Weights, list of numpy.ndarray or path, optional
        A cnn's weights; default: the bundled model.
    host : str
        The address to listen on; 127.0.0.1 keeps it to this machine.
    port : int
        0: a free port.
    collect : str or path, optional
        A folder where the page keeps the drawings the user corrects, and adapts the
        model to them; default: none (nothing is written).

    Returns
    -------
    DrawingServer
        Call ``serve_forever()`` (``.url`` is its address); ``shutdown()`` from another
        thread and ``server_close()`` stop it.

    Examples
    --------
    >>> server = make_server()  # doctest: +SKIP
    >>> threading.Thread(target=server.serve_forever, daemon=True).start()  # doctest: +SKIP
    """
    from mnist_cnn.reading.predictions import bundled_weights_path

    try:
        if collect is not None and Path(collect).exists() and not Path(collect).is_dir():
            raise MnistCnnError(f"--collect {collect} is a file, not a folder")
        return DrawingServer((host, port), weights if weights is not None
                             else bundled_weights_path(), collect)
    except OSError as exc:
        raise MnistCnnError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); "
                            "choose another --port") from None


def serve_in_thread(server: DrawingServer) -> threading.Thread:
    """Run ``server.serve_forever()`` in a daemon thread; returns the thread."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return thread
