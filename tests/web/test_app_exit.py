"""An app's SystemExit or KeyboardInterrupt fails its own request only (cogen-web, a subprocess).

The app parks requests on ``/park`` until ``/release`` signals them, so the
test knows they are in flight when ``/exit`` runs, without sleeping.
"""
from __future__ import annotations

import os
import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.web._process import WAIT, ServerProcess, StartServer, cogen_web, get, write_app

pytestmark = pytest.mark.timeout(60)

APP = '''\
import os, sys


def application(environ, start_response):
    path = environ["PATH_INFO"]
    events = environ["cogen"].core.events
    if path == "/exit":
        sys.exit(3)
    if path == "/interrupt":
        raise KeyboardInterrupt
    if path == "/exit-in-body":
        return _exit_in_body(start_response)
    if path == "/exit-after-head":
        return _exit_after_head(start_response)
    if path == "/park":
        return _park(environ, start_response, events)
    if path == "/release":
        return _release(start_response, events)
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]


def _exit_in_body(start_response):
    start_response("200 OK", [])
    sys.exit(4)
    yield b""


def _exit_after_head(start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield b"partial"
    sys.exit(5)


def _park(environ, start_response, events):
    start_response("200 OK", [("Content-Type", "text/plain")])
    os.write(2, b"parked %d\\n" % os.getpid())  # one write: workers share the pipe
    yield events.WaitForSignal("release", timeout=30)
    yield b"released"


def _release(start_response, events):
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield events.Signal("release")
    yield b"released"
'''

#: Requests parked while the app exits.
PARKED = 10


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    write_app(tmp_path, "exiting", APP)
    return tmp_path


@pytest.fixture
def server(app_dir: Path) -> Iterator[StartServer]:
    started: list[ServerProcess] = []

    def start(*args: str) -> ServerProcess:
        proc = ServerProcess(cogen_web("exiting:application", "--port", "0", *args), cwd=app_dir)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.close()


def park_requests(proc: ServerProcess, port: int) -> tuple[list[threading.Thread], list[tuple[int, bytes]]]:
    """Start PARKED requests to /park and wait until the app has parked them all."""
    mark = proc.mark()
    results: list[tuple[int, bytes]] = []

    def client() -> None:
        try:
            results.append(get(port, "/park"))
        except OSError as exc:  # http.client's errors derive from it too
            results.append((0, repr(exc).encode()))

    threads = [threading.Thread(target=client) for _ in range(PARKED)]
    for thread in threads:
        thread.start()
    proc.wait_count(r"parked \d+", PARKED, start=mark)
    return threads, results


def release_all(port: int, threads: list[threading.Thread]) -> None:
    """Signal the parked requests (each /release reaches one worker) until all have ended."""
    for _ in range(200):
        if not any(thread.is_alive() for thread in threads):
            return
        get(port, "/release")
        for thread in threads:
            thread.join(0.05)
    for thread in threads:
        thread.join(WAIT)


def app_errors(proc: ServerProcess, start: int = 0) -> list[str]:
    return [line for line in proc.lines[start:] if "error in the application serving" in line]


# with threads, each parked response holds its thread (docs/server.rst): room for all
@pytest.mark.parametrize("threads", ["0", str(PARKED + 4)])
@pytest.mark.parametrize("path,name", [("/exit", "SystemExit: 3"), ("/interrupt", "KeyboardInterrupt"),
                                       ("/exit-in-body", "SystemExit: 4")])
def test_an_app_exit_gets_a_500_and_the_server_goes_on(server: StartServer, threads: str, path: str,
                                                       name: str) -> None:
    proc = server("--threads", threads)
    port = proc.port()
    parked, results = park_requests(proc, port)
    mark = proc.mark()
    assert get(port, path)[0] == 500
    assert get(port, path)[0] == 500
    release_all(port, parked)
    assert results == [(200, b"released")] * PARKED
    assert get(port)[0] == 200
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0
    errors = app_errors(proc, mark)
    assert len(errors) == 2, proc.lines
    assert all(line.endswith(f"ERROR cogen.web.error: error in the application serving GET {path}")
               for line in errors), errors
    # each with its traceback, ending in the exception
    tail = proc.lines[mark:]
    assert tail.count("Traceback (most recent call last):") == 2
    assert tail.count(name) == 2


def test_an_exit_after_the_head_closes_that_connection_only(server: StartServer) -> None:
    proc = server()
    port = proc.port()
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
        sock.sendall(b"GET /exit-after-head HTTP/1.1\r\nHost: x\r\n\r\n"
                     b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"partial" in data
    assert data.count(b"HTTP/1.1") == 1  # the pipelined request was not answered: closed
    assert not data.endswith(b"0\r\n\r\n")  # the chunked body was not ended as if complete
    assert get(port)[0] == 200
    assert len(app_errors(proc)) == 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="workers need os.fork")
def test_an_app_exit_under_workers_kills_no_worker(server: StartServer) -> None:
    proc = server("--workers", "2")
    port = proc.port()
    proc.wait_for("workers serving")
    parked, results = park_requests(proc, port)
    for _ in range(6):
        assert get(port, "/exit")[0] == 500
    release_all(port, parked)
    assert results == [(200, b"released")] * PARKED
    assert not [line for line in proc.lines if "died" in line or "exited" in line], proc.lines
    assert len(app_errors(proc)) == 6
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0
