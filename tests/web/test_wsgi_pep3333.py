"""PEP 3333 as written: the environ, wsgi.input, start_response and its
exc_info rules, write(), close() on every path, errors from the app, and the
fixture apps run through ``wsgiref.validate``."""
from __future__ import annotations

import io
import logging
import sys
import threading
import wsgiref.validate
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from cogen.web.wsgi import FileWrapper

from .conftest import get, recording_app

pytestmark = pytest.mark.timeout(60)

WSGIApp = Callable[..., Any]


def validated(app: WSGIApp) -> WSGIApp:
    """``app`` behind ``wsgiref.validate.validator``.

    The server sees the validator and leaves out ``environ['cogen']`` (an
    undotted key that is not a str, which the validator refuses); see the
    ``cogen_key`` tests at the end.
    """
    return wsgiref.validate.validator(app)


class Closing:
    """A response iterable that records close() and can fail at a given step."""

    def __init__(self, chunks: list[bytes], fail_at: int | None = None) -> None:
        self.chunks = chunks
        self.fail_at = fail_at
        self.closed = threading.Event()

    def __iter__(self) -> Iterator[bytes]:
        for i, chunk in enumerate(self.chunks):
            if i == self.fail_at:
                raise RuntimeError("failing on purpose mid-response")
            yield chunk

    def close(self) -> None:
        self.closed.set()


# -- the environ ---------------------------------------------------------------------------------
def test_environ_has_every_required_key_as_native_str(live_server: Any, raw: Any) -> None:
    seen: list[dict[str, Any]] = []
    live = live_server(validated(recording_app(seen)))
    client = raw(live)
    client.send(b"POST /caf%C3%A9/a%2Fb?q=%20a&b=%C3%A9 HTTP/1.1\r\nHost: example.org:8080\r\n"
                b"Content-Type: text/plain; charset=utf-8\r\nContent-Length: 4\r\n"
                b"X-Multi: a\r\nX-Multi: b\r\nAccept: text/html\r\nAccept: text/plain\r\n"
                b"Cookie: a=1\r\nCookie: b=2\r\nX-Latin: caf\xe9\r\n\r\nbody")
    assert client.response().status == 200
    env = seen[0]
    assert env["REQUEST_METHOD"] == "POST"
    assert env["SCRIPT_NAME"] == ""
    assert env["PATH_INFO"] == "/caf\xc3\xa9/a/b"  # percent-decoded as latin-1
    assert env["QUERY_STRING"] == "q=%20a&b=%C3%A9"  # raw
    assert env["CONTENT_TYPE"] == "text/plain; charset=utf-8"
    assert env["CONTENT_LENGTH"] == "4"
    assert env["test.body"] == b"body"
    assert env["SERVER_NAME"] and env["SERVER_PORT"] == str(live.port)
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["HTTP_HOST"] == "example.org:8080"
    assert env["HTTP_X_MULTI"] == "a, b"
    assert env["HTTP_ACCEPT"] == "text/html, text/plain"
    assert env["HTTP_COOKIE"] in ("a=1; b=2", "a=1, b=2")
    assert env["HTTP_X_LATIN"] == "caf\xe9"
    assert "HTTP_CONTENT_TYPE" not in env and "HTTP_CONTENT_LENGTH" not in env
    assert env["wsgi.version"] == (1, 0)
    assert env["wsgi.url_scheme"] == "http"
    assert hasattr(env["wsgi.input"], "read") and hasattr(env["wsgi.errors"], "write")
    assert env["wsgi.multithread"] is False
    assert env["wsgi.multiprocess"] is False
    assert env["wsgi.run_once"] is False
    assert env["wsgi.input_terminated"] is True
    assert env["wsgi.file_wrapper"] is FileWrapper
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["REMOTE_PORT"] == str(client.sock.getsockname()[1])
    for key, value in env.items():
        if "." not in key and key != "cogen":
            assert type(value) is str, (key, value)


def test_environ_of_a_get_without_body(live_server: Any, raw: Any) -> None:
    seen: list[dict[str, Any]] = []
    live = live_server(recording_app(seen))  # not validated: it calls read() without a size
    client = raw(live)
    assert client.request(get("/?")).status == 200
    env = seen[0]
    assert env["PATH_INFO"] == "/" and env["QUERY_STRING"] == ""
    assert env.get("CONTENT_LENGTH", "") in ("", "0")
    assert env["wsgi.input"].read() == b""
    assert env["wsgi.input"].read(10) == b""
    assert env["wsgi.input"].readline() == b""


def test_http10_request_without_host(live_server: Any, raw: Any) -> None:
    seen: list[dict[str, Any]] = []
    live = live_server(validated(recording_app(seen)))
    client = raw(live)
    assert client.request(b"GET /x HTTP/1.0\r\n\r\n").status == 200
    assert seen[0]["SERVER_PROTOCOL"] == "HTTP/1.0"
    assert "HTTP_HOST" not in seen[0]
    assert seen[0]["SERVER_NAME"] == "127.0.0.1"


def test_options_asterisk_has_an_empty_path_info(live_server: Any, raw: Any) -> None:
    seen: list[dict[str, Any]] = []
    live = live_server(validated(recording_app(seen)))
    client = raw(live)
    assert client.request(b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n").status == 200
    assert seen[0]["PATH_INFO"] == "" and seen[0]["REQUEST_URI"] == "*"


def test_url_prefix_becomes_script_name(live_server: Any, raw: Any) -> None:
    seen: list[dict[str, Any]] = []
    live = live_server(validated(recording_app(seen)), url_prefix="/app/")
    client = raw(live)
    for path in ("/app/x/y?z=1", "/app", "/app/"):
        assert client.request(get(path)).status == 200
    assert [(e["SCRIPT_NAME"], e["PATH_INFO"], e["QUERY_STRING"]) for e in seen] == [
        ("/app", "/x/y", "z=1"), ("/app", "", ""), ("/app", "/", "")]
    for path in ("/", "/application", "/other/app"):
        resp = client.request(get(path))
        assert resp.status == 404
    assert len(seen) == 3
    resp = client.request(b"HEAD /nope HTTP/1.1\r\nHost: x\r\n\r\n", method="HEAD")
    assert resp.status == 404
    assert client.request(get("/app/again")).status == 200  # still in step


# -- wsgi.input ----------------------------------------------------------------------------------
BODY = b"line one\nline two\n\nline four is longer than the others\nno newline at the end"


def input_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """Reads the body in the way named by the path; answers a repr of what it got."""
    stream = environ["wsgi.input"]
    how = environ["PATH_INFO"]
    if how == "/read":
        got: Any = stream.read()
    elif how == "/read-n":
        got = [stream.read(5), stream.read(0), stream.read(1000), stream.read(5)]
    elif how == "/readline":
        got = [stream.readline() for _ in range(6)]
    elif how == "/readline-n":
        got = [stream.readline(4), stream.readline(4), stream.readline(100), stream.readline(-1)]
    elif how == "/readlines":
        got = stream.readlines()
    elif how == "/iterate":
        got = list(stream)
    else:
        got = None
    body = repr(got).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


EXPECTED = {
    "/read": BODY,
    "/read-n": [BODY[:5], b"", BODY[5:], b""],
    "/readline": BODY.splitlines(keepends=True) + [b""],
    "/readline-n": [b"line", b" one", b"\n", b"line two\n"],
    "/readlines": BODY.splitlines(keepends=True),
    "/iterate": BODY.splitlines(keepends=True),
}


@pytest.mark.parametrize("body_buffer", [1 << 20, 16], ids=["memory", "spooled"])
@pytest.mark.parametrize("chunked", [False, True], ids=["length", "chunked"])
@pytest.mark.parametrize("how", list(EXPECTED))
def test_wsgi_input_reading_methods(live_server: Any, how: str, chunked: bool,
                                    body_buffer: int) -> None:
    live = live_server(input_app, body_buffer=body_buffer)
    data: Any = iter([BODY[:7], BODY[7:]]) if chunked else BODY
    resp = requests.post(live.url + how, data=data, timeout=10)
    assert resp.status_code == 200
    assert resp.text == repr(EXPECTED[how])


# -- start_response ----------------------------------------------------------------------------
def test_exc_info_replaces_the_status_before_headers_are_sent(live_server: Any, raw: Any) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-First", "1")])
        try:
            raise ValueError("oops")
        except ValueError:
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")],
                           sys.exc_info())
        return [b"sorry"]

    live = live_server(validated(app))
    client = raw(live)
    resp = client.request(get("/"))
    assert resp.status == 503 and resp.body == b"sorry"
    assert resp.header("x-first") is None
    assert client.request(get("/")).status == 503  # the connection goes on


def test_exc_info_after_headers_were_sent_reraises(live_server: Any, raw: Any,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="cogen.web.error")
    outcome: list[str] = []

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"partial"
        try:
            raise ValueError("late failure")
        except ValueError:
            try:
                start_response("500 Oops", [("Content-Type", "text/plain")], sys.exc_info())
            except ValueError:
                outcome.append("reraised")
                raise
            outcome.append("returned")

    live = live_server(app)
    client = raw(live)
    client.send(get("/"))
    data = client.read_all()
    assert outcome == ["reraised"]
    assert data.count(b"HTTP/1.1") == 1  # no second status line
    assert data.startswith(b"HTTP/1.1 200 ")
    assert b"partial" in data and not data.endswith(b"0\r\n\r\n")  # cut short, not completed
    assert any("late failure" in str(r.exc_info[1]) for r in caplog.records if r.exc_info)


def test_exc_info_after_write_reraises(live_server: Any, raw: Any) -> None:
    """PEP 3333: after write() the headers count as sent, so exc_info must re-raise."""
    outcome: list[str] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written")
        try:
            raise ValueError("after write")
        except ValueError:
            try:
                start_response("500 Oops", [("Content-Type", "text/plain")], sys.exc_info())
            except ValueError:
                outcome.append("reraised")
                raise
            outcome.append("returned")
        return [b"never"]

    live = live_server(app)
    client = raw(live)
    client.send(get("/"))
    data = client.read_all()
    assert outcome == ["reraised"]
    assert b"500 Oops" not in data
    assert data.count(b"HTTP/1.1") <= 1


def test_second_start_response_without_exc_info_is_an_error(live_server: Any, raw: Any) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        start_response("201 Created", [("Content-Type", "text/plain")])
        return [b"no"]

    live = live_server(app)
    client = raw(live)
    resp = client.request(get("/"))
    assert resp.status == 500
    assert client.is_closed()


# -- write() -----------------------------------------------------------------------------------
def test_write_callable_output_comes_before_the_iterable(live_server: Any, raw: Any) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"one,")
        write(b"")
        write(b"two,")
        return [b"three"]

    live = live_server(validated(app))
    client = raw(live)
    for _ in range(2):
        resp = client.request(get("/"))
        assert resp.body == b"one,two,three"
        assert resp.header("transfer-encoding") == "chunked"


def test_write_accepts_bytearray_and_memoryview(live_server: Any, raw: Any) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(bytearray(b"one,"))
        write(memoryview(b"two"))
        return []

    live = live_server(app)
    assert raw(live).request(get("/")).body == b"one,two"


def test_write_with_content_length_and_an_empty_iterable(live_server: Any, raw: Any) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        write = start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "6")])
        write(b"abc")
        write(b"def")
        return []

    live = live_server(validated(app))
    client = raw(live)
    resp = client.request(get("/"))
    assert resp.body == b"abcdef" and resp.header("content-length") == "6"
    assert client.request(get("/")).body == b"abcdef"


def test_write_interleaved_with_yields_keeps_order(live_server: Any, raw: Any) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"a")
        yield b"b"
        write(b"c")
        yield b"d"
        write(b"e")
        yield b""

    live = live_server(validated(app))
    assert raw(live).request(get("/")).body == b"abcde"


def test_write_only_then_empty_iterable_without_content_length(live_server: Any, raw: Any) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])(b"only")
        return []

    live = live_server(validated(app))
    client = raw(live)
    client.send(b"GET / HTTP/1.0\r\n\r\n")
    resp = client.response()
    assert resp.body == b"only"


# -- close() -----------------------------------------------------------------------------------
def test_close_is_called_on_success(live_server: Any, raw: Any) -> None:
    body = Closing([b"a", b"b"])
    live = live_server(lambda env, sr: (sr("200 OK", [("Content-Type", "text/plain")]), body)[1])
    assert raw(live).request(get("/")).body == b"ab"
    assert body.closed.wait(5)


def test_close_is_called_on_a_single_item_list_subclass(live_server: Any, raw: Any) -> None:
    closed = threading.Event()

    class ClosingList(list):  # type: ignore[type-arg]
        def close(self) -> None:
            closed.set()

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return ClosingList([b"x"])

    live = live_server(validated(app))
    assert raw(live).request(get("/")).body == b"x"
    assert closed.wait(5)


def test_close_is_called_when_the_app_fails_mid_iteration(live_server: Any, raw: Any,
                                                          caplog: pytest.LogCaptureFixture
                                                          ) -> None:
    caplog.set_level(logging.ERROR, logger="cogen.web.error")
    body = Closing([b"a", b"b", b"c"], fail_at=1)
    live = live_server(lambda env, sr: (sr("200 OK", [("Content-Type", "text/plain")]), body)[1])
    client = raw(live)
    client.send(get("/"))
    data = client.read_all()
    assert data.count(b"HTTP/1.1 ") == 1 and data.startswith(b"HTTP/1.1 200 ")
    assert body.closed.wait(5)


def test_close_is_called_when_the_app_fails_before_yielding(live_server: Any, raw: Any,
                                                            caplog: pytest.LogCaptureFixture
                                                            ) -> None:
    caplog.set_level(logging.ERROR, logger="cogen.web.error")
    body = Closing([b"a"], fail_at=0)
    live = live_server(lambda env, sr: (sr("200 OK", [("Content-Type", "text/plain")]), body)[1])
    resp = raw(live).request(get("/"))
    assert resp.status == 500
    assert body.closed.wait(5)


def test_close_is_called_when_the_client_disconnects_mid_response(live_server: Any,
                                                                  raw: Any) -> None:
    closed = threading.Event()

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        try:
            while True:
                yield b"y" * 65536
        finally:
            closed.set()

    live = live_server(app)
    client = raw(live)
    client.send(get("/"))
    assert client.sock.recv(100).startswith(b"HTTP/1.1 200 ")
    client.close()
    assert closed.wait(10)
    assert live.call(lambda: live.server.connections) == 0


# -- errors from the app -----------------------------------------------------------------------
def test_exception_before_start_response_is_a_generic_500(live_server: Any, raw: Any,
                                                          caplog: pytest.LogCaptureFixture
                                                          ) -> None:
    caplog.set_level(logging.ERROR, logger="cogen.web.error")

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        raise KeyError("SECRET-DETAIL")

    live = live_server(app)
    client = raw(live)
    resp = client.request(get("/boom"))
    assert resp.status == 500
    assert b"SECRET" not in resp.raw_head + resp.body
    assert b"Traceback" not in resp.body and b"KeyError" not in resp.body
    assert client.is_closed()
    records = [r for r in caplog.records if r.name == "cogen.web.error" and r.exc_info]
    assert records and "SECRET-DETAIL" in str(records[0].exc_info[1])
    assert "/boom" in records[0].getMessage()


def test_exception_in_a_head_request_gets_500_without_body(live_server: Any, raw: Any,
                                                            caplog: pytest.LogCaptureFixture
                                                            ) -> None:
    caplog.set_level(logging.ERROR, logger="cogen.web.error")

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        raise RuntimeError("nope")

    live = live_server(app)
    client = raw(live)
    resp = client.request(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n", method="HEAD")
    assert resp.status == 500
    assert client.read_all() == b""


def test_exception_after_headers_sent_closes_without_second_status(
        live_server: Any, raw: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="cogen.web.error")

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "100")])
        yield b"first part"
        raise RuntimeError("SECRET mid-body")

    live = live_server(app)
    client = raw(live)
    client.send(get("/") + get("/second"))
    data = client.read_all()
    assert data.startswith(b"HTTP/1.1 200 ")
    assert data.count(b"HTTP/1.1 ") == 1
    assert data.endswith(b"first part")
    assert b"SECRET" not in data


@pytest.mark.parametrize("body", ["text", ["text"], [b"ok", "text"]], ids=["str", "list-of-str",
                                                                          "str-later"])
def test_app_returning_str_is_a_500(live_server: Any, raw: Any, body: Any,
                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="cogen.web.error")

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")]
                       if body[0] == b"ok" else [("Content-Type", "text/plain")])
        return body

    live = live_server(app)
    client = raw(live)
    client.send(get("/"))
    data = client.read_all()
    if body[0] == b"ok":  # the head and "ok" went out before the bad item: cut short
        assert data.startswith(b"HTTP/1.1 200 ") and data.count(b"HTTP/1.1 ") == 1
    else:
        assert data.startswith(b"HTTP/1.1 500 ")
        assert b"text" not in data.partition(b"\r\n\r\n")[2]


@pytest.mark.parametrize("status,headers", [
    ("abc", []),
    ("200", []),
    ("20 OK", []),
    ("200 OK\r\nX-Injected: 1", []),
    ("200 OK", [("X-Bad", "a\r\nX-Injected: 1")]),
    ("200 OK", [("X-Bad", "a\nX-Injected: 1")]),
    ("200 OK", [("X-Bad", "a\x00b")]),
    ("200 OK", [("X Bad", "1")]),
    ("200 OK", [("X-Injected:", "1")]),
    ("200 OK", [("X-Bad", "caf\u20ac")]),
    ("200 OK", [("Connection", "keep-alive")]),
    ("200 OK", [("Transfer-Encoding", "chunked")]),
    ("200 OK", [("Content-Length", "abc")]),
    ("200 OK", [("Content-Length", "1"), ("Content-Length", "1")]),
], ids=lambda v: repr(v)[:30])
def test_invalid_status_or_headers_from_the_app_are_a_500(live_server: Any, raw: Any,
                                                         status: str, headers: Any,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="cogen.web.error")
    closed = threading.Event()

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        start_response(status, [("Content-Type", "text/plain")] + headers)
        body = Closing([b"body"])
        body.closed = closed
        return body

    live = live_server(app)
    client = raw(live)
    client.send(get("/"))
    data = client.read_all()
    assert data.startswith(b"HTTP/1.1 500 ")
    assert b"Injected" not in data and b"X-Bad" not in data and b"body" not in data
    assert closed.wait(5)
    assert caplog.records


@pytest.mark.parametrize("status,headers", [
    (b"200 OK", []),
    ("200 OK", ("X-A", "1")),
    ("200 OK", [("X-A", 1)]),
    ("200 OK", [["X-A", "1"]]),
    ("200 OK", [(b"X-A", "1")]),
], ids=["bytes-status", "tuple-headers", "int-value", "list-item", "bytes-name"])
def test_wrong_types_given_to_start_response_are_a_500(live_server: Any, raw: Any,
                                                      status: Any, headers: Any,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="cogen.web.error")

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response(status, headers)
        return [b"x"]

    live = live_server(app)
    resp = raw(live).request(get("/"))
    assert resp.status == 500


@pytest.mark.parametrize("result", [None, 42], ids=["none", "int"])
def test_app_returning_a_non_iterable_is_a_500(live_server: Any, raw: Any, result: Any,
                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="cogen.web.error")

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return result

    live = live_server(app)
    assert raw(live).request(get("/")).status == 500


def test_app_that_never_calls_start_response_is_a_500(live_server: Any, raw: Any,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="cogen.web.error")
    live = live_server(lambda environ, start_response: [b"forgot"])
    resp = raw(live).request(get("/"))
    assert resp.status == 500 and b"forgot" not in resp.body


def test_app_yielding_more_than_its_content_length_is_cut(live_server: Any, raw: Any,
                                                          caplog: pytest.LogCaptureFixture
                                                          ) -> None:
    caplog.set_level(logging.WARNING, logger="cogen.web.error")

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "3")])
        yield b"abc"
        yield b"SMUGGLED RESPONSE"

    live = live_server(app)
    client = raw(live)
    client.send(get("/"))
    data = client.read_all()
    assert data.endswith(b"\r\n\r\nabc")


def test_app_yielding_less_than_its_content_length_closes(live_server: Any, raw: Any,
                                                          caplog: pytest.LogCaptureFixture
                                                          ) -> None:
    caplog.set_level(logging.WARNING, logger="cogen.web.error")

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "10")])
        yield b"abc"

    live = live_server(app)
    client = raw(live)
    client.send(get("/") + get("/"))
    data = client.read_all()
    assert data.endswith(b"\r\n\r\nabc") and data.count(b"HTTP/1.1 ") == 1


def test_wsgi_errors_goes_to_the_error_log(live_server: Any, raw: Any,
                                           caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="cogen.web.error")

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        errors = environ["wsgi.errors"]
        errors.write("first line\nsecond ")
        errors.writelines(["line\n"])
        errors.flush()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b""]

    live = live_server(validated(app))
    assert raw(live).request(get("/")).status == 200
    messages = [r.getMessage() for r in caplog.records if r.name == "cogen.web.error"]
    assert "first line" in messages and "second line" in messages


# -- wsgiref.validate --------------------------------------------------------------------------
def _simple(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"simple"]


def _generator(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield b"gen"
    yield b""
    yield b"erator"


def _reader(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    stream = environ["wsgi.input"]
    parts = [stream.readline(), stream.readline(3), stream.read(2)]
    parts += stream.readlines()
    parts += list(stream)
    body = b"|".join(parts)
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def _writer(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"written ")
    return [b"returned"]


def _no_content(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("204 No Content", [])
    return []


def _file(environ: dict[str, Any], start_response: Any) -> Any:
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return environ["wsgi.file_wrapper"](io.BytesIO(b"file body"), 4)


def _exc_info(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    try:
        raise ValueError("x")
    except ValueError:
        start_response("500 Internal Server Error", [("Content-Type", "text/plain")],
                       sys.exc_info())
    return [b"error page"]


VALIDATED_APPS = {
    "simple": (_simple, b"simple"),
    "generator": (_generator, b"generator"),
    "reader": (_reader, b"a\n|bc\n|de|f\n|g"),
    "writer": (_writer, b"written returned"),
    "no-content": (_no_content, b""),
    "file-wrapper": (_file, b"file body"),
    "exc-info": (_exc_info, b"error page"),
}


@pytest.mark.parametrize("name", list(VALIDATED_APPS))
@pytest.mark.parametrize("method", ["GET", "POST", "HEAD"])
def test_apps_pass_wsgiref_validate(live_server: Any, raw: Any, name: str, method: str,
                                    recwarn: pytest.WarningsRecorder) -> None:
    app, expected = VALIDATED_APPS[name]
    live = live_server(validated(app))
    client = raw(live)
    for _ in range(2):
        body = b"a\nbc\ndef\ng"
        resp = client.request(f"{method} /v HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}"
                              f"\r\n\r\n".encode() + body, method=method)
        assert resp.status in (200, 204, 500)
        if resp.status == 500 and name != "exc-info":
            pytest.fail(f"{name} failed under wsgiref.validate")
        if method != "HEAD" and name != "reader" or name == "reader" and method != "HEAD":
            assert resp.body == expected
    assert not [w for w in recwarn.list if issubclass(w.category, wsgiref.validate.WSGIWarning)]


def test_validator_wrapped_app_gets_no_undotted_cogen_key(live_server: Any, raw: Any) -> None:
    seen: list[dict[str, Any]] = []
    live = live_server(wsgiref.validate.validator(recording_app(seen)))
    assert raw(live).request(get("/")).status == 200
    assert "cogen" not in seen[0]
    assert seen[0]["cogen.wsgi"] is seen[0]["cogen.input"]


def test_cogen_key_forced_on_trips_the_validator(live_server: Any, raw: Any,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.CRITICAL, logger="cogen.web.error")
    live = live_server(wsgiref.validate.validator(_simple), cogen_key=True)
    assert raw(live).request(get("/")).status == 500


@pytest.mark.parametrize("value,present", [(None, True), (True, True), (False, False)])
def test_cogen_key_option_for_a_plain_app(live_server: Any, raw: Any, value: Any,
                                          present: bool) -> None:
    seen: list[dict[str, Any]] = []
    options = {} if value is None else {"cogen_key": value}
    live = live_server(recording_app(seen), **options)
    assert raw(live).request(get("/")).status == 200
    assert ("cogen" in seen[0]) is present
    if present:
        assert seen[0]["cogen"] is seen[0]["cogen.wsgi"]


@pytest.mark.parametrize("status", ["100 Continue", "103 Early Hints", "101 Switching Protocols"])
@pytest.mark.parametrize("version", ["1.1", "1.0"])
def test_interim_status_as_the_final_response_is_a_500(live_server: Any, raw: Any, status: str,
                                                      version: str,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    """WSGI has no interim responses: a 1xx from the app would leave the client
    waiting for a final response that never comes."""
    caplog.set_level(logging.ERROR, logger="cogen.web.error")

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response(status, [])
        return []

    live = live_server(app)
    client = raw(live)
    client.send(get("/", version=version))
    resp = client.response(interim=True)
    assert resp.status == 500
    assert client.read_all() == b""


def test_app_connection_close_header_is_honoured(live_server: Any, raw: Any) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain"), ("Connection", "close")])
        return [b"bye"]

    live = live_server(validated(app))
    client = raw(live)
    client.send(get("/") + get("/"))
    resp = client.response()
    assert resp.body == b"bye" and resp.header("connection") == "close"
    assert client.read_all() == b""


def test_an_error_in_close_is_logged_and_the_connection_goes_on(
        live_server: Any, raw: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="cogen.web.error")

    class Body:
        def __iter__(self) -> Iterator[bytes]:
            yield b"fine"

        def close(self) -> None:
            raise RuntimeError("close failed")

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Body()

    live = live_server(app)
    client = raw(live)
    assert client.request(get("/")).body == b"fine"
    assert client.request(get("/")).body == b"fine"
    assert any("close failed" in str(r.exc_info[1]) for r in caplog.records if r.exc_info)


def test_absolute_form_target(live_server: Any, raw: Any) -> None:
    seen: list[dict[str, Any]] = []
    live = live_server(validated(recording_app(seen)))
    resp = raw(live).request(b"GET http://example.com:81/a%20b?x=1 HTTP/1.1\r\nHost: other\r\n\r\n")
    assert resp.status == 200
    env = seen[0]
    assert (env["PATH_INFO"], env["QUERY_STRING"], env["HTTP_HOST"]) == ("/a b", "x=1",
                                                                         "example.com:81")
