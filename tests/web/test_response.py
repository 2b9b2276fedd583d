"""cogen/web/response.py: one WSGI call and its bytes, over a fake connection.

The fake records what the response sends and never blocks, so the
response's generator runs to its end on the first ``next()``: no socket, no
scheduler loop.
"""
from __future__ import annotations

from typing import Any

import pytest

from cogen.core.schedulers import Scheduler
from cogen.web import http
from cogen.web.body import EmptyInput
from cogen.web.extensions import CogenGate
from cogen.web.http import parse_request_head
from cogen.web.options import resolve_server_options
from cogen.web.response import Response

pytestmark = pytest.mark.timeout(30)


class FakeConnection:
    """What a Response needs of a connection: ``send`` (recorded), and the wait slots."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.sock = object()  # no getpeername: never sendfile'd
        self.op: Any = None
        self.cancelled = False
        self.watcher: Any = None
        self.send_timeout = None
        self.state = http.SEND_BODY

    def send(self, data: bytes) -> tuple[()]:
        self.sent.append(bytes(data))
        return ()  # (all sent at once: nothing left to yield from)

    def send_parts(self, parts: list[bytes], total: int) -> tuple[()]:
        data = b"".join(parts)
        assert len(data) == total
        return self.send(data)


class FakeServer:
    def __init__(self, app: Any, **options: Any) -> None:
        self.app = app
        self.options = resolve_server_options(options)
        self.is_closing = False
        self.sched = Scheduler()


def respond(app: Any, request: bytes, conn: FakeConnection | None = None,
            **options: Any) -> tuple[bool, Response, bytes]:
    """Run ``app`` for ``request``; (keep the connection?, the response, the bytes sent)."""
    head = parse_request_head(request)
    assert head is not None
    conn = conn or FakeConnection()
    server = FakeServer(app, **options)
    environ: dict[str, Any] = {}
    environ["cogen.wsgi"] = CogenGate(server.sched, environ, 0, EmptyInput())
    response = Response(server, conn, head, environ)
    try:
        next(response.run())
    except StopIteration as stop:
        ok = stop.value
    else:
        raise AssertionError("the response waited on something")
    finally:
        server.sched.close()
    return ok, response, b"".join(conn.sent)


def test_a_list_body_gets_content_length_and_keeps_the_connection() -> None:
    def app(environ: Any, start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"hello"]

    ok, response, out = respond(app, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", ident="tester")
    assert ok and response.keep_alive
    assert out.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\nContent-Length: 5\r\n" in out
    assert b"\r\nServer: tester\r\n" in out
    assert out.endswith(b"\r\n\r\nhello")
    assert response.body_sent == 5


def test_a_generator_body_without_length_is_chunked() -> None:
    def app(environ: Any, start_response: Any) -> Any:
        start_response("200 OK", [])
        yield b"ab"
        yield b"cde"

    ok, response, out = respond(app, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert ok and response.keep_alive
    assert b"\r\nTransfer-Encoding: chunked\r\n" in out
    assert out.endswith(b"\r\n\r\n2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n")


def test_an_app_that_raises_gets_500_and_the_connection_closes() -> None:
    def app(environ: Any, start_response: Any) -> list[bytes]:
        raise RuntimeError("boom")

    ok, response, out = respond(app, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert not ok and not response.keep_alive
    assert out.startswith(b"HTTP/1.1 500 Internal Server Error\r\n")


def test_a_body_shorter_than_its_content_length_ends_keep_alive() -> None:
    def app(environ: Any, start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Length", "10")])
        return [b"short"]

    ok, response, out = respond(app, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert out.endswith(b"\r\n\r\nshort")
    assert not response.keep_alive


def test_a_list_with_an_item_that_is_not_bytes_is_sent_item_by_item() -> None:
    # (the str item is still the app's error, found when its turn comes)
    def app(environ: Any, start_response: Any) -> list[Any]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ab", "cd"]

    conn = FakeConnection()
    ok, response, out = respond(app, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", conn)
    assert not ok and b"ab" in out  # the head and the first item went out before the error


# A page rendered as a list of small pieces went out one send() (and, with
# TCP_NODELAY, one packet) per item; a large list chunked, a send per item.
# Every item of a list exists already, so taking them together delays none
# (PEP 3333): one send, joined when small, gathered (sendmsg) when large.
@pytest.mark.parametrize("body", [[b"<li>%d</li>" % i for i in range(100)], [b"x" * (300 << 10), b"y"],
                                  (b"a" * 70000, b"b"), [b"z" * 5] * 5000],
                         ids=["small items", "large list", "tuple", "many items"])
def test_a_list_body_goes_out_in_one_send_with_a_content_length(body: Any) -> None:
    def app(environ: Any, start_response: Any) -> Any:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return body

    conn = FakeConnection()
    ok, response, out = respond(app, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", conn)
    assert ok and response.keep_alive and len(conn.sent) == 1
    head, _, sent_body = out.partition(b"\r\n\r\n")
    assert sent_body == b"".join(body)
    assert b"\r\nContent-Length: %d\r\n" % len(sent_body) in head + b"\r\n"


def test_a_list_longer_than_its_content_length_is_cut_and_the_connection_closes() -> None:
    def app(environ: Any, start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Length", "6")])
        return [b"abcd", b"efgh"]

    ok, response, out = respond(app, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert out.endswith(b"\r\n\r\nabcdef")
    assert not response.keep_alive


def test_a_list_body_of_a_head_request_is_not_sent() -> None:
    def app(environ: Any, start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"x" * 70000, b"y" * 70000]

    ok, response, out = respond(app, b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert ok and out.endswith(b"\r\n\r\n") and b"xx" not in out
    assert b"\r\nContent-Length: 140000\r\n" in out


def test_what_write_queued_goes_out_in_one_send() -> None:
    def app(environ: Any, start_response: Any) -> list[bytes]:
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        for i in range(50):
            write(b"line %d\n" % i)
        return []

    conn = FakeConnection()
    ok, response, out = respond(app, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", conn)
    assert ok
    body = b"".join(b"line %d\n" % i for i in range(50))
    assert len(conn.sent) == 2  # the head with the writes as one chunk, then the last chunk
    assert out.endswith(b"\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
