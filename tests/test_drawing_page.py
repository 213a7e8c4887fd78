"""mnist_cnn.frontends.drawing_page and `mnist-cnn draw`: the page, its JSON API, in a real browser.

The browser tests drive Debian's headless Chromium through Selenium with real pointer
events. They are skipped when Chromium, chromedriver or Selenium are missing, unless
MNIST_CNN_REQUIRE_BROWSER=1 (as in CI), which turns the skip into a failure.
"""

from __future__ import annotations

import http.client
import io
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from photolike import drawn_seven, slash_ends
from PIL import Image
from subprocesses import default_sigint

from mnist_cnn.frontends.drawing_page import (
    DECODERS,
    MAX_UPLOAD,
    WAITING,
    make_server,
    serve_in_thread,
)

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@pytest.fixture
def server(drawing_server):
    return drawing_server


def post(server, body: bytes, path: str = "/api/read", timeout: float = 30
         ) -> tuple[int, dict]:
    host, port = server.server_address[:2]
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    connection.request("POST", path, body=body)
    response = connection.getresponse()
    payload = json.loads(response.read())
    connection.close()
    return response.status, payload


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


# --------------------------------------------------------------------------- the API


def test_the_api_reads_an_image_and_returns_what_the_page_shows(server):
    status, reply = post(server, png(drawn_seven()))
    assert status == 200 and reply["digit"] == 7
    assert len(reply["probabilities"]) == 10 and abs(sum(reply["probabilities"]) - 1) < 1e-3
    assert np.array(reply["input"]).shape == (28, 28)
    maps = np.array(reply["feature_maps"])
    assert maps.shape == (32, 24, 24) and maps.min() >= 0 and maps.max() == 1


@pytest.mark.parametrize("body, path, status, message", [
    (b"not an image", "/api/read", 422, "not an image"),
    (b"", "/api/read", 400, "expected"),
    (b"x", "/api/other", 404, "no page at /api/other"),
    (b"x", "/", 405, "/ takes GET, HEAD, OPTIONS, not POST"),
])
def test_bad_requests_get_a_4xx_with_a_json_message(server, body, path, status, message):
    got, reply = post(server, body, path)
    assert got == status and message in reply["error"]


@pytest.mark.parametrize("method, path, status, allow", [
    ("GET", "/api/read", 405, "POST, OPTIONS"),
    ("DELETE", "/", 405, "GET, HEAD, OPTIONS"),
    ("OPTIONS", "/api/read", 204, "POST, OPTIONS"),
    ("HEAD", "/", 200, None),
])
def test_each_path_answers_its_methods_and_405_with_allow_for_others(server, method, path,
                                                                      status, allow):
    host, port = server.server_address[:2]
    connection = http.client.HTTPConnection(host, port, timeout=30)
    connection.request(method, path)
    response = connection.getresponse()
    body = response.read()
    connection.close()
    assert response.status == status and response.getheader("Allow") == allow
    if method == "HEAD":
        assert body == b"" and int(response.getheader("Content-Length")) > 1000


def test_an_upload_over_the_limit_is_refused_before_it_is_read(server):
    host, port = server.server_address[:2]
    connection = http.client.HTTPConnection(host, port, timeout=30)
    connection.putrequest("POST", "/api/read")
    connection.putheader("Content-Length", str(MAX_UPLOAD + 1))
    connection.endheaders()  # no body sent: the server must answer without waiting for it
    response = connection.getresponse()
    assert response.status == 413 and "MB" in json.loads(response.read())["error"]
    connection.close()


def whole_request(port: int, body: bytes, length: int | None = None) -> bytes:
    """Send a POST's headers and body in one go, as a browser does, then read the whole
    answer (until the server closes or 30 s pass)."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"POST /api/read HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
                     b"Connection: close\r\n\r\n" % (len(body) if length is None else length)
                     + body)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def test_an_upload_over_the_limit_sent_whole_gets_its_413_every_time(server):
    body = os.urandom(6 << 20)
    port = server.server_address[1]
    for _ in range(5):
        answer = whole_request(port, body)
        assert answer.startswith(b"HTTP/1.1 413 "), answer[:100]
        assert b"Connection: close" in answer and b"MB is expected" in answer


def test_an_image_over_the_pixel_limit_is_refused_before_decoding(server):
    big = png(np.full((6000, 5000), 255, np.uint8))  # 30 MP, 30 kB: most of it is white
    status, reply = post(server, big)
    assert status == 413 and "megapixel limit" in reply["error"]


@pytest.mark.slow  # a load test
def test_a_burst_of_16_large_uploads_all_get_an_answer_with_memory_bounded():
    """16 clients at once, each a 20-megapixel PNG (about 40 kB): every one gets 200 or
    503 with Retry-After, the server's peak and resting memory stay bounded."""
    image = np.full((4000, 5000), 255, np.uint8)
    image[1500:2500, 2200:2300] = 0  # a "1"
    body = png(image)
    proc = subprocess.Popen([sys.executable, "-m", "mnist_cnn", "draw", "--no-browser"],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True,
                            preexec_fn=default_sigint)
    port = int(proc.stdout.readline().split(":")[2].split("/")[0])
    peak, sampling = [0], [True]

    def rss() -> int:  # MB
        with open(f"/proc/{proc.pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) >> 10

    def sample() -> None:
        while sampling[0]:
            peak[0] = max(peak[0], rss())
            time.sleep(0.01)

    answers: list[bytes] = []
    try:
        resting = rss()
        sampler = threading.Thread(target=sample)
        sampler.start()
        clients = [threading.Thread(target=lambda: answers.append(whole_request(port, body)))
                   for _ in range(16)]
        for t in clients:
            t.start()
        for t in clients:
            t.join()
        time.sleep(0.5)
        after = rss()
        sampling[0] = False
        sampler.join()
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
    statuses = [int(a.split(b" ", 2)[1]) for a in answers]
    print(f"16 uploads of 20 MP: {statuses.count(200)} answered 200, {statuses.count(503)} "
          f"503; server at {resting} MB before, {peak[0]} MB at peak, {after} MB after")
    assert len(statuses) == 16 and set(statuses) <= {200, 503} and 200 in statuses
    assert statuses.count(200) >= DECODERS + WAITING or 503 not in statuses
    assert all(b"Retry-After: 1" in a for a in answers if a.startswith(b"HTTP/1.1 503"))
    assert peak[0] < 400 and after < 150


def test_without_collect_the_page_keeps_nothing_and_says_how_to_start_it(server):
    status, reply = post(server, png(drawn_seven()), "/api/collect?digit=7")
    assert status == 403 and "--collect DIR" in reply["error"]
    status, reply = post(server, b"", "/api/adapt")
    assert status == 403
    host, port = server.server_address[:2]
    connection = http.client.HTTPConnection(host, port, timeout=30)
    connection.request("GET", "/api/status")
    assert json.loads(connection.getresponse().read()) == {
        "collect": False, "collected": 0, "adapted": False}
    connection.close()


@pytest.mark.mnist
def test_collected_drawings_are_kept_by_digit_and_adapt_makes_the_page_read_with_them(
        tmp_path, monkeypatch, mnist_dir):
    monkeypatch.setenv("MNIST_DATA_DIR", str(mnist_dir))
    seven = png(drawn_seven())
    collecting = make_server(collect=tmp_path / "mine")
    serve_in_thread(collecting)
    try:
        assert post(collecting, seven, "/api/collect?digit=x")[0] == 400
        assert post(collecting, seven, "/api/collect")[0] == 400
        assert post(collecting, b"not an image", "/api/collect?digit=7")[0] == 422
        assert not (tmp_path / "mine").exists()  # nothing kept from bad requests
        status, reply = post(collecting, seven, "/api/collect?digit=7")
        assert status == 200 and reply["collected"] == 1
        assert (tmp_path / "mine" / reply["saved"]).read_bytes() == seven
        status, reply = post(collecting, seven, "/api/collect?digit=7")  # the same drawing
        assert reply["collected"] == 1
        status, reply = post(collecting, b"", "/api/adapt", timeout=300)
        assert status == 200 and reply["digits"] == 1 and reply["mnist_test_accuracy"] > 0.99
        assert (tmp_path / "mine" / "adapted" / "model.npz").is_file()
        assert collecting.weights is not collecting.start
        assert post(collecting, seven)[1]["digit"] == 7
    finally:
        collecting.shutdown()
        collecting.server_close()


def test_no_request_path_reaches_the_file_system(server):
    host, port = server.server_address[:2]
    for path in ("/../../etc/passwd", "/mnist_cnn/__init__.py", "/%2e%2e/setup.py"):
        connection = http.client.HTTPConnection(host, port, timeout=30)
        connection.request("GET", path)
        response = connection.getresponse()
        assert response.status == 404 and b"root:" not in response.read()
        connection.close()


@pytest.mark.slow  # a load test
def test_200_requests_from_4_clients_all_succeed_with_flat_memory():
    body = png(drawn_seven())
    proc = subprocess.Popen([sys.executable, "-m", "mnist_cnn", "draw", "--no-browser"],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True,
                            preexec_fn=default_sigint)
    port = int(proc.stdout.readline().split(":")[2].split("/")[0])

    class Address:  # what post() needs of a server
        server_address = ("127.0.0.1", port)

    def rss() -> int:  # the server process's resident memory, kB
        with open(f"/proc/{proc.pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS"))

    def client(n: int, statuses: list[int]) -> None:
        for _ in range(n):
            statuses.append(post(Address, body)[0])

    def round_of(n: int) -> list[int]:
        statuses: list[int] = []
        threads = [threading.Thread(target=client, args=(n, statuses)) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return statuses

    try:
        statuses = round_of(10)  # the first 40: caches, allocator arenas and stacks settle
        sizes = [rss()]
        for _ in range(2):  # then twice 80: a leak would show as steady growth
            statuses += round_of(20)
            sizes.append(rss())
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
    grown = [(b - a) / 1024 for a, b in itertools.pairwise(sizes)]
    print(f"200 requests, 4 clients: server at {sizes[0] / 1024:.0f} MB after 40, then grew "
          f"{grown[0]:.1f} MB and {grown[1]:.1f} MB")
    assert set(statuses) == {200} and len(statuses) == 200
    assert grown[1] < 8


def test_draw_command_prints_its_address_serves_and_stops_on_ctrl_c():
    proc = subprocess.Popen([sys.executable, "-m", "mnist_cnn", "draw", "--no-browser"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=default_sigint)
    try:
        line = proc.stdout.readline()
        assert line.startswith("Drawing page at http://127.0.0.1:"), line
        port = int(line.split(":")[2].split("/")[0])
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request("GET", "/")
        assert b"<canvas" in connection.getresponse().read()
        connection.close()
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "Stopped." in out and "Traceback" not in err


def test_another_host_than_this_machine_gives_a_warning():
    proc = subprocess.Popen([sys.executable, "-m", "mnist_cnn", "draw", "--no-browser",
                             "--host", "0.0.0.0"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=default_sigint)
    try:
        assert proc.stdout.readline().startswith("Drawing page at http://0.0.0.0:")
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert "warning: listening on 0.0.0.0" in err


# ----------------------------------------------------------------------- the browser


@pytest.fixture(scope="module")
def browser():
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not shutil.which(p)]
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing.append("selenium (pip install selenium)")
    if missing:
        message = f"browser tests need {', '.join(missing)}"
        if os.environ.get("MNIST_CNN_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync",
                 "--window-size=1400,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def strokes_of(digit: np.ndarray, scale: float = 10.0) -> list[list[tuple[float, float]]]:
    """Pen strokes that retrace an MNIST digit: its skeleton walked from the ends, in
    the pad's pixels (28 -> 280)."""
    from skimage.morphology import skeletonize

    todo = {tuple(p) for p in np.argwhere(skeletonize(digit > 0.35))}
    strokes = []

    def neighbours(p):
        return [(p[0] + dr, p[1] + dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1)
                if (dr or dc) and (p[0] + dr, p[1] + dc) in todo]

    while todo:
        start = min(todo, key=lambda p: (len(neighbours(p)), p))  # an end if there is one
        path, point = [start], start
        todo.discard(start)
        while nxt := neighbours(point):
            point = nxt[0]
            todo.discard(point)
            path.append(point)
        strokes.append([((c + 0.5) * scale, (r + 0.5) * scale) for r, c in path])
    return [s for s in strokes if len(s) > 1]


def draw(driver, strokes) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    pad = driver.find_element("id", "pad")
    chain = ActionChains(driver, duration=0)
    for stroke in strokes:
        # Offsets are from the pad's centre (140, 140).
        chain.move_to_element_with_offset(pad, stroke[0][0] - 140, stroke[0][1] - 140)
        chain.click_and_hold()
        for x, y in stroke[1:]:
            chain.move_to_element_with_offset(pad, x - 140, y - 140)
        chain.release()
    chain.perform()


def wait_for(driver, condition: str, timeout: float = 15.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = driver.execute_script(f"return {condition};")
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"the page never reached: {condition}")


@pytest.mark.mnist
@pytest.mark.slow
def test_ten_digits_drawn_with_real_pointer_events_are_read_at_least_9_right(
        server, browser, mnist, tmp_path):
    X_test, y_test = mnist[4], mnist[5]
    browser.get(server.url)
    right, latencies = 0, []
    for i in range(10):
        browser.find_element("id", "clear").click()
        strokes = strokes_of(X_test[i, 0])
        draw(browser, strokes)
        wait_for(browser, f"window.readStrokes === {len(strokes)}")  # the whole drawing read
        digit = browser.find_element("id", "digit").text
        latencies.append(browser.execute_script("return window.lastLatencyMs;"))
        right += digit == str(y_test[i])
        print(f"test digit {i}: drawn {y_test[i]}, read {digit}")
        browser.save_screenshot(str(tmp_path / f"draw{i}.png"))
    bars = browser.find_elements("css selector", "#bars .bar")
    maps = browser.find_elements("css selector", "#maps canvas")
    browser.save_screenshot(str(tmp_path / "draw.png"))
    print(f"last stroke to answer: median {np.median(latencies):.0f} ms, "
          f"max {np.max(latencies):.0f} ms")
    assert right >= 9 and len(bars) == 10 and len(maps) == 32
    browser.find_element("id", "undo").click()  # the digit's strokes, one by one
    browser.find_element("id", "clear").click()
    assert browser.find_element("id", "digit").text == "?"
    assert browser.find_elements("css selector", "#bars .bar") == []


@pytest.mark.slow  # drives a browser
def test_a_file_chosen_on_the_page_is_read_and_a_non_image_shows_an_error(
        server, browser, tmp_path):
    Image.fromarray(drawn_seven()).save(tmp_path / "seven.png")
    (tmp_path / "notes.txt").write_text("not a picture")
    browser.get(server.url)
    browser.find_element("id", "tab-file").click()
    chooser = browser.find_element("id", "file")
    chooser.send_keys(str(tmp_path / "seven.png"))
    wait_for(browser, "window.answers > 0")
    assert browser.find_element("id", "digit").text == "7"
    chooser.send_keys(str(tmp_path / "notes.txt"))
    error = wait_for(browser, "document.getElementById('error').textContent")
    assert "not an image" in error and browser.find_element("id", "digit").text == "?"


@pytest.mark.mnist
@pytest.mark.slow  # drives a browser
def test_a_writer_who_slashes_0s_corrects_five_adapts_and_the_page_then_reads_their_0s(
        browser, mnist, mnist_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("MNIST_DATA_DIR", str(mnist_dir))
    X_test, y_test = mnist[4], mnist[5]
    zeros = X_test[y_test == 0, 0][:10]
    collecting = make_server(collect=tmp_path / "mine")
    serve_in_thread(collecting)

    def slashed_zero(digit: np.ndarray) -> list[list[tuple[float, float]]]:
        (r0, c0), (r1, c1) = slash_ends(digit)
        return [*strokes_of(digit), [(c0 * 10 + 5, r0 * 10 + 5), (c1 * 10 + 5, r1 * 10 + 5)]]

    def read(digit: np.ndarray) -> str:
        browser.find_element("id", "clear").click()
        strokes = slashed_zero(digit)
        draw(browser, strokes)
        wait_for(browser, f"window.readStrokes === {len(strokes)}")
        return browser.find_element("id", "digit").text

    try:
        browser.get(collecting.url)
        wait_for(browser, "!document.getElementById('teach').hidden")
        for n, digit in enumerate(zeros[:5], start=1):
            read(digit)
            browser.find_element("id", "fix-0").click()
            wait_for(browser, f"window.collected === {n}")
        before = [read(d) for d in zeros[5:]]
        browser.find_element("id", "adapt").click()
        wait_for(browser, "window.adapted === 1", timeout=120)
        after = [read(d) for d in zeros[5:]]
        browser.save_screenshot(str(tmp_path / "adapted.png"))
    finally:
        collecting.shutdown()
        collecting.server_close()
    print(f"slashed 0s drawn on the page, read before adapting: {before}, after: {after}")
    assert len(list((tmp_path / "mine" / "0").glob("*.png"))) == 5
    assert (tmp_path / "mine" / "adapted" / "model.npz").is_file()
    assert after.count("0") >= 4 and after.count("0") > before.count("0")
