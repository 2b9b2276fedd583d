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

from cogen.web.websocket.endpoint import (
    ABNORMAL,
    GOING_AWAY,
    INTERNAL_ERROR,
    INVALID_DATA,
    NORMAL,
    PROTOCOL_ERROR,
    TOO_BIG,
    ConnectionClosed,
    WebSocket,
)
from cogen.web.websocket.upgrade import NOT_REQUESTED, HandshakeError, WebSocketUpgrade

__all__ = [
    "ABNORMAL",
    "GOING_AWAY",
    "INTERNAL_ERROR",
    "INVALID_DATA",
    "NORMAL",
    "NOT_REQUESTED",
    "PROTOCOL_ERROR",
    "TOO_BIG",
    "ConnectionClosed",
    "HandshakeError",
    "WebSocket",
    "WebSocketUpgrade",
]
