"""Cooperative sockets: a non-blocking socket wrapper and the operations on it.

A coroutine yields an operation on a :class:`Socket` and gets its result::

    conn, addr = yield sockets.Accept(srv)
    line = yield sockets.ReadLine(conn, 8192)
    yield sockets.WriteAll(conn, line)

or, the same through methods that build the operations::

    line = yield conn.readline(8192, timeout=30)

Operations (each takes ``timeout=`` and ``prio=``): :class:`Accept`,
:class:`Connect`, :class:`Read` (``Recv``), :class:`ReadAll` (``RecvAll``),
:class:`ReadLine`, :class:`Write` (``Send``), :class:`WriteAll`
(``SendAll``), :class:`SendFile` and :class:`Handshake`. Reads never return
``b""`` (except ``ReadAll(sock, 0)``): the end of the stream raises
:class:`ConnectionClosed`, after ``ReadLine`` has returned a last partial
line (one without ``b"\n"``) if the stream ended in the middle of one. A
socket has one read buffer shared by all reads, so bytes received past a line
are kept for the next read, and a read that times out or fails loses nothing.
See :mod:`cogen.core._sockets_ops` and :mod:`cogen.core._sockets_conn` for
how the operations work and :mod:`cogen.core._sockets_errors` for the
exceptions.

TLS: ``sock.wrap(context, server_side=..., server_hostname=...)`` (or
:func:`wrap_socket`) turns the socket into a TLS socket in place; on a
listening socket, it makes ``Accept`` return TLS connections. The handshake
happens on the first read or write, or explicitly with ``yield
sock.handshake()``.

A socket is used from the thread of the scheduler that runs its operations;
:meth:`Socket.close` wakes any coroutine waiting on it with
:class:`SocketClosed`.
"""
from __future__ import annotations

import errno
import os
import socket as _std
import ssl
import stat
from typing import Any, cast

from cogen.core._sockets_conn import Accept, Connect, Handshake, SendFile
from cogen.core._sockets_errors import (
    ConnectionClosed,
    ConnectionRefused,
    ConnectionReset,
    LineTooLong,
    SocketClosed,
    SocketError,
    TLSError,
    translate,
)
from cogen.core._sockets_ops import (
    Read,
    ReadAll,
    ReadLine,
    Recv,
    RecvAll,
    Send,
    SendAll,
    SocketOperation,
    Write,
    WriteAll,
)
from cogen.core.address import TCP_FAMILIES, UNIX, parse_address
from cogen.core.util import PENDING, USE_DEFAULT, priority

__all__ = [
    "HAS_REUSEPORT",
    "Accept",
    "Connect",
    "ConnectionClosed",
    "ConnectionRefused",
    "ConnectionReset",
    "Handshake",
    "LineTooLong",
    "Read",
    "ReadAll",
    "ReadLine",
    "Recv",
    "RecvAll",
    "Send",
    "SendAll",
    "SendFile",
    "Socket",
    "SocketClosed",
    "SocketError",
    "SocketFile",
    "SocketOperation",
    "TLSError",
    "Write",
    "WriteAll",
    "listen",
    "wrap_socket",
]

# The socket module constants programs need, so that ``sockets.SOL_SOCKET``
# works as in the original cogen; only the ones this platform has.
_CONSTANTS = (
    "AF_INET", "AF_INET6", "AF_UNIX", "AF_UNSPEC", "SOCK_STREAM", "SOCK_DGRAM",
    "SOL_SOCKET", "SO_REUSEADDR", "SO_REUSEPORT", "SO_KEEPALIVE", "SO_ERROR", "SO_LINGER",
    "SO_RCVBUF", "SO_SNDBUF", "SO_RCVLOWAT", "SO_SNDLOWAT", "SO_BROADCAST", "SO_ACCEPTCONN",
    "IPPROTO_TCP", "IPPROTO_IP", "IPPROTO_IPV6", "IPV6_V6ONLY", "TCP_NODELAY", "TCP_KEEPIDLE",
    "TCP_KEEPINTVL", "TCP_KEEPCNT", "TCP_CORK", "TCP_QUICKACK", "TCP_DEFER_ACCEPT",
    "SHUT_RD", "SHUT_WR", "SHUT_RDWR", "SOMAXCONN", "INADDR_ANY", "MSG_PEEK",
)
for _name in _CONSTANTS:
    if hasattr(_std, _name):
        globals()[_name] = getattr(_std, _name)
        __all__.append(_name)
del _name

#: True where ``SO_REUSEPORT`` exists (several processes accepting on one port).
HAS_REUSEPORT = hasattr(_std, "SO_REUSEPORT")
_DEFAULT_BACKLOG = 1024


class Socket:
    """A non-blocking socket whose I/O methods return operations.

    Args:
        family, type, proto, fileno: as for :class:`socket.socket`; the
            defaults make a TCP/IPv4 socket. With ``fileno``, the family and
            type are read from the descriptor unless given.

    The stdlib socket underneath (``.raw``) is always non-blocking: the
    operations wait by parking the coroutine, bounded by their timeout.
    ``setblocking`` only records a flag (``getblocking``) for code written for
    stdlib sockets; ``settimeout`` sets the default timeout of this socket's
    operations. Usable as a context manager (closes on exit).

    The attributes below may be read by anyone; only this class and the
    socket operations write them (docs/internals.rst, "The operation
    interface").

    Attributes:
        raw: the stdlib (or ``ssl.SSLSocket``) socket underneath.
        fd: the descriptor, -1 once closed (as :meth:`fileno`).
        is_tls: True for a TLS connection (after :meth:`wrap`).
        read_buf: the ``bytearray`` of received bytes no read has consumed
            yet, shared by every read.
        at_eof: True once a read saw the end of the stream (:meth:`mark_eof`).
        default_timeout: the timeout of operations given none (``settimeout``;
            ``USE_DEFAULT`` for the scheduler's).
    """

    __slots__ = (
        "__weakref__",
        "_blocking",
        "_owner",
        "_sched",
        "_ssl_context",
        "at_eof",
        "default_timeout",
        "fd",
        "is_tls",
        "raw",
        "read_buf",
    )

    def __init__(self, family: int | None = None, type: int | None = None, proto: int = 0,
                 fileno: int | None = None) -> None:
        if fileno is None:
            family = _std.AF_INET if family is None else family
            type = _std.SOCK_STREAM if type is None else type
        try:
            sock = _std.socket(-1 if family is None else family, -1 if type is None else type,
                               proto if fileno is None or proto else -1, fileno)
            sock.setblocking(False)
        except OSError as exc:  # EMFILE, EAFNOSUPPORT, ...
            raise translate(exc, False) from exc
        self._setup(sock)

    def _setup(self, sock: _std.socket) -> None:
        self.raw = sock
        self.fd = sock.fileno()
        self.read_buf = bytearray()
        self.at_eof = False
        self.default_timeout: Any = USE_DEFAULT
        self._blocking = True
        self._sched: Any = None
        # The reactor tells a reused descriptor number from the old one by
        # this token. Not the wrapper itself: the epoll reactor remembers it
        # until the number is reused, and a wrapper somebody forgot to close
        # must still be collectable (and its descriptor closed by the stdlib).
        self._owner = object()
        self.is_tls = isinstance(sock, ssl.SSLSocket)
        self._ssl_context: ssl.SSLContext | None = None

    @classmethod
    def from_socket(cls, sock: _std.socket) -> Socket:
        """Wrap an existing stdlib (or ``ssl``) socket, making it non-blocking.

        The wrapper takes the socket over: close it through the wrapper.
        """
        if isinstance(sock, Socket):
            return sock
        if not isinstance(sock, _std.socket):
            raise TypeError(f"from_socket needs a socket.socket, not {sock!r}")
        sock.setblocking(False)
        self = cls.__new__(cls)
        self._setup(sock)
        return self

    def wrap_accepted(self, conn: _std.socket) -> Socket:
        """Wrap a connection ``Accept`` got on this listening socket."""
        conn.setblocking(False)
        if conn.family in TCP_FAMILIES:
            conn.setsockopt(_std.IPPROTO_TCP, _std.TCP_NODELAY, 1)
        ctx = self._ssl_context
        if ctx is not None:
            conn = ctx.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
        new = self.__class__.__new__(self.__class__)
        new._setup(conn)
        return new

    # -- the stdlib-like surface -------------------------------------------------------
    @property
    def family(self) -> int:
        """The address family (``AF_INET``, ``AF_INET6``, ``AF_UNIX``)."""
        return self.raw.family

    @property
    def type(self) -> int:
        """The socket type (``SOCK_STREAM``)."""
        return self.raw.type

    @property
    def proto(self) -> int:
        """The protocol number."""
        return self.raw.proto

    @property
    def is_closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self.fd < 0

    @property
    def buffered(self) -> int:
        """How many received bytes wait in the read buffer."""
        return len(self.read_buf)

    def pending(self) -> int:
        """Bytes a read can return without the OS: the read buffer plus, on TLS, decrypted bytes."""
        n = len(self.read_buf)
        if self.is_tls and self.fd >= 0:
            n += cast(ssl.SSLSocket, self.raw).pending()
        return n

    def fileno(self) -> int:
        """The descriptor, or -1 once closed."""
        return self.fd

    def _call(self, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except OSError as exc:
            raise translate(exc, self.fd < 0) from exc

    def bind(self, addr: Any) -> None:
        """Bind to ``addr``; raises :class:`SocketError` (e.g. ``EADDRINUSE``)."""
        self._call(self.raw.bind, addr)

    def listen(self, backlog: int | None = None) -> None:
        """Listen for connections (``backlog`` defaults to 1024, capped by the OS)."""
        self._call(self.raw.listen, _DEFAULT_BACKLOG if backlog is None else backlog)

    def setsockopt(self, *args: Any) -> None:
        """As :meth:`socket.socket.setsockopt`."""
        self._call(self.raw.setsockopt, *args)

    def getsockopt(self, *args: Any) -> Any:
        """As :meth:`socket.socket.getsockopt`."""
        return self._call(self.raw.getsockopt, *args)

    def getsockname(self) -> Any:
        """The local address."""
        return self._call(self.raw.getsockname)

    def getpeername(self) -> Any:
        """The remote address; raises :class:`SocketError` (``ENOTCONN``) if not connected."""
        return self._call(self.raw.getpeername)

    def shutdown(self, how: int = _std.SHUT_RDWR) -> None:
        """Shut down one or both directions (``SHUT_RD``, ``SHUT_WR``, ``SHUT_RDWR``).

        On a TLS socket this also drops the TLS layer without a close_notify,
        as :meth:`ssl.SSLSocket.shutdown` does.
        """
        self._call(self.raw.shutdown, how)

    def setblocking(self, flag: bool) -> None:
        """Record the flag; the socket stays non-blocking underneath (see the class doc)."""
        self._blocking = bool(flag)

    def getblocking(self) -> bool:
        """The flag :meth:`setblocking` recorded (True at first)."""
        return self._blocking

    def settimeout(self, timeout: float | None) -> None:
        """Set the default timeout, in seconds, of this socket's operations.

        ``None`` waits forever. Operations given their own ``timeout=`` use
        that instead. Connections accepted on this socket do not inherit it.
        """
        if timeout is not None:
            if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
                raise TypeError(f"timeout must be a number of seconds or None, not {timeout!r}")
            if timeout < 0:
                raise ValueError(f"timeout must not be negative, got {timeout!r}")
        self.default_timeout = timeout

    def gettimeout(self) -> float | None:
        """The value :meth:`settimeout` set; None if never set (the scheduler's default then applies)."""
        return None if self.default_timeout is USE_DEFAULT else self.default_timeout

    def getpeercert(self, binary_form: bool = False) -> Any:
        """The peer's certificate of a TLS socket (after the handshake).

        As :meth:`ssl.SSLSocket.getpeercert`.
        """
        if not self.is_tls:
            raise SocketError(f"{self!r} is not a TLS socket")
        return cast(ssl.SSLSocket, self.raw).getpeercert(binary_form)

    def close(self) -> None:
        """Close the socket (idempotent).

        A coroutine waiting on it gets :class:`SocketClosed`; buffered bytes
        are dropped.
        """
        fd = self.fd
        if fd < 0:
            return
        self.fd = -1
        self.read_buf.clear()
        sched = self._sched
        if sched is not None:
            self._sched = None
            sched.forget_fd(fd, SocketClosed(errno.EBADF, "the socket was closed while waiting on it"))
        self.raw.close()

    # -- what the socket operations call (docs/internals.rst, "The operation interface")
    def park_reader(self, sched: Any, op: Any, coro: Any) -> Any:
        """Park ``coro`` until this socket is readable, then ``op.process`` runs again.

        Returns ``PENDING`` (for ``process`` to return). Raises SocketClosed
        if the socket is closed; a later :meth:`close` throws SocketClosed
        into the parked coroutine.
        """
        if self.fd < 0:
            raise SocketClosed(errno.EBADF, "the socket was closed")
        self._sched = sched
        sched.wait_readable(self.fd, self._owner, op, coro)
        return PENDING

    def park_writer(self, sched: Any, op: Any, coro: Any) -> Any:
        """As :meth:`park_reader`, until the socket is writable."""
        if self.fd < 0:
            raise SocketClosed(errno.EBADF, "the socket was closed")
        self._sched = sched
        sched.wait_writable(self.fd, self._owner, op, coro)
        return PENDING

    def attach(self, sched: Any) -> None:
        """Note that an operation on this socket waits in ``sched`` (not on its descriptor)."""
        self._sched = sched

    def mark_eof(self) -> None:
        """Note that a read saw the end of the stream: later reads raise ConnectionClosed."""
        self.at_eof = True

    def __enter__(self) -> Socket:  # noqa: PYI034 (typing.Self needs 3.11)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        kind = "TLS " if self.is_tls else ""
        if self.fd < 0:
            return f"<cogen {kind}Socket closed>"
        return f"<cogen {kind}Socket fd={self.fd} family={self.raw.family!r}>"

    # -- TLS --------------------------------------------------------------------------
    def wrap(self, context: ssl.SSLContext, server_side: bool = False,
             server_hostname: str | None = None, **kwargs: Any) -> Socket:
        """Turn this socket into a TLS socket, in place; returns it.

        On a listening socket, makes ``Accept`` return TLS connections
        (``server_side`` is implied). On a connected or not yet connected
        socket, wraps it with ``context.wrap_socket(...,
        do_handshake_on_connect=False)``; the handshake happens on the first
        read or write, or with ``yield sock.handshake()``. A client gives
        ``server_hostname`` for certificate checks. Extra keyword arguments go
        to ``context.wrap_socket``.
        """
        if self.fd < 0:
            raise SocketClosed(errno.EBADF, "cannot wrap a closed socket")
        if self.is_tls or self._ssl_context is not None:
            raise SocketError(f"{self!r} is already wrapped for TLS")
        if self.raw.getsockopt(_std.SOL_SOCKET, _std.SO_ACCEPTCONN):
            self._ssl_context = context
            return self
        try:
            raw = context.wrap_socket(self.raw, server_side=server_side,
                                      server_hostname=server_hostname,
                                      do_handshake_on_connect=False, **kwargs)
        except OSError as exc:
            raise translate(exc, False) from exc
        raw.setblocking(False)
        self.raw = raw
        self.is_tls = True
        return self

    # -- operations -------------------------------------------------------------------
    def recv(self, bufsize: int = 65536, timeout: Any = USE_DEFAULT,
             prio: int = priority.DEFAULT) -> Read:
        """A :class:`Read` operation: up to ``bufsize`` bytes."""
        return Read(self, bufsize, timeout, prio)

    read = recv

    def recv_all(self, size: int, timeout: Any = USE_DEFAULT, prio: int = priority.DEFAULT) -> ReadAll:
        """A :class:`ReadAll` operation: exactly ``size`` bytes."""
        return ReadAll(self, size, timeout, prio)

    readall = recvall = recv_all

    def readline(self, maxlen: int = 65536, timeout: Any = USE_DEFAULT,
                 prio: int = priority.DEFAULT) -> ReadLine:
        """A :class:`ReadLine` operation: one line of at most ``maxlen`` bytes."""
        return ReadLine(self, maxlen, timeout, prio)

    def send(self, data: Any, timeout: Any = USE_DEFAULT, prio: int = priority.DEFAULT) -> Write:
        """A :class:`Write` operation: one ``send`` of some of ``data``."""
        return Write(self, data, timeout, prio)

    def sendall(self, data: Any, timeout: Any = USE_DEFAULT, prio: int = priority.DEFAULT) -> WriteAll:
        """A :class:`WriteAll` operation: all of ``data``."""
        return WriteAll(self, data, timeout, prio)

    write = writeall = sendall

    def accept(self, timeout: Any = USE_DEFAULT, prio: int = priority.DEFAULT) -> Accept:
        """An :class:`Accept` operation: ``(conn, addr)``."""
        return Accept(self, timeout, prio)

    def connect(self, addr: Any, timeout: Any = USE_DEFAULT, prio: int = priority.DEFAULT) -> Connect:
        """A :class:`Connect` operation to ``addr``."""
        return Connect(self, addr, timeout, prio)

    def sendfile(self, fileobj: Any, offset: int = 0, length: int | None = None,
                 timeout: Any = USE_DEFAULT, prio: int = priority.DEFAULT) -> SendFile:
        """A :class:`SendFile` operation."""
        return SendFile(fileobj, self, offset, length, timeout=timeout, prio=prio)

    def handshake(self, timeout: Any = USE_DEFAULT, prio: int = priority.DEFAULT) -> Handshake:
        """A :class:`Handshake` operation (TLS sockets)."""
        return Handshake(self, timeout, prio)

    def makefile(self, mode: str = "rwb", **_ignored: Any) -> SocketFile:
        """A file-like view whose methods return operations (see :class:`SocketFile`)."""
        return SocketFile(self)


class SocketFile:
    """A file-like face of a :class:`Socket`; its methods return operations.

    ``read(n)`` is :class:`Read` (up to ``n`` bytes), ``readline(n)`` is
    :class:`ReadLine` with ``truncate=True`` (like ``file.readline(n)``, ``n``
    bytes without a line end are returned as they are, as in the original
    cogen), ``readexactly(n)`` is :class:`ReadAll`, ``write(data)``
    is :class:`WriteAll`. ``close()`` leaves the socket open, as with
    ``socket.makefile``.
    """

    __slots__ = ("sock",)

    def __init__(self, sock: Socket) -> None:
        self.sock = sock

    def read(self, size: int = 65536, timeout: Any = USE_DEFAULT, prio: int = priority.DEFAULT) -> Read:
        """A :class:`Read` of up to ``size`` bytes."""
        return Read(self.sock, size, timeout, prio)

    def readexactly(self, size: int, timeout: Any = USE_DEFAULT,
                    prio: int = priority.DEFAULT) -> ReadAll:
        """A :class:`ReadAll` of ``size`` bytes."""
        return ReadAll(self.sock, size, timeout, prio)

    def readline(self, size: int = 65536, timeout: Any = USE_DEFAULT,
                 prio: int = priority.DEFAULT) -> ReadLine:
        """A :class:`ReadLine` of at most ``size`` bytes; ``size`` bytes without a line end are the result."""
        return ReadLine(self.sock, size, timeout, prio, truncate=True)

    def write(self, data: Any, timeout: Any = USE_DEFAULT, prio: int = priority.DEFAULT) -> WriteAll:
        """A :class:`WriteAll` of ``data``."""
        return WriteAll(self.sock, data, timeout, prio)

    def flush(self) -> None:
        """Nothing to do: writes are not buffered."""

    def close(self) -> None:
        """Leave the socket open (close it through the socket)."""

    def fileno(self) -> int:
        """The socket's descriptor."""
        return self.sock.fileno()


def wrap_socket(sock: Socket | _std.socket, ssl_context: ssl.SSLContext, server_side: bool = False,
                server_hostname: str | None = None, **kwargs: Any) -> Socket:
    """Make ``sock`` (a :class:`Socket` or stdlib socket) a TLS socket; see :meth:`Socket.wrap`."""
    if not isinstance(sock, Socket):
        sock = Socket.from_socket(sock)
    return sock.wrap(ssl_context, server_side=server_side, server_hostname=server_hostname, **kwargs)


def _parse_addr(addr: Any, family: int | None) -> tuple[int, Any]:
    """``(family, bind address)`` for the address forms :func:`listen` takes."""
    if family is not None and family == UNIX and isinstance(addr, str) and not addr.startswith("unix:"):
        return UNIX, addr
    is_unix, addr = parse_address(addr)
    if is_unix:
        if UNIX is None:
            raise ValueError(f"Unix-domain sockets are not supported here: {addr!r}")
        return UNIX, addr
    host, port = addr[0], addr[1]
    if not host:
        if family == _std.AF_INET6:
            return family, ("::", port) + tuple(addr[2:])
        return _std.AF_INET, ("0.0.0.0", port)
    if family is None:
        try:
            infos = _std.getaddrinfo(host, port, _std.AF_UNSPEC, _std.SOCK_STREAM, 0, _std.AI_PASSIVE)
        except _std.gaierror as exc:
            raise SocketError(f"cannot resolve {host!r}: {exc}") from exc
        family, sockaddr = infos[0][0], infos[0][4]
        return family, sockaddr if len(addr) == 2 else addr
    return family, addr


def _remove_stale_unix_socket(path: Any) -> None:
    """Unlink ``path`` if it is a Unix socket nobody listens on any more."""
    if isinstance(path, (bytes, str)) and path[:1] in ("\0", b"\0"):
        return  # Linux abstract namespace: no file
    try:
        if not stat.S_ISSOCK(os.stat(path).st_mode):
            return
    except OSError:
        return
    probe = _std.socket(_std.AF_UNIX, _std.SOCK_STREAM)
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        os.unlink(path)
    except OSError:
        pass
    finally:
        probe.close()


def listen(addr: Any, backlog: int | None = None, reuse_port: bool = False, family: int | None = None,
           ssl_context: ssl.SSLContext | None = None) -> Socket:
    """Create a listening :class:`Socket`.

    Args:
        addr: ``(host, port)``, ``'host:port'``, ``'[::1]:port'``, a port
            number (all IPv4 interfaces), ``'unix:/path'`` or a path (a
            string with a ``/`` or without a ``:``). ``''`` as host means
            all interfaces. Port 0 picks a free port (read it back with
            ``getsockname()``).
        backlog: the listen queue length (1024 by default, capped by the OS).
        reuse_port: set ``SO_REUSEPORT`` so that several processes can
            listen on the same port (the kernel spreads connections).
        family: force ``AF_INET``/``AF_INET6``/``AF_UNIX``; by default it
            follows from the address.
        ssl_context: a server :class:`ssl.SSLContext`; ``Accept`` then
            returns TLS connections.

    ``SO_REUSEADDR`` is always set on TCP sockets. A stale Unix socket file
    (nobody accepting) is removed first.

    Raises:
        SocketError: binding failed (``EADDRINUSE`` ...), or ``reuse_port``
            was asked where the platform has no ``SO_REUSEPORT``.
    """
    family, sockaddr = _parse_addr(addr, family)
    sock = Socket(family, _std.SOCK_STREAM)
    try:
        if family in TCP_FAMILIES:
            sock.setsockopt(_std.SOL_SOCKET, _std.SO_REUSEADDR, 1)
        else:
            _remove_stale_unix_socket(sockaddr)
        if reuse_port:
            if not HAS_REUSEPORT:
                raise SocketError(errno.ENOPROTOOPT, "SO_REUSEPORT is not supported on this platform")
            sock.setsockopt(_std.SOL_SOCKET, _std.SO_REUSEPORT, 1)
        sock.bind(sockaddr)
        sock.listen(backlog)
        if ssl_context is not None:
            sock.wrap(ssl_context, server_side=True)
    except BaseException:
        sock.close()
        raise
    return sock
