"""threads=N: blocking apps run in a thread pool while the socket I/O stays
on the loop."""
from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from .conftest import CLIENT_TIMEOUT, get

pytestmark = pytest.mark.timeout(60)

TEXT = [("Content-Type", "text/plain")]


def test_blocking_app_calls_run_concurrently(live_server: Any) -> None:
    """Four requests meet at a barrier: only possible if four app calls run at once."""
    barrier = threading.Barrier(4, timeout=CLIENT_TIMEOUT)
    names: set[str] = set()

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        names.add(threading.current_thread().name)
        barrier.wait()
        start_response("200 OK", TEXT)
        return [str(environ["wsgi.multithread"]).encode()]

    live = live_server(app, threads=4)
    results: list[str] = []

    def client() -> None:
        results.append(requests.get(live.url, timeout=CLIENT_TIMEOUT).text)

    clients = [threading.Thread(target=client) for _ in range(4)]
    for t in clients:
        t.start()
    for t in clients:
        t.join(CLIENT_TIMEOUT * 2)
    assert results == ["True"] * 4
    assert threading.current_thread().name not in names and len(names) == 4


def test_threaded_generator_app_is_iterated_and_closed(live_server: Any, raw: Any) -> None:
    closed = threading.Event()
    steps: list[str] = []

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", TEXT)
        try:
            for part in (b"a", b"b", b"c"):
                steps.append(threading.current_thread().name)
                yield part
        finally:
            closed.set()

    live = live_server(app, threads=2)
    client = raw(live)
    assert client.request(get("/")).body == b"abc"
    assert client.request(get("/")).body == b"abc"
    assert closed.wait(5)
    assert all(name != live.thread.name for name in steps)


def test_threaded_app_reads_its_body_and_writes(live_server: Any, raw: Any) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        body = environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"]))
        write = start_response("200 OK", TEXT)
        write(b"echo:")
        return [body]

    live = live_server(app, threads=2)
    resp = raw(live).request(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
    assert resp.body == b"echo:hello"


def test_threaded_app_errors_are_500(live_server: Any, raw: Any,
                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="cogen.web.error")

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        if environ["PATH_INFO"] == "/call":
            raise RuntimeError("in the call")
        start_response("200 OK", TEXT)
        if environ["PATH_INFO"] == "/later":
            yield b"part"
        raise RuntimeError("in the iteration")

    live = live_server(app, threads=2)
    assert raw(live).request(get("/call")).status == 500
    assert raw(live).request(get("/iter")).status == 500
    client = raw(live)
    client.send(get("/later"))
    data = client.read_all()
    assert data.startswith(b"HTTP/1.1 200 ") and data.count(b"HTTP/1.1 ") == 1
    assert len([r for r in caplog.records if r.exc_info]) == 3


def test_list_responses_of_a_threaded_app(live_server: Any, raw: Any) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", TEXT)
        return [b"one", b"two"]

    live = live_server(app, threads=1)
    client = raw(live)
    client.send(get("/") * 3)
    assert [client.response().body for _ in range(3)] == [b"onetwo"] * 3


def test_closing_the_connection_coroutine_mid_step(live_server: Any, raw: Any) -> None:
    """What Scheduler.close() or the garbage collector does to a request whose
    app runs in a worker thread: GeneratorExit at the wait. The coroutine must
    not yield again (RuntimeError: generator ignored GeneratorExit), the
    connection closes, and the app generator is finalised once its step ends."""
    inside = threading.Event()
    release = threading.Event()
    closed = threading.Event()

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", TEXT)
        try:
            yield b"a"
            inside.set()
            release.wait(CLIENT_TIMEOUT)
            yield b"b"
        finally:
            closed.set()

    live = live_server(app, threads=2)
    client = raw(live)
    client.send(get("/"))
    assert inside.wait(CLIENT_TIMEOUT)

    def close_the_request() -> None:
        (conn,) = live.server._conns.values()
        conn.coro.close()  # raises if the coroutine yields during GeneratorExit

    live.call(close_the_request)
    data = client.read_all()
    assert data.endswith(b"a\r\n")  # cut short: no last chunk
    release.set()
    live.call(gc.collect)
    assert closed.wait(CLIENT_TIMEOUT)


@pytest.mark.parametrize("threads", [0, 1])
def test_closing_an_idle_request_coroutine_closes_the_app(live_server: Any, raw: Any,
                                                          threads: int) -> None:
    closed = threading.Event()

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[Any]:
        start_response("200 OK", TEXT)
        try:
            yield b"a"
            yield environ["cogen"].core.events.WaitForSignal("never")
            yield b"b"
        finally:
            closed.set()

    live = live_server(app, threads=threads)
    client = raw(live)
    client.send(get("/"))
    client.sock.recv(1)  # the response has started: the app is parked on the signal
    live.call(lambda: next(iter(live.server._conns.values())).coro.close())
    assert closed.wait(CLIENT_TIMEOUT)


def test_what_write_sent_reaches_the_client_while_the_iterable_blocks(live_server: Any,
                                                                      raw: Any) -> None:
    # PEP 3333: the data given to write() is on its way when write() returns.
    # It waited for the app's first item, so a threaded app whose iterable
    # blocked before its first item held it back for as long.
    go = threading.Event()

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        write = start_response("200 OK", TEXT)
        write(b"early,")
        return blocks_then_late()

    def blocks_then_late() -> Iterator[bytes]:
        assert go.wait(CLIENT_TIMEOUT)
        yield b"late"

    live = live_server(app, threads=2)
    client = raw(live)
    client.send(get("/"))
    data = b""
    try:
        while b"early," not in data:  # (the client's timeout bounds it)
            chunk = client.sock.recv(65536)
            assert chunk, "the server closed the connection"
            data += chunk
    finally:
        go.set()
    while not data.endswith(b"0\r\n\r\n"):
        chunk = client.sock.recv(65536)
        assert chunk, "the server closed the connection"
        data += chunk
    assert data.index(b"early,") < data.index(b"late")
