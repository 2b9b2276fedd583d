"""The original's tests/test_wsgi.py (with base_web.WebTest_Base), ported.

Every priority on every reactor. The original's ``*_MixIn`` classes are the
``Test*`` classes here, with the same test names; ``cogen.web.async`` (a
keyword in Python 3) is :mod:`cogen.web.extensions`, and bodies are bytes.
As in the original, the server runs in a thread with a scheduler of that
priority and reactor, with ``sockoper_timeout=None, sendfile_timeout=None``.
The original stopped it with ``sched.shutdown()`` called from the test's
thread; here the teardown has the scheduler's own thread call it
(``call_soon_threadsafe``), and ``test_shutdown_from_another_thread`` checks
the original's way on its own.
"""
from __future__ import annotations

import http.client
import io
import os
import tempfile
import traceback
import wsgiref.validate
from collections.abc import Iterator
from typing import Any

import pytest

from cogen.web import extensions, wsgi

from .conftest import RunThread


class WebTestBase:
    """The original's ``WebTest_Base``: the app, its middleware and a connection."""

    middleware: list[Any] = [wsgiref.validate.validator, extensions.sync_input]
    local_addr: tuple[str, int]
    conn: http.client.HTTPConnection

    def app(self, environ: dict[str, Any], start_response: Any) -> Any:
        raise NotImplementedError

    def new_conn(self, timeout: float = 10) -> http.client.HTTPConnection:
        """The original's ``self.conn = httplib.HTTPConnection(...)`` (closing the previous one)."""
        self.conn.close()
        self.conn = http.client.HTTPConnection(*self.local_addr, timeout=timeout)
        return self.conn

    @pytest.fixture(autouse=True)
    def web(self, compat_sched: Any) -> Iterator[None]:
        app: Any = self.app
        for wrapper in self.middleware:
            app = wrapper(app)
        self.sched = compat_sched(proactor_resolution=1)
        self.wsgi_server = wsgi.WSGIServer(("127.0.0.1", 0), app, self.sched,
                                           sockoper_timeout=None, sendfile_timeout=None)
        self.local_addr = self.wsgi_server.address[:2]
        self.serve_ref = self.sched.add(self.wsgi_server.serve)
        self.m_run = RunThread(self.sched)
        self.m_run.start()
        self.conn = http.client.HTTPConnection(*self.local_addr, timeout=10)
        self.conn.connect()
        yield
        self.conn.close()
        self.sched.call_soon_threadsafe(self.sched.shutdown)
        self.m_run.join_checked()
        self.wsgi_server.socket.close()


class TestSimpleApp(WebTestBase):
    def app(self, environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [("Content-type", "text/html")])
        self.header = environ["HTTP_X_TEST"]
        return [b"test-resp-body"]

    def test_app(self) -> None:
        self.conn.request("GET", "/", "", {"X-Test": "test-value"})
        resp = self.conn.getresponse()
        assert resp.read() == b"test-resp-body"
        assert self.header == "test-value"


class TestLazyStartResponse(WebTestBase):
    middleware = [extensions.lazy_sr]

    def app(self, environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [("Content-type", "text/html")])
        return [b""]

    def test_app(self) -> None:
        self.new_conn(timeout=5)  # the original's socket.setdefaulttimeout(5)
        self.conn.connect()
        self.conn.request("GET", "/")
        resp = self.conn.getresponse().read()
        assert resp == b""


class TestInput(WebTestBase):
    def app(self, environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [("Content-type", "text/html")])
        # read(-1): Python 3's wsgiref.validate wants exactly one argument
        return [environ["wsgi.input"].read(-1)]

    def make_str(self, pieces: int, psize: int = 1024 * 1024, chunked: bool = True) -> bytes:
        f = io.BytesIO()
        for i in range(pieces):
            val = bytes([i + 35]) * psize
            if chunked:
                f.write(hex(len(val))[2:].encode() + b"\r\n")
            f.write(val)
            if chunked:
                f.write(b"\r\n")
        if chunked:
            f.write(b"0\r\n")
        return f.getvalue()

    def test_nonchunked(self) -> None:
        for PSIZE in [10, 100, 1000, 1024]:
            SIZE = 10
            data = self.make_str(SIZE, PSIZE, chunked=False)
            self.conn.request("GET", "/", data, {"Content-Length": str(len(data))})
            resp = self.conn.getresponse()
            recvdata = resp.read()
            assert recvdata == data


class TestAsyncInput(WebTestBase):
    middleware: list[Any] = []
    buffer_length: int

    def read_app(self, environ: dict[str, Any], start_response: Any) -> Any:
        buff = io.BytesIO()
        remaining = environ["cogen.wsgi"].content_length or 0
        while remaining:
            yield environ["cogen.input"].read(min(remaining, self.buffer_length))
            result = environ["cogen.wsgi"].result
            if isinstance(result, Exception):
                traceback.print_exception(*environ["cogen.wsgi"].exception)
                break
            if not result:
                break
            buff.write(result)
            remaining -= len(result)
        self.result = buff.getvalue()
        yield b"read"

    def readline_app(self, environ: dict[str, Any], start_response: Any) -> Any:
        buff = io.BytesIO()
        remaining = environ["cogen.wsgi"].content_length or 0
        while remaining:
            yield environ["cogen.input"].readline(min(remaining, self.buffer_length))
            result = environ["cogen.wsgi"].result
            if isinstance(result, Exception):
                if isinstance(result, OverflowError):
                    self.overflow = "overflow"
                else:
                    traceback.print_exception(*environ["cogen.wsgi"].exception)
                break
            if not result:
                break
            buff.write(result)
            remaining -= len(result)
        self.result = buff.getvalue()
        yield b"readline"

    def app(self, environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [("Content-type", "text/html")])
        if environ["PATH_INFO"] == "/read":
            return self.read_app(environ, start_response)
        if environ["PATH_INFO"] == "/readline":
            return self.readline_app(environ, start_response)
        raise Exception("Unknown path_info")

    def make_str(self, pieces: int, psize: int = 1024 * 1024, psep: bytes = b"",
                 chunked: bool = True) -> bytes:
        f = io.BytesIO()
        for i in range(pieces):
            val = bytes([i + 35]) * psize + psep
            if chunked:
                f.write(hex(len(val))[2:].encode() + b"\r\n")
            f.write(val)
            if chunked:
                f.write(b"\r\n")
        if chunked:
            f.write(b"0\r\n")
        return f.getvalue()

    def test_read(self) -> None:
        for buffer_length in [10, 100, 400]:
            self.buffer_length = buffer_length
            self.result = None
            data = self.make_str(3, 400, chunked=False)
            expectdata = self.make_str(3, 400, chunked=False)
            self.conn.request("GET", "/read", data, {"Content-Length": str(len(data))})
            resp = self.conn.getresponse()
            recvdata = resp.read()
            assert recvdata == b"read"
            assert self.result == expectdata

    def test_readline(self) -> None:
        self.buffer_length = 512
        data = self.make_str(1, 256, psep=b"\n", chunked=False)
        self.result = None
        self.overflow = None
        self.conn.request("GET", "/readline", data)
        resp = self.conn.getresponse()
        recvdata = resp.read()
        assert self.overflow is None
        assert self.result == data
        assert recvdata == b"readline"


class TestFileWrapper(WebTestBase):
    CKSIZE = 300
    POS = 100
    DIFF = CKSIZE - POS
    val = os.urandom(CKSIZE)
    middleware: list[Any] = []

    def app(self, environ: dict[str, Any], start_response: Any) -> Any:
        tfile = tempfile.TemporaryFile()
        tfile.write(self.val)
        tfile.seek(self.POS)
        sz, cl = environ["PATH_INFO"].lstrip("/").split("/")
        headers = [("Content-type", "application/octet-stream")]
        if cl:
            headers.append(("Content-length", str(self.DIFF)))
        start_response("200 OK", headers)
        return environ["wsgi.file_wrapper"](tfile, int(sz))

    def _http10(self, conn: http.client.HTTPConnection) -> None:
        conn._http_vsn = 10  # type: ignore[attr-defined]
        conn._http_vsn_str = "HTTP/1.0"  # type: ignore[attr-defined]

    def test_http10_conn_close(self) -> None:
        for sz in [10, 100, 300]:
            self.new_conn()
            self.conn.connect()
            self._http10(self.conn)
            self.conn.auto_open = 0
            self.conn.request("GET", f"/{sz}/")
            resp = self.conn.getresponse()
            recvdata = resp.read()
            assert len(recvdata) == self.DIFF
            assert recvdata == self.val[self.POS:]
            with pytest.raises(http.client.NotConnected):  # "Connection not closed!"
                self.conn.request("GET", f"/{sz}/", headers={})

    def test_http10_kalive(self) -> None:
        for sz in [10, 100, 300]:
            self._http10(self.conn)
            self.conn.auto_open = 0
            self.conn.request("GET", f"/{sz}/cl", headers={"Connection": "keep-alive"})
            resp = self.conn.getresponse()
            recvdata = resp.read()
            assert len(recvdata) == self.DIFF
            assert recvdata == self.val[self.POS:]
        self.conn.request("GET", f"/{sz}/", headers={})  # NotConnected: "Connection closed!"

    def test_http11_kalive(self) -> None:
        # should use chunking
        for sz in [10, 100, 300]:
            self.conn.auto_open = 0
            self.conn.request("GET", f"/{sz}/")
            resp = self.conn.getresponse()
            assert resp.chunked == 1
            recvdata = resp.read()
            assert len(recvdata) == self.DIFF
            assert recvdata == self.val[self.POS:]
        self.conn.request("GET", f"/{sz}/", headers={})  # NotConnected: "Connection closed!"

    def test_http11_conn_close(self) -> None:
        for sz in [10, 100, 300]:
            self.new_conn()
            self.conn.connect()
            self.conn.auto_open = 0
            self.conn.request("GET", f"/{sz}/cl", headers={"Connection": "close"})
            resp = self.conn.getresponse()
            assert resp.chunked == 0
            recvdata = resp.read()
            assert len(recvdata) == self.DIFF
            assert recvdata == self.val[self.POS:]
            with pytest.raises(http.client.NotConnected):  # "Connection not closed!"
                self.conn.request("GET", f"/{sz}/", headers={})




def test_shutdown_from_another_thread(make_sched: Any) -> None:
    """The original's tearDown: ``sched.shutdown()`` from the test's thread stops the server's loop."""
    def app(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [("Content-type", "text/plain")])
        return [b"ok"]

    sched = make_sched(proactor_resolution=1)
    server = wsgi.WSGIServer(("127.0.0.1", 0), app, sched)
    sched.add(server.serve)
    thread = RunThread(sched)
    thread.start()
    conn = http.client.HTTPConnection(*server.address[:2], timeout=10)
    conn.request("GET", "/")
    assert conn.getresponse().read() == b"ok"
    conn.close()
    sched.shutdown()
    thread.join_checked()
    server.socket.close()
