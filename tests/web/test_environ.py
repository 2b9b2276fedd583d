"""cogen/web/environ.py: header names to environ keys, and what that costs a long-running server."""
from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cogen.web import environ as _environ
from cogen.web.environ import header_key
from tests.web._process import WAIT, ServerProcess, cogen_web, write_app

pytestmark = pytest.mark.timeout(60)


def test_header_key_maps_names_to_cgi_keys() -> None:
    assert header_key("x-a") == "HTTP_X_A"
    assert header_key("user-agent") == "HTTP_USER_AGENT"
    assert header_key("content-type") == "CONTENT_TYPE"
    assert header_key("content-length") == "CONTENT_LENGTH"


def test_header_key_cache_is_bounded() -> None:
    for i in range(3 * _environ.KEY_CACHE_LIMIT):
        assert header_key(f"x-bounded-{i}") == f"HTTP_X_BOUNDED_{i}"
    assert len(_environ.HEADER_KEYS) <= _environ.KEY_CACHE_LIMIT
    long_name = "x-" + "a" * 200
    assert header_key(long_name) == "HTTP_X_" + "A" * 200
    assert long_name not in _environ.HEADER_KEYS


#: Requests in the measured part of the soak, sent in pipelined batches over
#: a few keep-alive connections.
SOAK_REQUESTS = 20_000
BATCH = 200
CONNECTIONS = 4
NAMES_PER_REQUEST = 5


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS in /proc/{pid}/status")


def _request() -> bytes:
    fields = b"".join(b"X-%s: v\r\n" % os.urandom(20).hex().encode() for _ in range(NAMES_PER_REQUEST))
    return b"GET / HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n"


def _send_batches(socks: list[socket.socket], count: int, response_size: int) -> None:
    """``count`` requests spread over ``socks``, each batch pipelined; waits for every answer."""
    for _ in range(count // (BATCH * len(socks))):
        for sock in socks:
            sock.sendall(b"".join(_request() for _ in range(BATCH)))
        for sock in socks:
            want = BATCH * response_size
            got = 0
            while got < want:
                data = sock.recv(want - got)
                assert data, "the server closed a keep-alive connection"
                got += len(data)


@pytest.fixture
def server_proc(tmp_path: Path) -> Iterator[ServerProcess]:
    write_app(tmp_path)
    proc = ServerProcess(cogen_web("app:application", "--port", "0"), cwd=tmp_path)
    yield proc
    proc.close()


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads RSS from /proc (Linux)")
def test_rss_stays_flat_with_random_header_names(server_proc: ServerProcess) -> None:
    port = server_proc.port()
    socks = [socket.create_connection(("127.0.0.1", port), timeout=WAIT) for _ in range(CONNECTIONS)]
    try:
        # every response of the app has the same size (its body is the pid)
        socks[0].sendall(_request())
        first = b""
        while b"\r\n\r\n" not in first:
            first += socks[0].recv(65536)
        head, _, body = first.partition(b"\r\n\r\n")
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:")))
        while len(body) < length:
            body += socks[0].recv(65536)
        response_size = len(head) + 4 + length
        # warm up: the caches fill, the allocator reaches its working size
        _send_batches(socks, SOAK_REQUESTS // 5, response_size)
        before = _rss_kib(server_proc.pid)
        _send_batches(socks, SOAK_REQUESTS, response_size)
        after = _rss_kib(server_proc.pid)
    finally:
        for sock in socks:
            sock.close()
    # 100,000 names kept would be some 20 MB
    assert after - before < 4096, f"RSS grew from {before} KiB to {after} KiB"


def _environ_of(request: bytes, prefix: str = "", **proxy: Any) -> dict[str, Any] | None:
    from cogen.web.http import parse_request_head

    head = parse_request_head(request)
    assert head is not None
    rules = _environ.ProxyRules(proxy.get("trusted", []), list(_environ.DEFAULT_TRUSTED_HEADERS),
                                None)
    return _environ.request_environ({"SCRIPT_NAME": prefix, "wsgi.url_scheme": "http"}, head,
                                    ("10.0.0.1", "5555"), prefix, rules)


def test_request_environ_maps_a_head_to_pep_3333_keys() -> None:
    environ = _environ_of(b"GET /a%20b?x=1 HTTP/1.0\r\nHost: h\r\nCookie: a=1\r\nCookie: b=2\r\n"
                          b"Accept: x\r\nAccept: y\r\nContent-Type: text/plain\r\n\r\n")
    assert environ is not None
    assert environ["REQUEST_METHOD"] == "GET"
    assert environ["PATH_INFO"] == "/a b"
    assert environ["QUERY_STRING"] == "x=1"
    assert environ["REQUEST_URI"] == environ["RAW_URI"] == "/a%20b?x=1"
    assert environ["SERVER_PROTOCOL"] == "HTTP/1.0"
    assert (environ["REMOTE_ADDR"], environ["REMOTE_PORT"]) == ("10.0.0.1", "5555")
    assert environ["HTTP_HOST"] == "h"
    assert environ["HTTP_COOKIE"] == "a=1; b=2"
    assert environ["HTTP_ACCEPT"] == "x, y"
    assert environ["CONTENT_TYPE"] == "text/plain"


def test_request_environ_strips_the_url_prefix_and_refuses_paths_outside_it() -> None:
    environ = _environ_of(b"GET /app/x HTTP/1.1\r\nHost: h\r\n\r\n", prefix="/app")
    assert environ is not None
    assert (environ["SCRIPT_NAME"], environ["PATH_INFO"]) == ("/app", "/x")
    assert _environ_of(b"GET /application HTTP/1.1\r\nHost: h\r\n\r\n", prefix="/app") is None


def test_request_environ_gives_asterisk_form_an_empty_path() -> None:
    environ = _environ_of(b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n")
    assert environ is not None
    assert environ["PATH_INFO"] == "" and environ["REQUEST_URI"] == "*"


def test_request_environ_applies_trusted_proxy_headers() -> None:
    request = b"GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n"
    trusted = _environ_of(request, trusted=["10.0.0.1"])
    assert trusted is not None and trusted["REMOTE_ADDR"] == "1.2.3.4"
    untrusted = _environ_of(request, trusted=["10.9.9.9"])
    assert untrusted is not None and untrusted["REMOTE_ADDR"] == "10.0.0.1"
