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
