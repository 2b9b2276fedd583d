"""HTTP/1.1 behaviour of the WSGI server over real sockets: persistence,
pipelining, HTTP/1.0, HEAD, bodiless statuses, chunked bodies both ways,
100-continue and spooled request bodies."""
from __future__ import annotations

import hashlib
import io
import logging
import socket
import threading
from typing import Any

import pytest
import requests

from .conftest import get, recording_app

pytestmark = pytest.mark.timeout(60)


def path_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    body = f"{environ['REQUEST_METHOD']} {environ['PATH_INFO']}".encode("latin-1")
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def generator_app(environ: dict[str, Any], start_response: Any) -> Any:
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield b"one,"
    yield b""
    yield b"two,"
    yield b"three"


def test_requests_library_gets_a_response(live_server: Any) -> None:
    live = live_server(path_app)
    resp = requests.get(live.url + "/hello", timeout=10)
    assert resp.status_code == 200
    assert resp.text == "GET /hello"
    assert resp.headers["Server"] == "cogen"
    assert "Date" in resp.headers


def test_keep_alive_serves_several_requests_on_one_connection(live_server: Any, raw: Any) -> None:
    live = live_server(path_app)
    client = raw(live)
    for i in range(5):
        resp = client.request(get(f"/r{i}"))
        assert resp.status == 200
        assert resp.body == f"GET /r{i}".encode()
        assert resp.header("connection") is None
    assert live.call(lambda: live.server.connections) == 1


def test_pipelined_requests_are_answered_in_order(live_server: Any, raw: Any) -> None:
    live = live_server(path_app)
    client = raw(live)
    client.send(get("/first") + b"POST /second HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
                + get("/third"))
    assert [client.response().body for _ in range(3)] == [b"GET /first", b"POST /second",
                                                          b"GET /third"]
    assert not client.is_closed(0.2)


def test_pipelined_requests_behind_a_generator_response(live_server: Any, raw: Any) -> None:
    live = live_server(generator_app)
    client = raw(live)
    client.send(get("/a") * 3)
    for _ in range(3):
        resp = client.response()
        assert resp.header("transfer-encoding") == "chunked"
        assert resp.body == b"one,two,three"


def test_http10_closes_after_the_response_by_default(live_server: Any, raw: Any) -> None:
    live = live_server(path_app)
    client = raw(live)
    resp = client.request(b"GET /old HTTP/1.0\r\n\r\n")
    assert resp.status == 200 and resp.body == b"GET /old"
    assert resp.header("connection") == "close"
    assert client.is_closed()


def test_http10_keep_alive_is_honoured_with_content_length(live_server: Any, raw: Any) -> None:
    live = live_server(path_app)
    client = raw(live)
    for i in range(3):
        resp = client.request(f"GET /k{i} HTTP/1.0\r\nConnection: keep-alive\r\n\r\n".encode())
        assert resp.body == f"GET /k{i}".encode()
        assert resp.header("connection").lower() == "keep-alive"
    client.send(b"GET /last HTTP/1.0\r\n\r\n")
    assert client.response().body == b"GET /last"
    assert client.is_closed()


def test_http10_generator_response_is_close_delimited(live_server: Any, raw: Any) -> None:
    live = live_server(generator_app)
    client = raw(live)
    client.send(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    data = client.read_all()
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"transfer-encoding" not in head.lower()
    assert b"content-length" not in head.lower()
    assert b"connection: close" in head.lower()
    assert body == b"one,two,three"


def test_a_list_of_many_items_is_one_sized_body_on_the_wire(live_server: Any, raw: Any) -> None:
    # It went out chunked, one send (one packet, with TCP_NODELAY) per item.
    items = [b"<li>%d</li>" % i for i in range(100)]

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/html")])
        return items

    client = raw(live_server(app))
    for _ in range(2):  # and the connection goes on
        resp = client.request(get("/"))
        assert resp.header("transfer-encoding") is None
        assert resp.header("content-length") == str(len(b"".join(items)))
        assert resp.body == b"".join(items)


def test_what_write_queued_is_one_chunk_on_the_wire(live_server: Any) -> None:
    lines = [b"line %d\n" % i for i in range(50)]

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        for line in lines:
            write(line)
        return []

    live = live_server(app)
    body = b"".join(lines)
    with socket.create_connection((live.host, live.port), timeout=10) as sock:
        sock.sendall(get("/"))
        data = b""
        while not data.endswith(b"\r\n0\r\n\r\n"):
            chunk = sock.recv(65536)
            assert chunk
            data += chunk
    assert data.split(b"\r\n\r\n", 1)[1] == b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)


def test_http11_generator_response_is_chunked(live_server: Any, raw: Any) -> None:
    live = live_server(generator_app)
    client = raw(live)
    client.send(get("/"))
    resp = client.response()
    assert resp.header("transfer-encoding") == "chunked"
    assert resp.header("content-length") is None
    assert resp.body == b"one,two,three"
    # and the connection stays usable
    assert client.request(get("/")).body == b"one,two,three"


def test_unknown_http_1x_minor_version_is_served_as_http11(live_server: Any, raw: Any) -> None:
    seen: list[dict[str, Any]] = []
    live = live_server(recording_app(seen))
    client = raw(live)
    resp = client.request(b"GET /seven HTTP/1.7\r\nHost: x\r\n\r\n")
    assert resp.status == 200 and resp.version == "HTTP/1.1"
    assert seen[0]["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert client.request(get("/again")).status == 200  # kept alive, as 1.1 is


def test_head_has_no_body_and_keeps_content_length(live_server: Any, raw: Any) -> None:
    live = live_server(path_app)
    client = raw(live)
    client.send(b"HEAD /h HTTP/1.1\r\nHost: x\r\n\r\n" + get("/after"))
    resp = client.response("HEAD")
    assert resp.status == 200
    assert resp.header("content-length") == str(len(b"HEAD /h"))
    # the next response starts right after the head: no body bytes in between
    assert client.response().body == b"GET /after"


def test_head_of_a_generator_app_has_no_body(live_server: Any, raw: Any) -> None:
    live = live_server(generator_app)
    client = raw(live)
    client.send(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n" + get("/after"))
    resp = client.response("HEAD")
    assert resp.status == 200 and resp.header("transfer-encoding") is None
    assert client.response().body == b"one,two,three"


@pytest.mark.parametrize("status", ["204 No Content", "304 Not Modified"])
@pytest.mark.parametrize("as_generator", [False, True])
def test_bodiless_status_sends_no_body_even_if_the_app_yields_one(
        live_server: Any, raw: Any, status: str, as_generator: bool) -> None:
    closed = []

    class Body:
        def __iter__(self) -> Any:
            yield b"this must not be sent"

        def close(self) -> None:
            closed.append(True)

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        start_response(status, [])
        return Body() if as_generator else [b"this must not be sent"]

    live = live_server(app)
    client = raw(live)
    client.send(get("/") + get("/"))
    for _ in range(2):
        resp = client.response()
        assert resp.status == int(status[:3])
        assert resp.header("transfer-encoding") is None
    assert b"must not" not in client.buf
    assert not client.is_closed(0.2)  # nothing else arrives and the connection stays open
    assert closed == ([True, True] if as_generator else [])


def test_chunked_request_body_is_decoded_with_its_length(live_server: Any, raw: Any) -> None:
    seen: list[dict[str, Any]] = []
    live = live_server(recording_app(seen))
    client = raw(live)
    resp = client.request(b"POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                          b"5\r\nhello\r\n1;ext=1\r\n,\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\n")
    assert resp.status == 200
    assert seen[0]["test.body"] == b"hello, world"
    assert seen[0]["CONTENT_LENGTH"] == "12"
    assert client.request(get("/next")).status == 200


def test_chunked_request_body_arriving_byte_by_byte(live_server: Any, raw: Any) -> None:
    seen: list[dict[str, Any]] = []
    live = live_server(recording_app(seen))
    client = raw(live)
    data = (b"POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
    for i in range(len(data)):
        client.send(data[i:i + 1])
    assert client.response().status == 200
    assert seen[0]["test.body"] == b"abcde"


def test_requests_library_chunked_upload(live_server: Any) -> None:
    seen: list[dict[str, Any]] = []
    live = live_server(recording_app(seen))
    resp = requests.post(live.url + "/gen", data=iter([b"ab", b"cd", b"ef"]), timeout=10)
    assert resp.status_code == 200
    assert seen[0]["test.body"] == b"abcdef" and seen[0]["CONTENT_LENGTH"] == "6"


# -- 100-continue -------------------------------------------------------------------------------
def _expect_head(length: int) -> bytes:
    return (f"POST /c HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n"
            f"Expect: 100-continue\r\n\r\n").encode()


def test_100_continue_is_sent_when_the_server_reads_the_body(live_server: Any, raw: Any) -> None:
    seen: list[dict[str, Any]] = []
    live = live_server(recording_app(seen))
    client = raw(live)
    client.send(_expect_head(5))
    interim = client.response(interim=True)
    assert interim.status == 100
    assert seen == []  # the app has not run: the body is not there yet
    client.send(b"hello")
    resp = client.response()
    assert resp.status == 200 and seen[0]["test.body"] == b"hello"


def test_100_continue_for_an_app_that_never_reads_the_body(live_server: Any, raw: Any) -> None:
    """The server pre-reads the body, so it asks for it with a 100 first."""
    calls = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        calls.append(environ["PATH_INFO"])
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [b"ok"]

    live = live_server(app)
    client = raw(live)
    client.send(_expect_head(4))
    assert client.response(interim=True).status == 100
    client.send(b"body" + get("/next"))
    assert client.response().status == 200
    assert client.response().status == 200
    assert calls == ["/c", "/next"]


def test_no_100_continue_when_the_length_is_rejected(live_server: Any, raw: Any) -> None:
    seen: list[dict[str, Any]] = []
    live = live_server(recording_app(seen), max_body=10)
    client = raw(live)
    client.send(_expect_head(1000))
    resp = client.response(interim=True)
    assert resp.status == 413
    assert client.is_closed()
    assert seen == []


def test_no_100_continue_when_the_body_came_with_the_head(live_server: Any, raw: Any) -> None:
    seen: list[dict[str, Any]] = []
    live = live_server(recording_app(seen))
    client = raw(live)
    client.send(_expect_head(3) + b"abc")
    resp = client.response(interim=True)
    assert resp.status == 200 and seen[0]["test.body"] == b"abc"


def test_no_100_continue_for_a_404_outside_the_url_prefix(live_server: Any, raw: Any) -> None:
    seen: list[dict[str, Any]] = []
    live = live_server(recording_app(seen), url_prefix="/app")
    client = raw(live)
    client.send(_expect_head(3))  # POST /c is outside /app
    resp = client.response(interim=True)
    assert resp.status == 404
    assert resp.header("connection") == "close"
    assert client.is_closed()  # the body was never read: the connection cannot go on
    assert seen == []


def test_100_continue_before_a_chunked_body(live_server: Any, raw: Any) -> None:
    seen: list[dict[str, Any]] = []
    live = live_server(recording_app(seen))
    client = raw(live)
    client.send(b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                b"Expect: 100-continue\r\n\r\n")
    assert client.response(interim=True).status == 100
    client.send(b"4\r\nbody\r\n0\r\n\r\n")
    assert client.response().status == 200
    assert seen[0]["test.body"] == b"body"


# -- big request bodies ------------------------------------------------------------------------
def test_body_above_body_buffer_is_spooled_to_a_temp_file(live_server: Any, raw: Any) -> None:
    payload = bytes(range(256)) * 2000  # 512000 bytes
    got: dict[str, Any] = {}

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        stream = environ["wsgi.input"]
        got["in_memory"] = isinstance(stream, io.BytesIO)
        got["has_fileno"] = hasattr(stream, "fileno")
        digest = hashlib.sha256()
        while True:
            data = stream.read(65536)
            if not data:
                break
            digest.update(data)
        got["sha"] = digest.hexdigest()
        got["length"] = environ["CONTENT_LENGTH"]
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "0")])
        return []

    live = live_server(app, body_buffer=4096)
    resp = requests.post(live.url + "/big", data=payload, timeout=10)
    assert resp.status_code == 200
    assert got == {"in_memory": False, "has_fileno": True,
                   "sha": hashlib.sha256(payload).hexdigest(), "length": str(len(payload))}
    # a chunked one too
    got.clear()
    resp = requests.post(live.url + "/big", data=iter([payload[:100000], payload[100000:]]),
                         timeout=10)
    assert resp.status_code == 200
    assert got["sha"] == hashlib.sha256(payload).hexdigest() and got["in_memory"] is False


def test_spooled_body_file_is_closed_after_the_request(live_server: Any, raw: Any) -> None:
    """Its descriptor must not wait for the garbage collector (the environ is in a cycle)."""
    streams: list[Any] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        streams.append(environ["wsgi.input"])
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "0")])
        return []

    live = live_server(app, body_buffer=1024)
    client = raw(live)
    body = b"s" * 10000
    client.request(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    client.request(get("/sync"))  # the first request is over once this is answered
    assert not isinstance(streams[0], io.BytesIO)
    assert streams[0].closed


def test_body_below_body_buffer_stays_in_memory(live_server: Any) -> None:
    got: dict[str, Any] = {}

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        got["in_memory"] = isinstance(environ["wsgi.input"], io.BytesIO)
        got["body"] = environ["wsgi.input"].read(100)
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "0")])
        return []

    live = live_server(app, body_buffer=4096)
    assert requests.post(live.url, data=b"x" * 100, timeout=10).status_code == 200
    assert got == {"in_memory": True, "body": b"x" * 100}


def test_body_buffer_none_keeps_every_body_in_memory(live_server: Any) -> None:
    # as_size reads "none" as no limit; the body reader used to compare the
    # size with None and crash the connection instead of serving the request
    got: dict[str, Any] = {}

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        got["in_memory"] = isinstance(environ["wsgi.input"], io.BytesIO)
        got["size"] = len(environ["wsgi.input"].read())
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "0")])
        return []

    live = live_server(app, body_buffer="none")
    assert requests.post(live.url, data=b"x" * 300_000, timeout=10).status_code == 200
    assert got == {"in_memory": True, "size": 300_000}


def test_many_connections_at_once(live_server: Any) -> None:
    live = live_server(path_app)
    results: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        with requests.Session() as session:
            for _ in range(5):
                code = session.get(live.url + "/p", timeout=10).status_code
                with lock:
                    results.append(code)

    workers = [threading.Thread(target=worker) for _ in range(10)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(30)
    assert results == [200] * 50


def test_connection_close_request_stops_the_pipeline(live_server: Any, raw: Any) -> None:
    seen: list[dict[str, Any]] = []
    live = live_server(recording_app(seen))
    client = raw(live)
    client.send(get("/first", headers="Connection: close\r\n") + get("/second"))
    resp = client.response()
    assert resp.status == 200 and resp.header("connection") == "close"
    assert client.read_all() == b""
    assert [env["PATH_INFO"] for env in seen] == ["/first"]


@pytest.mark.parametrize("threads", [0, 2])
@pytest.mark.parametrize("shape", ["one-item list", "two-item list", "tuple", "generator", "write"])
def test_a_body_shorter_than_its_content_length_closes_the_connection(
        live_server: Any, raw: Any, caplog: pytest.LogCaptureFixture, threads: int, shape: str) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Any:
        write = start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "10")])
        if shape == "one-item list":
            return [b"abcdefghi"]
        if shape == "two-item list":
            return [b"abcd", b"efghi"]
        if shape == "tuple":
            return (b"abcdefghi",)
        if shape == "write":
            write(b"abcdefghi")
            return []
        return iter([b"abcdefghi"])

    caplog.set_level(logging.WARNING, logger="cogen.web.error")
    client = raw(live_server(app, threads=threads))
    client.send(get("/first") + get("/second"))
    # the 9 bytes, then the close: no second response for the client to
    # read as the 10th body byte and beyond
    head, _, body = client.read_all().partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"\r\nContent-Length: 10\r\n" in head + b"\r\n"
    assert body == b"abcdefghi"
    warnings = [r.getMessage() for r in caplog.records if r.name == "cogen.web.error"]
    assert warnings == ["GET /first: the app yielded 1 bytes less than its Content-Length"]
