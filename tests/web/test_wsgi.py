"""WSGIServer basics: serving, options that shape responses and logs, the
FileWrapper, and the extension middlewares checked in-process with WebTest."""
from __future__ import annotations

import io
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import webtest

from cogen.core.schedulers import Scheduler
from cogen.web.extensions import lazy_sr, sync_input
from cogen.web.wsgi import FileWrapper, WSGIServer

from .conftest import CLIENT_TIMEOUT, get, recording_app

pytestmark = pytest.mark.timeout(60)

TEXT = [("Content-Type", "text/plain")]


def hello_app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
    start_response("200 OK", TEXT)
    yield b"hello "
    yield environ["PATH_INFO"].encode("latin-1")


def test_serve_forever_until_shutdown() -> None:
    sched = Scheduler()
    server = WSGIServer(("127.0.0.1", 0), hello_app, sched, access_log=False)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.address[1]}/there"
        assert requests.get(url, timeout=CLIENT_TIMEOUT).text == "hello /there"
    finally:
        sched.call_soon_threadsafe(server.shutdown, 0)
        thread.join(CLIENT_TIMEOUT)
        sched.close()
    assert not thread.is_alive()


def test_connections_counts_open_connections(live_server: Any, raw: Any) -> None:
    live = live_server(hello_app)
    assert live.call(lambda: live.server.connections) == 0
    first, second = raw(live), raw(live)
    first.request(get("/"))
    second.request(get("/"))
    assert live.call(lambda: live.server.connections) == 2
    first.close()
    second.close()


def test_access_log_line(live_server: Any, raw: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="cogen.web.access")
    live = live_server(recording_app([], body=b"ok"), access_log=True)
    client = raw(live)
    client.request(get("/x?y=1", headers="User-Agent: probe/1\r\nReferer: http://r/\r\n"))
    client.request(get("/sync"))  # answered after the first request was logged
    lines = [r.getMessage() for r in caplog.records if r.name == "cogen.web.access"]
    assert len(lines) >= 1
    assert lines[0].startswith("127.0.0.1 - - [")
    assert '"GET /x?y=1 HTTP/1.1" 200 2 "http://r/" "probe/1"' in lines[0]


def test_custom_access_log_format(live_server: Any, raw: Any,
                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="cogen.web.access")
    live = live_server(recording_app([]), access_log=True,
                       access_log_format="%(m)s %(U)s %(q)s %(s)s %(H)s")
    client = raw(live)
    client.request(get("/p?q"))
    client.request(get("/sync"))  # answered after the first request was logged
    lines = [r.getMessage() for r in caplog.records if r.name == "cogen.web.access"]
    assert lines[0] == "GET /p q 200 HTTP/1.1"


def test_no_access_log_when_disabled(live_server: Any, raw: Any,
                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="cogen.web.access")
    live = live_server(recording_app([]), access_log=False)
    raw(live).request(get("/"))
    assert not [r for r in caplog.records if r.name == "cogen.web.access"]


@pytest.mark.parametrize("ident,expected", [("custom/1.0", "custom/1.0"), ("none", None)])
def test_ident_sets_the_server_header(live_server: Any, raw: Any, ident: str,
                                      expected: str | None) -> None:
    default = live_server(hello_app)
    live = live_server(hello_app, ident=ident)
    # the same response from two servers in one process: each has its own Server field
    assert raw(default).request(get("/")).header("server") == "cogen"
    assert raw(live).request(get("/")).header("server") == expected
    # and on the server's own error answers
    assert raw(live).request(b"GET / HTTP/2.0\r\n\r\n").header("server") == expected


def test_app_server_header_wins(live_server: Any, raw: Any) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", TEXT + [("Server", "the-app")])
        return [b""]

    live = live_server(app)
    assert raw(live).request(get("/")).header("server") == "the-app"


def test_server_name_option(live_server: Any, raw: Any) -> None:
    seen: list[dict[str, Any]] = []
    live = live_server(recording_app(seen), server_name="www.example")
    raw(live).request(b"GET / HTTP/1.0\r\n\r\n")
    assert seen[0]["SERVER_NAME"] == "www.example"


def test_unknown_option_is_refused_by_name() -> None:
    sched = Scheduler()
    try:
        with pytest.raises(TypeError, match="no_such_option"):
            WSGIServer(("127.0.0.1", 0), hello_app, sched, no_such_option=1)
    finally:
        sched.close()


def test_file_wrapper_iterates_in_blocks_and_closes() -> None:
    stream = io.BytesIO(b"abcdefg")
    wrapper = FileWrapper(stream, 3)
    assert list(wrapper) == [b"abc", b"def", b"g"]
    assert wrapper.sendfile_range() is None  # a BytesIO has no file descriptor
    wrapper.close()
    assert stream.closed


# -- the middlewares are plain WSGI: they work in-process under WebTest's lint ------------------
def test_lazy_sr_under_webtest() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("201 Created", TEXT)
        yield b""
        yield b"made"

    # lint=False: lazy_sr yields b"" before start_response on purpose, which
    # webtest's lint (stricter than PEP 3333 asks of servers) refuses
    resp = webtest.TestApp(lazy_sr(app), lint=False).get("/", status=201)
    assert resp.body == b"made"


def test_lazy_sr_defers_start_response_until_the_first_chunk() -> None:
    calls: list[str] = []

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", TEXT)
        calls.append("app started the response")
        yield b""
        yield b"body"

    def outer(environ: dict[str, Any], start_response: Any) -> Any:
        def spy(*args: Any) -> Any:
            calls.append("server saw start_response")
            return start_response(*args)
        return lazy_sr(app)(environ, spy)

    assert webtest.TestApp(outer, lint=False).get("/").body == b"body"
    assert calls == ["app started the response", "server saw start_response"]


def test_sync_input_passes_through_under_webtest() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        start_response("200 OK", TEXT)
        return [b"got " + body]

    resp = webtest.TestApp(sync_input(app)).post("/", b"payload",
                                                 content_type="application/octet-stream")
    assert resp.body == b"got payload"


def test_recording_app_is_valid_wsgi() -> None:
    seen: list[dict[str, Any]] = []
    resp = webtest.TestApp(recording_app(seen, body=b"fine")).post("/r?x=1", b"abc")
    assert resp.body == b"fine"
    assert seen[0]["test.body"] == b"abc" and seen[0]["QUERY_STRING"] == "x=1"


def test_repeated_heads_are_served_from_a_bounded_cache(live_server: Any, raw: Any) -> None:
    from cogen.web.connection import HEAD_CACHE_SIZE, HEAD_KEY_MAX
    from cogen.web.http import parse_request_head

    seen: list[dict[str, Any]] = []
    live = live_server(recording_app(seen))
    cache = live.server.head_cache
    client = raw(live)
    for _ in range(3):
        assert client.request(get("/same?q=1")).status == 200
    assert [e["PATH_INFO"] for e in seen] == ["/same"] * 3
    assert live.call(lambda: list(cache)) == [get("/same?q=1")]

    # heads with bodies, served twice each: the bodies are read each time and
    # the cached head is left as parsed (neither the connection state nor the
    # body reader writes into it)
    post = b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n"
    chunked = b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    expect = b"PUT /e HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n"
    for n in range(2):
        assert client.request(post + b"ab%d" % n).status == 200
        assert client.request(chunked + b"2\r\nc%d\r\n0\r\n\r\n" % n).status == 200
        client.send(expect)
        assert client.response(interim=True).status == 100
        assert client.request(b"e%d" % n).status == 200
    assert [e["test.body"] for e in seen[3:]] == [b"ab0", b"c0", b"e0", b"ab1", b"c1", b"e1"]
    entries = live.call(lambda: {key: list(entry) for key, entry in cache.items()})
    assert {post, chunked, expect} <= set(entries)
    for key, (head, _) in entries.items():
        assert head == parse_request_head(key), "a cached head was changed"

    # bounded: more distinct heads than it holds, and a head too big for a key
    for n in range(HEAD_CACHE_SIZE * 2 + 10):
        assert client.request(get(f"/p{n}")).status == 200
    assert seen[-1]["PATH_INFO"] == f"/p{HEAD_CACHE_SIZE * 2 + 9}"
    assert 0 < live.call(lambda: len(cache)) <= HEAD_CACHE_SIZE
    big = get("/big", headers=f"X-Pad: {'a' * HEAD_KEY_MAX}\r\n")
    assert client.request(big).status == 200
    assert seen[-1]["HTTP_X_PAD"] == "a" * HEAD_KEY_MAX
    assert live.call(lambda: big not in cache and all(len(k) < HEAD_KEY_MAX + 4 for k in cache))

    # a head that failed is not cached: each time it is refused again
    bad = b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n"
    for _ in range(2):
        refused = raw(live)
        assert refused.request(bad).status == 400
        assert refused.is_closed()
    assert live.call(lambda: bad not in cache)


def test_one_item_list_bodies_over_a_real_socket(live_server: Any, raw: Any) -> None:
    # The commonest response ([bytes]) goes out with its head in one send:
    # a body too big for the socket buffers parks for the rest, HEAD and an
    # app's own (disagreeing) Content-Length take the general path.
    big = bytes(range(256)) * (64 << 10)  # 16 MiB: more than loopback buffers take at once

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        path = environ["PATH_INFO"]
        if path == "/big":
            start_response("200 OK", TEXT)
            return [big]
        if path == "/short":
            start_response("200 OK", [*TEXT, ("Content-Length", "10")])
            return [b"12345"]
        start_response("200 OK", TEXT)
        return [b""] if path == "/empty" else [b"hello"]

    live = live_server(app)
    client = raw(live)
    resp = client.request(get("/big"))
    assert resp.status == 200 and resp.header("content-length") == str(len(big))
    assert resp.body == big
    resp = client.request(b"HEAD /big HTTP/1.1\r\nHost: x\r\n\r\n", method="HEAD")
    assert resp.header("content-length") == str(len(big)) and resp.body == b""
    resp = client.request(get("/empty"))
    assert resp.header("content-length") == "0" and resp.body == b""
    assert client.request(get("/small")).body == b"hello"  # still the same connection
    client.send(get("/short"))
    assert client.read_all().endswith(b"\r\n\r\n12345")  # short of its length: closed


def test_environ_keys_of_a_cached_head_are_each_requests_own(live_server: Any, raw: Any) -> None:
    # The keys made from a head are kept with it in the head cache; an app
    # that changes its environ changes only its own copy.
    seen: list[dict[str, Any]] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.append(dict(environ))
        environ["PATH_INFO"] = "/changed"
        environ["HTTP_X_A"] += "!"
        del environ["QUERY_STRING"]
        environ["REQUEST_METHOD"] = "POST"
        start_response("200 OK", TEXT)
        return [b"ok"]

    live = live_server(app, url_prefix="/app")
    client = raw(live)
    request = get("/app/p%20q?x=1", headers="X-A: 1\r\nX-A: 2\r\nCookie: a=1\r\nCookie: b=2\r\n")
    for _ in range(3):
        assert client.request(request).status == 200
    assert live.call(lambda: request in live.server.head_cache)
    for environ in seen:
        assert (environ["PATH_INFO"], environ["SCRIPT_NAME"], environ["QUERY_STRING"]) == \
            ("/p q", "/app", "x=1")
        assert environ["REQUEST_METHOD"] == "GET" and environ["RAW_URI"] == "/app/p%20q?x=1"
        assert (environ["HTTP_X_A"], environ["HTTP_COOKIE"]) == ("1, 2", "a=1; b=2")
        assert environ["REMOTE_ADDR"] == "127.0.0.1"
    assert len({environ["REMOTE_PORT"] for environ in seen}) == 1
    # outside the prefix: a 404 each time, never an environ from the cache
    for _ in range(2):
        assert client.request(get("/other")).status == 404
    assert len(seen) == 3


@pytest.mark.parametrize("options", [{}, {"threads": 2}, {"trusted_proxy": ["127.0.0.1"]}])
def test_no_per_request_key_reaches_the_app_unset(live_server: Any, raw: Any,
                                                 options: dict[str, Any]) -> None:
    # The base environ holds a placeholder for each key set per request (so
    # that its copy never grows): every one is set before the app runs.
    seen: list[dict[str, Any]] = []
    live = live_server(recording_app(seen), **options)
    client = raw(live)
    assert client.request(get("/a?b=c", headers="X-Forwarded-For: 10.1.2.3\r\n")).status == 200
    assert client.request(b"POST /p?q=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi").status == 200
    old = raw(live)
    assert old.request(b"GET /o?x HTTP/1.0\r\n\r\n").status == 200
    proxied = "trusted_proxy" in options
    for environ in seen:
        assert environ["REQUEST_METHOD"] in ("GET", "POST")
        assert environ["QUERY_STRING"] and environ["PATH_INFO"][0] == "/"
        assert environ["SERVER_PROTOCOL"].startswith("HTTP/1.")
        assert environ["REQUEST_URI"] == environ["RAW_URI"] != ""
        if proxied and environ is seen[0]:  # (the proxy's client has no port)
            assert "REMOTE_PORT" not in environ
        else:
            assert environ["REMOTE_PORT"].isdigit()
        assert hasattr(environ["wsgi.input"], "read")
        for key in ("cogen.wsgi", "cogen.input", "cogen.core", "cogen.call", "cogen"):
            assert environ[key] != "", key
    assert seen[0]["REMOTE_ADDR"] == ("10.1.2.3" if proxied else "127.0.0.1")
    assert seen[1]["test.body"] == b"hi"
    assert "HTTP_HOST" not in seen[2] and seen[2]["SERVER_PROTOCOL"] == "HTTP/1.0"
