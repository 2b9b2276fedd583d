"""cogen/web/connection.py: one connection's request loop, driven over a socket pair.

No listener and no accept loop: the test hands one end of a socket pair to
:func:`~cogen.web.connection.serve_connection` on a scheduler of its own and
plays the client on the other end, with canned bytes (as waitress tests its
channel). The scheduler's ``run()`` returns when the connection's coroutine
ends, so each test is bounded without threads or sleeps.
"""
from __future__ import annotations

import select
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from cogen.core.schedulers import Scheduler
from cogen.web.connection import serve_connection
from cogen.web.server import WSGIServer

pytestmark = pytest.mark.timeout(30)


def echo_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    body = b"%s %s %s" % (environ["REQUEST_METHOD"].encode(), environ["PATH_INFO"].encode(),
                          environ["wsgi.input"].read())
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]


@pytest.fixture
def pair() -> Iterator[tuple[WSGIServer, socket.socket, socket.socket]]:
    sched = Scheduler()
    server = WSGIServer(("127.0.0.1", 0), echo_app, sched, header_timeout=5,
                        keepalive_timeout=5)
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    theirs.settimeout(10)
    try:
        yield server, ours, theirs
    finally:
        theirs.close()
        server.socket.close()
        sched.close()


def converse(server: WSGIServer, ours: socket.socket, theirs: socket.socket,
             data: bytes, shut: bool = True) -> bytes:
    """Send ``data`` (then EOF), serve the connection to its end; all the server sent."""
    theirs.sendall(data)
    if shut:
        theirs.shutdown(socket.SHUT_WR)
    server.sched.add(serve_connection, server, ours, ("127.0.0.1", 4321))
    server.sched.run()
    out = b""
    while chunk := theirs.recv(65536):
        out += chunk
    return out


def test_pipelined_requests_are_answered_in_order_and_close_ends_the_connection(
        pair: tuple[WSGIServer, socket.socket, socket.socket]) -> None:
    server, ours, theirs = pair
    out = converse(server, ours, theirs,
                   b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
                   b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nxyz"
                   b"GET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                   b"GET /never HTTP/1.1\r\nHost: x\r\n\r\n", shut=False)
    assert out.count(b"HTTP/1.1 200 OK\r\n") == 3
    assert out.index(b"GET /a ") < out.index(b"POST /b xyz") < out.index(b"GET /c ")
    assert b"/never" not in out
    assert server.requests_served == 3
    assert server.connections == 0
    assert ours.fileno() == -1  # closed by the server on its way out


def test_a_malformed_head_gets_400_and_the_connection_closes(
        pair: tuple[WSGIServer, socket.socket, socket.socket]) -> None:
    server, ours, theirs = pair
    out = converse(server, ours, theirs, b"GET / HTTP/1.1\r\nHost: x\r\nBad Name: 1\r\n\r\n"
                                         b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400 ")
    assert out.count(b"HTTP/1.1 ") == 1
    assert server.requests_served == 0


def test_eof_between_requests_ends_the_connection_quietly(
        pair: tuple[WSGIServer, socket.socket, socket.socket]) -> None:
    server, ours, theirs = pair
    assert converse(server, ours, theirs, b"") == b""
    assert server.connections == 0


def test_expect_continue_is_answered_before_the_body_is_read(
        pair: tuple[WSGIServer, socket.socket, socket.socket]) -> None:
    server, ours, theirs = pair
    theirs.sendall(b"PUT /up HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                   b"Expect: 100-continue\r\nConnection: close\r\n\r\n")
    server.sched.add(serve_connection, server, ours, ("127.0.0.1", 4321))
    # the server sends 100 Continue when it needs the body, then parks: run it until then
    for _ in range(100):
        if select.select([theirs], [], [], 0)[0]:
            break
        server.sched.run_once(0.05)
    interim = theirs.recv(100)
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    theirs.sendall(b"ok")
    server.sched.run()
    out = b""
    while chunk := theirs.recv(65536):
        out += chunk
    assert out.startswith(b"HTTP/1.1 200 OK\r\n")
    assert out.endswith(b"PUT /up ok")
