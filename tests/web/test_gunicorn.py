"""gunicorn -k cogen.web.gunicorn.CogenWorker, in a subprocess."""
from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.web._process import (
    WAIT,
    ServerProcess,
    StartServer,
    get,
    pids_answering,
    wait_exited,
    write_app,
)

pytestmark = pytest.mark.timeout(60)

gunicorn_config = pytest.importorskip("gunicorn.config")


@pytest.fixture
def gunicorn(tmp_path: Path) -> Iterator[StartServer]:
    write_app(tmp_path)
    started: list[ServerProcess] = []

    # gunicorn 24+ opens a control socket under ~/.gunicorn by default: not in tests
    quiet = ["--no-control-socket"] if any(
        s.name == "control_socket_disable" for s in gunicorn_config.KNOWN_SETTINGS) else []

    def start(*args: str) -> ServerProcess:
        proc = ServerProcess([sys.executable, "-m", "gunicorn", "-k",
                              "cogen.web.gunicorn.CogenWorker", "-b", "127.0.0.1:0",
                              "--graceful-timeout", "10", *quiet, *args, "app:application"],
                             cwd=tmp_path)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.close()


def listening_port(proc: ServerProcess) -> int:
    return int(proc.wait_for(r"Listening at: http://127\.0\.0\.1:(\d+)").group(1))


def test_serves_a_request(gunicorn: StartServer) -> None:
    proc = gunicorn()
    port = listening_port(proc)
    status, body = get(port)
    assert status == 200
    worker = int(proc.wait_for(r"Booting worker with pid: (\d+)").group(1))
    assert int(body) == worker


def test_sigterm_lets_a_slow_request_finish(gunicorn: StartServer) -> None:
    proc = gunicorn()
    port = listening_port(proc)
    worker = int(proc.wait_for(r"Booting worker with pid: (\d+)").group(1))
    result: list[tuple[int, bytes]] = []
    client = threading.Thread(target=lambda: result.append(get(port, "/slow")))
    client.start()
    proc.wait_for("slow request started")
    proc.signal(signal.SIGTERM)
    client.join(WAIT)
    assert result == [(200, b"slow done")]
    assert proc.wait() == 0
    assert wait_exited(worker)


def test_max_requests_restarts_the_worker(gunicorn: StartServer) -> None:
    proc = gunicorn("--max-requests", "3")
    port = listening_port(proc)
    pids = []
    for _ in range(20):
        status, body = get(port)
        assert status == 200
        pids.append(int(body))
        if len(set(pids)) > 1:
            break
    assert len(set(pids)) == 2
    assert pids.index(pids[-1]) == 3  # the first worker served exactly 3
    proc.wait_for("Autorestarting worker after current request")


def test_two_gunicorn_workers(gunicorn: StartServer) -> None:
    proc = gunicorn("-w", "2")
    port = listening_port(proc)
    proc.wait_count(r"Booting worker with pid", 2)
    # ("Booting worker" comes before a worker accepts)
    assert len(pids_answering(port, 2)) == 2


def test_settings_map_onto_server_options() -> None:
    from cogen.web.gunicorn import server_options
    cfg = gunicorn_config.Config()
    for name, value in [("keepalive", 7), ("limit_request_line", 1000),
                        ("limit_request_fields", 20), ("limit_request_field_size", 500),
                        ("worker_connections", 50), ("threads", 4),
                        ("forwarded_allow_ips", "10.0.0.1,10.0.0.2")]:
        cfg.set(name, value)
    opts = server_options(cfg)
    assert opts["keepalive_timeout"] == 7.0
    assert opts["max_request_line"] == 1000
    assert opts["max_header_count"] == 20
    assert opts["max_header_bytes"] == 1000 + 20 * 502 + 4
    assert opts["max_connections"] == 50
    assert opts["threads"] == 4
    assert opts["trusted_proxy"] == ["10.0.0.1", "10.0.0.2"]
    assert opts["access_log"] is False


def test_unlimited_settings() -> None:
    from cogen.web.gunicorn import server_options
    cfg = gunicorn_config.Config()
    cfg.set("limit_request_line", 0)
    cfg.set("limit_request_field_size", 0)
    cfg.set("threads", 1)
    opts = server_options(cfg)
    assert opts["max_request_line"] >= 1 << 20
    assert opts["max_header_bytes"] is None
    assert opts["threads"] == 0
    from cogen.web.options import resolve_options
    resolve_options(opts)  # every value is valid for WSGIServer


LONG_POLL_APP = '''\\
import sys


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    if environ["PATH_INFO"] == "/poll":
        try:
            print("parked", file=sys.stderr, flush=True)
            yield environ["cogen"].core.events.WaitForSignal("news", timeout=60)
            yield b"news"
        finally:
            print("closed", file=sys.stderr, flush=True)
    else:
        yield environ["cogen"].core.events.Signal("news")
        yield str(environ["cogen"].result).encode()
'''


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts descriptors in /proc")
def test_long_poll_clients_that_close_are_noticed(gunicorn: StartServer, tmp_path: Path) -> None:
    # Issue 18 item 6, under the gunicorn worker.
    write_app(tmp_path, source=LONG_POLL_APP)
    proc = gunicorn()
    port = listening_port(proc)
    worker = int(proc.wait_for(r"Booting worker with pid: (\d+)").group(1))
    assert get(port, "/signal") == (200, b"0")
    before = len(os.listdir(f"/proc/{worker}/fd"))
    clients = []
    for _ in range(50):
        sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        sock.sendall(b"GET /poll HTTP/1.1\r\nHost: x\r\n\r\n")
        clients.append(sock)
    proc.wait_count(r"\bparked\b", 50)
    for sock in clients:
        sock.close()
    proc.wait_count(r"\bclosed\b", 50)
    assert get(port, "/signal") == (200, b"0")
    # the worker may not have seen the close of that last request's
    # connection yet (or be writing its heartbeat file): allow it a moment
    deadline = time.monotonic() + WAIT
    while len(os.listdir(f"/proc/{worker}/fd")) > before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(os.listdir(f"/proc/{worker}/fd")) <= before


BLOCKING_APP = '''\
import time


def application(environ, start_response):
    if environ["PATH_INFO"] == "/block":
        time.sleep(0.4)  # blocks the event loop
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"done"]
'''


def test_the_blocked_loop_watchdog_runs_in_the_worker(gunicorn: StartServer,
                                                      tmp_path: Path) -> None:
    write_app(tmp_path, source=BLOCKING_APP)
    proc = gunicorn()
    port = listening_port(proc)
    assert get(port, "/") == (200, b"done")
    assert get(port, "/block") == (200, b"done")
    line = proc.wait_for(r"blocked loop: the request GET /block from 127\.0\.0\.1:")
    start = proc.lines.index(line.string)
    assert "time.sleep(0.4)  # blocks the event loop" in "\n".join(proc.lines[start:start + 60])
    assert len([text for text in proc.lines if "blocked loop" in text]) == 1


def test_the_watchdog_in_the_worker_can_be_turned_off(gunicorn: StartServer,
                                                      tmp_path: Path) -> None:
    write_app(tmp_path, source=BLOCKING_APP)
    proc = gunicorn("--env", "COGEN_WEB_BLOCKED_LOOP_WARNING=off")
    port = listening_port(proc)
    assert get(port, "/block") == (200, b"done")
    proc.signal(signal.SIGTERM)
    proc.wait()
    assert not [text for text in proc.lines if "blocked loop" in text]
