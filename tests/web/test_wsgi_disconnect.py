"""A client that disconnects while its request is parked on a cogen operation
(issue 18 item 6): the server notices at once, closes the app iterable, frees
the connection and does not count it as a recipient of a later Signal. Data
that arrives meanwhile (a pipelined request) is buffered, not a disconnect."""
from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from cogen.core.coroutines import coroutine
from cogen.core.events import Signal

from .conftest import CLIENT_TIMEOUT, get

pytestmark = pytest.mark.timeout(60)

CLIENTS = 200


class LongPoll:
    """An app whose ``/poll`` waits for the signal ``news``; counts parked and closed iterables."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.parked = 0
        self.closed = 0

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        if environ["PATH_INFO"] != "/poll":
            yield b"fast"
            return
        try:
            with self.cond:
                self.parked += 1
                self.cond.notify_all()
            yield environ["cogen"].core.events.WaitForSignal("news", timeout=60)
            yield b"news: " + environ["cogen"].result
        finally:
            with self.cond:
                self.closed += 1
                self.cond.notify_all()

    def wait(self, attr: str, count: int) -> None:
        with self.cond:
            assert self.cond.wait_for(lambda: getattr(self, attr) >= count, CLIENT_TIMEOUT), \
                f"{attr}: {getattr(self, attr)} of {count}"


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _wait_no_connections(live: Any) -> None:
    """Step the loop until the server holds no connection (bounded).

    With threads, close() runs in the pool: the app's finally has run a
    moment before its connection is closed.
    """
    deadline = time.monotonic() + CLIENT_TIMEOUT
    while live.call(lambda: live.server.connections):
        assert time.monotonic() < deadline, f"{live.server.connections} connections left"


def _signal(live: Any, value: bytes) -> int:
    """Send Signal('news') from a coroutine on the server's loop; returns how many it woke."""
    woken: list[int] = []
    done = threading.Event()

    @coroutine
    def signaller() -> Any:
        woken.append((yield Signal("news", value)))
        done.set()

    live.add(signaller)
    assert done.wait(CLIENT_TIMEOUT)
    return woken[0]


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts descriptors in /proc")
@pytest.mark.parametrize("threads", [0, 2])
def test_long_poll_clients_that_close_are_freed_and_not_signalled(live_server: Any, raw: Any,
                                                                  threads: int) -> None:
    app = LongPoll()
    count = CLIENTS if not threads else CLIENTS // 4
    # with threads, each parked response holds its thread (docs/server.rst): room for all
    live = live_server(app, threads=count + threads if threads else 0)
    live.call(lambda: None)
    before = _open_fds()
    clients = [raw(live).send(get("/poll")) for _ in range(count)]
    app.wait("parked", count)
    live.call(lambda: None)  # (threads: the last app call has returned to the loop)
    assert live.call(lambda: len(live.sched.sigwait.get("news", ()))) == count
    assert live.call(lambda: live.server.connections) == count
    for client in clients:
        client.close()
    app.wait("closed", count)  # every app iterable's finally ran
    _wait_no_connections(live)
    assert _open_fds() <= before
    assert live.call(lambda: len(live.sched.sigwait.get("news", ()))) == 0
    assert _signal(live, b"late") == 0


def test_a_pipelined_request_is_not_a_disconnect(live_server: Any, raw: Any) -> None:
    app = LongPoll()
    live = live_server(app)
    client = raw(live)
    client.send(get("/poll"))
    app.wait("parked", 1)
    client.send(get("/fast"))  # arrives while the first request is parked
    live.call(lambda: None)  # the loop has had an iteration to see it
    assert _signal(live, b"hot") == 1
    first = client.response()
    assert (first.status, first.body) == (200, b"news: hot")
    second = client.response()
    assert (second.status, second.body) == (200, b"fast")
    assert app.closed == 1


def test_a_client_that_sends_then_closes_while_parked_is_noticed(live_server: Any,
                                                                 raw: Any) -> None:
    app = LongPoll()
    live = live_server(app)
    client = raw(live)
    client.send(get("/poll"))
    app.wait("parked", 1)
    client.send(get("/fast"))
    client.close()
    app.wait("closed", 1)
    assert live.call(lambda: live.server.connections) == 0
    assert _signal(live, b"late") == 0


def test_the_grace_period_ending_while_watched_logs_no_error(
        live_server: Any, raw: Any, caplog: pytest.LogCaptureFixture) -> None:
    app = LongPoll()
    live = live_server(app)
    client = raw(live).send(get("/poll"))
    app.wait("parked", 1)
    live.call(live.server.shutdown, 0.1)
    live.thread.join(CLIENT_TIMEOUT)
    assert not live.thread.is_alive()
    assert client.read_all() == b""
    assert app.closed == 1
    assert [r for r in caplog.records if r.levelname == "ERROR"] == []


def test_a_client_that_half_closes_after_a_keep_alive_request_is_closed_at_once(live_server: Any) -> None:
    """The request and the client's FIN arrive together: the connection is not held until the
    keep-alive timeout (an edge-triggered reactor reports them in one event)."""
    import socket
    import time

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]

    live = live_server(app, keepalive_timeout=30)
    sock = socket.create_connection((live.host, live.port), timeout=10)
    sock.sendall(get("/one"))
    got = b""
    while not got.endswith(b"ok"):
        got += sock.recv(4096)
    live.call(lambda: None)  # the server is parked waiting for the next request
    sock.sendall(get("/two"))
    sock.shutdown(socket.SHUT_WR)
    started = time.monotonic()
    rest = b""
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            break
        rest += chunk
    sock.close()
    assert rest.startswith(b"HTTP/1.1 200 ") and rest.endswith(b"ok")
    assert time.monotonic() - started < 5, "the half-closed connection was held"
