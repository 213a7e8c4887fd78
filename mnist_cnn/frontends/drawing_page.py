"""``mnist-cnn draw``: a local web page where the network reads the digit you draw.

The server is the standard library's :class:`http.server.ThreadingHTTPServer`: nothing to
install, quick to import, and enough for one person's browser on 127.0.0.1. It serves one
page (``mnist_cnn/frontends/page/draw.html``, shipped in the package: no CDN, works offline)
and one JSON endpoint:

``POST /api/read`` with an image file as the body (PNG, JPEG, ... at most
:data:`MAX_UPLOAD` bytes) answers ``{"digit", "probabilities", "input", "feature_maps"}``:
the network's answer, the 28x28 image it saw after preprocessing
(:func:`mnist_cnn.reading.images.preprocess_image`) and the 32 C1 feature maps of that image,
or a 4xx with ``{"error": "..."}``. Nothing is written to disk; no part of a request
ever names a file. The numpy engine computes (no PyTorch import: the first answer is
fast).
"""

from __future__ import annotations

import json
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any, ClassVar

import numpy as np

from mnist_cnn.errors import ImageError, MnistCnnError
from mnist_cnn.storage.weights_file import WeightsLike, as_weights

__all__ = ["MAX_UPLOAD", "DrawingServer", "make_server", "read_drawing", "serve_in_thread"]

#: Uploads over this many bytes are refused (413).
MAX_UPLOAD = 5 << 20


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
    ImageError
        If the data is not a usable image.
    """
    from mnist_cnn.nets.engines.reference import layer_outputs
    from mnist_cnn.reading.images import decode_image, preprocess_image

    x = preprocess_image(decode_image(data, "the upload"))
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
    """The page's server: its weights loaded once, the page held in memory."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], weights: WeightsLike) -> None:
        self.weights = as_weights(weights)
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

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"


class _Handler(BaseHTTPRequestHandler):
    server: DrawingServer
    server_version = "mnist-cnn-draw"
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # small JSON answers go out at once

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: the terminal shows the address and errors only

    #: The methods each path takes (answered 405 with ``Allow`` otherwise).
    allowed: ClassVar[dict[str, str]] = {
        "/": "GET, HEAD, OPTIONS", "/index.html": "GET, HEAD, OPTIONS",
        "/api/read": "POST, OPTIONS"}

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
        if self._route("GET"):
            self._send(HTTPStatus.OK, self.server.page, "text/html; charset=utf-8")

    def do_HEAD(self) -> None:
        if self._route("HEAD"):
            self._send(HTTPStatus.OK, self.server.page, "text/html; charset=utf-8", head=True)

    def do_OPTIONS(self) -> None:
        if self._route("OPTIONS"):
            allowed = self.allowed[self.path.split("?")[0]]
            self._send(HTTPStatus.NO_CONTENT, b"", "text/plain", {"Allow": allowed})

    def do_POST(self) -> None:
        if not self._route("POST"):
            return
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._json(HTTPStatus.LENGTH_REQUIRED, {"error": "send a Content-Length"})
            return
        if not 0 < length <= MAX_UPLOAD:
            self.close_connection = True  # the body is not read
            self._json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE if length > 0 else
                       HTTPStatus.BAD_REQUEST,
                       {"error": f"an image of 1 byte to {MAX_UPLOAD >> 20} MB is expected, "
                                 f"got {length:,} bytes"})
            return
        data = self.rfile.read(length)
        try:
            result = read_drawing(data, self.server.weights)
        except ImageError as exc:
            self._json(HTTPStatus.UNPROCESSABLE_ENTITY, {"error": " ".join(str(exc).split())})
            return
        self._json(HTTPStatus.OK, result)

    def do_PUT(self) -> None:
        self._route(self.command)

    do_DELETE = do_PATCH = do_PUT  # noqa: N815


def make_server(weights: WeightsLike | None = None, host: str = "127.0.0.1",
                port: int = 0) -> DrawingServer:
    """A drawing page's server, bound but not yet serving.

    Parameters
    ----------
    weights : Weights, list of numpy.ndarray or path, optional
        A cnn's weights; default: the bundled model.
    host : str
        The address to listen on; 127.0.0.1 keeps it to this machine.
    port : int
        0: a free port.

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
        return DrawingServer((host, port), weights if weights is not None
                             else bundled_weights_path())
    except OSError as exc:
        raise MnistCnnError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); "
                            "choose another --port") from None


def serve_in_thread(server: DrawingServer) -> threading.Thread:
    """Run ``server.serve_forever()`` in a daemon thread; returns the thread."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return thread
