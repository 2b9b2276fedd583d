"""cogen-web --workers N: the prefork master of cogen/web/workers.py, in a subprocess."""
from __future__ import annotations

import os
import re
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.web._process import (
    WAIT,
    ServerProcess,
    StartServer,
    cogen_web,
    get,
    get_unix,
    pids_answering,
    wait_exited,
    write_app,
)

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(not hasattr(os, "fork"), reason="workers need os.fork"),
]

#: Requests to make, at most, while waiting for a given worker to answer.

@pytest.fixture
def server(app_dir: Path) -> Iterator[StartServer]:
    started: list[ServerProcess] = []

    def start(*args: str) -> ServerProcess:
        proc = ServerProcess(cogen_web("app:application", *args), cwd=app_dir)
        started.append(proc)
        proc.wait_for("workers serving")
        return proc

    yield start
    for proc in started:
        proc.close()


def worker_pids(proc: ServerProcess) -> set[int]:
    """The pids the master has logged as serving (and not since exited)."""
    serving = {int(m.group(1)) for m in _matches(proc, r"worker (\d+) serving")}
    gone = {int(m.group(1)) for m in _matches(proc, r"worker (\d+) (exited|died)")}
    return serving - gone


def _matches(proc: ServerProcess, pattern: str) -> list[re.Match[str]]:
    return [m for line in list(proc.lines) if (m := re.search(pattern, line))]


def test_two_workers_answer(server: StartServer) -> None:
    proc = server("--port", "0", "--workers", "2")
    port = proc.port()
    pids = pids_answering(port, 2)
    assert len(pids) == 2
    assert proc.pid not in pids
    assert pids == worker_pids(proc)


def test_killed_worker_is_replaced(server: StartServer) -> None:
    proc = server("--port", "0", "--workers", "2")
    port = proc.port()
    before = worker_pids(proc)
    victim = min(before)
    mark = proc.mark()
    os.kill(victim, signal.SIGKILL)
    proc.wait_for(rf"worker {victim} died \(killed by SIGKILL\)", start=mark)
    new = int(proc.wait_for(r"worker (\d+) serving", start=mark).group(1))
    assert new not in before
    seen = pids_answering(port, 2)
    assert new in seen
    assert victim not in seen


def test_sighup_replaces_every_worker_without_failing_a_request(server: StartServer) -> None:
    proc = server("--port", "0", "--workers", "2")
    port = proc.port()
    old = worker_pids(proc)
    failures: list[BaseException] = []
    answered: list[int] = []
    done = threading.Event()

    def client() -> None:
        while not done.is_set():
            try:
                status, body = get(port)
                assert status == 200
                answered.append(int(body))
            except BaseException as exc:  # noqa: BLE001  (reported below)
                failures.append(exc)

    thread = threading.Thread(target=client)
    thread.start()
    try:
        mark = proc.mark()
        proc.signal(signal.SIGHUP)
        proc.wait_for("reload complete", start=mark)
        for pid in old:
            assert wait_exited(pid)
    finally:
        done.set()
        thread.join(WAIT)
    assert failures == []
    assert set(answered) & old, "the client loop ran before the reload"
    new = {int(m.group(1)) for m in _matches(proc, r"worker (\d+) serving")} - old
    assert len(new) == 2
    assert {int(get(port)[1]) for _ in range(10)} <= new


# SIGQUIT: nginx's graceful stop (the STOPSIGNAL of images built on nginx's);
# Python's default action dumped core and lost the requests in flight.
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGQUIT], ids=["SIGTERM", "SIGQUIT"])
def test_a_stop_signal_lets_a_slow_request_finish(server: StartServer, signum: int) -> None:
    proc = server("--port", "0", "--workers", "2")
    port = proc.port()
    pids = worker_pids(proc)
    result: list[tuple[int, bytes]] = []
    client = threading.Thread(target=lambda: result.append(get(port, "/slow")))
    client.start()
    proc.wait_for("slow request started")
    proc.signal(signum)
    client.join(WAIT)
    assert result == [(200, b"slow done")]
    assert proc.wait() == 0
    proc.wait_for(f"received {signal.Signals(signum).name}, shutting down gracefully")
    proc.wait_for(r"\bstopped\b")
    for pid in pids:
        assert wait_exited(pid)


def test_workers_stop_when_the_master_dies(server: StartServer) -> None:
    proc = server("--port", "0", "--workers", "2")
    pids = worker_pids(proc)
    os.kill(proc.pid, signal.SIGKILL)
    for pid in pids:
        assert wait_exited(pid)


def test_unix_socket_survives_a_reload(server: StartServer, tmp_path: Path) -> None:
    path = str(tmp_path / "w.sock")
    proc = server("--bind", f"unix:{path}", "--workers", "2")
    proc.wait_for(f"listening on unix:{path}")
    assert get_unix(path)[0] == 200
    mark = proc.mark()
    proc.signal(signal.SIGHUP)
    proc.wait_for("reload complete", start=mark)
    # the replaced workers exit without removing the master's socket file
    for pid in {int(m.group(1)) for m in _matches(proc, r"stopping worker (\d+)")}:
        assert wait_exited(pid)
    assert get_unix(path)[0] == 200
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0
    assert not Path(path).exists()


def test_reload_with_broken_code_keeps_the_old_workers(server: StartServer, app_dir: Path) -> None:
    proc = server("--port", "0", "--workers", "2")
    port = proc.port()
    old = worker_pids(proc)
    (app_dir / "app.py").write_text("raise SyntaxError('half-saved file')  # a longer file\n")
    mark = proc.mark()
    proc.signal(signal.SIGHUP)
    proc.wait_for("reload abandoned", start=mark)
    assert pids_answering(port, 2) == old


def test_sighup_reads_the_new_code(server: StartServer, app_dir: Path) -> None:
    proc = server("--port", "0", "--workers", "2")
    port = proc.port()
    (app_dir / "app.py").write_text(
        "def application(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    return [b'version 2 of the application']\n")
    mark = proc.mark()
    proc.signal(signal.SIGHUP)
    proc.wait_for("reload complete", start=mark)
    for pid in {int(m.group(1)) for m in _matches(proc, r"stopping worker (\d+)")}:
        assert wait_exited(pid)
    assert get(port) == (200, b"version 2 of the application")


CRASHY_APP = '''\
import os

if os.path.exists("crash"):
    raise RuntimeError("crash flag present")


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(os.getpid()).encode()]
'''


def test_workers_that_keep_failing_are_restarted_with_a_backoff(
        server: StartServer, app_dir: Path) -> None:
    write_app(app_dir, source=CRASHY_APP)
    proc = server("--port", "0", "--workers", "2")
    port = proc.port()
    victim = min(worker_pids(proc))
    (app_dir / "crash").write_text("")
    mark = proc.mark()
    os.kill(victim, signal.SIGKILL)
    proc.wait_for(r"failed to start: importing module 'app' failed: RuntimeError: crash flag",
                  start=mark)
    proc.wait_for(r"workers keep dying: waiting 0\.\d s", start=mark)
    assert get(port)[0] == 200  # the other worker serves all along
    (app_dir / "crash").unlink()
    mark = proc.mark()
    new = int(proc.wait_for(r"worker (\d+) serving", start=mark).group(1))
    assert new != victim
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0


def _ignore_errors(fn: Callable[[], object]) -> Callable[[], None]:
    def run() -> None:
        try:
            fn()
        except OSError:
            pass
    return run


def _connect_during_stop(port: int, timeout: float) -> str:
    """One request on a new connection made while the server stops: how it ended."""
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    except ConnectionRefusedError:
        return "refused"
    except ConnectionResetError:
        # The handshake raced the close of the listening socket: the kernel
        # reset it before connect() returned.
        return "reset"
    with sock:
        try:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        except TimeoutError:
            return "hung"
        except ConnectionResetError:
            return "reset"
    return "served" if data.startswith(b"HTTP/1.1 200 ") else f"other {data[:40]!r}"


LONG_APP = '''\
import sys


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    if environ["PATH_INFO"] == "/long":
        print("slow request started", file=sys.stderr, flush=True)
        yield environ["cogen"].core.events.Sleep(30)
    yield b"done"
'''


def test_connections_made_during_a_stop_are_refused_at_once(
        server: StartServer, app_dir: Path) -> None:
    # Issue 18 item 5: the master kept its listening sockets open while the
    # workers finished, so the kernel accepted new connections nobody served.
    write_app(app_dir, source=LONG_APP)
    proc = server("--port", "0", "--workers", "2", "--graceful-timeout", "20")
    port = proc.port()
    slow = threading.Thread(target=_ignore_errors(lambda: get(port, "/long", timeout=WAIT)))
    slow.start()
    proc.wait_for("slow request started")
    mark = proc.mark()
    proc.signal(signal.SIGTERM)
    proc.wait_count(r"received SIGTERM: shutting down gracefully", 2, start=mark)
    started = time.monotonic()
    outcomes = [_connect_during_stop(port, 2.0) for _ in range(20)]
    # None may hang. One made before a worker got to its stop is served; one
    # that races the very close of the last listening socket is reset at
    # once, as with any server (gunicorn, nginx): the kernel resets what is
    # still queued when the socket goes.
    assert set(outcomes) <= {"refused", "served", "reset"}, outcomes
    assert outcomes[-10:] == ["refused"] * 10, outcomes
    assert time.monotonic() - started < 2.0
    os.kill(proc.pid, signal.SIGTERM)  # the second one kills the slow worker
    assert proc.wait() == 0
    slow.join(WAIT)


def test_sighup_loses_no_request_of_busy_keep_alive_clients(server: StartServer) -> None:
    # Issue 18 item 7: a stopping worker closed its idle keep-alive
    # connections at once, racing the clients' next requests.
    import requests
    proc = server("--port", "0", "--workers", "2")
    port = proc.port()
    failures: list[BaseException] = []
    answered: list[int] = []
    done = threading.Event()

    def client() -> None:
        with requests.Session() as session:
            while not done.is_set() and len(answered) < 20000:
                try:
                    resp = session.get(f"http://127.0.0.1:{port}/", timeout=WAIT)
                    assert resp.status_code == 200
                    answered.append(int(resp.text))
                except BaseException as exc:  # noqa: BLE001  (reported below)
                    failures.append(exc)

    threads = [threading.Thread(target=client) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        for _ in range(4):
            old = worker_pids(proc)
            mark = proc.mark()
            proc.signal(signal.SIGHUP)
            proc.wait_for("reload complete", start=mark)
            for pid in old:
                assert wait_exited(pid)
    finally:
        done.set()
        for thread in threads:
            thread.join(WAIT)
    assert failures == [], f"{len(failures)} of {len(failures) + len(answered)} failed"
    assert len(set(answered)) >= 4, "the clients did not run across the reloads"
