"""The HTTP/1.1 WSGI server: the listening socket, the accept loop, the limits and the stop.

Theory of operation
-------------------
:class:`WSGIServer` binds and listens when it is made. :meth:`WSGIServer.serve`
accepts connections on the non-blocking listening socket and adds one
coroutine per connection, :func:`cogen.web.connection.serve_connection`,
which serves that connection's requests; the connections register with the
server (``connection_opened``/``connection_closed``) so that it can count
them, bound them (``max_connections``) and stop them. :meth:`WSGIServer.shutdown`
stops accepting, gives idle connections one last request, lets requests in
flight finish within the grace period, then closes what is left.

Items the app yields that are cogen operations (directly, or recorded on
``environ['cogen']`` by the core proxy) are run by yielding them from the
connection coroutine; the outcome is stored on the gate (see
:mod:`cogen.web.extensions`). With ``threads=N`` the app call and each step of
its iterable run in a thread pool instead, while the socket I/O stays on the
loop. docs/internals.rst follows one request through the modules.
"""
from __future__ import annotations

import contextvars
import dataclasses
import logging
import os
import socket
import ssl
import stat
import time
from collections.abc import Callable, Generator
from typing import Any

from cogen.core import coroutines as _coroutines
from cogen.core.address import parse_address
from cogen.core.broker import install as install_broker
from cogen.core.coroutines import Coroutine, coroutine
from cogen.core.events import OperationTimeout, Signal, WaitForSignal
from cogen.core.io import ACCEPT_ABORTED, WOULD_BLOCK, WaitIO
from cogen.core.schedulers import Scheduler
from cogen.web._watch import ServerClosing
from cogen.web.connection import Connection, Drain, serve_connection
from cogen.web.environ import ERRORS, ProxyRules
from cogen.web.extensions import is_streaming_input
from cogen.web.http import IDLE
from cogen.web.options import ServerOptions, resolve_server_options
from cogen.web.response import FileWrapper

__all__ = ["SPARE_AGE", "WSGIServer", "listen_socket", "parse_bind"]

log = logging.getLogger("cogen.web")

_monotonic = time.monotonic

#: Seconds without an accept() failure that end an episode of them.
_ACCEPT_QUIET = 5.0

#: A connection accepted longer ago than this that has sent nothing is a
#: browser's spare connection, closed at once on a stop (issue 18 item 8); a
#: younger one may just not have had its request arrive yet: it gets the drain.
SPARE_AGE = 0.5


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


def listen_socket(bind_addr: Any, opts: ServerOptions) -> socket.socket:
    """A listening socket for ``bind_addr`` (see :func:`parse_bind`), made with ``opts``.

    A socket object (or a :class:`cogen.core.sockets.Socket`) is returned as
    it is. Otherwise a new one is bound (``SO_REUSEADDR``; ``SO_REUSEPORT``
    with ``reuse_port``; IPv6 only on an IPv6 address; a stale Unix socket
    file replaced, the new one given ``unix_socket_mode`` and
    ``unix_socket_group``) and listening with ``backlog``. Raises OSError
    (and closes the socket) when binding fails.
    """
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
            if opts.reuse_port and hasattr(socket, "SO_REUSEPORT"):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(addr)
        if family == socket.AF_UNIX:
            _set_socket_owner(addr, opts.unix_socket_mode, opts.unix_socket_group)
        sock.listen(opts.backlog)
    except BaseException:
        sock.close()
        raise
    return sock


def _ssl_context(opts: ServerOptions) -> ssl.SSLContext | None:
    """The TLS context of the options (``ssl_context``, or one loaded from ``certfile``), or None."""
    if opts.ssl_context is not None:
        given: ssl.SSLContext = opts.ssl_context
        return given
    if opts.certfile:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(opts.certfile, opts.keyfile)
        return ctx
    return None


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
        opts = resolve_server_options(options)
        if server_name is not None:
            opts = dataclasses.replace(opts, server_name=server_name)
        self.options = opts
        self.app = app
        self.sched = scheduler if scheduler is not None else Scheduler(broker=opts.broker)
        if scheduler is not None and opts.broker is not None:
            install_broker(scheduler, opts.broker)
        # A socket we are handed is the caller's: closing ours must not unlink its path.
        self._owns_path = not isinstance(bind_addr, socket.socket) and not isinstance(
            getattr(bind_addr, "raw", None), socket.socket)
        # what can fail on a bad option comes before binding, so that an
        # error leaves no listening socket behind
        self.ssl_context = _ssl_context(opts)
        self.proxies = ProxyRules(opts.trusted_proxy, opts.trusted_proxy_headers,
                                  opts.clear_untrusted_proxy_headers)
        self.socket = listen_socket(bind_addr, opts)
        self.socket.setblocking(False)
        self.address = self.socket.getsockname()
        self.url_prefix = (opts.url_prefix or "").rstrip("/")
        self.threads = opts.threads
        self.thread_affinity = opts.thread_affinity
        self.stream_input = opts.stream_input or is_streaming_input(app)
        self.access_log_enabled = opts.access_log
        # environ['cogen'] is not a str under an undotted key, which
        # wsgiref.validate rejects (it takes undotted keys for CGI
        # variables): left out for an app wrapped in the validator.
        self.cogen_key = (opts.cogen_key if opts.cogen_key is not None
                          else not _wraps_validator(app))
        self._pool: Any = None
        self._conns: dict[int, Connection] = {}
        #: requests answered since the start (all connections)
        self.requests_served = 0
        #: called (as loop code) after each request, if set: the prefork
        #: workers count towards --max-requests with it
        self.on_request_served: Callable[[], Any] | None = None
        #: the open WebSockets, told 1001 (going away) by shutdown()
        self.websockets: set[Any] = set()
        #: True once shutdown() began: responses then say Connection: close
        self.is_closing = False
        self._serve_queued = True
        self._stopped = False
        self._backoff = _AcceptBackoff(self)
        self._serve_coro: Any = None
        self._grace_timer: Any = None
        #: the timer of the next sweep_idle while one is armed; it runs this
        #: often, so an idle connection lives up to that much past its timeout
        self.idle_sweep: Any = None
        #: the ``idle_deadline`` of a connection that starts an idle wait now
        #: (set by :meth:`arm_idle_sweep`)
        self.idle_deadline = 0.0
        self._sweep_every = min(1.0, (opts.keepalive_timeout or 1.0) / 8)
        #: when the grace period of a stop ends (None: no stop, or no bound)
        self.grace_deadline: float | None = None
        #: parsed request heads by their exact bytes (see Connection.serve):
        #: bounded in count and key size (the keys are the clients' bytes)
        self.head_cache: dict[bytes, list[Any]] = {}
        #: what every request's environ starts from (a copy of it)
        self.base_environ = _base_environ(self)
        #: every request runs in a fresh copy of this context (serve() makes it its own)
        self.context = contextvars.copy_context()

    # -- setup ----------------------------------------------------------------------
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
        root = getattr(coro, "root", coro)
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
        handle = serve_connection
        max_conns = self.options.max_connections
        is_unix = lsock.family == socket.AF_UNIX
        nodelay = socket.TCP_NODELAY
        ipproto = socket.IPPROTO_TCP
        conns = self._conns
        backoff = self._backoff
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
                    except ServerClosing:
                        break
                    continue
                except OSError as exc:
                    if self.is_closing:
                        break
                    if exc.errno in ACCEPT_ABORTED:
                        continue  # the client's doing: as core's Accept, take the next one
                    yield from backoff.wait(exc)
                    continue
                if backoff.failures:
                    backoff.recovered()
                sock.setblocking(False)
                if not is_unix:
                    try:
                        sock.setsockopt(ipproto, nodelay, 1)
                    except OSError:
                        pass
                add(handle, self, sock, addr)
            if self._serve_queued:
                self._take_queued(add, handle)
        finally:
            self._close_listener()

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
        room = max(1, self.options.backlog)
        if self.options.max_connections:
            room = min(room, self.options.max_connections - len(self._conns))
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
            add(handle, self, sock, addr)

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
        connection may send one last request within
        :data:`~cogen.web.connection.DRAIN_TIMEOUT`
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
            self.sched.forget_fd(fd, ServerClosing())
        spare_before = _monotonic() - SPARE_AGE
        for conn in list(self._conns.values()):
            if conn.state is not IDLE:
                continue  # a request is under way: the grace period bounds it
            if conn.requests or conn.is_handshaking:
                # between two requests (in a TLS handshake, Drain closes it)
                self.sched.forget_fd(conn.fd, Drain())
            elif not _has_data(conn.sock):
                if conn.accepted < spare_before:
                    # a browser's spare connection: it may never send (issue 18 item 8)
                    self.sched.forget_fd(conn.fd, ServerClosing())
                else:
                    self.sched.forget_fd(conn.fd, Drain())
        for ws in list(self.websockets):
            self.sched.add(ws.going_away)
        if grace is not None:
            self.grace_deadline = _monotonic() + grace
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
            self.sched.forget_fd(conn.fd, ServerClosing())
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
                self.sched.throw(conn.coro, ServerClosing("the grace period is over"))
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def connection_opened(self, conn: Connection) -> None:
        """Count ``conn`` as open (its coroutine calls this first); a stop covers it from now on."""
        self._conns[conn.fd] = conn
        if self.is_closing and self._grace_timer is None and self.grace_deadline is not None:
            # accepted before shutdown() but started after it: shutdown() did
            # not see this connection, yet the grace period bounds it too
            self._grace_timer = self.sched.call_later(
                max(0.0, self.grace_deadline - _monotonic()), self._force_close)

    def arm_idle_sweep(self) -> None:
        """Have :meth:`sweep_idle` run after the sweep interval (a connection starts an idle wait).

        Also sets :attr:`idle_deadline`, which the connections that start
        an idle wait before the next sweep take as theirs: one float for
        them all, not one each. It is a sweep interval later than now plus
        the keep-alive timeout, so that it is late for none of them; a
        connection is timed out between one and two sweep intervals after
        its keep-alive timeout has passed.
        """
        every = self._sweep_every
        self.idle_deadline = _monotonic() + (self.options.keepalive_timeout or 0.0) + every
        self.idle_sweep = self.sched.call_later(every, self.sweep_idle)

    def sweep_idle(self) -> None:
        """Time out the keep-alive connections idle past their ``idle_deadline``.

        Re-arms itself while any connection still waits so; the connection
        gets OperationTimeout, as from a timer of its own.
        """
        self.idle_sweep = None
        now = _monotonic()
        waiting = False
        for conn in list(self._conns.values()):
            deadline = conn.idle_deadline
            if deadline:
                if deadline <= now:
                    conn.idle_deadline = 0.0
                    self.sched.forget_fd(conn.fd, OperationTimeout(
                        conn.waiter, self.options.keepalive_timeout))
                else:
                    waiting = True
        if waiting:
            self.arm_idle_sweep()

    def connection_closed(self, conn: Connection) -> None:
        """Close ``conn``'s socket and forget it (its coroutine calls this last, on every path)."""
        self._conns.pop(conn.fd, None)
        if not self._conns and self.idle_sweep is not None:
            # nothing left to sweep: an armed timer would keep the loop running
            self.sched.cancel_call(self.idle_sweep)
            self.idle_sweep = None
        # the socket is closed next and never duplicated: closing drops it
        # from epoll, no need for a system call to unregister it
        self.sched.forget_fd(conn.fd, closing=True)
        try:
            conn.sock.close()
        except OSError:
            pass
        if self.options.max_connections or self._backoff.failures:
            self.sched.add(_signal, (self, "slot"))
        if self.is_closing and not self._conns:
            if self._grace_timer is not None:
                self.sched.cancel_call(self._grace_timer)
                self._grace_timer = None
            self._release_pool()

    def thread_pool(self) -> Any:
        """The pool the app runs in with ``threads=N``, started on first use."""
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


#: the environ keys set on every request the app is called for (by
#: cogen.web.environ.request_environ and Connection.request)
_PER_REQUEST_KEYS = ("REQUEST_METHOD", "QUERY_STRING", "SERVER_PROTOCOL", "REQUEST_URI", "RAW_URI",
                     "PATH_INFO", "REMOTE_ADDR", "REMOTE_PORT", "wsgi.input", "cogen.wsgi",
                     "cogen.input", "cogen.core", "cogen.call")


def _base_environ(server: WSGIServer) -> dict[str, Any]:
    """What every request's environ of ``server`` starts from."""
    addr = server.address
    if server.socket.family == socket.AF_UNIX:
        name, port = "localhost", ""
    else:
        name, port = addr[0], str(addr[1])
    environ = {
        "SERVER_NAME": server.options.server_name or name,
        "SERVER_PORT": port,
        "SCRIPT_NAME": server.url_prefix,
        "SERVER_SOFTWARE": "cogen",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "https" if server.ssl_context else "http",
        "wsgi.errors": ERRORS,
        "wsgi.multithread": server.threads > 0,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "wsgi.file_wrapper": FileWrapper,
        "wsgi.input_terminated": True,
        "cogen.sched": server.sched,
    }
    # The keys every request sets before its app sees them, as placeholders
    # here (each is overwritten): a copy of this dict then has room for them
    # all, where it would otherwise grow its table (a rehash of every key)
    # on every request.
    environ.update(dict.fromkeys(_PER_REQUEST_KEYS, ""))
    if server.cogen_key:
        environ["cogen"] = ""
    return environ


class _AcceptBackoff:
    """The pauses between failed accept() calls, and their log lines."""

    __slots__ = ("failed_at", "failures", "recovery_logged", "server")

    def __init__(self, server: WSGIServer) -> None:
        self.server = server
        #: accept() failures in a row (EMFILE...; while > 0 a closed connection
        #: wakes the accept loop), when the last one was, and whether the
        #: episode's recovery was logged
        self.failures = 0
        self.failed_at = -_ACCEPT_QUIET - 1.0
        self.recovery_logged = True

    def wait(self, exc: OSError) -> Generator[Any, Any, None]:
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
        self.failures += 1
        delay = min(0.5, 0.025 * (1 << min(self.failures, 5)))
        if now - self.failed_at > _ACCEPT_QUIET:
            self.recovery_logged = False
            log.warning("accept failed: %s; retrying with back-off", exc)
        else:
            log.debug("accept still failing (%s); next try in %.3f s", exc, delay)
        self.failed_at = now
        try:
            yield WaitForSignal((self.server, "slot"), timeout=delay)
        except OperationTimeout:
            pass

    def recovered(self) -> None:
        """accept() worked again: the episode is over."""
        if not self.recovery_logged:
            self.recovery_logged = True
            log.info("accepting again after %d failed attempts", self.failures)
        self.failures = 0


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

