"""wsgi.file_wrapper: a 10 MiB file sent from its current position, with and
without Content-Length, to HTTP/1.0 and HTTP/1.1 clients (sendfile), and
file-likes that cannot be sendfile'd (iteration)."""
from __future__ import annotations

import hashlib
import io
import os
import tempfile
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import get

pytestmark = pytest.mark.timeout(60)

SIZE = 10 << 20
OFFSET = 100


@pytest.fixture(scope="module")
def big_file() -> Iterator[tuple[str, str]]:
    """A 10 MiB file of random bytes; yields (path, sha256 of the bytes after OFFSET)."""
    fd, path = tempfile.mkstemp(prefix="cogen-test-", suffix=".bin")
    data = os.urandom(SIZE)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    try:
        yield path, hashlib.sha256(data[OFFSET:]).hexdigest()
    finally:
        os.unlink(path)


def file_app(path: str, with_length: bool, closed: list[bool]) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> Any:
        f = open(path, "rb")  # noqa: SIM115 - closed by the server through the wrapper
        f.seek(OFFSET)
        original_close = f.close

        def close() -> None:
            closed.append(True)
            original_close()

        f.close = close  # type: ignore[method-assign]
        headers = [("Content-Type", "application/octet-stream")]
        if with_length:
            headers.append(("Content-Length", str(SIZE - OFFSET)))
        start_response("200 OK", headers)
        return environ["wsgi.file_wrapper"](f, 1 << 16)
    return app


@pytest.mark.parametrize("with_length", [True, False], ids=["length", "no-length"])
@pytest.mark.parametrize("version", ["1.1", "1.0"])
def test_file_wrapper_sends_the_rest_of_the_file(live_server: Any, raw: Any,
                                                 big_file: tuple[str, str], version: str,
                                                 with_length: bool) -> None:
    path, digest = big_file
    closed: list[bool] = []
    live = live_server(file_app(path, with_length, closed))
    client = raw(live)
    client.send(get("/f", version=version))
    resp = client.response()
    assert resp.status == 200
    assert len(resp.body) == SIZE - OFFSET
    assert hashlib.sha256(resp.body).hexdigest() == digest
    if with_length:
        assert resp.header("content-length") == str(SIZE - OFFSET)
        assert resp.header("transfer-encoding") is None
    elif version == "1.1":
        assert resp.header("transfer-encoding") == "chunked"
    else:
        assert resp.header("transfer-encoding") is None
        assert resp.header("content-length") is None
        assert resp.header("connection") == "close"
    assert closed == [True]
    if version == "1.1":  # the connection is still in step
        client.send(get("/f"))
        assert hashlib.sha256(client.response().body).hexdigest() == digest


def test_file_wrapper_stops_at_a_shorter_content_length(live_server: Any, raw: Any,
                                                        big_file: tuple[str, str]) -> None:
    path, _ = big_file

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        f = open(path, "rb")  # noqa: SIM115
        f.seek(OFFSET)
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", "1000")])
        return environ["wsgi.file_wrapper"](f)

    live = live_server(app)
    client = raw(live)
    client.send(get("/") + get("/"))
    with open(path, "rb") as f:
        expected = f.read()[OFFSET:OFFSET + 1000]
    assert client.response().body == expected
    assert client.response().body == expected


def test_file_wrapper_head_sends_no_body(live_server: Any, raw: Any,
                                         big_file: tuple[str, str]) -> None:
    path, _ = big_file
    closed: list[bool] = []
    live = live_server(file_app(path, True, closed))
    client = raw(live)
    client.send(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
    resp = client.response("HEAD")
    assert resp.header("content-length") == str(SIZE - OFFSET)
    assert not client.is_closed(0.2) and client.buf == b""
    assert closed == [True]


@pytest.mark.parametrize("with_length", [True, False], ids=["length", "no-length"])
def test_file_wrapper_of_a_file_like_without_fileno_is_iterated(live_server: Any, raw: Any,
                                                                with_length: bool) -> None:
    data = os.urandom(300000)
    closed = threading.Event()

    class Stream(io.BytesIO):
        def close(self) -> None:
            closed.set()
            super().close()

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        stream = Stream(data)
        stream.seek(OFFSET)
        headers = [("Content-Type", "application/octet-stream")]
        if with_length:
            headers.append(("Content-Length", str(len(data) - OFFSET)))
        start_response("200 OK", headers)
        return environ["wsgi.file_wrapper"](stream, 8192)

    live = live_server(app)
    client = raw(live)
    resp = client.request(get("/"))
    assert resp.body == data[OFFSET:]
    assert closed.wait(5)


def test_file_wrapper_of_an_empty_rest(live_server: Any, raw: Any,
                                       big_file: tuple[str, str]) -> None:
    path, _ = big_file

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        f = open(path, "rb")  # noqa: SIM115
        f.seek(0, os.SEEK_END)
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](f)

    live = live_server(app)
    client = raw(live)
    client.send(get("/") + get("/"))
    assert client.response().body == b""
    assert client.response().body == b""


def test_file_wrapper_with_write_before_it(live_server: Any, raw: Any) -> None:
    """write() output must come first, so the file cannot go out by sendfile first."""
    with tempfile.TemporaryFile() as f:
        f.write(b"from the file")
        f.flush()

        def app(environ: dict[str, Any], start_response: Any) -> Any:
            start_response("200 OK", [("Content-Type", "text/plain")])(b"written;")
            f.seek(0)
            return environ["wsgi.file_wrapper"](f)

        live = live_server(app)
        assert raw(live).request(get("/")).body == b"written;from the file"
