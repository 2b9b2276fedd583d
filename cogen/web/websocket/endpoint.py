"""One accepted WebSocket: framing, receive and send as operations, pings, the close handshake.

:class:`WebSocket` owns the wsproto state machine and the socket's read
side; a :class:`FrameWriter` owns its write side (one writer at a time,
control frames slipped in between messages). ``receive()`` and ``send()``
are operations with a fast path: a message already read, or a frame the
socket takes at once, completes without a scheduler round trip.
"""
from __future__ import annotations

import logging
import ssl
import time
from collections import deque
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

from cogen.core import coroutines as _coroutines
from cogen.core._sockets_errors import ConnectionClosed as _SocketConnectionClosed
from cogen.core.coroutines import Coroutine
from cogen.core.events import OperationTimeout, TimedOperation
from cogen.core.io import PARKED, WOULD_BLOCK, ClientDisconnected, WaitIO, send_all
from cogen.core.util import PENDING

if TYPE_CHECKING:
    from wsproto.connection import Connection

__all__ = ["ConnectionClosed", "FrameWriter", "WebSocket", "load_wsproto"]

log = logging.getLogger("cogen.web.websocket")
_monotonic = time.monotonic

#: RFC 6455 §7.4.1 close codes used here.
NORMAL, GOING_AWAY, PROTOCOL_ERROR, INVALID_DATA, TOO_BIG, INTERNAL_ERROR = 1000, 1001, 1002, 1007, 1009, 1011
ABNORMAL = 1006
#: Bytes handed to the frame parser at a time when messages are compressed:
#: inflating a small slice bounds what one step can allocate (deflate expands
#: at most about 1032 times), so the message size limit holds before the memory.
_INFLATE_SLICE = 4096


#: wsproto's names, bound by :func:`load_wsproto` at the first upgrade (it is an optional extra)
_OPEN: Any = None
_REMOTE_CLOSING: Any = None
_CLOSED: Any = None
_Message: Any = None
_TextMessage: Any = None
_BytesMessage: Any = None
_Ping: Any = None
_CloseConnection: Any = None


def load_wsproto() -> None:
    """Import wsproto once; RuntimeError naming the extra when it is missing."""
    global _OPEN, _REMOTE_CLOSING, _CLOSED, _Message, _TextMessage, _BytesMessage, _Ping, _CloseConnection
    if _OPEN is not None:
        return
    try:
        from wsproto.connection import ConnectionState
        from wsproto.events import BytesMessage, CloseConnection, Message, Ping, TextMessage
    except ImportError:  # pragma: no cover - the extra is not installed
        raise RuntimeError("WebSocket support needs wsproto: pip install 'cogen[websocket]'") from None
    _REMOTE_CLOSING, _CLOSED = ConnectionState.REMOTE_CLOSING, ConnectionState.CLOSED
    _Message, _TextMessage, _BytesMessage = Message, TextMessage, BytesMessage
    _Ping, _CloseConnection = Ping, CloseConnection
    _OPEN = ConnectionState.OPEN


class ConnectionClosed(_SocketConnectionClosed):
    """The WebSocket is closed: by the peer, by us, or the connection was lost.

    Attributes:
        code: the close code (RFC 6455 §7.4: 1000 normal, 1001 going away,
            1002 protocol error, 1006 lost without a close frame, 1007
            invalid data, 1009 message too big, ...).
        reason: the close reason text ("" if none).
    """

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(f"WebSocket closed with code {code}" + (f": {reason}" if reason else ""))
        self.code = code
        self.reason = reason


class FrameWriter:
    """The write side of one WebSocket: whole frames, one writer at a time.

    A message frame goes out whole before the next one starts; control
    frames (pongs, close answers) wait in :attr:`out` until the socket is
    free and go out first. The socket's buffer is the only queue: a writer
    that cannot send it all waits for the socket (with the send timeout).
    """

    __slots__ = ("out", "queue", "sched", "send_timeout", "sending", "sock", "wwait")

    def __init__(self, sched: Any, sock: Any, fd: int, send_timeout: float | None) -> None:
        self.sched = sched
        self.sock = sock
        self.wwait = WaitIO(fd, sock)
        self.send_timeout = send_timeout
        #: control frames (and the unsent tail of a frame) not sent yet
        self.out = b""
        #: a writer holds the socket
        self.sending = False
        #: coroutines waiting for the socket, in order
        self.queue: deque[Coroutine] = deque()

    def control(self, data: bytes) -> None:
        """Send a control frame now if the socket is free, else after the current writer."""
        self.out += data
        if not self.sending:
            self.flush()

    def flush(self) -> None:
        """Send what the socket takes of the pending control frames; drop them if it failed."""
        out = self.out
        if not out:
            return
        try:
            sent = self.sock.send(out)
        except (BlockingIOError, InterruptedError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
            sent = 0
        except OSError:
            self.out = b""
            return  # the receiver finds out at its next read
        self.out = out[sent:]

    def try_send(self, frame: bytes) -> int:
        """Send what the socket takes now (pending control frames first); bytes left.

        What is left stays in :attr:`out` for :meth:`write_rest`. Raises the
        ``OSError`` of a failed send.
        """
        data = self.out + frame if self.out else frame
        self.out = b""
        try:
            sent = self.sock.send(data)
        except (BlockingIOError, InterruptedError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
            sent = 0
        left = len(data) - int(sent)
        if left:
            self.out = data[sent:]
        return left

    def write_rest(self, timeout: float | None) -> Generator[Any, Any, None]:
        """Send the bytes left in :attr:`out`, waiting for the socket; then :meth:`release` it.

        Raises ``ClientDisconnected`` if the peer went away, ``OperationTimeout``
        after ``timeout`` (default: the send timeout).
        """
        try:
            data, self.out = self.out, b""
            yield from send_all(self.sock, self.wwait, data,
                                timeout if timeout is not None else self.send_timeout)
        finally:
            self.release()

    def release(self) -> None:
        """Let go of the socket: pending control frames go out, the next writer goes on."""
        self.sending = False
        if self.out:
            self.flush()
        queue = self.queue
        while queue:
            waiting = queue.popleft()
            if waiting.running:
                self.sched.resume(waiting, None)
                break


class WebSocket:
    """One accepted WebSocket connection.

    Attributes:
        subprotocol: the agreed subprotocol, or None.
        compressed: per-message deflate was agreed.
        closed: no more messages can be sent or received.
        close_code, close_reason: how it closed (None until then).

    Every method returns an operation: yield it through the gate, or from a
    coroutine, or ``await`` it. :meth:`receive` and :meth:`send` complete
    without a scheduler round trip when the data is there (or the socket
    takes it) at once.
    """

    def __init__(self, server: Any, conn: Any, proto: Connection, subprotocol: str | None,
                 compressed: bool, max_message: int | None, unread: bytes = b"") -> None:
        self._server = server
        self._sched = server.sched
        self._sock = conn.sock
        self._fd = conn.fd
        self._proto = proto
        self.subprotocol = subprotocol
        self.compressed = compressed
        self.max_message = max_message
        self.closed = False
        self.close_code: int | None = None
        self.close_reason: str | None = None
        opts = server.options
        self._ping_interval: float | None = opts.websocket_ping_interval or None
        self._ping_timeout: float | None = opts.websocket_ping_timeout or None
        self._close_timeout: float = opts.websocket_close_timeout or 0.0
        self._is_tls = isinstance(self._sock, ssl.SSLSocket)
        self._writer = FrameWriter(self._sched, self._sock, conn.fd, conn.send_timeout)
        #: bytes read from the socket, not given to the parser yet
        self._raw = unread
        self._drained = False
        self._want_write = False
        self._parts: list[Any] = []
        self._size = 0
        #: the coroutine parked in receive(), if any (one at a time)
        self._receiver: Any = None
        self._last_seen = _monotonic()
        self._ping_sent: float | None = None
        self._ping_timer: Any = None
        if self._ping_interval is not None:
            self._ping_timer = self._sched.call_later(self._ping_interval, self._ping_tick)
        server.websockets.add(self)

    # -- the application's operations ------------------------------------------------
    def receive(self, timeout: float | None = None) -> _Receive:
        """The next message: ``str`` for text, ``bytes`` for binary.

        ``timeout`` bounds the wait (``OperationTimeout``; the WebSocket stays
        open). Raises :class:`ConnectionClosed` (with the code) when the peer
        closes, the connection is lost or a limit is broken; ``RuntimeError``
        if another coroutine is receiving on it.
        """
        return _Receive(self, timeout)

    def send(self, data: str | bytes, timeout: float | None = None) -> _Send:
        """Send one message: text for ``str``, binary for bytes-like.

        Waits while the client does not read, at most ``timeout`` seconds
        (default: the server's ``send_timeout``). Raises
        :class:`ConnectionClosed` once closed, ``TypeError`` for other data.
        """
        return _Send(self, data, timeout)

    def ping(self, payload: bytes = b"") -> Coroutine:
        """Send a ping (the client's pong is handled by :meth:`receive`)."""
        return Coroutine(self._send_frame, lambda: self._proto.send(_Ping(payload=payload)), None)

    def close(self, code: int = NORMAL, reason: str = "") -> Coroutine:
        """Start the close handshake and wait (bounded) for the peer's close.

        Result: None. The TCP connection is closed when the response ends.
        """
        return Coroutine(self._close, code, reason)

    # -- the server's side -------------------------------------------------------------
    def finish(self, failed: bool) -> Generator[Any, Any, None]:
        """After the application's response: close cleanly (1000, 1011 if it failed)."""
        if not self.closed:
            try:
                yield from self._close(INTERNAL_ERROR if failed else NORMAL, "")
            except (ConnectionClosed, OperationTimeout, ClientDisconnected):
                pass
            self._mark_closed(self.close_code or ABNORMAL, self.close_reason or "")

    def going_away(self) -> Generator[Any, Any, None]:
        """The server stops: tell the client (1001); the receiver sees its answer."""
        if self.closed or self._proto.state is not _OPEN:
            return
        self.close_code, self.close_reason = GOING_AWAY, "the server is stopping"
        try:
            yield from self._send_frame(
                lambda: self._proto.send(_CloseConnection(code=GOING_AWAY, reason="the server is stopping")),
                None, ignore_errors=True)
        except OperationTimeout:
            pass

    # -- receiving (called by _Receive.process) ----------------------------------------
    def _receive_now(self) -> Any:
        """A whole message if one can be had without waiting, else _MORE (wait for the socket)."""
        while True:
            message = self._next_message()
            if message is not None:
                return message
            if self._raw:
                self._feed()
                continue
            if self._drained:
                # the last read took all there was: the next message has rarely
                # come yet, so wait for it rather than make a recv that fails
                # (a FIN that came with that data: the reactor says so at once)
                self._drained = False
                return _MORE
            try:
                data: bytes = self._sock.recv(65536)
            except WOULD_BLOCK:
                return _MORE
            except ssl.SSLWantWriteError:
                self._want_write = True
                return _MORE
            except OSError as exc:
                self._lost(f"the connection was lost: {exc}")
            if not data:
                self._lost("the client went away without a close frame")
            self._last_seen = _monotonic()
            self._ping_sent = None
            self._drained = len(data) < 65536 and not self._is_tls
            self._raw = data
            self._feed()

    def _feed(self) -> None:
        """Give the parser the bytes read: a slice at a time when messages are compressed."""
        raw = self._raw
        if self.compressed and len(raw) > _INFLATE_SLICE:
            self._raw = raw[_INFLATE_SLICE:]
            raw = raw[:_INFLATE_SLICE]
        else:
            self._raw = b""
        self._proto.receive_data(raw)

    def _next_message(self) -> Any:
        """Handle the events parsed so far; a whole message, or None for more bytes."""
        if self.closed:
            raise ConnectionClosed(self.close_code or ABNORMAL, self.close_reason or "")
        proto = self._proto
        for event in proto.events():
            if isinstance(event, _Message):
                data = event.data
                self._size += len(data) if isinstance(data, (bytes, bytearray)) else len(data.encode())
                if self.max_message is not None and self._size > self.max_message:
                    self._fail(TOO_BIG, f"message over {self.max_message} bytes")
                self._parts.append(data)
                if event.message_finished:
                    parts, self._parts, self._size = self._parts, [], 0
                    if isinstance(data, str):
                        return "".join(parts)
                    return b"".join(parts)
            elif isinstance(event, _Ping):
                self._writer.control(proto.send(event.response()))
            elif isinstance(event, _CloseConnection):
                if proto.state is _REMOTE_CLOSING:
                    # the peer closed: answer with the same code (RFC 6455 §5.5.1)
                    self._writer.control(proto.send(event.response()))
                    self._mark_closed(event.code, event.reason or "")
                    raise ConnectionClosed(event.code, event.reason or "")
                if proto.state is _CLOSED:  # the answer to our close
                    code, reason = self.close_code or event.code, self.close_reason or ""
                    self._mark_closed(code, reason)
                    raise ConnectionClosed(code, reason)
                # a protocol error found by the parser (1002, 1007, ...)
                self._fail(event.code, event.reason or "")
        return None

    def _lost(self, why: str) -> None:
        self._mark_closed(ABNORMAL, why)
        raise ConnectionClosed(ABNORMAL, why)

    def _fail(self, code: int, reason: str) -> None:
        """Close with ``code`` after a limit or protocol error; raises ConnectionClosed."""
        log.debug("closing a WebSocket with %s: %s", code, reason)
        if self._proto.state is _OPEN:
            self.close_code, self.close_reason = code, reason
            self._writer.control(self._proto.send(_CloseConnection(code=code, reason=reason[:120])))
        self._mark_closed(code, reason)
        self._conn_shutdown()
        raise ConnectionClosed(code, reason)

    # -- sending ----------------------------------------------------------------------
    def _try_send(self, frame: bytes) -> int:
        """The writer's try_send; a failed send closes the WebSocket (ConnectionClosed)."""
        try:
            return self._writer.try_send(frame)
        except OSError as exc:
            self._lost(f"send failed: {exc}")
            raise  # not reached: _lost raises

    def _write_rest(self, timeout: float | None) -> Generator[Any, Any, None]:
        """The writer's write_rest; a peer gone away closes the WebSocket (ConnectionClosed)."""
        try:
            yield from self._writer.write_rest(timeout)
        except ClientDisconnected as exc:
            self._lost(str(exc))

    def _send_frame(self, make: Callable[[], bytes], timeout: float | None,
                    ignore_errors: bool = False) -> Generator[Any, Any, None]:
        """Wait for the socket, then send the frame ``make()`` builds (in order, whole)."""
        writer = self._writer
        while writer.sending:
            me = _coroutines.current
            assert me is not None
            writer.queue.append(me)
            yield PARKED
        if self.closed or self._proto.state is not _OPEN:
            writer.release()  # pass the turn on: the next waiting writer finds it closed too
            if ignore_errors:
                return
            raise ConnectionClosed(self.close_code or ABNORMAL, self.close_reason or "closing")
        writer.sending = True
        try:
            left = self._try_send(make())
        except ConnectionClosed:
            writer.release()
            if ignore_errors:
                return
            raise
        if not left:
            writer.release()
            return
        try:
            yield from self._write_rest(timeout)
        except ConnectionClosed:
            if not ignore_errors:
                raise

    # -- pings ------------------------------------------------------------------------
    def _ping_tick(self) -> None:
        """From a timer: ping a client that has been quiet while a receive waits; drop a dead one."""
        self._ping_timer = None
        if self.closed:
            return
        now = _monotonic()
        interval = self._ping_interval or 1.0
        if self._ping_sent is not None and self._ping_timeout is not None:
            due = self._ping_sent + self._ping_timeout
            if now >= due:
                log.debug("WebSocket client did not answer a ping in %ss", self._ping_timeout)
                self._mark_closed(ABNORMAL, "no answer to a ping")
                self._conn_shutdown()  # wakes the receiver: its next read fails
                self._wake_receiver()
                return
            delay = due - now
        elif self._receiver is not None and now >= self._last_seen + interval:
            # only while a receive waits: else nobody would read the pong
            if not self._writer.sending and self._proto.state is _OPEN:
                self._writer.control(self._proto.send(_Ping(payload=b"cogen")))
                self._ping_sent = now
            delay = self._ping_timeout or interval
        else:
            delay = max(0.001, self._last_seen + interval - now) if self._receiver is not None else interval
        self._ping_timer = self._sched.call_later(delay, self._ping_tick)

    def _wake_receiver(self) -> None:
        receiver = self._receiver
        if receiver is not None:
            self._receiver = None
            self._sched.cancel(receiver, ConnectionClosed(ABNORMAL, self.close_reason or ""))

    # -- closing ----------------------------------------------------------------------
    def _close(self, code: int, reason: str) -> Generator[Any, Any, None]:
        if self._proto.state is _OPEN:
            self.close_code, self.close_reason = code, reason
            yield from self._send_frame(
                lambda: self._proto.send(_CloseConnection(code=code, reason=reason)), None,
                ignore_errors=True)
        yield from self._await_close()

    def _await_close(self) -> Generator[Any, Any, None]:
        """Read (and drop) messages until the peer's close frame, at most close_timeout."""
        if self.closed or self._receiver is not None:
            return
        deadline = _monotonic() + self._close_timeout
        self._ping_interval = None
        try:
            while not self.closed:
                yield _Receive(self, max(0.0, deadline - _monotonic()))
        except (ConnectionClosed, OperationTimeout):
            pass
        if not self.closed:
            self._mark_closed(self.close_code or ABNORMAL, self.close_reason or "")

    def _mark_closed(self, code: int, reason: str) -> None:
        if not self.closed:
            self.closed = True
            self.close_code, self.close_reason = code, reason
            self._server.websockets.discard(self)
            if self._ping_timer is not None:
                self._sched.cancel_call(self._ping_timer)
                self._ping_timer = None

    def _conn_shutdown(self) -> None:
        import socket
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def __repr__(self) -> str:
        state = f"closed {self.close_code}" if self.closed else "open"
        return f"<WebSocket {state} subprotocol={self.subprotocol!r}>"


_MORE = object()


class _Receive(TimedOperation):
    """``ws.receive()``: a message now if there is one, else park until the socket is readable."""

    __slots__ = ("ws",)

    def __init__(self, ws: WebSocket, timeout: float | None) -> None:
        TimedOperation.__init__(self, timeout)
        self.ws = ws

    def process(self, sched: Any, coro: Any) -> Any:
        ws = self.ws
        if ws._receiver is not None and ws._receiver is not coro:
            raise RuntimeError("another coroutine is already receiving on this WebSocket")
        ws._receiver = coro
        try:
            result = ws._receive_now()
        except BaseException:
            ws._receiver = None
            raise
        if result is _MORE:
            if ws._want_write:
                ws._want_write = False
                sched.wait_writable(ws._fd, ws._sock, self, coro)
            else:
                sched.wait_readable(ws._fd, ws._sock, self, coro)
            return PENDING
        ws._receiver = None
        return result

    def cleanup(self, sched: Any, coro: Any) -> None:
        """Timed out (or withdrawn): no longer the receiver."""
        if self.ws._receiver is coro:
            self.ws._receiver = None

    def __repr__(self) -> str:
        return f"<WebSocket.receive of {self.ws!r}>"


class _Send(TimedOperation):
    """``ws.send(data)``: done at once when the socket takes the frame, else the rest waits."""

    __slots__ = ("data", "send_timeout", "ws")

    def __init__(self, ws: WebSocket, data: Any, timeout: float | None) -> None:
        TimedOperation.__init__(self, None)
        if isinstance(data, str):
            self.data: Any = _TextMessage(data=data)
        elif isinstance(data, (bytes, bytearray, memoryview)):
            self.data = _BytesMessage(data=bytes(data))
        else:
            raise TypeError(f"a WebSocket message is str or bytes, not {type(data).__name__}")
        self.ws = ws
        self.send_timeout = timeout

    def process(self, sched: Any, coro: Any) -> Any:
        ws = self.ws
        if ws.closed or ws._proto.state is not _OPEN:
            raise ConnectionClosed(ws.close_code or ABNORMAL, ws.close_reason or "closing")
        event = self.data
        writer = ws._writer
        if writer.sending:  # another writer holds the socket: wait for it in a coroutine
            return Coroutine(ws._send_frame, lambda: ws._proto.send(event),
                             self.send_timeout).process(sched, coro)
        writer.sending = True
        try:
            left = ws._try_send(ws._proto.send(event))
        except BaseException:
            writer.release()
            raise
        if not left:
            writer.release()
            return None
        return Coroutine(ws._write_rest, self.send_timeout).process(sched, coro)

    def __repr__(self) -> str:
        return f"<WebSocket.send to {self.ws!r}>"
