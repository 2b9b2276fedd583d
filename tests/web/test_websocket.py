"""WebSocket (the cogen.web.websocket package) against the ``websockets`` package as the real client."""
from __future__ import annotations

import asyncio
import base64
import os
import queue
import resource
import socket
import struct
import threading
from collections.abc import Iterator
from typing import Any

import pytest

websockets = pytest.importorskip("websockets")
pytest.importorskip("wsproto")
from websockets.exceptions import ConnectionClosed as ClientClosed  # noqa: E402
from websockets.sync.client import connect  # noqa: E402

from cogen.core import events  # noqa: E402
from cogen.core.coroutines import coroutine  # noqa: E402
from cogen.web.websocket import ConnectionClosed, HandshakeError  # noqa: E402
from tests.web.conftest import CLIENT_TIMEOUT  # noqa: E402

T = CLIENT_TIMEOUT


def ws_url(live: Any, path: str = "/ws") -> str:
    return f"ws://{live.host}:{live.port}{path}"


def gate_echo_app(outcomes: queue.Queue[Any] | None = None, subprotocol: str | None = None) -> Any:
    """Echo every message through the gate; a plain request gets 'plain'."""
    def app(environ: dict[str, Any], start_response: Any) -> Iterator[Any]:
        gate = environ["cogen"]
        if not gate.websocket:
            start_response("200 OK", [("Content-Type", "text/plain")])
            yield b"plain"
            return
        yield gate.websocket.accept(subprotocol=subprotocol)
        if gate.exception:
            start_response(f"{gate.result.status} Refused", [("Content-Type", "text/plain")])
            yield str(gate.result).encode()
            return
        ws = gate.result
        while True:
            yield ws.receive(timeout=T)
            if gate.exception:
                if outcomes is not None:
                    outcomes.put(gate.result)
                return
            message = gate.result
            if message == "close-4000":
                yield ws.close(4000, "asked to")
                return
            if message == "fail":
                raise RuntimeError("the app failed")
            yield ws.send(message)

    return app


# -- echo, both styles, both modes --------------------------------------------------
@pytest.mark.parametrize("threads", [0, 4])
def test_echo_text_and_binary_through_the_gate(live_server: Any, threads: int) -> None:
    live = live_server(gate_echo_app(), threads=threads)
    with connect(ws_url(live), open_timeout=T) as ws:
        ws.send("hello")
        assert ws.recv(T) == "hello"
        ws.send(b"\x00\x01binary\xff")
        assert ws.recv(T) == b"\x00\x01binary\xff"
        ws.send("é€😀" * 1000)
        assert ws.recv(T) == "é€😀" * 1000


def test_a_plain_request_to_the_same_route_gets_an_ordinary_response(live_server: Any) -> None:
    import requests
    live = live_server(gate_echo_app())
    assert requests.get(f"{live.url}/ws", timeout=T).text == "plain"


@coroutine
def gen_handler(ws: Any) -> Any:
    while True:
        message = yield ws.receive()
        yield ws.send(message[::-1])


async def async_handler(ws: Any) -> None:
    while True:
        message = await ws.receive()
        await ws.send(message[::-1])


@pytest.mark.parametrize("handler", [gen_handler, async_handler], ids=["coroutine", "async-def"])
def test_serve_runs_a_coroutine_or_async_def_handler(live_server: Any, handler: Any) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Any:
        return environ["cogen"].websocket.serve(handler)

    live = live_server(app)
    with connect(ws_url(live), open_timeout=T) as ws:
        for text in ("abc", "xyz", "ünï"):
            ws.send(text)
            assert ws.recv(T) == text[::-1]


def test_an_upgrade_accepted_late_gets_the_socket_from_the_disconnect_watch(live_server: Any) -> None:
    # The app waits longer than the disconnect watch's delay before it
    # accepts, so the connection is watched when the protocol switches; the
    # WebSocket must still get every frame.
    from cogen.core.coroutines import Coroutine

    def session(upgrade: Any) -> Any:
        yield events.Sleep(0.3)
        ws = yield upgrade.accept()
        while True:
            message = yield ws.receive()
            yield ws.send(message.upper())

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        return [Coroutine(session, environ["cogen"].websocket)]

    live = live_server(app)
    with connect(ws_url(live), open_timeout=T) as ws:
        for text in ("abc", "def"):
            ws.send(text)
            assert ws.recv(T) == text.upper()


def test_fragmented_messages_are_reassembled(live_server: Any) -> None:
    live = live_server(gate_echo_app())
    with connect(ws_url(live), open_timeout=T) as ws:
        ws.send(["frag", "men", "ted"])
        assert ws.recv(T) == "fragmented"
        ws.send([b"\x01", b"\x02\x03"])
        assert ws.recv(T) == b"\x01\x02\x03"


def test_ping_is_answered_while_the_app_receives(live_server: Any) -> None:
    live = live_server(gate_echo_app())
    with connect(ws_url(live), open_timeout=T) as ws:
        pong = ws.ping(b"are you there")
        assert pong.wait(T)
        ws.send("still echoing")
        assert ws.recv(T) == "still echoing"


def test_the_server_pings_an_idle_client(live_server: Any) -> None:
    live = live_server(gate_echo_app(), websocket_ping_interval=0.05)
    pinged = threading.Event()
    with connect(ws_url(live), open_timeout=T) as ws:
        # the client answers pings itself; the server's ping shows as activity
        original = ws.protocol.receive_data

        def spy(data: bytes) -> None:
            if data[:1] == b"\x89":  # a FIN ping frame from the server
                pinged.set()
            original(data)

        ws.protocol.receive_data = spy  # type: ignore[method-assign]
        assert pinged.wait(T)
        ws.send("after the ping")
        assert ws.recv(T) == "after the ping"


def test_an_unanswered_ping_closes_the_connection(live_server: Any) -> None:
    outcomes: queue.Queue[Any] = queue.Queue()
    live = live_server(gate_echo_app(outcomes), websocket_ping_interval=0.05,
                       websocket_ping_timeout=0.1)
    sock = raw_upgrade(live)  # a client that never answers
    exc = outcomes.get(timeout=T)
    assert isinstance(exc, ConnectionClosed) and exc.code == 1006
    sock.close()


# -- closing ----------------------------------------------------------------------------
def test_client_close_reaches_the_app_with_its_code(live_server: Any) -> None:
    outcomes: queue.Queue[Any] = queue.Queue()
    live = live_server(gate_echo_app(outcomes))
    with connect(ws_url(live), open_timeout=T) as ws:
        ws.close(4321, "done here")
    exc = outcomes.get(timeout=T)
    assert isinstance(exc, ConnectionClosed)
    assert (exc.code, exc.reason) == (4321, "done here")


def test_app_close_with_a_code(live_server: Any) -> None:
    live = live_server(gate_echo_app())
    with connect(ws_url(live), open_timeout=T) as ws:
        ws.send("close-4000")
        with pytest.raises(ClientClosed):
            ws.recv(T)
        assert (ws.close_code, ws.close_reason) == (4000, "asked to")


def test_an_app_that_ends_closes_with_1000_and_one_that_fails_with_1011(live_server: Any) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Iterator[Any]:
        gate = environ["cogen"]
        yield gate.websocket.accept()
        ws = gate.result
        yield ws.receive()
        if gate.result == "fail":
            raise RuntimeError("the app failed")

    live = live_server(app)
    for message, code in (("end", 1000), ("fail", 1011)):
        with connect(ws_url(live), open_timeout=T) as ws:
            ws.send(message)
            with pytest.raises(ClientClosed):
                ws.recv(T)
            assert ws.close_code == code


def test_graceful_stop_sends_going_away(live_server: Any) -> None:
    outcomes: queue.Queue[Any] = queue.Queue()
    live = live_server(gate_echo_app(outcomes))
    with connect(ws_url(live), open_timeout=T) as ws:
        ws.send("x")
        assert ws.recv(T) == "x"
        live.sched.call_soon_threadsafe(live.server.shutdown, 5.0)
        with pytest.raises(ClientClosed):
            ws.recv(T)
        assert ws.close_code == 1001
    exc = outcomes.get(timeout=T)
    assert isinstance(exc, ConnectionClosed) and exc.code == 1001
    live.thread.join(T)
    assert not live.thread.is_alive(), "the server waited past the close handshake"


def test_a_client_that_vanishes_is_noticed(live_server: Any) -> None:
    outcomes: queue.Queue[Any] = queue.Queue()
    live = live_server(gate_echo_app(outcomes))
    sock = raw_upgrade(live)
    sock.close()  # no close frame
    exc = outcomes.get(timeout=T)
    assert isinstance(exc, ConnectionClosed) and exc.code == 1006


# -- negotiation --------------------------------------------------------------------------
def test_subprotocol_negotiation(live_server: Any) -> None:
    live = live_server(gate_echo_app(subprotocol="superchat"))
    with connect(ws_url(live), subprotocols=["chat", "superchat"], open_timeout=T) as ws:
        assert ws.subprotocol == "superchat"
        ws.send("hi")
        assert ws.recv(T) == "hi"


def test_a_subprotocol_the_client_did_not_offer_is_an_error_in_the_app(live_server: Any) -> None:
    seen: queue.Queue[Any] = queue.Queue()

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[Any]:
        gate = environ["cogen"]
        yield gate.websocket.accept(subprotocol="nope")
        seen.put(gate.result)
        start_response("400 Bad Request", [("Content-Type", "text/plain")])
        yield b"no"

    live = live_server(app)
    with pytest.raises(websockets.exceptions.InvalidStatus):
        connect(ws_url(live), subprotocols=["chat"], open_timeout=T)
    assert isinstance(seen.get(timeout=T), ValueError)


@pytest.mark.parametrize("server_side", [True, False], ids=["on", "off"])
def test_compression_is_negotiated_unless_turned_off(live_server: Any, server_side: bool) -> None:
    live = live_server(gate_echo_app(), websocket_compression=server_side)
    with connect(ws_url(live), compression="deflate", open_timeout=T) as ws:
        agreed = ws.response.headers.get("Sec-WebSocket-Extensions") or ""
        assert ("permessage-deflate" in agreed) is server_side
        text = "compressible " * 5000
        ws.send(text)
        assert ws.recv(T) == text
    with connect(ws_url(live), compression=None, open_timeout=T) as ws:
        assert "Sec-WebSocket-Extensions" not in ws.response.headers
        ws.send("plain")
        assert ws.recv(T) == "plain"


@pytest.mark.parametrize("version", ["12", ""])
def test_a_bad_handshake_is_refused(live_server: Any, version: str) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Any:
        return environ["cogen"].websocket.serve(gen_handler)

    live = live_server(app)
    with socket.create_connection((live.host, live.port), timeout=T) as sock:
        key = base64.b64encode(os.urandom(16)).decode()
        head = (f"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\n")
        if version:
            head += f"Sec-WebSocket-Version: {version}\r\n"
        sock.sendall(head.encode() + b"\r\n")
        reply = read_head(sock)
    if version:
        assert reply.startswith(b"HTTP/1.1 426 ")
        assert b"Sec-WebSocket-Version: 13" in reply
    else:
        assert reply.startswith(b"HTTP/1.1 400 ")


def test_handshake_error_reaches_a_gate_app(live_server: Any) -> None:
    seen: queue.Queue[Any] = queue.Queue()

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[Any]:
        gate = environ["cogen"]
        yield gate.websocket.accept()
        seen.put(gate.result)
        start_response("400 Bad Request", [("Content-Type", "text/plain")])
        yield b"not a websocket"

    import requests
    live = live_server(app)
    resp = requests.get(f"{live.url}/ws", timeout=T)
    assert resp.status_code == 400
    assert isinstance(seen.get(timeout=T), HandshakeError)


@pytest.mark.parametrize("origins", [["https://good.example"], "HTTPS://Good.Example/",
                                     lambda origin: origin.endswith(".example")],
                         ids=["list", "one-string", "function"])
def test_origins_lets_the_allowed_pages_in_and_refuses_others_with_403(live_server: Any,
                                                                       origins: Any) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Any:
        return environ["cogen"].websocket.serve(gen_handler, origins=origins)

    live = live_server(app)
    with connect(ws_url(live), origin="https://good.example", open_timeout=T) as ws:
        ws.send("abc")
        assert ws.recv(T) == "cba"
    with connect(ws_url(live), open_timeout=T) as ws:  # no Origin: not a browser
        ws.send("no origin")
        assert ws.recv(T) == "nigiro on"
    from websockets.exceptions import InvalidStatus
    with pytest.raises(InvalidStatus) as refused:
        connect(ws_url(live), origin="https://evil.test", open_timeout=T)
    assert refused.value.response.status_code == 403
    assert b"not allowed" in refused.value.response.body


def test_an_origin_refusal_reaches_a_gate_app_as_a_403_handshake_error(live_server: Any) -> None:
    seen: queue.Queue[Any] = queue.Queue()

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[Any]:
        gate = environ["cogen"]
        yield gate.websocket.accept(origins=["https://good.example"])
        seen.put(gate.result)
        start_response(f"{gate.result.status} Forbidden", [("Content-Type", "text/plain")])
        yield b"go away"

    live = live_server(app)
    from websockets.exceptions import InvalidStatus
    with pytest.raises(InvalidStatus) as refused:
        connect(ws_url(live), origin="https://evil.test", open_timeout=T)
    assert refused.value.response.status_code == 403
    error = seen.get(timeout=T)
    assert isinstance(error, HandshakeError) and error.status == 403


# -- limits and faults ------------------------------------------------------------------
def raw_upgrade(live: Any) -> socket.socket:
    sock = socket.create_connection((live.host, live.port), timeout=T)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    assert read_head(sock).startswith(b"HTTP/1.1 101 ")
    return sock


def read_head(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """A masked client frame."""
    mask = os.urandom(4)
    first = (0x80 if fin else 0) | opcode
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", first, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", first, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", first, 0x80 | 127, n)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def close_code_of(sock: socket.socket) -> int:
    """Read frames until the server's close frame; its code."""
    data = b""
    while True:
        chunk = sock.recv(65536)
        assert chunk, f"closed without a close frame; got {data[:100]!r}"
        data += chunk
        while len(data) >= 2:
            opcode, n = data[0] & 0x0F, data[1] & 0x7F
            start = 2
            if n == 126:
                n, start = struct.unpack("!H", data[2:4])[0], 4
            elif n == 127:
                n, start = struct.unpack("!Q", data[2:10])[0], 10
            if len(data) < start + n:
                break
            payload, data = data[start:start + n], data[start + n:]
            if opcode == 0x8:
                return int(struct.unpack("!H", payload[:2])[0])


def test_an_oversized_message_is_closed_with_1009(live_server: Any) -> None:
    outcomes: queue.Queue[Any] = queue.Queue()
    live = live_server(gate_echo_app(outcomes), websocket_max_message=1000)
    with connect(ws_url(live), open_timeout=T, max_size=None) as ws:
        ws.send("small")
        assert ws.recv(T) == "small"
        ws.send("x" * 1001)
        with pytest.raises(ClientClosed):
            ws.recv(T)
        assert ws.close_code == 1009
    assert outcomes.get(timeout=T).code == 1009


def test_an_oversized_fragmented_message_is_closed_with_1009(live_server: Any) -> None:
    live = live_server(gate_echo_app(), websocket_max_message=1000)
    sock = raw_upgrade(live)
    sock.sendall(frame(0x2, b"a" * 600, fin=False) + frame(0x0, b"b" * 600, fin=True))
    assert close_code_of(sock) == 1009
    sock.close()


def test_invalid_utf8_in_text_is_closed_with_1007(live_server: Any) -> None:
    outcomes: queue.Queue[Any] = queue.Queue()
    live = live_server(gate_echo_app(outcomes))
    sock = raw_upgrade(live)
    sock.sendall(frame(0x1, b"ok \xff\xfe not utf-8"))
    assert close_code_of(sock) == 1007
    assert outcomes.get(timeout=T).code == 1007
    sock.close()


@pytest.mark.parametrize("bad", [
    pytest.param(bytes([0x83, 0x80]) + b"\0\0\0\0", id="reserved-opcode"),
    pytest.param(bytes([0x81, 0x05]) + b"hello", id="unmasked"),
    pytest.param(frame(0x9, b"p" * 200), id="long-control-frame"),
])
def test_protocol_errors_are_closed_with_1002(live_server: Any, bad: bytes) -> None:
    live = live_server(gate_echo_app())
    sock = raw_upgrade(live)
    sock.sendall(bad)
    assert close_code_of(sock) == 1002
    sock.close()


def test_a_client_that_stops_reading_holds_the_sender_not_memory(live_server: Any) -> None:
    sent: queue.Queue[Any] = queue.Queue()
    chunk = os.urandom(65536)

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[Any]:
        gate = environ["cogen"]
        yield gate.websocket.accept(compression=False)
        ws = gate.result
        count = 0
        while count < 2000:  # 125 MiB if nothing pushed back
            yield ws.send(chunk, timeout=0.5)
            if gate.exception:
                sent.put((count, gate.result))
                return
            count += 1
        sent.put((count, None))

    live = live_server(app)
    sock = raw_upgrade(live)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    count, exc = sent.get(timeout=T)
    sock.close()
    assert isinstance(exc, events.OperationTimeout), "send did not wait for the client"
    assert count * len(chunk) < 32 * 1024 * 1024, f"{count} messages queued for a client that reads nothing"


def test_a_thousand_concurrent_websockets_each_echo_ten_messages(live_server: Any) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4096:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
    live = live_server(gate_echo_app(), backlog=2048)
    url = ws_url(live)

    async def one(n: int) -> int:
        from websockets.asyncio.client import connect as aconnect
        ok = 0
        async with aconnect(url, open_timeout=30, compression=None) as ws:
            for k in range(10):
                text = f"{n}:{k}"
                await ws.send(text)
                if await ws.recv() == text:
                    ok += 1
        return ok

    async def main() -> list[int]:
        return await asyncio.wait_for(asyncio.gather(*(one(n) for n in range(1000))), 50)

    try:
        results = asyncio.run(main())
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert sum(results) == 10_000


def test_random_bytes_after_the_upgrade_never_hurt_the_server(live_server: Any) -> None:
    """Fuzz: garbage, truncated and oversized frames, then a close, end that WebSocket only, at once."""
    import random
    rng = random.Random(1234)
    outcomes: queue.Queue[Any] = queue.Queue()
    live = live_server(gate_echo_app(outcomes), websocket_max_message=4096,
                       websocket_close_timeout=0.2)
    shapes = [
        lambda: os.urandom(rng.randrange(1, 300)),
        lambda: frame(rng.choice([0x0, 0x1, 0x2, 0x8, 0x9, 0xA, 0x3, 0xB]), os.urandom(rng.randrange(0, 200)),
                      fin=rng.random() < 0.7),
        lambda: frame(0x2, os.urandom(rng.randrange(0, 100))),  # a valid message: echoed
        lambda: frame(0x1, os.urandom(rng.randrange(0, 50)))[:rng.randrange(1, 10)],
        lambda: bytes([0x82, 0xFF]) + struct.pack("!Q", rng.randrange(1 << 40, 1 << 62)) + b"\0\0\0\0",
    ]
    for _ in range(60):
        sock = raw_upgrade(live)
        try:
            sock.sendall(b"".join(rng.choice(shapes)() for _ in range(rng.randrange(1, 4))))
        except OSError:
            pass  # the server closed first
        sock.close()
    # each ended with the connection (a data + FIN in one read included), well
    # before the app's receive timeout, and the server still echoes
    for _ in range(60):
        assert isinstance(outcomes.get(timeout=T / 2), ConnectionClosed)
    with connect(ws_url(live), open_timeout=T) as ws:
        ws.send("still here")
        assert ws.recv(T) == "still here"


def test_with_threads_served_websockets_do_not_hold_the_apps_threads(live_server: Any) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Any:
        return environ["cogen"].websocket.serve(gen_handler)

    live = live_server(app, threads=2)
    from contextlib import ExitStack
    with ExitStack() as stack:
        sockets = [stack.enter_context(connect(ws_url(live), open_timeout=T)) for _ in range(6)]
        for n, ws in enumerate(sockets):  # all six open at once, on two threads
            ws.send(f"socket {n}")
        assert [ws.recv(T) for ws in sockets] == [f"socket {n}"[::-1] for n in range(6)]


def test_writers_waiting_for_the_socket_all_end_when_the_client_goes_away(live_server: Any) -> None:
    """One coroutine holds the socket, two wait in line; the client resets: all three see ConnectionClosed.

    When the connection is lost, every writer in the line must be woken and
    told, not only the next one (the third used to wait forever).
    """
    outcomes: queue.Queue[Any] = queue.Queue()
    huge = os.urandom(16 * 1024 * 1024)  # far more than the socket buffers hold

    @coroutine
    def sender(ws: Any, n: int, data: bytes) -> Any:
        try:
            while True:
                yield ws.send(data, timeout=T)
        except BaseException as exc:  # noqa: BLE001 - the outcome is what the test checks
            outcomes.put((n, exc))

    @coroutine
    def handler(ws: Any) -> Any:
        first = yield events.AddCoro(sender, args=(ws, 0, huge))
        while not ws._writer.sending:  # the first is stuck in its send: the socket is full
            yield events.Sleep(0)
        others = []
        for n in (1, 2):
            others.append((yield events.AddCoro(sender, args=(ws, n, b"x"))))
        yield events.Sleep(0)
        assert len(ws._writer.queue) == 2, "the two other writers should wait in line"
        outcomes.put("queued")
        for child in [first, *others]:
            yield events.Join(child, timeout=T)

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        return environ["cogen"].websocket.serve(handler, compression=False)

    live = live_server(app)
    sock = raw_upgrade(live)
    assert outcomes.get(timeout=T) == "queued"
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()  # a reset: the writer holding the socket fails, the waiting ones must hear of it
    seen = sorted(outcomes.get(timeout=T) for _ in range(3))
    assert [n for n, _ in seen] == [0, 1, 2]
    for n, exc in seen:
        assert isinstance(exc, ConnectionClosed), (n, exc)
