"""Graceful shutdown: requests in flight finish, new connections are refused,
idle keep-alive connections are closed, the grace period is enforced, and
``sched.run()`` returns."""
from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from cogen.core.coroutines import coroutine
from cogen.core.events import Signal, WaitForSignal
from cogen.web import connection, server

from .conftest import CLIENT_TIMEOUT, get, recording_app

pytestmark = pytest.mark.timeout(60)

TEXT = [("Content-Type", "text/plain")]


def _not_served(address: tuple[str, int]) -> bool:
    """True if a new connection is refused, or accepted by the OS but never answered."""
    try:
        sock = socket.create_connection(address, timeout=CLIENT_TIMEOUT)
    except ConnectionRefusedError:
        return True
    with sock:
        try:
            sock.sendall(get("/new"))
            return sock.recv(100) == b""
        except (ConnectionResetError, BrokenPipeError):
            return True


def test_graceful_shutdown_lets_the_request_in_flight_finish(live_server: Any, raw: Any) -> None:
    in_app = threading.Event()
    served: list[str] = []

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        served.append(environ["PATH_INFO"])
        start_response("200 OK", TEXT)
        if environ["PATH_INFO"] == "/slow":
            in_app.set()
            yield environ["cogen"].core.events.Sleep(0.3)
        yield b"done " + environ["PATH_INFO"].encode()

    live = live_server(app)
    idle = raw(live)
    assert idle.request(get("/fast")).body == b"done /fast"
    slow = raw(live)
    slow.send(get("/slow") + get("/pipelined"))
    assert in_app.wait(CLIENT_TIMEOUT)

    started = time.monotonic()
    live.call(live.server.shutdown, 5)
    assert idle.is_closed(), "the idle keep-alive connection was not closed"
    resp = slow.response()
    assert resp.status == 200 and resp.body == b"done /slow"
    assert resp.header("connection") == "close"
    assert slow.read_all() == b""  # the pipelined request is not served
    assert _not_served(live.address)
    live.thread.join(CLIENT_TIMEOUT)
    assert not live.thread.is_alive(), "sched.run() did not return"
    assert time.monotonic() - started < 4
    assert served == ["/fast", "/slow"]


def test_grace_period_expiry_closes_requests_still_running(live_server: Any, raw: Any) -> None:
    in_app = threading.Event()
    closed = threading.Event()

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", TEXT)
        in_app.set()
        try:
            # parked on something that never comes, without a timeout
            yield environ["cogen"].core.events.WaitForSignal("never")
            yield b"unreachable"
        finally:
            closed.set()

    live = live_server(app)
    client = raw(live)
    client.send(get("/"))
    assert in_app.wait(CLIENT_TIMEOUT)
    started = time.monotonic()
    live.call(live.server.shutdown, 0.3)
    live.thread.join(CLIENT_TIMEOUT)
    assert not live.thread.is_alive(), "sched.run() did not return after the grace period"
    assert time.monotonic() - started < 3
    assert client.read_all() == b""
    assert closed.wait(CLIENT_TIMEOUT), "the app iterable was not closed"


def test_grace_period_expiry_closes_a_stalled_send(live_server: Any,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="cogen")
    in_app = threading.Event()

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", TEXT)
        in_app.set()
        while True:
            yield b"z" * 65536

    live = live_server(app, send_timeout=30)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        sock.connect(live.address)
        sock.sendall(get("/"))
        assert in_app.wait(CLIENT_TIMEOUT)
        started = time.monotonic()
        live.call(live.server.shutdown, 0.3)
        live.thread.join(CLIENT_TIMEOUT)
        assert not live.thread.is_alive()
        assert time.monotonic() - started < 3
    finally:
        sock.close()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], \
        "a forced close is not an application error"


@pytest.mark.parametrize("kind", ["coroutine", "threaded"])
def test_grace_period_expiry_with_a_callee_or_a_thread(live_server: Any, raw: Any,
                                                       kind: str) -> None:
    in_app = threading.Event()
    release = threading.Event()

    @coroutine
    def forever() -> Any:
        yield WaitForSignal("never")

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[Any]:
        start_response("200 OK", TEXT)
        in_app.set()
        if kind == "coroutine":
            yield forever()
        else:
            release.wait(CLIENT_TIMEOUT)  # blocks its worker thread
        yield b"late"

    live = live_server(app, threads=2 if kind == "threaded" else 0)
    client = raw(live)
    client.send(get("/"))
    assert in_app.wait(CLIENT_TIMEOUT)
    started = time.monotonic()
    live.call(live.server.shutdown, 0.2)
    live.thread.join(CLIENT_TIMEOUT)
    release.set()
    assert not live.thread.is_alive(), "sched.run() did not return after the grace period"
    assert time.monotonic() - started < 3
    assert client.read_all() == b""


def test_grace_expiry_racing_the_operation_completing(live_server: Any, raw: Any,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    """The parked operation completes in the loop iteration in which the grace period ends.

    White-box: in one loop callback a Signal wakes the request (its
    coroutine is queued with the value) and then the grace timer's
    ``_force_close`` runs; the connection must still close cleanly, once.
    """
    caplog.set_level(logging.DEBUG, logger="cogen")
    in_app = threading.Event()
    closed = threading.Event()

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[Any]:
        start_response("200 OK", TEXT)
        try:
            in_app.set()
            yield environ["cogen"].core.events.WaitForSignal("room")
            yield environ["cogen"].core.events.WaitForSignal("room")
            yield b"unreachable"
        finally:
            closed.set()

    live = live_server(app)
    client = raw(live)
    client.send(get("/"))
    assert in_app.wait(CLIENT_TIMEOUT)
    # a long grace period: its timer keeps the loop running until race() ends it early
    live.call(live.server.shutdown, 30)

    def race() -> None:
        assert Signal("room", b"value").fire(live.sched) == 1
        live.sched.cancel_call(live.server._grace_timer)  # as if it fired now
        live.server._force_close()

    live.call(race)
    live.thread.join(CLIENT_TIMEOUT)
    assert not live.thread.is_alive()
    assert closed.wait(CLIENT_TIMEOUT)
    assert client.read_all() == b""
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert live.sched.sigwait == {}  # the loop has stopped: safe to look


def test_shutdown_closes_a_connection_half_way_through_its_head(live_server: Any,
                                                                raw: Any) -> None:
    live = live_server(lambda e, s: [], header_timeout=30)
    client = raw(live)
    client.send(b"GET / HTTP/1.1\r\nHo")
    live.call(lambda: None)  # the loop has read it (or will before shutdown runs)
    started = time.monotonic()
    live.call(live.server.shutdown, 0.2)
    live.thread.join(CLIENT_TIMEOUT)
    assert not live.thread.is_alive()
    assert time.monotonic() - started < 3
    client.read_all()


def test_shutdown_of_an_idle_server_returns_at_once(live_server: Any) -> None:
    live = live_server(lambda e, s: [])
    started = time.monotonic()
    live.shutdown(30)
    assert not live.thread.is_alive()
    assert time.monotonic() - started < 2
    assert live.server.socket.fileno() == -1


def test_shutdown_is_idempotent(live_server: Any) -> None:
    live = live_server(lambda e, s: [])
    live.call(lambda: (live.server.shutdown(1), live.server.shutdown(1)))
    live.thread.join(CLIENT_TIMEOUT)
    assert not live.thread.is_alive()


def test_unix_socket_file_is_removed_at_shutdown(live_server: Any, tmp_path: Any) -> None:
    path = str(tmp_path / "s.sock")
    live = live_server(lambda e, s: [], bind=f"unix:{path}")
    import os
    assert os.path.exists(path)
    live.shutdown(1)
    assert not os.path.exists(path)


def test_grace_period_covers_a_connection_accepted_just_before_shutdown(live_server: Any) -> None:
    """White-box: the connection's coroutine was added by the accept loop but had
    not started when shutdown() ran; its first request is still bounded by the grace period."""
    live = live_server(lambda e, s: [], header_timeout=30)
    server_side, client_side = socket.socketpair()
    server_side.setblocking(False)
    client_side.settimeout(CLIENT_TIMEOUT)
    try:
        client_side.sendall(b"GET / HTTP/1.1\r\nHo")  # half a head, then silence

        def accept_then_shutdown() -> None:
            live.sched.add(connection.serve_connection, live.server, server_side, ("127.0.0.1", 1))
            live.server.shutdown(0.2)

        started = time.monotonic()
        live.call(accept_then_shutdown)
        live.thread.join(CLIENT_TIMEOUT)
        assert not live.thread.is_alive(), "sched.run() did not return after the grace period"
        assert time.monotonic() - started < 3
        assert client_side.recv(100) == b""
    finally:
        client_side.close()
        server_side.close()


def test_requests_queued_in_the_kernel_when_the_stop_begins_are_served(live_server: Any,
                                                                       raw: Any) -> None:
    # Issue 18 items 5 and 7: closing the listening socket resets the
    # connections still in its accept queue, although their clients
    # connected (and sent a request) before the stop began.
    live = live_server(recording_app([], b"queued"))
    clients: list[Any] = []

    def connect_then_shutdown() -> None:
        # the loop runs this function: nothing is accepted meanwhile, so the
        # connections wait in the kernel's queue with their requests
        for _ in range(10):
            clients.append(raw(live).send(get("/")))
        live.server.shutdown(5)

    live.call(connect_then_shutdown)
    for client in clients:
        resp = client.response()
        assert (resp.status, resp.body) == (200, b"queued")
        assert resp.header("connection") == "close"
        assert client.read_all() == b""
    live.thread.join(CLIENT_TIMEOUT)
    assert not live.thread.is_alive()
    assert _not_served(live.address)


def test_an_idle_keep_alive_connection_is_drained_on_a_stop(live_server: Any, raw: Any) -> None:
    # Issue 18 item 7: the stop closed idle keep-alive connections at once,
    # racing a busy client's next request (RemoteDisconnected, reset).
    live = live_server(recording_app([], b"answered"))
    clients = [raw(live) for _ in range(5)]
    for client in clients:
        assert client.request(get("/")).body == b"answered"
    live.call(live.server.shutdown, 5)
    for client in clients:
        resp = client.request(get("/next"))  # sent after the stop began
        assert (resp.status, resp.body) == (200, b"answered")
        assert resp.header("connection") == "close"
        assert client.read_all() == b""
    live.thread.join(CLIENT_TIMEOUT)
    assert not live.thread.is_alive()


def test_a_drained_connection_that_sends_nothing_is_closed_soon(live_server: Any, raw: Any) -> None:
    live = live_server(recording_app([], b"answered"))
    client = raw(live)
    assert client.request(get("/")).body == b"answered"
    started = time.monotonic()
    live.call(live.server.shutdown, 30)
    assert client.read_all() == b""
    live.thread.join(CLIENT_TIMEOUT)
    assert not live.thread.is_alive()
    assert time.monotonic() - started < 3


def test_a_response_that_announced_keep_alive_before_the_stop_answers_one_more(
        live_server: Any, raw: Any) -> None:
    # Issue 18 item 7: the head said keep-alive, so the client may send (or
    # have pipelined) its next request; the stop must not drop it.
    in_app = threading.Event()

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", TEXT)
        yield b"head sent; "
        if environ["PATH_INFO"] == "/slow":
            in_app.set()
            yield environ["cogen"].core.events.Sleep(0.3)
        yield b"done " + environ["PATH_INFO"].encode()

    live = live_server(app)
    client = raw(live)
    client.send(get("/slow") + get("/pipelined"))
    assert in_app.wait(CLIENT_TIMEOUT)
    live.call(live.server.shutdown, 5)
    first = client.response()
    assert first.body == b"head sent; done /slow"
    assert first.header("connection") is None  # keep-alive, announced before the stop
    second = client.response()
    assert second.body == b"head sent; done /pipelined"
    assert second.header("connection") == "close"
    assert client.read_all() == b""
    live.thread.join(CLIENT_TIMEOUT)
    assert not live.thread.is_alive()


def _spare(live: Any, tls: ssl.SSLContext | None) -> socket.socket:
    """A connection that sends nothing, made before a request on another one (so accepted)."""
    sock = socket.create_connection(live.address, timeout=CLIENT_TIMEOUT)
    if tls is not None:
        sock = tls.wrap_socket(sock, server_hostname="localhost")  # the handshake is done
    live.call(lambda: None)
    return sock


@pytest.mark.parametrize("is_tls", [False, True], ids=["plain", "tls"])
def test_a_spare_connection_is_closed_at_once_on_a_stop(
        live_server: Any, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest,
        is_tls: bool) -> None:
    # Issue 18 item 8: a browser's spare connection, which never sends,
    # held the stop until the header timeout (30 s).
    monkeypatch.setattr(server, "SPARE_AGE", 0.0)
    monkeypatch.setattr(connection, "DRAIN_TIMEOUT", 20.0)  # so that a drain would show
    options = request.getfixturevalue("tls_server_options") if is_tls else {}
    live = live_server(recording_app([]), header_timeout=30, **options)
    tls = None
    if is_tls:
        tls = ssl.create_default_context(cafile=options["certfile"])
        tls.check_hostname = False
    with _spare(live, tls) as spare:
        live.call(lambda: None)  # (TLS: the server side has finished its handshake)
        started = time.monotonic()
        live.call(live.server.shutdown, 30)
        live.thread.join(CLIENT_TIMEOUT)
        assert not live.thread.is_alive()
        assert time.monotonic() - started < 3
        try:
            assert spare.recv(100) == b""
        except (ConnectionResetError, ssl.SSLError):
            pass


def test_a_just_accepted_connection_gets_its_request_served_on_a_stop(
        live_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Accepted just before the stop, its request may not have arrived yet.
    monkeypatch.setattr(server, "SPARE_AGE", 30.0)
    live = live_server(recording_app([], b"late but served"))
    with _spare(live, None) as sock:
        live.call(live.server.shutdown, 30)
        sock.sendall(get("/"))
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200 ")
    assert data.endswith(b"late but served")
