"""Timeouts and resource bounds: slowloris heads, idle keep-alive
connections, slow body senders, clients that never read, connection limits.

The only sleeps here wait for a server-side timeout configured to be tiny.
"""
from __future__ import annotations

import http.client
import shutil
import socket
import threading
import time
from typing import Any

import pytest

from cogen.core.events import Sleep

from .conftest import get, recording_app

pytestmark = pytest.mark.timeout(60)

TINY = 0.3
#: How late a timeout may fire on a loaded CI machine.
SLACK = 3.0


def _wait_closed(client: Any, started: float) -> float:
    """Read until the server closes; returns the seconds since ``started``."""
    client.read_all()
    return time.monotonic() - started


def test_half_a_head_then_silence_is_cut_off(live_server: Any, raw: Any) -> None:
    seen: list[dict[str, Any]] = []
    live = live_server(recording_app(seen), header_timeout=TINY)
    client = raw(live)
    started = time.monotonic()
    client.send(b"GET /slow HTTP/1.1\r\nHost: x\r\nX-A: ")
    data = client.read_all()
    elapsed = time.monotonic() - started
    assert data == b"" or data.startswith(b"HTTP/1.1 408 ")
    assert TINY * 0.9 <= elapsed < TINY + SLACK
    assert seen == []


def test_a_head_dribbled_byte_by_byte_is_bounded_by_header_timeout(live_server: Any,
                                                                    raw: Any) -> None:
    """Each byte resets nothing: the header timeout covers the whole head."""
    live = live_server(recording_app([]), header_timeout=TINY)
    client = raw(live)
    started = time.monotonic()
    closed = False
    for byte in b"GET / HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"p" * 200:
        try:
            client.send(bytes([byte]))
        except OSError:
            closed = True
            break
        if time.monotonic() - started > TINY + SLACK:
            break
        time.sleep(0.01)  # a slowloris client, not synchronisation
    if not closed:
        client.read_all()
    assert time.monotonic() - started < TINY + SLACK


def test_a_connection_that_sends_nothing_is_closed_after_header_timeout(live_server: Any,
                                                                        raw: Any) -> None:
    live = live_server(recording_app([]), header_timeout=TINY)
    client = raw(live)
    started = time.monotonic()
    assert client.read_all() == b""
    assert time.monotonic() - started < TINY + SLACK


def test_idle_keep_alive_connection_is_closed_after_keepalive_timeout(live_server: Any,
                                                                      raw: Any) -> None:
    live = live_server(recording_app([]), keepalive_timeout=TINY, header_timeout=30)
    client = raw(live)
    assert client.request(get("/")).status == 200
    started = time.monotonic()
    assert client.read_all() == b""
    elapsed = time.monotonic() - started
    assert TINY * 0.9 <= elapsed < TINY + SLACK
    assert live.call(lambda: live.server.connections) == 0


def test_keep_alive_connection_is_kept_within_keepalive_timeout(live_server: Any,
                                                                raw: Any) -> None:
    live = live_server(recording_app([]), keepalive_timeout=5, header_timeout=TINY)
    client = raw(live)
    assert client.request(get("/")).status == 200
    time.sleep(TINY * 2)  # longer than the header timeout, shorter than keep-alive
    assert client.request(get("/")).status == 200


def test_a_stalled_body_is_cut_off_by_body_timeout(live_server: Any, raw: Any) -> None:
    seen: list[dict[str, Any]] = []
    live = live_server(recording_app(seen), body_timeout=TINY)
    client = raw(live)
    started = time.monotonic()
    client.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
    data = client.read_all()
    assert data.startswith(b"HTTP/1.1 408 ") and b"Connection: close\r\n" in data
    assert time.monotonic() - started < TINY + SLACK
    assert seen == []


# A generator's body goes out piece by piece; a list's in gathered sendmsg()
# calls (16 MiB: more than the socket buffers take): the same bound applies.
@pytest.mark.parametrize("shape", ["generator", "list"])
def test_a_client_that_never_reads_is_cut_off_by_send_timeout(live_server: Any, shape: str) -> None:
    closed = threading.Event()
    produced = []

    class Endless:
        def __iter__(self) -> Any:
            block = b"x" * 65536
            while True:
                produced.append(len(block))
                yield block

        def close(self) -> None:
            closed.set()

    class ClosingList(list):  # type: ignore[type-arg]
        def close(self) -> None:
            closed.set()

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return Endless() if shape == "generator" else ClosingList([b"x" * 65536] * 256)

    live = live_server(app, send_timeout=TINY)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        sock.connect(live.address)
        sock.sendall(get("/"))
        started = time.monotonic()
        assert closed.wait(TINY + SLACK + 5), "the response was never abandoned"
        assert time.monotonic() - started < TINY + SLACK + 5
    finally:
        sock.close()
    assert live.call(lambda: live.server.connections) == 0
    assert sum(produced) < 64 << 20  # the server did not buffer the endless body


def test_one_slow_client_does_not_stall_the_others(live_server: Any, raw: Any) -> None:
    live = live_server(recording_app([]), header_timeout=30)
    slow = raw(live)
    slow.send(b"GET / HTTP/1.1\r\nHost")  # and nothing more
    started = time.monotonic()
    for _ in range(5):
        assert raw(live).request(get("/")).status == 200
    assert time.monotonic() - started < 2


def test_max_connections_pauses_accepting(live_server: Any, raw: Any) -> None:
    live = live_server(recording_app([]), max_connections=2, keepalive_timeout=30)
    first, second = raw(live), raw(live)
    assert first.request(get("/")).status == 200
    assert second.request(get("/")).status == 200
    third = raw(live)  # accepted by the OS backlog, not served yet
    third.send(get("/"))
    assert not third.is_closed(0.3) and third.buf == b""
    first.close()
    assert third.response().status == 200


def test_an_app_sleeping_does_not_block_other_requests(live_server: Any, raw: Any) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [("Content-Type", "text/plain")])
        if environ["PATH_INFO"] == "/slow":
            yield Sleep(1.0)
        yield b"done"

    live = live_server(app)
    slow = raw(live)
    slow.send(get("/slow"))
    started = time.monotonic()
    assert raw(live).request(get("/fast")).body == b"done"
    assert time.monotonic() - started < 0.8
    assert slow.response().body == b"done"


@pytest.fixture(scope="module")
def upload_file(tmp_path_factory: pytest.TempPathFactory) -> Any:
    path = tmp_path_factory.mktemp("upload") / "30mb.bin"
    with open(path, "wb") as out:
        out.truncate(30 << 20)
    return path


def _curl_status(url: str, path: Any, *headers: str) -> str:
    import subprocess
    args = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "20",
            "-T", str(path)]
    for header in headers:
        args += ["-H", header]
    done = subprocess.run([*args, url], capture_output=True, text=True, timeout=30, check=False)
    return done.stdout + done.stderr.strip()


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
@pytest.mark.parametrize("headers", [("Expect:",), ("Transfer-Encoding: chunked",)],
                         ids=["length-no-expect", "chunked-expect"])
def test_a_413_reaches_a_client_still_sending_its_body(live_server: Any, upload_file: Any,
                                                       headers: tuple[str, ...]) -> None:
    # Issue 18 item 9: the server closed while the client was still sending,
    # so the client got a reset instead of the 413 (4 and 5 of 10 runs).
    live = live_server(recording_app([]), max_body=1 << 20)
    statuses = [_curl_status(live.url + "/upload", upload_file, *headers) for _ in range(6)]
    assert statuses == ["413"] * 6


def _put_30mb(live: Any, chunked: bool) -> int:
    """PUT 30 MB with http.client, which sends the whole body before it reads; the status."""
    conn = http.client.HTTPConnection(live.host, live.port, timeout=20)
    try:
        if chunked:
            block = bytes(1 << 20)
            conn.request("PUT", "/upload", body=(block for _ in range(30)), encode_chunked=True,
                         headers={"Expect": "100-continue"})
        else:
            conn.request("PUT", "/upload", body=bytes(30 << 20))
        return conn.getresponse().status
    finally:
        conn.close()


@pytest.mark.parametrize("chunked", [False, True], ids=["length", "chunked-expect"])
def test_a_413_reaches_http_client_sending_its_whole_body(live_server: Any, chunked: bool) -> None:
    # Without a lingering close the server's close reset the connection, and
    # the client's send failed before it read the status (Broken pipe,
    # Connection reset by peer).
    live = live_server(recording_app([]), max_body=1 << 20)
    assert [_put_30mb(live, chunked) for _ in range(10)] == [413] * 10


def test_idle_keep_alive_connections_share_one_sweep_timer(live_server: Any, raw: Any) -> None:
    # Each idle keep-alive connection used to arm a scheduler timer of its
    # own; now one sweep per server times them out (the timeout itself is
    # the test above).
    live = live_server(recording_app([]), keepalive_timeout=30, header_timeout=30)
    sched = live.sched
    clients = [raw(live) for _ in range(20)]
    for client in clients:
        assert client.request(get("/")).status == 200
    assert clients[-1].request(get("/sync")).status == 200

    def idle_state() -> tuple[int, int, bool]:
        conns = list(live.server._conns.values())
        return (sum(1 for c in conns if c.idle_deadline), sched._timers_live,
                live.server.idle_sweep is not None)

    deadline = time.monotonic() + 10
    while (state := live.call(idle_state))[0] < 20 and time.monotonic() < deadline:
        time.sleep(0.01)  # (the last response went out just before its wait)
    waiting, timers, armed = state
    assert waiting == 20 and armed
    assert timers == 1, "one timer for all idle connections"
    for client in clients:
        client.close()
    deadline = time.monotonic() + 10
    while live.call(lambda: live.server.connections) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert live.call(lambda: (live.server.idle_sweep, sched._timers_live)) == (None, 0)


def test_an_idle_keep_alive_connection_holds_one_frame_and_no_request(live_server: Any,
                                                                      raw: Any) -> None:
    # Idle memory per connection (issue 16): while it waits for its next
    # request a connection's coroutine is one generator frame, which holds
    # neither accept()'s address tuple, a bound method nor the request's bytes.
    live = live_server(recording_app([]), keepalive_timeout=30)
    client = raw(live)
    assert client.request(get("/x?y", headers="X-Pad: abc\r\n")).status == 200

    def idle_frame() -> Any:
        (conn,) = live.server._conns.values()
        if not conn.idle_deadline:
            return None
        gen = conn.coro.gen
        return gen.gi_yieldfrom, dict(gen.gi_frame.f_locals), conn

    deadline = time.monotonic() + 10
    while (state := live.call(idle_frame)) is None and time.monotonic() < deadline:
        time.sleep(0.01)  # (the response went out just before the wait)
    assert state is not None
    yieldfrom, local_vars, conn = state
    assert yieldfrom is None, "a generator under the connection's own"
    for name, value in local_vars.items():
        assert not isinstance(value, tuple), name
        assert not (isinstance(value, bytes) and value), name
        assert not hasattr(value, "__self__") or isinstance(value, type), name
    assert conn.buf == b"" and conn.head is None and conn.peer[0] == "127.0.0.1"
