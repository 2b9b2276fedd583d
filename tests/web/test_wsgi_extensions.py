"""The coroutine extensions: operations yielded through ``environ['cogen']``,
their outcome on the gate, long polling, ``environ['cogen.input']`` buffered
and streamed, the original cogen's names, and the lazy_sr / sync_input
middlewares."""
from __future__ import annotations

import hashlib
import selectors
import socket
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from cogen.core.coroutines import coroutine
from cogen.core.events import OperationTimeout, Signal, Sleep
from cogen.core.schedulers import Scheduler
from cogen.web.extensions import lazy_sr, streaming_input, sync_input
from cogen.web.wsgi import WSGIServer

from .conftest import CLIENT_TIMEOUT, get

pytestmark = pytest.mark.timeout(60)

TEXT = [("Content-Type", "text/plain")]


def test_app_yields_a_sleep_through_the_gate_and_reads_the_result(live_server: Any,
                                                                  raw: Any) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", TEXT)
        gate = environ["cogen"]
        started = time.monotonic()
        yield gate.core.events.Sleep(0.01)
        elapsed = time.monotonic() - started
        yield (f"{type(gate.result).__name__} {gate.exception} {elapsed >= 0.009}").encode()

    live = live_server(app)
    assert raw(live).request(get("/")).body == b"Sleep None True"


def test_the_proxy_records_the_operation_and_returns_an_empty_chunk(live_server: Any,
                                                                    raw: Any) -> None:
    got: list[Any] = []

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", TEXT)
        gate = environ["cogen"]
        chunk = gate.core.events.Sleep(0.001)
        got.extend([chunk, type(gate.operation).__name__])
        yield chunk
        got.append(gate.operation)
        yield b"done"

    live = live_server(app)
    assert raw(live).request(get("/")).body == b"done"
    assert got == [b"", "Sleep", None]


def test_app_yields_an_operation_object_directly(live_server: Any, raw: Any) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Iterator[Any]:
        start_response("200 OK", TEXT)
        yield Sleep(0.01)
        yield b"after sleep: " + type(environ["cogen"].result).__name__.encode()

    live = live_server(app)
    assert raw(live).request(get("/")).body == b"after sleep: Sleep"


def test_app_yields_a_coroutine_and_gets_its_return_value(live_server: Any, raw: Any) -> None:
    @coroutine
    def helper(x: int) -> Any:
        yield Sleep(0.001)
        return x * 2

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[Any]:
        start_response("200 OK", TEXT)
        yield helper(21)
        yield str(environ["cogen"].result).encode()

    live = live_server(app)
    assert raw(live).request(get("/")).body == b"42"


def test_operation_exception_is_stored_on_the_gate(live_server: Any, raw: Any) -> None:
    @coroutine
    def failing() -> Any:
        yield Sleep(0)
        raise LookupError("from a coroutine")

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[Any]:
        start_response("200 OK", TEXT)
        gate = environ["cogen"]
        yield gate.core.events.WaitForSignal("nobody", timeout=0.01)
        out = [isinstance(gate.result, OperationTimeout),
               gate.exception is not None and gate.exception[0] is OperationTimeout
               and gate.exception[1] is gate.result and gate.exception[2] is not None]
        yield failing()
        out += [isinstance(gate.result, LookupError), gate.exception[0] is LookupError]
        yield gate.core.events.Sleep(0)
        out += [gate.exception is None]  # cleared by the next success
        yield repr(out).encode()

    live = live_server(app)
    assert raw(live).request(get("/")).body == repr([True] * 5).encode()


def test_original_names_on_the_environ(live_server: Any, raw: Any) -> None:
    got: dict[str, Any] = {}

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        got["same_gate"] = environ["cogen.wsgi"] is environ["cogen"]
        got["sched"] = environ["cogen.sched"]
        got["content_length"] = environ["cogen.wsgi"].content_length
        got["input"] = environ["cogen.input"] is environ["cogen"].input
        start_response("200 OK", TEXT)
        return [b""]

    live = live_server(app)
    client = raw(live)
    client.request(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\n\r\n1234567")
    assert got == {"same_gate": True, "sched": live.sched, "content_length": 7, "input": True}
    client.request(get("/"))
    assert got["content_length"] in (0, None)


def test_original_core_call_and_input_names(live_server: Any, raw: Any) -> None:
    """``environ['cogen.core']``, ``environ['cogen.call'](f)(*args)`` and the
    capitalised ``environ['cogen.input'].Read(n)`` / ``.ReadLine(n)``."""
    @coroutine
    def double(x: int) -> Any:
        yield Sleep(0)
        return 2 * x

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[Any]:
        start_response("200 OK", TEXT)
        gate = environ["cogen.wsgi"]
        got = []
        yield environ["cogen.core"].events.Sleep(0.001)
        got.append(type(gate.result).__name__)
        yield environ["cogen.call"](double)(21)
        got.append(gate.result)
        yield environ["cogen.input"].ReadLine(100)
        got.append(gate.result)
        yield environ["cogen.input"].Read(3)
        got.append(gate.result)
        yield repr(got).encode()

    live = live_server(app)
    resp = raw(live).request(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\nline\nrest")
    assert resp.body == repr(["Sleep", 42, b"line\n", b"res"]).encode()


def test_original_constructor_and_serve_usage() -> None:
    """``WSGIServer(addr, app, sched, sockoper_timeout=None, sendfile_timeout=None)``,
    ``.socket`` and ``sched.add(server.serve)`` as in the original cogen."""
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", TEXT)
        return [b"original"]

    sched = Scheduler()
    server = WSGIServer(("127.0.0.1", 0), app, sched, sockoper_timeout=None,
                        sendfile_timeout=None, access_log=False)
    port = server.socket.getsockname()[1]
    sched.add(server.serve)
    thread = threading.Thread(target=sched.run)
    thread.start()
    try:
        assert requests.get(f"http://127.0.0.1:{port}/", timeout=10).text == "original"
    finally:
        sched.call_soon_threadsafe(server.shutdown, 0)
        thread.join(CLIENT_TIMEOUT)
        sched.close()
    assert not thread.is_alive()
    assert server.socket.fileno() == -1


def test_sockoper_timeout_sets_the_io_timeouts() -> None:
    server = WSGIServer(("127.0.0.1", 0), lambda e, s: [], Scheduler(), sockoper_timeout=7)
    try:
        assert server.options.header_timeout == 7
        assert server.options.body_timeout == 7
        assert server.options.send_timeout == 7
    finally:
        server.socket.close()
        server.sched.close()


# -- long polling ------------------------------------------------------------------------------
N_POLLERS = 1000


def _raise_fd_limit(needed: int) -> None:
    try:
        import resource
    except ImportError:  # pragma: no cover
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            pytest.skip(f"needs {needed} file descriptors, the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def _many_requests(address: tuple[str, int], path: str, count: int,
                   sel: selectors.BaseSelector) -> list[socket.socket]:
    """Open ``count`` non-blocking connections and send each one a GET for ``path``."""
    socks = []
    request = get(path)
    for _ in range(count):
        sock = socket.socket()
        sock.setblocking(False)
        sock.connect_ex(address)
        socks.append(sock)
        sel.register(sock, selectors.EVENT_WRITE, request)
    pending = count
    deadline = time.monotonic() + CLIENT_TIMEOUT * 2
    while pending:
        assert time.monotonic() < deadline, f"{pending} requests could not be sent"
        for key, _ in sel.select(1.0):
            key.fileobj.send(key.data)  # small: goes in one send once connected
            sel.unregister(key.fileobj)
            pending -= 1
    return socks


def _read_all_responses(socks: list[socket.socket], sel: selectors.BaseSelector,
                        timeout: float) -> dict[socket.socket, bytes]:
    """Read every socket until the server closes it."""
    got: dict[socket.socket, bytearray] = {}
    for sock in socks:
        got[sock] = bytearray()
        sel.register(sock, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    open_count = len(socks)
    while open_count:
        assert time.monotonic() < deadline, f"{open_count} responses did not arrive"
        for key, _ in sel.select(1.0):
            sock = key.fileobj
            try:
                data = sock.recv(65536)
            except BlockingIOError:
                continue
            if data:
                got[sock] += data
            else:
                sel.unregister(sock)
                open_count -= 1
    return {s: bytes(b) for s, b in got.items()}


def test_a_thousand_long_polls_answered_by_one_signal(live_server: Any, raw: Any) -> None:
    _raise_fd_limit(3 * N_POLLERS + 200)
    called = []

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        gate = environ["cogen"]
        if environ["PATH_INFO"] == "/wait":
            called.append(1)
            start_response("200 OK", TEXT + [("Content-Length", "12"), ("Connection", "close")])
            yield gate.core.events.WaitForSignal("room", timeout=30)
            yield b"got " + gate.result
        else:
            # one Signal; it waits (bounded) until every poller is parked
            yield gate.core.events.Signal("room", b"the news", recipients=N_POLLERS, timeout=30)
            start_response("200 OK", TEXT)
            yield f"woke {gate.result} {gate.exception}".encode()

    live = live_server(app, backlog=2048)
    sel = selectors.DefaultSelector()
    socks: list[socket.socket] = []
    try:
        started = time.monotonic()
        socks = _many_requests(live.address, "/wait", N_POLLERS, sel)
        signaller = raw(live)
        signaller.send(get("/signal"))
        assert signaller.response().body == f"woke {N_POLLERS} None".encode()
        responses = _read_all_responses(socks, sel, 30)
        elapsed = time.monotonic() - started
    finally:
        for sock in socks:
            sock.close()
        sel.close()
    assert len(called) == N_POLLERS
    bodies = {data.partition(b"\r\n\r\n")[2] for data in responses.values()}
    assert bodies == {b"got the news"}
    assert all(data.startswith(b"HTTP/1.1 200 ") for data in responses.values())
    assert elapsed < 30


def test_long_poll_woken_by_a_coroutine_added_from_another_thread(live_server: Any,
                                                                  raw: Any) -> None:
    parked = threading.Event()

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", TEXT)
        parked.set()
        yield environ["cogen"].core.events.WaitForSignal("news", timeout=20)
        yield environ["cogen"].result

    @coroutine
    def signaller() -> Any:
        woken = yield Signal("news", b"from outside", recipients=1, timeout=20)
        return woken

    live = live_server(app)
    client = raw(live)
    client.send(get("/"))
    assert parked.wait(CLIENT_TIMEOUT)
    live.sched.call_soon_threadsafe(lambda: live.sched.add(signaller))
    assert client.response().body == b"from outside"


# -- environ['cogen.input'] --------------------------------------------------------------------
def _input_ops_app(environ: dict[str, Any], start_response: Any) -> Iterator[Any]:
    """Reads the body with cogen.input operations and answers what it got."""
    start_response("200 OK", TEXT)
    reader = environ["cogen.input"]
    gate = environ["cogen"]
    got = []
    for op in ("readline", "readline3", "read4", "read0", "readline", "read"):
        if op == "readline":
            yield reader.readline()
        elif op == "readline3":
            yield reader.readline(3)
        elif op == "read4":
            yield reader.read(4)
        elif op == "read0":
            yield reader.read(0)
        else:
            yield reader.read()
        got.append(gate.result)
    yield reader.read(10)
    got.append(gate.result)
    yield repr(got).encode()


BODY = b"first line\nsecond line\nthe rest"
EXPECTED = [b"first line\n", b"sec", b"ond ", b"", b"line\n", b"the rest", b""]


@pytest.mark.parametrize("streaming", [False, True], ids=["buffered", "streaming"])
@pytest.mark.parametrize("chunked", [False, True], ids=["length", "chunked"])
def test_cogen_input_read_and_readline(live_server: Any, raw: Any, streaming: bool,
                                       chunked: bool) -> None:
    live = live_server(_input_ops_app, stream_input=streaming)
    client = raw(live)
    if chunked:
        body = b"".join(b"%x\r\n%s\r\n" % (len(BODY[i:i + 5]), BODY[i:i + 5])
                        for i in range(0, len(BODY), 5)) + b"0\r\n\r\n"
        head = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    else:
        body = BODY
        head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(BODY)
    client.send(head)
    client.send(body)
    assert client.response().body == repr(EXPECTED).encode()
    assert client.request(get("/")).status == 200  # the connection is still in step


def test_streaming_input_app_sees_an_unreadable_wsgi_input(live_server: Any, raw: Any) -> None:
    @streaming_input
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        try:
            environ["wsgi.input"].read(1)
        except OSError as exc:
            body = b"refused: cogen.input" if "cogen.input" in str(exc) else b"other"
        else:
            body = b"read it"
        start_response("200 OK", TEXT)
        return [body]

    live = live_server(app)
    client = raw(live)
    client.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
    assert client.response().body == b"refused: cogen.input"
    # the server read and discarded the unread body: the connection goes on
    assert client.request(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").status == 200


def test_streamed_body_left_unread_while_client_awaits_100_continue_closes(
        live_server: Any, raw: Any) -> None:
    @streaming_input
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("413 Payload Too Large", TEXT)
        return [b"no"]

    live = live_server(app)
    client = raw(live)
    client.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                b"Expect: 100-continue\r\n\r\n")
    response = client.response()
    assert response.status == 413
    assert client.is_closed()


def test_streaming_upload_of_20_mib_in_constant_memory(live_server: Any, raw: Any) -> None:
    """The app is called before the upload ends and keeps pace with it.

    The client sends a 20 MiB chunked body 1 MiB at a time and, after each
    MiB, waits until the app has consumed all but a few MiB of what was
    sent: a server that buffered the body before calling the app would
    never let it start, so this also bounds what the server holds.
    """
    total = 20 << 20
    block = bytes(range(256)) * 4096  # 1 MiB
    window = 4 << 20
    progress = threading.Condition()
    state = {"consumed": 0, "called_at_sent": -1, "max_read": 0}
    sent = [0]

    @streaming_input
    def app(environ: dict[str, Any], start_response: Any) -> Iterator[Any]:
        with progress:
            state["called_at_sent"] = sent[0]
        gate = environ["cogen"]
        digest = hashlib.sha256()
        while True:
            yield environ["cogen.input"].read(65536)
            if gate.exception is not None:
                raise gate.result
            data = gate.result
            if not data:
                break
            digest.update(data)
            with progress:
                state["consumed"] += len(data)
                state["max_read"] = max(state["max_read"], len(data))
                progress.notify_all()
        start_response("200 OK", TEXT)
        yield digest.hexdigest().encode()

    live = live_server(app)
    client = raw(live)
    client.send(b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    expected = hashlib.sha256()
    for i in range(total // len(block)):
        piece = block[i:] + block[:i]
        expected.update(piece)
        client.send(b"%x\r\n" % len(piece) + piece + b"\r\n")
        with progress:
            sent[0] += len(piece)
            assert progress.wait_for(lambda: state["consumed"] >= sent[0] - window,
                                     CLIENT_TIMEOUT), \
                f"the app fell behind: {state['consumed']} of {sent[0]} bytes consumed"
    client.send(b"0\r\n\r\n")
    resp = client.response()
    assert resp.body == expected.hexdigest().encode()
    assert state["consumed"] == total
    assert 0 <= state["called_at_sent"] < total
    assert state["max_read"] <= 65536


def test_sync_input_lets_a_plain_app_run_on_a_streaming_server(live_server: Any,
                                                               raw: Any) -> None:
    def plain(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        body = environ["wsgi.input"].read()
        start_response("200 OK", TEXT)
        return [b"plain got " + body]

    live = live_server(sync_input(plain), stream_input=True)
    client = raw(live)
    resp = client.request(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                          b"3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n")
    assert resp.body == b"plain got abcdef"
    assert client.request(get("/")).body == b"plain got "


def test_sync_input_closes_its_body_file_after_the_response(live_server: Any, raw: Any) -> None:
    streams: list[Any] = []

    def plain(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        streams.append(environ["wsgi.input"])
        start_response("200 OK", TEXT)
        return [environ["wsgi.input"].read()]

    live = live_server(sync_input(plain, buffer_size=4), stream_input=True)
    client = raw(live)
    resp = client.request(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789")
    assert resp.body == b"0123456789"
    client.request(get("/sync"))
    assert streams[0].closed  # (streams[1] is the GET's empty input)


def test_sync_input_passes_through_on_a_buffering_server(live_server: Any, raw: Any) -> None:
    def plain(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", TEXT)
        return [b"got " + environ["wsgi.input"].read()]

    live = live_server(sync_input(plain, buffer_size=4))
    resp = raw(live).request(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\nabcdef")
    assert resp.body == b"got abcdef"


def test_lazy_sr_app_starts_response_then_yields_operations(live_server: Any, raw: Any) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Iterator[Any]:
        start_response("200 OK", TEXT)
        yield environ["cogen"].core.events.Sleep(0.01)
        first = type(environ["cogen"].result).__name__
        yield Sleep(0.001)
        yield f"body after {first}".encode()

    live = live_server(lazy_sr(app))
    client = raw(live)
    assert client.request(get("/")).body == b"body after Sleep"
    assert client.request(get("/")).body == b"body after Sleep"


def test_lazy_sr_lets_the_app_change_its_status_after_an_operation(live_server: Any,
                                                                   raw: Any) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Iterator[Any]:
        start_response("200 OK", TEXT)
        yield environ["cogen"].core.events.WaitForSignal("never", timeout=0.01)
        if environ["cogen"].exception is not None:
            start_response("504 Gateway Timeout", TEXT, environ["cogen"].exception)
            yield b"timed out"
            return
        yield b"unreachable"

    live = live_server(lazy_sr(app))
    resp = raw(live).request(get("/"))
    assert resp.status == 504 and resp.body == b"timed out"


def test_lazy_sr_closes_the_app_iterable(live_server: Any, raw: Any) -> None:
    closed = threading.Event()

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[Any]:
        try:
            start_response("200 OK", TEXT)
            yield Sleep(0)
            yield b"x"
        finally:
            closed.set()

    live = live_server(lazy_sr(app))
    assert raw(live).request(get("/")).body == b"x"
    assert closed.wait(5)


def test_a_gate_operation_in_a_threaded_server(live_server: Any, raw: Any) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Iterator[Any]:
        start_response("200 OK", TEXT)
        yield environ["cogen"].core.events.Sleep(0.01)
        yield threading.current_thread().name.encode()

    live = live_server(app, threads=2)
    resp = raw(live).request(get("/"))
    assert resp.status == 200 and resp.body != threading.main_thread().name.encode()
    assert sys.modules["cogen.core.threads"]
