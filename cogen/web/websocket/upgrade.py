"""The opening handshake (RFC 6455 §4.2): :class:`WebSocketUpgrade`, ``environ['cogen'].websocket``."""
from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Callable, Collection, Generator
from typing import Any

from cogen.core.coroutines import Coroutine
from cogen.errors import CogenError
from cogen.web import http as _http
from cogen.web.websocket.endpoint import ConnectionClosed, WebSocket, load_wsproto

__all__ = ["NOT_REQUESTED", "HandshakeError", "WebSocketUpgrade"]

log = logging.getLogger("cogen.web.websocket")
#: the reason phrases of the statuses a refused handshake is answered with
_REASONS = {400: "Bad Request", 403: "Forbidden", 426: "Upgrade Required"}


def _tokens(value: str | None) -> list[str]:
    return [t.strip().lower() for t in (value or "").split(",") if t.strip()]


class HandshakeError(CogenError):
    """The request cannot be upgraded; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


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
               max_message: int | None = None,
               origins: Collection[str] | Callable[[str], bool] | None = None) -> Coroutine:
        """The operation that upgrades the connection; result: the :class:`WebSocket`.

        Args:
            subprotocol: one of :attr:`subprotocols` to agree on (None: none).
            compression: negotiate per-message deflate if the client offers
                it (default: the server's ``websocket_compression`` option).
            max_message: the largest message to accept, in bytes (default:
                ``websocket_max_message``).
            origins: the pages allowed to open this WebSocket: origins such
                as ``"https://example.com"`` (compared without case), or a
                function given the request's ``Origin`` that returns True to
                allow it. A browser always sends ``Origin``, so this stops
                another site's page from using the visitor's cookies here
                (cross-site WebSocket hijacking); a request without one (a
                non-browser client) is allowed. None (default): no check.
        Raises (in the coroutine): :class:`HandshakeError` if the request is
        not a valid upgrade, or (status 403) comes from an origin not
        allowed; nothing is sent: the application answers, with
        ``error.status``. ``ValueError`` for a subprotocol the client did not
        offer, ``RuntimeError`` if the response has started or it was
        accepted already.
        """
        return Coroutine(self._accept, subprotocol, compression, max_message, origins)

    def check_origin(self, origins: Collection[str] | Callable[[str], bool]) -> None:
        """Raise :class:`HandshakeError` (403) if the request's ``Origin`` is not allowed.

        ``origins`` as for :meth:`accept`; a request without ``Origin`` passes.
        """
        origin = self._environ.get("HTTP_ORIGIN")
        if origin is None:
            return
        if isinstance(origins, str):
            origins = (origins,)
        if callable(origins):
            allowed = bool(origins(origin))
        else:
            allowed = origin.strip().rstrip("/").lower() in {o.strip().rstrip("/").lower() for o in origins}
        if not allowed:
            raise HandshakeError(f"a WebSocket from origin {origin!r} is not allowed", 403)

    def _accept(self, subprotocol: str | None, compression: bool | None, max_message: int | None,
                origins: Collection[str] | Callable[[str], bool] | None) -> Generator[Any, Any, WebSocket]:
        self.check()
        if origins is not None:
            self.check_origin(origins)
        response, conn, opts = self._response, self._conn, self._server.options
        if self._accepted or response.headers_sent or response.pending is not None:
            raise RuntimeError("the response has already started; cannot upgrade it")
        if subprotocol is not None and subprotocol not in self.subprotocols:
            raise ValueError(f"subprotocol {subprotocol!r} was not offered (offered: {self.subprotocols})")
        load_wsproto()
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
                       max_message if max_message is not None else opts.websocket_max_message,
                       unread)
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
            reason = _REASONS.get(exc.status, "Bad Request")
            response.status = f"{exc.status} {reason}"
            extra = "Sec-WebSocket-Version: 13\r\n" if exc.status == 426 else ""
            data = _http.simple_response(exc.status, reason, f"{exc}\n",
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
