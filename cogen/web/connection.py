"""One client connection: its socket, its receive buffer and its request loop.

Theory of operation
-------------------
The accept loop (:mod:`cogen.web.server`) adds one coroutine per accepted
socket, :func:`serve_connection`. It makes a :class:`Connection`, runs the
TLS handshake on a TLS listener, then loops over requests: it reads until
:func:`cogen.web.http.parse_request_head` returns a head, builds the environ
(:func:`cogen.web.environ.request_environ`), reads the body (unless the app
streams it) through a :class:`~cogen.web.body.BodySource`, and has a
:class:`~cogen.web.response.Response` call the app and send what it yields.

Socket calls are made directly on the non-blocking socket; only when one
would block does the coroutine yield the connection's
:class:`~cogen.core.io.WaitIO`, so a small request costs one ``recv`` and
one ``send``. Every wait is bounded: the keep-alive idle timeout between
requests, the header timeout for a whole request head, the body timeout
between body reads and the send timeout for writes.

docs/internals.rst follows one request through this module step by step.
"""
from __future__ import annotations

import logging
import os
import socket
import ssl
import time
from collections.abc import Generator, Iterable
from typing import TYPE_CHECKING, Any

import cogen.core as _cogen_core
from cogen.core import coroutines as _coroutines
from cogen.core.events import OperationTimeout
from cogen.core.io import (
    IOV_MAX,
    WANT_WRITE,
    WOULD_BLOCK,
    ClientDisconnected,
    WaitIO,
    handshake,
    recv_some,
    send_all,
    send_parts,
)
from cogen.web import http as _http
from cogen.web._watch import ServerClosing, stop_watch
from cogen.web.body import BodySource, EmptyInput, UnreadableInput, read_whole_body
from cogen.web.environ import request_environ
from cogen.web.extensions import CogenGate, OperationProxy
from cogen.web.http import DONE, IDLE, RECV_HEAD, SEND_BODY, ConnectionState
from cogen.web.options import OPTIONS_BY_NAME
from cogen.web.response import GATHER_BYTES, Response
from cogen.web.websocket import WebSocketUpgrade

if TYPE_CHECKING:
    from cogen.web.server import WSGIServer

__all__ = ["DRAIN_TIMEOUT", "HEAD_CACHE_SIZE", "HEAD_KEY_MAX", "LINGER_BYTES", "LINGER_IDLE",
           "LINGER_TIME", "PEER_HOSTS_SIZE", "Connection", "Drain", "drain_body", "linger_close",
           "log_access", "serve_connection"]

log = logging.getLogger("cogen.web")
access_log = logging.getLogger("cogen.web.access")

_RemoteProtocolError = _http.RemoteProtocolError
_parse_head = _http.parse_request_head
_monotonic = time.monotonic
#: (it holds nothing: one serves every request without a body)
_EMPTY_INPUT = EmptyInput()
_HAS_SENDMSG = hasattr(socket.socket, "sendmsg")

#: On a graceful stop, how long an idle keep-alive connection (or one
#: accepted after the stop began) may still send its next request: a busy
#: client sends it right after the last response, and closing at once would
#: race it (issue 18 item 7). The request is answered with Connection: close.
DRAIN_TIMEOUT = 1.0

#: The lingering close (as nginx's ``lingering_close``): after answering a
#: client that may still be sending, discard what it sends for at most this
#: long in all, this long between reads, and this many bytes.
LINGER_TIME = 5.0
LINGER_IDLE = 2.0
LINGER_BYTES = 256 << 20

#: The head cache of a server (``WSGIServer.head_cache``): at most this many
#: parsed heads, each keyed by its bytes, which are fewer than this many.
HEAD_CACHE_SIZE = 128
HEAD_KEY_MAX = 1024

#: The peer addresses of the connections, by their text, so that the
#: connections from one address share one string: at most this many (the
#: keys are the clients' addresses).
PEER_HOSTS_SIZE = 1024
_PEER_HOSTS: dict[str, str] = {}


class Drain(ServerClosing):
    """Thrown into an idle connection's coroutine at a graceful stop: serve one last request."""


class Connection(ConnectionState):
    """One client connection: what its coroutine shares with the body, response and watch code.

    Its :class:`~cogen.web.http.ConnectionState` (the base class) says where
    the connection is in its request cycle and decides keep-alive,
    ``100 Continue`` and close; this class adds the socket and the loop.

    Args:
        server: the :class:`~cogen.web.server.WSGIServer` it belongs to
            (its options, limits and app; anything with those attributes).
        sock: the accepted non-blocking socket.

    ``buf`` holds the bytes received and not consumed yet; ``recv_more`` and
    ``send`` are the only socket I/O the body and response code do.
    """

    __slots__ = ("accepted", "buf", "cancelled", "coro", "drained", "fd", "head", "idle_deadline",
                 "is_handshaking", "op", "peer", "server", "sock", "waiter", "watcher")

    def __init__(self, server: WSGIServer, sock: Any) -> None:
        ConnectionState.__init__(self)
        self.server = server
        self.sock = sock
        self.fd = sock.fileno()
        self.waiter = WaitIO(self.fd, sock)
        self.buf: bytes = b""
        # the last recv returned less than asked: the kernel had no more then
        self.drained = False
        self.accepted = _monotonic()
        #: while waiting for a next request: when the wait times out (0.0:
        #: not waiting so); WSGIServer.sweep_idle enforces it
        self.idle_deadline = 0.0
        #: in the TLS handshake (a stop closes the connection then)
        self.is_handshaking = False
        #: the coroutine watching the socket while the app waits (cogen.web._watch)
        self.watcher: Any = None
        self.coro: Any = None
        #: the operation the coroutine waits on instead of the socket, if any
        #: (see Response._wait), and whether WSGIServer._force_close withdrew it
        self.op: Any = None
        self.cancelled = False
        #: the head of the request being served (None between requests) and
        #: the peer, for the blocked-loop watchdog and the figures
        self.head: Any = None
        self.peer: tuple[str, str | int] = ("", "")

    @property
    def send_timeout(self) -> float | None:
        """Seconds a client may keep a send waiting (the server's option), None for no limit."""
        return self.server.options.send_timeout

    def recv_more(self, timeout: float | None) -> Generator[Any, Any, None]:
        """Append at least one more received byte to ``buf``; ClientDisconnected at EOF."""
        data = yield from recv_some(self.sock, self.waiter, 262144, timeout)
        self.drained = len(data) < 262144
        self.buf = self.buf + data if self.buf else data

    def send(self, data: bytes) -> Iterable[Any]:
        """Send all of ``data``: ``yield from conn.send(data)``.

        Sends what the socket takes at once, here; returns ``()`` when that
        was all, else the generator that sends the rest (parking while the
        client does not read, within ``send_timeout``). So the common send
        costs no generator. Raises ClientDisconnected when the send fails.
        """
        try:
            n = self.sock.send(data)
        except WANT_WRITE + WOULD_BLOCK:
            n = 0
        except OSError as exc:
            raise ClientDisconnected(f"send failed: {exc}") from exc
        if n == len(data):
            return ()
        return send_all(self.sock, self.waiter, memoryview(data)[n:], self.send_timeout)

    def send_parts(self, parts: list[bytes], total: int) -> Iterable[Any]:
        """Send ``parts`` (``total`` bytes in all) one after the other: ``yield from`` it.

        A few small parts are joined into one :meth:`send`; more, or larger,
        go out gathered, as many as the socket takes in one ``sendmsg()``,
        without being copied into one (TLS: joined, or one by one when large).
        Like :meth:`send`, returns ``()`` when the socket took it all at once.
        """
        if total <= GATHER_BYTES:
            return self.send(b"".join(parts))
        sock = self.sock
        if sock.__class__ is not socket.socket or not _HAS_SENDMSG:  # TLS (or Windows): no sendmsg
            return self._send_each(parts)
        try:
            sent = sock.sendmsg(parts if len(parts) <= IOV_MAX else parts[:IOV_MAX])
        except WOULD_BLOCK:
            sent = 0
        except OSError as exc:
            raise ClientDisconnected(f"send failed: {exc}") from exc
        if sent == total:
            return ()
        return send_parts(sock, self.waiter, parts, sent, self.send_timeout)

    def _send_each(self, parts: list[bytes]) -> Generator[Any, Any, None]:
        """Without ``sendmsg``: runs of parts joined up to GATHER_BYTES, a larger part alone."""
        run: list[bytes] = []
        size = 0
        for part in parts:
            if run and size + len(part) > GATHER_BYTES:
                yield from self.send(b"".join(run))  # (one part: itself, not a copy)
                run = []
                size = 0
            run.append(part)
            size += len(part)
        if run:
            yield from self.send(b"".join(run))

    def hand_over(self) -> bytes:
        """Switch protocols: the socket (``sock``) is the new protocol's from now on.

        Takes the connection off the disconnect watch and returns the bytes
        received past the request head (the new protocol's first bytes), which
        the connection forgets. When the response ends the connection lets the
        new protocol finish, then closes.
        """
        self.switch_protocol()
        stop_watch(self.server.sched, self)
        unread, self.buf = self.buf, b""
        return unread

    # -- the connection's life --------------------------------------------------------
    def await_last_request(self) -> Generator[Any, Any, bool]:
        """Wait up to the drain time for a request on an idle connection; True if data came."""
        left = DRAIN_TIMEOUT
        deadline = self.server.grace_deadline
        if deadline is not None:
            left = min(left, deadline - _monotonic())
        if left <= 0:
            return False
        try:
            yield self.waiter.wait(False, left)
        except OperationTimeout:
            return False
        return True

    def handshake(self, context: ssl.SSLContext, timeout: float | None) -> Generator[Any, Any, Any]:
        """Wrap the socket in TLS and run the server side of the handshake within ``timeout``."""
        tls = context.wrap_socket(self.sock, server_side=True, do_handshake_on_connect=False)
        self.sock = tls
        self.waiter.owner = tls
        deadline = _monotonic() + (timeout or 30.0)
        self.is_handshaking = True
        try:
            return (yield from handshake(tls, self.waiter, deadline, _monotonic))
        finally:
            self.is_handshaking = False

    def serve(self) -> Generator[Any, Any, None]:
        """The connection's life: the TLS handshake, its requests, the close.

        One generator for all of it, with as few locals as will do: an idle
        keep-alive connection holds this frame and nothing else of its own.
        Nothing should be raised and caught in it on the way of a request
        either: CPython gives a generator frame that saw an exception a frame
        object (for the traceback) that lives as long as the generator, 352
        bytes more per connection. So the reads that may find nothing are in
        :meth:`read_now` and :meth:`receive` (only the read after a wake-up
        for data is made here: it rarely finds none), and the head and the
        request are in :meth:`request`. Unregisters and closes the
        connection on every path.
        """
        server = self.server
        try:
            if server.ssl_context is not None:
                yield from self.handshake(server.ssl_context, server.options.header_timeout)
            keepalive_timeout = server.options.keepalive_timeout
            # plain TCP: after a response, wait for the next request, then read it
            wait_first = not isinstance(self.sock, ssl.SSLSocket)
            # (a new connection is IDLE with no request yet: its first request is
            # served even if shutdown began since the accept, for graceful restarts)
            first = True
            # Drain is thrown in (once) while idle: serve one last request
            drain_once = True
            # Request isolation (docs/server.rst): each request runs in a fresh
            # copy of the server's context. The connection's coroutine was started
            # in one; after each request it is given another, which the scheduler
            # enters from its next step on. ``in_context``: this step runs in it.
            in_context = True
            while True:
                # -- wait for and read the start of a request --
                if not self.buf:
                    try:
                        if server.is_closing and not first:
                            # The last response announced keep-alive (its head
                            # went before the stop began): the client may be
                            # sending its next request right now. Answer one
                            # that comes soon.
                            if not (yield from self.await_last_request()):
                                break
                        if self.drained and not first and wait_first:
                            # Right after a response the next request has rarely
                            # come yet: wait for it rather than make a recv that
                            # fails. The reactor wakes us at once if data came
                            # meanwhile (epoll: an edge that came while nobody
                            # waited is remembered).
                            if keepalive_timeout:
                                # No timer per wait (a heap push and a kill per
                                # request): the server's sweep times the
                                # connection out once this deadline has passed
                                # (one float of the sweep's, shared).
                                if server.idle_sweep is None:
                                    server.arm_idle_sweep()
                                self.idle_deadline = server.idle_deadline
                                try:
                                    yield self.waiter.wait(False, None)
                                finally:
                                    self.idle_deadline = 0.0
                            else:
                                yield self.waiter.wait(False, keepalive_timeout)
                            in_context = True
                            # Woken for data: the read rarely finds none, so
                            # it is made here (a call less per request); one
                            # that does gives this frame its frame object.
                            try:
                                data = self.sock.recv(262144)
                            except WOULD_BLOCK:
                                data = False
                            except OSError as exc:
                                raise ClientDisconnected(str(exc)) from exc
                        else:
                            data = self.read_now()
                        if data.__class__ is not bytes:
                            data = yield from self.receive(first, data is True, keepalive_timeout)
                            in_context = True
                    except Drain:
                        # thrown in while idle: nothing of a request was read yet
                        if not drain_once or not (yield from self.await_last_request()):
                            break
                        drain_once = False
                        first = in_context = True
                        continue
                    if not data:
                        break
                    self.drained = len(data) < 262144
                    self.buf = data
                    data = b""
                if not in_context:
                    yield None  # a pipelined request: step into its context first
                first = False
                if not (yield from self.request()):
                    # (MUST_CLOSE or SWITCHED_PROTOCOL; during a stop every
                    # response says Connection: close, so the connection ends
                    # here unless its head was sent before the stop)
                    break
                self.state = IDLE  # the next cycle
                self.coro.ctx = server.context.copy()
                in_context = False
            if self.linger:
                yield from linger_close(self.sock, self.waiter)
        except ClientDisconnected as exc:
            log.debug("client %s: %s", self.peer, exc)
        except OperationTimeout:
            log.debug("client %s timed out", self.peer)
        except ServerClosing:
            pass
        except OSError as exc:
            log.debug("client %s: %s", self.peer, exc)
        finally:
            server.connection_closed(self)

    def read_now(self) -> bytes | bool:
        """One read of the start of a request, without waiting.

        Returns the bytes read (empty at EOF) or, when the read would block,
        whether it waits for the socket to be writable (a TLS read may have
        to write first) rather than readable. ClientDisconnected if the
        connection failed.
        """
        try:
            data: bytes = self.sock.recv(262144)
        except WOULD_BLOCK:
            return False
        except ssl.SSLWantWriteError:
            return True
        except OSError as exc:
            raise ClientDisconnected(str(exc)) from exc
        return data

    def receive(self, first: bool, want_write: bool,
                keepalive_timeout: float | None) -> Generator[Any, Any, bytes]:
        """Wait for the start of the next request and read it (after :meth:`read_now` found nothing).

        ``first``: no request was read on the connection yet (the header
        timeout bounds the wait; the keep-alive timeout otherwise).
        Returns the bytes read, empty at EOF.
        """
        server = self.server
        header_timeout = server.options.header_timeout
        waiter = self.waiter
        while True:
            if want_write:
                yield waiter.wait(True, keepalive_timeout)
            elif first and server.is_closing:
                # accepted after the stop began: a short wait
                yield waiter.wait(False, min(DRAIN_TIMEOUT, header_timeout or 1e9))
            else:
                yield waiter.wait(False, header_timeout if first else keepalive_timeout)
            data = self.read_now()
            if isinstance(data, bytes):
                return data
            want_write = data

    def parse_head(self, scan_from: int) -> _http.RequestHead | None:
        """Parse the head at the start of ``buf`` with the server's limits (see ``parse_request_head``)."""
        opts = self.server.options
        return _parse_head(self.buf, max_request_line=opts.max_request_line,
                           max_header_bytes=opts.max_header_bytes or 1 << 62,
                           max_header_count=opts.max_header_count, max_body=opts.max_body,
                           scan_from=scan_from)

    def reject(self, exc: _http.RemoteProtocolError, peer: Any,
               linger: bool = True) -> Generator[Any, Any, None]:
        """Answer a request the server refuses with ``exc``'s status; the connection then closes."""
        log.debug("rejecting request from %s: %s %s", peer, exc.status_code, exc)
        # a client that timed out is not sending: no need to linger for it
        self.must_close(linger)
        try:
            yield from self.send(_http.simple_response(exc.status_code, exc.reason,
                                                       server=self.server.options.ident))
        except (ClientDisconnected, OperationTimeout):
            pass

    # -- one request ----------------------------------------------------------------
    def request(self) -> Generator[Any, Any, bool]:
        """Parse the request head at the start of ``buf`` and serve the request.

        Reads more while the head is not whole (within the header timeout).
        A head the server refuses is answered with its 4xx (or 501) here.
        Returns True if the connection goes on (the state is DONE), False
        if it must close.
        """
        self.state = RECV_HEAD
        server = self.server
        # A keep-alive client mostly repeats its request head byte for byte,
        # and parsing is a pure function of the bytes and the server's
        # limits: a head seen before comes from the server's cache. Only
        # heads that parsed without error are in it, so every other head
        # still goes through every check. An entry is [the head, the environ
        # keys made from it (None until made)]; neither is ever changed once
        # cached.
        head_cache = server.head_cache
        buf = self.buf
        end = buf.find(b"\r\n\r\n", 0, HEAD_KEY_MAX + 3)
        entry = None
        if end > 0:
            key = buf if len(buf) == end + 4 else buf[:end + 4]
            entry = head_cache.get(key)
        try:
            if entry is not None:
                head = entry[0]
            else:
                head = self.parse_head(0)
                if head is not None and end > 0 and head.head_size == end + 4:
                    if len(head_cache) >= HEAD_CACHE_SIZE:
                        head_cache.clear()
                    head_cache[key] = entry = [head, None]
            buf = key = b""
            if head is None:
                header_timeout = server.options.header_timeout
                deadline = _monotonic() + (header_timeout or 1e9)
                while head is None:
                    scanned = len(self.buf)
                    yield from self.recv_more(max(0.0, deadline - _monotonic()))
                    head = self.parse_head(scanned)
        except _RemoteProtocolError as exc:
            yield from self.reject(exc, self.peer)
            return False
        except ClientDisconnected:
            self.must_close()
            return False
        except OperationTimeout:
            yield from self.reject(_RemoteProtocolError("request head timeout", 408),
                                   self.peer, linger=False)
            return False
        self.buf = self.buf[head.head_size:]
        if head.method == "CONNECT":
            # A WSGI app cannot open a tunnel, and a 2xx answer would
            # make the client start one (RFC 9110 §9.3.6): refuse it.
            yield from self.reject(_RemoteProtocolError(
                "CONNECT (a tunnel) is not supported by this server", 501), self.peer)
            return False
        # -- the request --
        self.head = head
        self.start_request(head)
        started = _monotonic() if server.access_log_enabled else 0.0
        environ = request_environ(server.base_environ, head, self.peer, server.url_prefix,
                                  server.proxies, entry)
        if environ is None:
            # outside the url prefix: the body is not read, so the connection
            # cannot go on after it
            keep_open = self.keep_alive and self.state is SEND_BODY
            if not keep_open:
                self.must_close(linger=True)
            yield from self.simple(404, "Not Found", head, keep_open)
            self.end_response(keep_open)
            return self.request_done()

        # -- the body --
        source = None
        spool = None
        if head.content_length or head.chunked:
            opts = server.options
            # a trailer section is held to the head's limits
            source = BodySource(self, head, opts.max_body, opts.body_timeout,
                                opts.max_header_bytes or 1 << 62, opts.max_header_count)
            if server.stream_input:
                environ["wsgi.input"] = UnreadableInput()
                gate = CogenGate(server.sched, environ, head.content_length, None, source)
            else:
                try:
                    stream, length = yield from read_whole_body(source, opts.body_buffer)
                except _RemoteProtocolError as exc:
                    yield from self.reject(exc, self.peer[0])
                    return self.request_done()
                except OperationTimeout:
                    yield from self.reject(
                        _RemoteProtocolError("request body timeout", 408), self.peer[0], linger=False)
                    return self.request_done()
                self.body_received()
                environ["wsgi.input"] = spool = stream
                environ["CONTENT_LENGTH"] = str(length)
                gate = CogenGate(server.sched, environ, length, stream)
        else:
            stream = environ["wsgi.input"] = _EMPTY_INPUT
            if "CONTENT_LENGTH" in environ:
                del environ["CONTENT_LENGTH"]
            gate = CogenGate(server.sched, environ, 0, stream)
        environ["cogen.wsgi"] = environ["cogen.input"] = gate
        environ["cogen.core"] = OperationProxy(gate, _cogen_core)
        environ["cogen.call"] = gate.call
        if server.cogen_key:
            environ["cogen"] = gate

        # -- the app --
        response = Response(server, self, head, environ)
        if "HTTP_UPGRADE" in environ:
            gate.websocket = WebSocketUpgrade(server, self, response, environ)
        try:
            if server.threads:
                ok = yield from response.run_threaded(server.thread_pool())
            else:
                ok = yield from response.run()
        finally:
            if spool is not None:
                # maybe a temporary file: its descriptor must not wait for the
                # garbage collector (environ and gate refer to each other)
                spool.close()
        if response.switched is not None:
            # the connection speaks another protocol now: finish it, then close
            yield from response.switched.finish(not ok)
        else:
            if source is not None and source.done:
                self.body_received()  # (a streamed body the app read to its end)
            if self.end_response(ok and response.keep_alive):
                # The app left part of a streamed body unread: read a bounded
                # rest so the connection can be kept, else close it.
                assert source is not None  # (the state is RECV_BODY)
                self.body_drained((yield from drain_body(source)))
        if server.access_log_enabled and access_log.isEnabledFor(logging.INFO):
            log_access(server.options.access_log_format, environ, head, response, started)
        # request_done(), inlined for the common end
        self.head = None
        server.requests_served += 1
        if server.on_request_served is not None:
            server.on_request_served()
        return self.state is DONE

    def request_done(self) -> bool:
        """Count the request just answered; returns True if the connection goes on (DONE)."""
        self.head = None
        server = self.server
        server.requests_served += 1
        if server.on_request_served is not None:
            server.on_request_served()
        return self.state is DONE

    def simple(self, code: int, reason: str, head: _http.RequestHead,
               keep_open: bool) -> Generator[Any, Any, None]:
        """Answer with a short plain-text response of the server's own (no body for HEAD)."""
        data = _http.simple_response(code, reason, server=self.server.options.ident,
                                     close=not keep_open)
        if head.method == "HEAD":
            data = data[:data.index(b"\r\n\r\n") + 4]
        yield from self.send(data)


def serve_connection(server: WSGIServer, sock: Any, addr: Any) -> Generator[Any, Any, None]:
    """The coroutine of one accepted connection: handshake, requests, close.

    Registers the connection with ``server`` (``connection_opened``) for
    the stop and the figures; :meth:`Connection.serve` unregisters and
    closes it on every path.
    """
    conn = Connection(server, sock)
    conn.coro = _coroutines.current
    # An idle keep-alive connection should hold as little memory as possible:
    # the port stays an int (the environ's text is made per request), and
    # the address text is shared with the other connections from the same
    # address (the clients behind one proxy or NAT, or one busy client).
    if isinstance(addr, tuple):
        host = addr[0]
        shared = _PEER_HOSTS.get(host)
        if shared is None:
            if len(_PEER_HOSTS) >= PEER_HOSTS_SIZE:
                _PEER_HOSTS.clear()
            shared = _PEER_HOSTS[host] = host
        conn.peer = (shared, addr[1])
    del addr
    server.connection_opened(conn)
    return conn.serve()


def linger_close(sock: Any, waiter: WaitIO) -> Generator[Any, Any, None]:
    """Close ``sock``'s write side, then read and discard until EOF or a bound.

    Closing a socket with unread input makes the kernel reset the
    connection, and a client still sending its body then fails on its
    send before it reads the response (a lost 413, or a 502 behind a
    proxy; issue 18 item 9). Once the client has seen the FIN it stops,
    or it finishes sending, and reads the response.
    """
    try:
        # (an SSLSocket drops its TLS state here: what follows is discarded raw)
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        return
    deadline = _monotonic() + LINGER_TIME
    discarded = 0
    while discarded < LINGER_BYTES:
        left = deadline - _monotonic()
        if left <= 0:
            return
        try:
            data = sock.recv(262144)
        except WOULD_BLOCK:
            try:
                yield waiter.wait(False, min(LINGER_IDLE, left))
            except OperationTimeout:
                return
            continue
        except OSError:
            return
        if not data:
            return
        discarded += len(data)


def drain_body(source: BodySource, limit: int = 1 << 20) -> Generator[Any, Any, bool]:
    """Discard up to ``limit`` unread body bytes; True if the body ended within it."""
    drained = 0
    try:
        while drained <= limit:
            data = yield from source.read_some(65536)
            if not data:
                return True
            drained += len(data)
    except (ClientDisconnected, OperationTimeout, _RemoteProtocolError):
        pass
    return False


# -- the access log -------------------------------------------------------------------
_DEFAULT_ACCESS_FORMAT = OPTIONS_BY_NAME["access_log_format"].default
#: the access log's %(p)s; refreshed in a forked worker (os.register_at_fork)
_PID = [str(os.getpid())]
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=lambda: _PID.__setitem__(0, str(os.getpid())))
_log_time_cache: list[Any] = [0, ""]


def log_access(fmt: str, environ: dict[str, Any], head: _http.RequestHead, response: Response,
               started: float) -> None:
    """Log one request on ``cogen.web.access`` in ``fmt`` (the ``access_log_format`` option)."""
    status = response.status[:3] if response.status else "-"
    size = str(response.body_sent) if response.body_sent else "-"
    if fmt == _DEFAULT_ACCESS_FORMAT:
        line = (f'{environ.get("REMOTE_ADDR") or "-"} - - [{_log_time()}] '
                f'"{head.method} {head.target} {environ["SERVER_PROTOCOL"]}" {status} {size} '
                f'"{environ.get("HTTP_REFERER", "-")}" "{environ.get("HTTP_USER_AGENT", "-")}"')
    else:
        values = {
            "h": environ.get("REMOTE_ADDR") or "-",
            "t": _log_time(),
            "r": f"{head.method} {head.target} {environ['SERVER_PROTOCOL']}",
            "s": status,
            "b": size,
            "f": environ.get("HTTP_REFERER", "-"),
            "a": environ.get("HTTP_USER_AGENT", "-"),
            "D": str(int((_monotonic() - started) * 1e6)),
            "m": head.method,
            "U": head.path,
            "q": head.query,
            "H": environ["SERVER_PROTOCOL"],
            "p": _PID[0],
        }
        try:
            line = fmt % values
        except (KeyError, ValueError, TypeError):
            line = _DEFAULT_ACCESS_FORMAT % values
    access_log.info(line)


def _log_time() -> str:
    """The access log's timestamp, formatted once per second."""
    now = int(time.time())
    if now != _log_time_cache[0]:
        _log_time_cache[0] = now
        _log_time_cache[1] = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now))
    stamp: str = _log_time_cache[1]
    return stamp
