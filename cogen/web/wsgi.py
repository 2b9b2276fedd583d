"""The HTTP/1.1 WSGI server: one coroutine per connection.

Theory of operation
-------------------
``serve`` accepts connections and adds one coroutine per connection
(:meth:`WSGIServer._connection`). That coroutine loops over requests: it
reads until :func:`cogen.web.http.parse_request_head` returns a head, reads
the body (unless the app streams it) into memory or a temporary file, builds
the PEP 3333 environ, calls the app, and sends what the app yields. Socket
calls are made directly on the non-blocking socket; only when one would block
does the coroutine yield a :class:`~cogen.core.io.WaitIO`, so a small request
costs one ``recv`` and one ``send``.

Items the app yields that are cogen operations (directly, or recorded on
``environ['cogen']`` by the core proxy) are run by yielding them from the
connection coroutine; the outcome is stored on the gate (see
:mod:`cogen.web.extensions`). With ``threads=N`` the app call and each step of
its iterable run in a thread pool instead, while the socket I/O stays here.

Every wait is bounded: the keep-alive idle timeout between requests, the
header timeout for a whole request head, the body timeout between body
reads and the send timeout for writes. docs/internals.rst follows one request
through this module step by step.
"""
from __future__ import annotations

import contextvars
import logging
import os
import socket
import ssl
import stat
import time
from collections.abc import Callable, Generator
from typing import Any

import cogen.core as _cogen_core
from cogen.core import coroutines as _coroutines
from cogen.core.address import parse_address
from cogen.core.broker import install as install_broker
from cogen.core.coroutines import Coroutine, coroutine
from cogen.core.events import OperationTimeout, Signal, WaitForSignal
from cogen.core.io import (
    ACCEPT_ABORTED,
    WANT_WRITE,
    WOULD_BLOCK,
    ClientDisconnected,
    WaitIO,
    handshake,
    recv_some,
    send_all,
)
from cogen.core.schedulers import Scheduler
from cogen.web import http as _http
from cogen.web._io import ServerClosing
from cogen.web.body import BodySource, UnreadableInput, read_whole_body
from cogen.web.environ import ERRORS, HEADER_KEYS, ProxyRules, decode_path, header_key
from cogen.web.extensions import CogenGate, OperationProxy, is_streaming_input
from cogen.web.options import OPTIONS_BY_NAME, resolve_options
from cogen.web.response import Response
from cogen.web.websocket import WebSocketUpgrade

__all__ = ["FileWrapper", "WSGIServer", "parse_bind"]

log = logging.getLogger("cogen.web")
access_log = logging.getLogger("cogen.web.access")

_RemoteProtocolError = _http.RemoteProtocolError
_parse_head = _http.parse_request_head
_monotonic = time.monotonic


_ServerClosing = ServerClosing
#: Seconds without an accept() failure that end an episode of them.
_ACCEPT_QUIET = 5.0

#: On a graceful stop, how long an idle keep-alive connection (or one
#: accepted after the stop began) may still send its next request: a busy
#: client sends it right after the last response, and closing at once would
#: race it (issue 18 item 7). The request is answered with Connection: close.
DRAIN_TIMEOUT = 1.0
#: A connection accepted longer ago than this that has sent nothing is a
#: browser's spare connection, closed at once on a stop (issue 18 item 8); a
#: younger one may just not have had its request arrive yet: it gets the drain.
SPARE_AGE = 0.5

#: The lingering close (as nginx's ``lingering_close``): after answering a
#: client that may still be sending, discard what it sends for at most this
#: long in all, this long between reads, and this many bytes.
LINGER_TIME = 5.0
LINGER_IDLE = 2.0
LINGER_BYTES = 256 << 20


class _Drain(ServerClosing):
    """Thrown into an idle connection's coroutine at a graceful stop: serve one last request."""


class FileWrapper:
    """``wsgi.file_wrapper``: iterate a file in blocks, or let the server sendfile it.

    The server sends regular files with ``os.sendfile`` from their current
    position (up to the Content-Length, if the app set one); anything else is
    iterated in ``blksize`` blocks. ``close()`` closes the file.
    """

    def __init__(self, filelike: Any, blksize: int = 65536) -> None:
        self.filelike = filelike
        self.blksize = blksize
        if hasattr(filelike, "close"):
            self.close = filelike.close

    def __iter__(self) -> FileWrapper:
        return self

    def __next__(self) -> bytes:
        data: bytes = self.filelike.read(self.blksize)
        if data:
            return data
        raise StopIteration

    def sendfile_range(self) -> tuple[int, int, int] | None:
        """``(fd, offset, size_left)`` if the file can be sent with sendfile, else None."""
        try:
            fd = self.filelike.fileno()
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                return None
            offset = self.filelike.tell()
        except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both
            return None
        return fd, offset, max(0, st.st_size - offset)




def _set_socket_owner(path: Any, mode: int | None, group: int | None) -> None:
    """Give a bound Unix socket file its mode and group.

    Done between bind() and listen(): until listen() nobody can connect, so
    no client slips in under the umask's looser (or tighter) bits. A name in
    Linux's abstract namespace (a leading NUL) has no file to change.
    """
    if not isinstance(path, str) or path.startswith("\0"):
        return
    if group is not None:
        os.chown(path, -1, group)
    if mode is not None:
        os.chmod(path, mode)


def parse_bind(bind: Any) -> tuple[int, Any]:
    """Turn a bind address into ``(family, sockaddr)``.

    The grammar is core's (:mod:`cogen.core.address`): ``(host, port)``
    tuples, ``'HOST:PORT'``, ``'[::1]:PORT'``, a bare ``'PORT'``,
    ``'unix:/path'`` and absolute ``'/path'`` strings; a relative path
    needs ``unix:``. Host names are not resolved: the family is IPv6 for a
    host with a ``:``, else IPv4. Raises ValueError naming the bad value.
    """
    if not isinstance(bind, (tuple, str)):
        raise ValueError(f"invalid bind address {bind!r}")
    is_unix, addr = parse_address(bind, relative_paths=False)
    if is_unix:
        return socket.AF_UNIX, addr
    host = addr[0] or "0.0.0.0"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return family, (host, addr[1])


class _Conn:
    """What one connection coroutine shares with its helpers."""

    __slots__ = ("accepted", "buf", "cancelled", "coro", "drained", "fd", "fresh", "head", "idle",
                 "linger", "op", "peer", "send_timeout", "sock", "waiter", "watcher")

    def __init__(self, sock: Any, send_timeout: float | None) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.waiter = WaitIO(self.fd, sock)
        self.buf: bytes = b""
        # the last recv returned less than asked: the kernel had no more then
        self.drained = False
        self.send_timeout = send_timeout
        self.idle = True
        #: waiting for the first byte of the connection's first request
        self.fresh = False
        self.accepted = _monotonic()
        #: the client may still be sending: close with a lingering close
        self.linger = False
        #: the coroutine watching the socket while the app waits (cogen.web._watch)
        self.watcher: Any = None
        self.coro: Any = None
        #: the operation the coroutine waits on instead of the socket, if any
        #: (see Response._wait), and whether _force_close withdrew it
        self.op: Any = None
        self.cancelled = False
        #: the head of the request being served (None between requests) and
        #: the peer, for the blocked-loop watchdog and the figures
        self.head: Any = None
        self.peer: tuple[str, str] = ("", "")

    def recv_more(self, timeout: float | None) -> Generator[Any, Any, None]:
        """Append at least one more received byte to ``buf``; ClientDisconnected at EOF."""
        data = yield from recv_some(self.sock, self.waiter, 262144, timeout)
        self.drained = len(data) < 262144
        self.buf = self.buf + data if self.buf else data

    def send(self, data: bytes) -> Generator[Any, Any, int]:
        """Send all of ``data``; returns its length."""
        try:
            n = self.sock.send(data)
        except WANT_WRITE + WOULD_BLOCK:
            n = 0
        except OSError as exc:
            raise ClientDisconnected(f"send failed: {exc}") from exc
        if n == len(data):
            return int(n)
        yield from send_all(self.sock, self.waiter, memoryview(data)[n:], self.send_timeout)
        return len(data)


class WSGIServer:
    """An HTTP/1.1 server for one WSGI application, run by a cogen scheduler.

    Args:
        bind_addr: ``(host, port)``, ``'host:port'``, ``'[::1]:port'`` or
            ``'unix:/path'``; port 0 picks a free port (read it back from
            :attr:`address`). A listening socket object is accepted too.
        app: the WSGI application.
        scheduler: the scheduler to run on (a new one if None).
        **options: see :mod:`cogen.web.options` (limits, timeouts,
            ``threads``, ``url_prefix``, ``trusted_proxy``, TLS, logging).
            The original's ``sockoper_timeout`` and ``sendfile_timeout`` are
            accepted.

    The socket is bound and listening when the constructor returns
    (:attr:`socket`). Add :meth:`serve` to the scheduler (``sched.add(
    server.serve)``, or :meth:`start`) and run the scheduler;
    :meth:`serve_forever` does both.
    """

    def __init__(self, bind_addr: Any, app: Callable[..., Any], scheduler: Scheduler | None = None,
                 server_name: str | None = None, **options: Any) -> None:
        opts = resolve_options(options)
        if server_name is not None:
            opts["server_name"] = server_name
        self.options = opts
        self.app = app
        self.sched = scheduler if scheduler is not None else Scheduler(broker=opts["broker"])
        if scheduler is not None and opts["broker"] is not None:
            install_broker(scheduler, opts["broker"])
        # A socket we are handed is the caller's: closing ours must not unlink its path.
        self._owns_path = not isinstance(bind_addr, socket.socket) and not isinstance(
            getattr(bind_addr, "raw", None), socket.socket)
        # what can fail on a bad option comes before binding, so that an
        # error leaves no listening socket behind
        self.ssl_context = self._ssl_context(opts)
        self.proxies = ProxyRules(opts["trusted_proxy"], opts["trusted_proxy_headers"],
                                  opts["clear_untrusted_proxy_headers"])
        self.socket = self._listen(bind_addr, opts)
        self.socket.setblocking(False)
        self.address = self.socket.getsockname()
        self.url_prefix = (opts["url_prefix"] or "").rstrip("/")
        self.threads = opts["threads"]
        self.thread_affinity = opts["thread_affinity"]
        self.stream_input = opts["stream_input"] or is_streaming_input(app)
        self.access_log_enabled = opts["access_log"]
        # environ['cogen'] is not a str under an undotted key, which
        # wsgiref.validate rejects (it takes undotted keys for CGI
        # variables): left out for an app wrapped in the validator.
        self.cogen_key = (opts["cogen_key"] if opts["cogen_key"] is not None
                          else not _wraps_validator(app))
        self._pool: Any = None
        self._conns: dict[int, _Conn] = {}
        #: requests answered since the start (all connections)
        self.requests_served = 0
        #: called (as loop code) after each request, if set: the prefork
        #: workers count towards --max-requests with it
        self.on_request_served: Callable[[], Any] | None = None
        #: the open WebSockets, told 1001 (going away) by shutdown()
        self._websockets: set[Any] = set()
        #: True once shutdown() began: responses then say Connection: close
        self.is_closing = False
        self._serve_queued = True
        self._stopped = False
        #: accept() failures in a row (EMFILE...; while > 0 a closed connection
        #: wakes the accept loop), when the last one was, and whether the
        #: episode's recovery was logged (see _accept_backoff)
        self._accept_failures = 0
        self._accept_failed_at = -_ACCEPT_QUIET - 1.0
        self._accept_recovery_logged = True
        self._serve_coro: Any = None
        self._grace_timer: Any = None
        self._grace_deadline: float | None = None
        self._limits = {
            "max_request_line": opts["max_request_line"],
            "max_header_bytes": opts["max_header_bytes"] or 1 << 62,
            "max_header_count": opts["max_header_count"],
            "max_body": opts["max_body"],
        }
        self._base_environ = self._make_base_environ()
        #: every request runs in a fresh copy of this context (serve() makes it its own)
        self.context = contextvars.copy_context()

    # -- setup ----------------------------------------------------------------------
    @staticmethod
    def _listen(bind_addr: Any, opts: dict[str, Any]) -> socket.socket:
        if isinstance(bind_addr, socket.socket):
            return bind_addr
        if isinstance(getattr(bind_addr, "raw", None), socket.socket):
            raw: socket.socket = bind_addr.raw  # a cogen.core.sockets.Socket
            return raw
        family, addr = parse_bind(bind_addr)
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            if family == socket.AF_UNIX:
                if os.path.exists(addr) and stat.S_ISSOCK(os.stat(addr).st_mode):
                    os.unlink(addr)
            else:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if opts["reuse_port"] and hasattr(socket, "SO_REUSEPORT"):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(addr)
            if family == socket.AF_UNIX:
                _set_socket_owner(addr, opts.get("unix_socket_mode"), opts.get("unix_socket_group"))
            sock.listen(opts["backlog"])
        except BaseException:
            sock.close()
            raise
        return sock

    @staticmethod
    def _ssl_context(opts: dict[str, Any]) -> ssl.SSLContext | None:
        if opts["ssl_context"] is not None:
            given: ssl.SSLContext = opts["ssl_context"]
            return given
        if opts["certfile"]:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(opts["certfile"], opts["keyfile"])
            return ctx
        return None

    def _make_base_environ(self) -> dict[str, Any]:
        addr = self.address
        if self.socket.family == socket.AF_UNIX:
            name, port = "localhost", ""
        else:
            name, port = addr[0], str(addr[1])
        return {
            "SERVER_NAME": self.options["server_name"] or name,
            "SERVER_PORT": port,
            "SCRIPT_NAME": self.url_prefix,
            "SERVER_SOFTWARE": "cogen",
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "https" if self.ssl_context else "http",
            "wsgi.errors": ERRORS,
            "wsgi.multithread": self.threads > 0,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            "wsgi.file_wrapper": FileWrapper,
            "wsgi.input_terminated": True,
            "cogen.sched": self.sched,
        }

    # -- running --------------------------------------------------------------------
    def start(self) -> Coroutine:
        """Add :meth:`serve` to the scheduler; returns its coroutine."""
        return self.sched.add(self.serve)

    def serve_forever(self) -> None:
        """Serve on this thread until :meth:`shutdown` (or the scheduler stops)."""
        self.start()
        self.sched.run()

    @property
    def connections(self) -> int:
        """How many client connections are open."""
        return len(self._conns)

    def figures(self) -> dict[str, int]:
        """This server's live counts, by name; safe to call from another thread.

        ``connections`` open, ``requests_active`` being served,
        ``requests_parked`` (of those, the ones whose app waits on a cogen
        operation) and ``requests_served`` since the start.
        """
        conns = list(self._conns.values())
        return {"connections": len(conns),
                "requests_active": sum(conn.head is not None for conn in conns),
                "requests_parked": sum(conn.op is not None for conn in conns),
                "requests_served": self.requests_served}

    def describe_coroutine(self, coro: Any) -> tuple[object, str] | None:
        """The request ``coro`` serves, as (head, ``'GET /path from host:port'``), or None.

        A :data:`cogen.core.watchdog.Describer`; safe to call from another
        thread while the loop is blocked.
        """
        root = getattr(coro, "_root", coro)
        for conn in list(self._conns.values()):
            if conn.coro is root or conn.coro is coro:
                head, (host, port) = conn.head, conn.peer
                peer = f"{host}:{port}" if port else (host or "a unix socket client")
                if head is None:
                    return conn, f"the connection from {peer} (between requests)"
                return head, f"the request {head.method} {head.target} from {peer}"
        return None

    @coroutine
    def serve(self) -> Generator[Any, Any, None]:
        """The accept loop: one coroutine per connection. Returns after shutdown."""
        self._serve_coro = _coroutines.current
        assert self._serve_coro is not None
        # connections are started from here, so each gets a copy of this context
        self.context = self._serve_coro.ctx
        lsock = self.socket
        accept = lsock.accept
        waiter = WaitIO(lsock.fileno(), lsock)
        add = self.sched.add
        handle = self._connection
        max_conns = self.options["max_connections"]
        is_unix = lsock.family == socket.AF_UNIX
        nodelay = socket.TCP_NODELAY
        ipproto = socket.IPPROTO_TCP
        conns = self._conns
        try:
            while not self.is_closing:
                if max_conns and len(conns) >= max_conns:
                    try:
                        yield WaitForSignal((self, "slot"), timeout=1.0)
                    except OperationTimeout:
                        pass
                    continue
                try:
                    sock, addr = accept()
                except WOULD_BLOCK:
                    try:
                        yield waiter.wait(False, None)
                    except _ServerClosing:
                        break
                    continue
                except OSError as exc:
                    if self.is_closing:
                        break
                    if exc.errno in ACCEPT_ABORTED:
                        continue  # the client's doing: as core's Accept, take the next one
                    yield from self._accept_backoff(exc)
                    continue
                if self._accept_failures:
                    self._accept_recovered()
                sock.setblocking(False)
                if not is_unix:
                    try:
                        sock.setsockopt(ipproto, nodelay, 1)
                    except OSError:
                        pass
                add(handle, sock, addr)
            if self._serve_queued:
                self._take_queued(add, handle)
        finally:
            self._close_listener()

    def _accept_backoff(self, exc: OSError) -> Generator[Any, Any, None]:
        """Wait before the next accept after a failed one.

        EMFILE and friends: the pending connection stays queued, so the
        listening socket stays readable and retrying at once would spin. The
        wait doubles, up to half a second, with each failure in a row, and
        ends early when a connection closes (that frees a descriptor).

        One warning per episode: a server at its limit flaps between failing
        and accepting, so an episode lasts until accept has not failed for
        ``_ACCEPT_QUIET`` seconds. The retries are debug lines.
        """
        now = _monotonic()
        self._accept_failures += 1
        delay = min(0.5, 0.025 * (1 << min(self._accept_failures, 5)))
        if now - self._accept_failed_at > _ACCEPT_QUIET:
            self._accept_recovery_logged = False
            log.warning("accept failed: %s; retrying with back-off", exc)
        else:
            log.debug("accept still failing (%s); next try in %.3f s", exc, delay)
        self._accept_failed_at = now
        try:
            yield WaitForSignal((self, "slot"), timeout=delay)
        except OperationTimeout:
            pass

    def _accept_recovered(self) -> None:
        if not self._accept_recovery_logged:
            self._accept_recovery_logged = True
            log.info("accepting again after %d failed attempts", self._accept_failures)
        self._accept_failures = 0

    def _take_queued(self, add: Callable[..., Any], handle: Callable[..., Any]) -> None:
        """Accept the connections the kernel queued before the stop (bounded by the backlog).

        Closing a listening socket resets the connections still in its
        queue, yet their clients had connected before the stop began: each
        gets its first request served (issue 18 item 5).
        """
        lsock = self.socket
        if lsock.fileno() < 0:
            return
        is_unix = lsock.family == socket.AF_UNIX
        room = max(1, self.options["backlog"])
        if self.options["max_connections"]:
            room = min(room, self.options["max_connections"] - len(self._conns))
        for _ in range(room):
            try:
                sock, addr = lsock.accept()
            except OSError:  # BlockingIOError: the queue is empty
                return
            sock.setblocking(False)
            if not is_unix:
                try:
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                except OSError:
                    pass
            add(handle, sock, addr)

    def _close_listener(self) -> None:
        if self.socket.fileno() >= 0:
            fd = self.socket.fileno()
            self.sched.forget_fd(fd)
            if self.socket.family == socket.AF_UNIX and self._owns_path:
                try:
                    path = self.socket.getsockname()
                    if path and os.path.exists(path):
                        os.unlink(path)
                except OSError:
                    pass
            self.socket.close()

    def shutdown(self, grace: float | None = 30.0, serve_queued: bool = True) -> None:
        """Stop gracefully; call from the scheduler's thread (or through
        ``sched.call_soon_threadsafe``).

        Stops accepting at once; the connections the kernel had already
        queued are taken and served, unless ``serve_queued`` is false
        (another process goes on accepting on the same socket). A connection
        that has not sent a byte yet is closed at once; an idle keep-alive
        connection may send one last request within :data:`DRAIN_TIMEOUT`
        seconds, answered with ``Connection: close``; requests in flight may
        finish for ``grace`` seconds, after which their connections are
        closed too. The :meth:`serve` coroutine then returns.
        """
        if self.is_closing:
            return
        self.is_closing = True
        self._serve_queued = serve_queued
        fd = self.socket.fileno()
        if fd >= 0:
            self.sched.forget_fd(fd, _ServerClosing())
        spare_before = _monotonic() - SPARE_AGE
        for conn in list(self._conns.values()):
            if conn.idle:
                self.sched.forget_fd(conn.fd, _Drain())
            elif conn.fresh and not _has_data(conn.sock):
                if conn.accepted < spare_before:
                    # a browser's spare connection: it may never send (issue 18 item 8)
                    self.sched.forget_fd(conn.fd, _ServerClosing())
                else:
                    self.sched.forget_fd(conn.fd, _Drain())
        for ws in list(self._websockets):
            self.sched.add(ws._going_away)
        if grace is not None:
            self._grace_deadline = _monotonic() + grace
        if self._conns and grace is not None:
            self._grace_timer = self.sched.call_later(grace, self._force_close)
        elif grace is None:
            pass
        if not self._conns:
            self._release_pool()
        if self._serve_coro is None:
            self._close_listener()

    close = shutdown

    def _force_close(self) -> None:
        self._grace_timer = None
        for conn in list(self._conns.values()):
            self.sched.forget_fd(conn.fd, _ServerClosing())
            op = conn.op
            if op is not None and conn.coro is not None:
                # parked on an app operation (or a thread), which closing the
                # socket would not wake: withdraw the wait, then throw
                conn.op = None
                conn.cancelled = True
                if isinstance(op, Coroutine):
                    op.caller = None  # the callee runs on alone, its outcome dropped
                else:
                    op.cleanup(self.sched, conn.coro)
                self.sched.throw(conn.coro, _ServerClosing("the grace period is over"))
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _connection_closed(self, conn: _Conn) -> None:
        self._conns.pop(conn.fd, None)
        # the socket is closed next and never duplicated: closing drops it
        # from epoll, no need for a system call to unregister it
        self.sched.forget_fd(conn.fd, closing=True)
        try:
            conn.sock.close()
        except OSError:
            pass
        if self.options["max_connections"] or self._accept_failures:
            self.sched.add(_signal, (self, "slot"))
        if self.is_closing and not self._conns:
            if self._grace_timer is not None:
                self.sched.cancel_call(self._grace_timer)
                self._grace_timer = None
            self._release_pool()

    # -- one connection -------------------------------------------------------------
    def _connection(self, sock: Any, addr: Any) -> Generator[Any, Any, None]:
        opts = self.options
        conn = _Conn(sock, opts["send_timeout"])
        conn.coro = _coroutines.current
        self._conns[conn.fd] = conn
        if self.is_closing and self._grace_timer is None and self._grace_deadline is not None:
            # accepted before shutdown() but started after it: shutdown() did
            # not see this connection, yet the grace period bounds it too
            self._grace_timer = self.sched.call_later(
                max(0.0, self._grace_deadline - _monotonic()), self._force_close)
        try:
            if self.ssl_context is not None:
                yield from self._handshake(conn)
            try:
                yield from self._requests(conn, addr)
            except _Drain:
                # thrown in while idle: nothing of a request was read yet
                if (yield from self._await_last_request(conn)):
                    yield from self._requests(conn, addr)
            if conn.linger:
                yield from self._linger(conn)
        except ClientDisconnected as exc:
            log.debug("client %s: %s", addr, exc)
        except OperationTimeout:
            log.debug("client %s timed out", addr)
        except _ServerClosing:
            pass
        except OSError as exc:
            log.debug("client %s: %s", addr, exc)
        finally:
            self._connection_closed(conn)

    def _linger(self, conn: _Conn) -> Generator[Any, Any, None]:
        """Close the write side, then read and discard until EOF or a bound.

        Closing a socket with unread input makes the kernel reset the
        connection, and a client still sending its body then fails on its
        send before it reads the response (a lost 413, or a 502 behind a
        proxy; issue 18 item 9). Once the client has seen the FIN it stops,
        or it finishes sending, and reads the response.
        """
        sock = conn.sock
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
                    yield conn.waiter.wait(False, min(LINGER_IDLE, left))
                except OperationTimeout:
                    return
                continue
            except OSError:
                return
            if not data:
                return
            discarded += len(data)

    def _await_last_request(self, conn: _Conn) -> Generator[Any, Any, bool]:
        """Wait up to the drain time for a request on an idle connection; True if data came."""
        left = DRAIN_TIMEOUT
        if self._grace_deadline is not None:
            left = min(left, self._grace_deadline - _monotonic())
        if left <= 0:
            return False
        try:
            yield conn.waiter.wait(False, left)
        except OperationTimeout:
            return False
        return True

    def _handshake(self, conn: _Conn) -> Generator[Any, Any, Any]:
        assert self.ssl_context is not None
        tls = self.ssl_context.wrap_socket(conn.sock, server_side=True,
                                           do_handshake_on_connect=False)
        conn.sock = tls
        conn.waiter.owner = tls
        deadline = _monotonic() + (self.options["header_timeout"] or 30.0)
        return (yield from handshake(tls, conn.waiter, deadline, _monotonic))

    def _requests(self, conn: _Conn, addr: Any) -> Generator[Any, Any, None]:
        """Serve requests on one connection until it should close."""
        opts = self.options
        limits = self._limits
        parse = _parse_head
        max_line = limits["max_request_line"]
        max_bytes = limits["max_header_bytes"]
        max_count = limits["max_header_count"]
        max_body = limits["max_body"]
        keepalive_timeout = opts["keepalive_timeout"]
        header_timeout = opts["header_timeout"]
        # Only the peer's address is kept per connection: an idle keep-alive
        # connection should hold as little memory as possible.
        if isinstance(addr, tuple):
            peer = (addr[0], str(addr[1]))
        else:
            peer = ("", "")
        conn.peer = peer
        recv = conn.sock.recv
        waiter = conn.waiter
        is_tls = isinstance(conn.sock, ssl.SSLSocket)
        first = True
        # Request isolation (docs/server.rst): each request runs in a fresh
        # copy of the server's context. The connection's coroutine was started
        # in one; after each request it is given another, which the scheduler
        # enters from its next step on. ``in_context``: this step runs in it.
        coro = conn.coro
        base_context = self.context
        in_context = True
        while True:
            # -- wait for and read a request head --
            # A new connection is not idle: its first request is served even
            # if shutdown began since the accept (graceful restarts).
            conn.idle = not first
            conn.fresh = first
            if not conn.buf:
                if self.is_closing and not first:
                    # The last response announced keep-alive (its head went
                    # before the stop began): the client may be sending its
                    # next request right now. Answer one that comes soon.
                    if not (yield from self._await_last_request(conn)):
                        return
                if conn.drained and not first and not is_tls:
                    # Right after a response the next request has rarely come
                    # yet: wait for it rather than make a recv that fails. The
                    # reactor wakes us at once if data came meanwhile (epoll:
                    # an edge that came while nobody waited is remembered).
                    yield waiter.wait(False, keepalive_timeout)
                    in_context = True
                while True:
                    try:
                        data = recv(262144)
                        break
                    except WOULD_BLOCK:
                        if first and self.is_closing:
                            # accepted after the stop began: a short wait
                            yield waiter.wait(False, min(DRAIN_TIMEOUT, header_timeout or 1e9))
                        else:
                            yield waiter.wait(False, header_timeout if first else keepalive_timeout)
                        in_context = True
                    except ssl.SSLWantWriteError:
                        yield waiter.wait(True, keepalive_timeout)
                        in_context = True
                    except OSError as exc:
                        raise ClientDisconnected(str(exc)) from exc
                if not data:
                    return
                conn.drained = len(data) < 262144
                conn.buf = data
                data = b""
            conn.idle = conn.fresh = False
            first = False
            try:
                head = parse(conn.buf, max_request_line=max_line, max_header_bytes=max_bytes,
                             max_header_count=max_count, max_body=max_body)
                if head is None:
                    deadline = _monotonic() + (header_timeout or 1e9)
                    while head is None:
                        scanned = len(conn.buf)
                        yield from conn.recv_more(max(0.0, deadline - _monotonic()))
                        head = parse(conn.buf, max_request_line=max_line,
                                     max_header_bytes=max_bytes, max_header_count=max_count,
                                     max_body=max_body, scan_from=scanned)
            except _RemoteProtocolError as exc:
                yield from self._reject(conn, exc, addr)
                return
            except ClientDisconnected:
                return
            except OperationTimeout:
                yield from self._reject(conn, _RemoteProtocolError("request head timeout", 408),
                                        addr, linger=False)
                return
            conn.buf = conn.buf[head.head_size:]
            if head.method == "CONNECT":
                # A WSGI app cannot open a tunnel, and a 2xx answer would
                # make the client start one (RFC 9110 §9.3.6): refuse it.
                yield from self._reject(conn, _RemoteProtocolError(
                    "CONNECT (a tunnel) is not supported by this server", 501), addr)
                return
            if not in_context:
                yield None  # a pipelined request: step into its context first
            conn.head = head
            keep_open = yield from self._request(conn, head, peer)
            self.requests_served += 1
            if self.on_request_served is not None:
                self.on_request_served()
            head = conn.head = None
            if not keep_open:
                # (during a stop every response says Connection: close,
                # so the connection ends here unless its head was sent
                # before the stop)
                return
            coro.ctx = base_context.copy()
            in_context = False

    def _reject(self, conn: _Conn, exc: _RemoteProtocolError, addr: Any,
                linger: bool = True) -> Generator[Any, Any, None]:
        log.debug("rejecting request from %s: %s %s", addr, exc.status_code, exc)
        # a client that timed out is not sending: no need to linger for it
        conn.linger = linger
        try:
            yield from conn.send(_http.simple_response(exc.status_code, exc.reason,
                                                       server=self.options["ident"]))
        except (ClientDisconnected, OperationTimeout):
            pass

    # -- one request ----------------------------------------------------------------
    def _request(self, conn: _Conn, head: Any, peer: tuple[str, str]) -> Generator[Any, Any, bool]:
        """Serve one request; returns True to keep the connection open."""
        started = _monotonic() if self.access_log_enabled else 0.0
        environ = self._base_environ.copy()
        environ["REMOTE_ADDR"], environ["REMOTE_PORT"] = peer
        environ["REQUEST_METHOD"] = head.method
        environ["QUERY_STRING"] = head.query
        environ["SERVER_PROTOCOL"] = "HTTP/1.1" if head.version[1] else "HTTP/1.0"
        environ["REQUEST_URI"] = environ["RAW_URI"] = head.target
        path = head.path
        if "%" in path:
            path = decode_path(path)
        elif path == "*":
            # OPTIONS * (asterisk-form) names no resource: PATH_INFO must be
            # empty or start with '/' (PEP 3333, CGI); REQUEST_URI keeps '*'.
            path = ""
        prefix = self.url_prefix
        if prefix:
            if path == prefix or path.startswith(prefix + "/"):
                path = path[len(prefix):]
            else:
                # the body is not read, so the connection cannot go on after it
                keep_open = head.keep_alive and not (head.content_length or head.chunked)
                conn.linger = not keep_open
                yield from self._simple(conn, 404, "Not Found", head, keep_open)
                return keep_open
        environ["PATH_INFO"] = path
        keys = HEADER_KEYS
        for name, value in head.headers:
            key = keys.get(name) or header_key(name)
            if key in environ:
                if key[0] == "H":  # HTTP_*: join repeated fields (RFC 9110 §5.3)
                    environ[key] += ("; " if key == "HTTP_COOKIE" else ", ") + value
                    continue
            environ[key] = value
        if head.host is not None:
            environ["HTTP_HOST"] = head.host
        if self.proxies.is_active:
            self.proxies.apply(environ)

        # -- the body --
        source = None
        spool = None
        if head.content_length or head.chunked:
            # a trailer section is held to the head's limits
            source = BodySource(conn, head.content_length, head.chunked, head.expect_continue,
                                self.options["max_body"], self.options["body_timeout"],
                                self._limits["max_header_bytes"], self._limits["max_header_count"])
            if self.stream_input:
                environ["wsgi.input"] = UnreadableInput()
                gate = CogenGate(self.sched, environ, head.content_length, None, source)
            else:
                try:
                    stream, length = yield from read_whole_body(source, self.options["body_buffer"])
                except _RemoteProtocolError as exc:
                    yield from self._reject(conn, exc, peer[0])
                    return False
                except OperationTimeout:
                    yield from self._reject(
                        conn, _RemoteProtocolError("request body timeout", 408), peer[0], linger=False)
                    return False
                environ["wsgi.input"] = spool = stream
                environ["CONTENT_LENGTH"] = str(length)
                gate = CogenGate(self.sched, environ, length, stream)
        else:
            stream = environ["wsgi.input"] = _EmptyInput()
            if "CONTENT_LENGTH" in environ:
                del environ["CONTENT_LENGTH"]
            gate = CogenGate(self.sched, environ, 0, stream)
        environ["cogen.wsgi"] = environ["cogen.input"] = gate
        environ["cogen.core"] = OperationProxy(gate, _cogen_core)
        environ["cogen.call"] = gate.call
        if self.cogen_key:
            environ["cogen"] = gate

        # -- the app --
        response = Response(self, conn, head, environ)
        if "HTTP_UPGRADE" in environ:
            gate.websocket = WebSocketUpgrade(self, conn, response, environ)
        try:
            if self.threads:
                ok = yield from response.run_threaded(self._get_pool())
            else:
                ok = yield from response.run()
        finally:
            if spool is not None:
                # maybe a temporary file: its descriptor must not wait for the
                # garbage collector (environ and gate refer to each other)
                spool.close()
        if response.switched is not None:
            # the connection speaks another protocol now: finish it, then close
            yield from response.switched._finish(not ok)
            if self.access_log_enabled and access_log.isEnabledFor(logging.INFO):
                self._log_access(environ, head, response, started)
            return False
        if source is not None and not source.done:
            # The app left part of a streamed body unread: read a bounded
            # rest so the connection can be kept, else close it. A client
            # still waiting for 100 Continue never sent the body: close.
            ok = ok and response.keep_alive and not source.expect_continue \
                and (yield from self._drain(source))
            conn.linger = not ok
        if self.access_log_enabled and access_log.isEnabledFor(logging.INFO):
            self._log_access(environ, head, response, started)
        return ok and response.keep_alive

    def _drain(self, source: BodySource, limit: int = 1 << 20) -> Generator[Any, Any, bool]:
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

    def _simple(self, conn: _Conn, code: int, reason: str, head: Any,
                keep_open: bool) -> Generator[Any, Any, None]:
        data = _http.simple_response(code, reason, server=self.options["ident"],
                                     close=not keep_open)
        if head.method == "HEAD":
            data = data[:data.index(b"\r\n\r\n") + 4]
        yield from conn.send(data)

    def _get_pool(self) -> Any:
        if self._pool is None:
            from cogen.core import threads
            pool = self._pool = threads.ThreadPool(self.threads, name="cogen-web")
            self.sched.on_close(lambda: pool.shutdown(wait=False, cancel_pending=True))
            # a pool given as ``pool=`` belongs to its creator: shut it down
            # with the last connection after shutdown(), or with the scheduler
            self.sched.on_close(self._release_pool)
        return self._pool

    def _release_pool(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_pending=True)

    def _log_access(self, environ: dict[str, Any], head: Any, response: Response,
                    started: float) -> None:
        """Log one request on ``cogen.web.access`` (common/combined log format by default)."""
        status = response.status[:3] if response.status else "-"
        size = str(response.body_sent) if response.body_sent else "-"
        fmt = self.options["access_log_format"]
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


_DEFAULT_ACCESS_FORMAT = OPTIONS_BY_NAME["access_log_format"].default
#: the access log's %(p)s; refreshed in a forked worker (os.register_at_fork)
_PID = [str(os.getpid())]
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=lambda: _PID.__setitem__(0, str(os.getpid())))
_log_time_cache: list[Any] = [0, ""]


def _log_time() -> str:
    """The access log's timestamp, formatted once per second."""
    now = int(time.time())
    if now != _log_time_cache[0]:
        _log_time_cache[0] = now
        _log_time_cache[1] = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now))
    stamp: str = _log_time_cache[1]
    return stamp


def _wraps_validator(app: Any) -> bool:
    """True if ``app`` is, or wraps a few levels down, a ``wsgiref.validate`` validator."""
    for _ in range(6):
        if getattr(app, "__module__", None) == "wsgiref.validate":
            return True
        for attr in ("app", "application", "wrap_app", "__wrapped__"):
            inner = getattr(app, attr, None)
            if inner is not None and inner is not app:
                app = inner
                break
        else:
            return False
    return False


class _EmptyInput:
    """``wsgi.input`` of a request without a body."""

    __slots__ = ()

    def read(self, size: int = -1) -> bytes:
        return b""

    def readline(self, size: int = -1) -> bytes:
        return b""

    def readlines(self, hint: int = -1) -> list[bytes]:
        return []

    def __iter__(self) -> _EmptyInput:
        return self

    def __next__(self) -> bytes:
        raise StopIteration


def _has_data(sock: Any) -> bool:
    """True if ``sock`` has received bytes not read yet."""
    try:
        if isinstance(sock, ssl.SSLSocket):
            # its TLS layer may hold decrypted bytes; SSLSocket.recv takes no
            # flags, so the kernel's buffer is peeked through the plain socket
            return sock.pending() > 0 or bool(socket.socket.recv(sock, 1, socket.MSG_PEEK))
        return bool(sock.recv(1, socket.MSG_PEEK))
    except OSError:  # BlockingIOError: nothing yet; any other error: nothing to serve
        return False


@coroutine
def _signal(name: Any) -> Generator[Any, Any, None]:
    yield Signal(name)

