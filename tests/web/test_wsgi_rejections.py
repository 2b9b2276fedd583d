"""Every request the server refuses: the status, the closed connection, and
no request smuggled behind the bad one is ever served (docs/internals.rst:
ambiguous HTTP is rejected, not guessed at)."""
from __future__ import annotations

import socket
import threading
from typing import Any

import pytest

from .conftest import CLIENT_TIMEOUT, get, recording_app

pytestmark = pytest.mark.timeout(60)

SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
LIMITS = {"max_request_line": 200, "max_header_bytes": 1024, "max_header_count": 10,
          "max_body": 100}


def _post(headers: str, body: bytes = b"", version: str = "1.1") -> bytes:
    return f"POST /bad HTTP/{version}\r\nHost: x\r\n{headers}\r\n".encode("latin-1") + body


BAD_REQUESTS = {
    "content-length-with-transfer-encoding": (
        _post("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n"), 400),
    "two-differing-content-lengths": (
        _post("Content-Length: 5\r\nContent-Length: 6\r\n", b"hello!"), 400),
    "two-equal-content-lengths": (
        _post("Content-Length: 5\r\nContent-Length: 5\r\n", b"hello"), 400),
    "content-length-list": (_post("Content-Length: 5, 5\r\n", b"hello"), 400),
    "content-length-plus-sign": (_post("Content-Length: +5\r\n", b"hello"), 400),
    "content-length-negative": (_post("Content-Length: -1\r\n"), 400),
    "content-length-hex": (_post("Content-Length: 0x5\r\n", b"hello"), 400),
    # RFC 9112 §6.3: a final coding other than chunked MUST be a 400...
    "transfer-encoding-xchunked": (_post("Transfer-Encoding: xchunked\r\n", b"0\r\n\r\n"), 400),
    "transfer-encoding-chunked-identity": (
        _post("Transfer-Encoding: chunked, identity\r\n", b"0\r\n\r\n"), 400),
    # ... while a coding we do not implement before chunked is a 501 (§6.1)
    "transfer-encoding-gzip-chunked": (
        _post("Transfer-Encoding: gzip, chunked\r\n", b"0\r\n\r\n"), 501),
    "transfer-encoding-chunked-twice": (
        _post("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n"), 400),
    "transfer-encoding-in-http10": (
        _post("Transfer-Encoding: chunked\r\n", b"0\r\n\r\n", version="1.0"), 400),
    "obs-fold": (b"GET / HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\n\r\n", 400),
    "space-before-colon": (b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400),
    "space-before-colon-transfer-encoding": (
        _post("Transfer-Encoding : chunked\r\n", b"0\r\n\r\n"), 400),
    "bare-lf-in-head": (b"GET / HTTP/1.1\nHost: x\r\n\r\n", 400),
    "bare-lf-ending-header": (b"GET / HTTP/1.1\r\nHost: x\nX-A: 1\r\n\r\n", 400),
    "bare-cr-in-header": (b"GET / HTTP/1.1\r\nHost: x\rX-A: 1\r\n\r\n", 400),
    "chunk-size-0x": (_post("Transfer-Encoding: chunked\r\n", b"0x5\r\nhello\r\n0\r\n\r\n"), 400),
    "chunk-size-with-space": (
        _post("Transfer-Encoding: chunked\r\n", b"5 \r\nhello\r\n0\r\n\r\n"), 400),
    "chunk-size-negative": (_post("Transfer-Encoding: chunked\r\n", b"-5\r\nhello\r\n0\r\n\r\n"),
                            400),
    "chunk-data-not-followed-by-crlf": (
        _post("Transfer-Encoding: chunked\r\n", b"5\r\nhelloXX0\r\n\r\n"), 400),
    "chunk-data-bare-lf": (_post("Transfer-Encoding: chunked\r\n", b"5\r\nhello\n0\r\n\r\n"), 400),
    "obs-fold-in-trailer": (
        _post("Transfer-Encoding: chunked\r\n", b"5\r\nhello\r\n0\r\nX: a\r\n b\r\n\r\n"), 400),
    "trailer-without-colon": (
        _post("Transfer-Encoding: chunked\r\n", b"5\r\nhello\r\n0\r\nX-Trailer\r\n\r\n"), 400),
    # trailers are held to the head's limits (max_header_bytes, max_header_count)
    "trailers-too-big": (
        _post("Transfer-Encoding: chunked\r\n",
              b"5\r\nhello\r\n0\r\nX-T: " + b"t" * 1100 + b"\r\n\r\n"), 431),
    "too-many-trailers": (
        _post("Transfer-Encoding: chunked\r\n",
              b"5\r\nhello\r\n0\r\n" + b"".join(b"X-T%d: v\r\n" % i for i in range(12)) + b"\r\n"),
        431),
    "chunk-size-17-hex-digits": (
        _post("Transfer-Encoding: chunked\r\n", b"00000000000000005\r\nhello\r\n0\r\n\r\n"), 400),
    "nul-in-header-value": (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", 400),
    "nul-in-target": (b"GET /a\x00b HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    "http11-without-host": (b"GET / HTTP/1.1\r\nX-A: 1\r\n\r\n", 400),
    "two-host-headers": (b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", 400),
    "invalid-host": (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
    "fragment-in-target": (b"GET /a#frag HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    "http2-version": (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
    # a WSGI app cannot tunnel; a 2xx would start one (RFC 9110 §9.3.6)
    "connect-method": (b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 501),
    "garbage-version": (b"GET / HTTP/x.y\r\nHost: x\r\n\r\n", 400),
    "two-spaces-in-request-line": (b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    "request-line-too-long": (b"GET /" + b"a" * 300 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    "head-too-big": (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 1100 + b"\r\n\r\n", 431),
    "too-many-headers": (b"GET / HTTP/1.1\r\nHost: x\r\n"
                         + b"".join(b"X-H%d: v\r\n" % i for i in range(12)) + b"\r\n", 431),
    "content-length-over-max-body": (_post("Content-Length: 101\r\n", b"b" * 101), 413),
    "chunked-body-over-max-body": (
        _post("Transfer-Encoding: chunked\r\n", b"40\r\n" + b"c" * 64 + b"\r\n"
              + b"40\r\n" + b"c" * 64 + b"\r\n0\r\n\r\n"), 413),
}


@pytest.mark.parametrize("name", list(BAD_REQUESTS))
def test_bad_request_is_rejected_and_nothing_behind_it_is_served(
        live_server: Any, raw: Any, name: str) -> None:
    data, status = BAD_REQUESTS[name]
    seen: list[dict[str, Any]] = []
    live = live_server(recording_app(seen), **LIMITS)
    client = raw(live)
    client.send(data + SMUGGLED)
    resp = client.response()
    assert resp.status == status, resp
    assert resp.header("connection") == "close"
    assert resp.body.startswith(str(status).encode())
    assert client.read_all() == b"", "the smuggled request was answered"
    assert [env["PATH_INFO"] for env in seen if env["PATH_INFO"] == "/smuggled"] == []
    # the server is still fine
    assert raw(live).request(get("/fine")).status == 200


@pytest.mark.parametrize("name", ["content-length-over-max-body", "chunked-body-over-max-body",
                                  "request-line-too-long", "head-too-big"])
def test_rejection_reaches_a_client_still_sending(live_server: Any, raw: Any, name: str) -> None:
    """The error response is not lost to a reset when the client sent more than was read.

    Closing a socket with unread received data makes the kernel send a RST,
    which can destroy the response in flight; the server must close lingeringly.
    """
    data, status = BAD_REQUESTS[name]
    live = live_server(recording_app([]), **LIMITS)
    for _ in range(3):
        client = raw(live)
        client.send(data)
        sender = threading.Thread(target=_send_quietly, args=(client.sock, b"z" * (4 << 20)))
        sender.start()
        try:
            resp = client.response()
        finally:
            sender.join(CLIENT_TIMEOUT)
        assert resp.status == status
        assert client.read_all() == b""


def _send_quietly(sock: socket.socket, data: bytes) -> None:
    try:
        sock.sendall(data)
    except OSError:
        pass


def test_too_big_content_length_after_a_good_request(live_server: Any, raw: Any) -> None:
    seen: list[dict[str, Any]] = []
    live = live_server(recording_app(seen), **LIMITS)
    client = raw(live)
    assert client.request(get("/one")).status == 200
    resp = client.request(_post("Content-Length: 5000\r\n") + b"x" * 5000 + SMUGGLED)
    assert resp.status == 413
    assert client.read_all() == b""
    assert [env["PATH_INFO"] for env in seen] == ["/one"]


def test_header_names_with_underscore_never_reach_the_app(live_server: Any, raw: Any) -> None:
    seen: list[dict[str, Any]] = []
    live = live_server(recording_app(seen))
    client = raw(live)
    resp = client.request(get("/", headers="X_User: evil\r\nX-User: good\r\n"))
    assert resp.status == 200
    assert seen[0]["HTTP_X_USER"] == "good"


@pytest.mark.parametrize(
    "host", [b"a" * (1 << 20) + b"@", b"%41" * (1 << 18) + b"%4", b"[" + b":" * (1 << 20)]
)
def test_a_long_hostile_host_value_is_rejected(live_server: Any, raw: Any, host: bytes) -> None:
    """Bounded by the test's timeout: the Host check is linear in the value's length."""
    seen: list[dict[str, Any]] = []
    live = live_server(recording_app(seen), max_header_bytes=4 << 20)
    client = raw(live)
    client.send(b"GET / HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
    resp = client.response()
    assert resp.status == 400
    assert seen == []
    assert raw(live).request(get("/fine")).status == 200
