"""WebSocket (RFC 6455) for WSGI applications, with coroutine send and receive.

Theory of operation
-------------------
A request that asks for an upgrade (``Upgrade: websocket``) reaches the
application as an ordinary WSGI call; ``environ['cogen'].websocket`` (a
:class:`WebSocketUpgrade`, true for such a request) lets it take the
connection over. Its :meth:`~WebSocketUpgrade.accept` is an operation: when
the application yields it, the server checks the handshake (RFC 6455
§4.2.1), negotiates a subprotocol and per-message deflate (RFC 7692), sends
``101 Switching Protocols`` and hands the socket, with any bytes already
read past the request head, to a :class:`WebSocket`. From then on the
connection speaks frames until the application's response ends, when the
server finishes the close handshake and closes the connection.

The :class:`WebSocket` owns the framing (``wsproto``, sans-IO) and the
socket. Its operations are coroutines the application yields (or awaits):
:meth:`~WebSocket.receive` reads frames until a whole message is there,
answering pings and the peer's close on the way; :meth:`~WebSocket.send`
waits while the client does not read (backpressure: the kernel's socket
buffer is the only queue, so a client that stops reading holds the sender,
not the server's memory). While a receive waits, the server pings an idle
client every ``websocket_ping_interval`` seconds and gives up on it after
``websocket_ping_timeout`` more. Limits: a message over
``websocket_max_message`` bytes is refused with 1009, invalid UTF-8 in a
text message with 1007, any other protocol error with 1002; each raises
:class:`ConnectionClosed` in the receiving coroutine, with the code.

Two ways to use it: yield the operations through the gate, reading each
outcome from ``environ['cogen'].result`` as with every operation; or return
``environ['cogen'].websocket.serve(handler)`` and write ``handler(ws)`` as a
``@coroutine`` generator or an ``async def`` (``msg = await ws.receive()``).
"""
from __future__ import annotations

import base64
import binascii
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
from cogen.errors import CogenError
from cogen.web import http as _http

if TYPE_CHECKING:
    from wsproto.connection import Connection

__all__ = ["ConnectionClosed", "HandshakeError", "WebSocket", "WebSocketUpgrade"]

log = logging.getLogger("cogen.web.websocket")
_monotonic = time.monotonic

#: RFC 6455 §7.4.1 close codes used here.
NORMAL, GOING_AWAY, PROTOCOL_ERROR, INVALID_DATA, TOO_BIG, INTERNAL_ERROR = 1000, 1001, 1002, 1007, 1009, 1011
ABNORMAL = 1006
#: Bytes handed to the frame parser at a time when messages are compressed:
#: inflating a small slice bounds what one step can allocate (deflate expands
#: at most about 1032 times), so the message size limit holds before the memory.
_INFLATE_SLICE = 4096


#: wsproto's names, bound by :func:`_load_wsproto` at the first upgrade (it is an optional extra)
_OPEN: Any = None
_REMOTE_CLOSING: Any = None
_CLOSED: Any = None
_Message: Any = None
_TextMessage: Any = None
_BytesMessage: Any = None
_Ping: Any = None
_CloseConnection: Any = None


def _load_wsproto() -> None:
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


class HandshakeError(CogenError):
    """The request cannot be upgraded; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _tokens(value: str | None) -> list[str]:
    return [t.strip().lower() for t in (value or "").split(",") if t.strip()]


class WebSocketUpgrade:
    """``environ['cogen'].websocket``: take a request's connection over as a WebSocket.

    True (``bool()``) when the request asks for a WebSocket upgrade
    (``Upgrade: websocket``); an application answers other requests as
    usual. ``subprotocols`` lists what the client offered, in its order.
    """

    def __init__(self, server: Any = None, conn: Any = None, response: Any = None,
                 environ: dict[str, Any] | None = None) -> None:
        self._server = server
        self._conn = conn
        self._response = response
        self._environ = environ if environ is not None else {}
        self._accepted = False
        self.requested = "websocket" in _tokens(self._environ.get("HTTP_UPGRADE"))
        self.subprotocols = [p.strip() for p in self._environ.get("HTTP_SEC_WEBSOCKET_PROTOCOL", "")
                             .split(",") if p.strip()]

    def __bool__(self) -> bool:
        return self.requested

    def check(self) -> None:
        """Raise :class:`HandshakeError` unless the request is a valid upgrade (RFC 6455 §4.2.1)."""
        env = self._environ
        if not self.requested or self._server is None:
            raise HandshakeError("not a WebSocket upgrade request (no 'Upgrade: websocket')")
        if env.get("REQUEST_METHOD") != "GET" or env.get("SERVER_PROTOCOL") != "HTTP/1.1":
            raise HandshakeError("a WebSocket upgrade must be an HTTP/1.1 GET")
        if "upgrade" not in _tokens(env.get("HTTP_CONNECTION")):
            raise HandshakeError("a WebSocket upgrade needs 'Connection: Upgrade'")
        version = env.get("HTTP_SEC_WEBSOCKET_VERSION", "").strip()
        if not version:
            raise HandshakeError("a WebSocket upgrade needs Sec-WebSocket-Version")
        if version != "13":
            raise HandshakeError(f"unsupported Sec-WebSocket-Version {version!r} (this server speaks 13)",
                                 426)
        key = env.get("HTTP_SEC_WEBSOCKET_KEY", "").strip()
        try:
            if len(base64.b64decode(key, validate=True)) != 16:
                raise ValueError
        except (ValueError, binascii.Error):
            raise HandshakeError(f"invalid Sec-WebSocket-Key {key!r}") from None
        if env.get("CONTENT_LENGTH") not in (None, "", "0") or "HTTP_TRANSFER_ENCODING" in env:
            raise HandshakeError("a WebSocket upgrade request has no body")

    def accept(self, subprotocol: str | None = None, *, compression: bool | None = None,
               max_message: int | None = None) -> Coroutine:
        """The operation that upgrades the connection; result: the :class:`WebSocket`.

        Args:
            subprotocol: one of :attr:`subprotocols` to agree on (None: none).
            compression: negotiate per-message deflate if the client offers
                it (default: the server's ``websocket_compression`` option).
            max_message: the largest message to accept, in bytes (default:
                ``websocket_max_message``).
        Raises (in the coroutine): :class:`HandshakeError` if the request is
        not a valid upgrade (nothing is sent: the application answers, with
        ``error.status``), ``ValueError`` for a subprotocol the client did not
        offer, ``RuntimeError`` if the response has started or it was
        accepted already.
        """
        return Coroutine(self._accept, subprotocol, compression, max_message)

    def _accept(self, subprotocol: str | None, compression: bool | None,
                max_message: int | None) -> Generator[Any, Any, WebSocket]:
        self.check()
        response, conn, opts = self._response, self._conn, self._server.options
        if self._accepted or response.headers_sent or response.pending is not None:
            raise RuntimeError("the response has already started; cannot upgrade it")
        if subprotocol is not None and subprotocol not in self.subprotocols:
            raise ValueError(f"subprotocol {subprotocol!r} was not offered (offered: {self.subprotocols})")
        _load_wsproto()
        from wsproto.connection import Connection, ConnectionType
        from wsproto.extensions import PerMessageDeflate
        from wsproto.handshake import server_extensions_handshake
        from wsproto.utilities import generate_accept_token
        self._accepted = True
        lines = [b"HTTP/1.1 101 Switching Protocols", b"Upgrade: websocket", b"Connection: Upgrade",
                 b"Sec-WebSocket-Accept: " + generate_accept_token(
                     self._environ["HTTP_SEC_WEBSOCKET_KEY"].strip().encode("ascii"))]
        if subprotocol is not None:
            lines.append(b"Sec-WebSocket-Protocol: " + subprotocol.encode("latin-1"))
        extensions: list[Any] = []
        offers = self._environ.get("HTTP_SEC_WEBSOCKET_EXTENSIONS")
        if offers and (opts.websocket_compression if compression is None else compression):
            deflate = PerMessageDeflate()
            agreed = server_extensions_handshake([o.strip() for o in offers.split(",")], [deflate])
            if agreed is not None:
                lines.append(b"Sec-WebSocket-Extensions: " + agreed)
                extensions.append(deflate)
        if opts.ident:
            lines.append(b"Server: " + opts.ident.encode("latin-1"))
        response.status = "101 Switching Protocols"
        response.headers_sent = True
        response.has_body = False
        response.keep_alive = False
        unread = conn.hand_over()
        ws = WebSocket(self._server, conn, Connection(ConnectionType.SERVER, extensions),
                       subprotocol, bool(extensions),
                       max_message if max_message is not None else opts.websocket_max_message)
        ws._raw = unread
        response.switched = ws
        yield from conn.send(b"\r\n".join(lines) + b"\r\n\r\n")
        return ws

    def serve(self, handler: Callable[[WebSocket], Any], subprotocol: str | None = None,
              **accept_options: Any) -> list[Any]:
        """A WSGI response that upgrades and runs ``handler(ws)`` as a coroutine.

        ``handler`` is a ``@coroutine`` generator function or an ``async
        def`` taking the :class:`WebSocket`; the connection is closed (with
        1000, or 1011 if the handler failed) when it returns. A request that
        cannot be upgraded gets the :class:`HandshakeError`'s status.
        Return it from the application: ``return ws_upgrade.serve(chat)``.
        """
        # a list: with threads=N the server frees the app's thread once it returns
        return [Coroutine(self._serve, handler, subprotocol, accept_options)]

    def _serve(self, handler: Callable[[WebSocket], Any], subprotocol: str | None,
               accept_options: dict[str, Any]) -> Generator[Any, Any, None]:
        try:
            ws = yield self.accept(subprotocol, **accept_options)
        except HandshakeError as exc:
            log.debug("WebSocket handshake refused: %s", exc)
            response = self._response
            response.headers_sent = True
            response.keep_alive = False
            response.status = f"{exc.status} Bad Request"
            extra = "Sec-WebSocket-Version: 13\r\n" if exc.status == 426 else ""
            data = _http.simple_response(exc.status, "Upgrade Required" if exc.status == 426
                                         else "Bad Request", f"{exc}\n",
                                         server=self._server.options.ident)
            if extra:
                data = data.replace(b"\r\n", b"\r\n" + extra.encode(), 1)
            yield from self._conn.send(data)
            return
        try:
            if getattr(handler, "is_cogen_coroutine", False):
                yield handler(ws)
            else:  # a generator function or an async def
                yield Coroutine(handler, ws)
        except ConnectionClosed:
            pass


#: ``environ['cogen'].websocket`` of a request that asks for no upgrade.
NOT_REQUESTED = WebSocketUpgrade()


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
                 compressed: bool, max_message: int | None) -> None:
        self._server = server
        self._sched = server.sched
        self._conn = conn
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
        self._send_timeout: float | None = conn.send_timeout
        self._is_tls = isinstance(self._sock, ssl.SSLSocket)
        self._wwait = WaitIO(conn.fd, self._sock)
        self._raw = b""
        self._drained = False
        self._want_write = False
        self._parts: list[Any] = []
        self._size = 0
        #: the coroutine parked in receive(), if any (one at a time)
        self._receiver: Any = None
        #: a writer holds the socket (frames go out whole, one after the other)
        self._sending = False
        self._send_queue: deque[Coroutine] = deque()
        #: control frames (pongs, close answers) not sent yet
        self._out = b""
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
                self._control(proto.send(event.response()))
            elif isinstance(event, _CloseConnection):
                if proto.state is _REMOTE_CLOSING:
                    # the peer closed: answer with the same code (RFC 6455 §5.5.1)
                    self._control(proto.send(event.response()))
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
            self._control(self._proto.send(_CloseConnection(code=code, reason=reason[:120])))
        self._mark_closed(code, reason)
        self._conn_shutdown()
        raise ConnectionClosed(code, reason)

    # -- sending ----------------------------------------------------------------------
    def _control(self, data: bytes) -> None:
        """Send a control frame now if the socket is free, else after the current writer."""
        self._out += data
        if not self._sending:
            self._flush_control()

    def _flush_control(self) -> None:
        out = self._out
        if not out:
            return
        try:
            sent = self._sock.send(out)
        except (BlockingIOError, InterruptedError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
            sent = 0
        except OSError:
            self._out = b""
            return  # the receiver finds out at its next read
        self._out = out[sent:]

    def _try_send(self, frame: bytes) -> int:
        """Send what the socket takes now (pending control frames first); bytes of ``frame`` left."""
        data = self._out + frame if self._out else frame
        self._out = b""
        try:
            sent = self._sock.send(data)
        except (BlockingIOError, InterruptedError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
            sent = 0
        except OSError as exc:
            self._lost(f"send failed: {exc}")
        left = len(data) - int(sent)
        if left:
            self._out = data[sent:]  # _write_rest sends it
        return left

    def _write_rest(self, timeout: float | None) -> Generator[Any, Any, None]:
        """Send the bytes left in ``_out``; the caller took the socket (``_sending``)."""
        try:
            data, self._out = self._out, b""
            yield from send_all(self._sock, self._wwait, data,
                                timeout if timeout is not None else self._send_timeout)
        except ClientDisconnected as exc:
            self._lost(str(exc))
        finally:
            self._release()

    def _send_frame(self, make: Callable[[], bytes], timeout: float | None,
                    ignore_errors: bool = False) -> Generator[Any, Any, None]:
        """Wait for the socket, then send the frame ``make()`` builds (in order, whole)."""
        while self._sending:
            me = _coroutines.current
            assert me is not None
            self._send_queue.append(me)
            yield PARKED
        if self.closed or self._proto.state is not _OPEN:
            if ignore_errors:
                return
            raise ConnectionClosed(self.close_code or ABNORMAL, self.close_reason or "closing")
        self._sending = True
        try:
            left = self._try_send(make())
        except ConnectionClosed:
            self._release()
            if ignore_errors:
                return
            raise
        if not left:
            self._release()
            return
        try:
            yield from self._write_rest(timeout)
        except ConnectionClosed:
            if not ignore_errors:
                raise

    def _release(self) -> None:
        """Let go of the socket: pending control frames go out, the next writer goes on."""
        self._sending = False
        if self._out:
            self._flush_control()
        queue = self._send_queue
        while queue:
            waiting = queue.popleft()
            if waiting.running:
                self._sched.resume(waiting, None)
                break

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
            if not self._sending and self._proto.state is _OPEN:
                self._control(self._proto.send(_Ping(payload=b"cogen")))
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
        if ws._sending:  # another writer holds the socket: wait for it in a coroutine
            return Coroutine(ws._send_frame, lambda: ws._proto.send(event),
                             self.send_timeout).process(sched, coro)
        ws._sending = True
        try:
            left = ws._try_send(ws._proto.send(event))
        except BaseException:
            ws._release()
            raise
        if not left:
            ws._release()
            return None
        return Coroutine(ws._write_rest, self.send_timeout).process(sched, coro)

    def __repr__(self) -> str:
        return f"<WebSocket.send to {self.ws!r}>"
