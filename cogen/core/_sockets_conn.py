"""The connection-level socket operations: Accept, Connect, Handshake, SendFile.

They follow the rules of :mod:`cogen.core._sockets_ops` (try the system call
first, park only on ``EAGAIN``/``SSLWant*``, keep progress on the operation
so a retried ``process`` resumes). Two waits are not on the descriptor
alone: a Unix-domain ``connect`` refused with ``EAGAIN`` (the listener's
backlog is full; the socket never signals anything for that) is retried on a
short timer, withdrawn by ``cleanup`` if the operation times out; and
``SendFile``'s fallback reads the file with blocking reads (local files).
"""
from __future__ import annotations

import errno
import io
import os
import socket as _std
import ssl
import stat
from typing import TYPE_CHECKING, Any, cast

from cogen.core._sockets_errors import SocketError, error_from_errno, translate
from cogen.core._sockets_ops import (
    SocketOperation,
    check_data,
)
from cogen.core.address import TCP_FAMILIES
from cogen.core.io import ACCEPT_ABORTED, SSL_WANT_READ, WANT_WRITE, handshake_step
from cogen.core.util import PENDING, USE_DEFAULT, priority

if TYPE_CHECKING:
    from cogen.core.coroutines import Coroutine
    from cogen.core.schedulers import Scheduler
    from cogen.core.sockets import Socket

__all__ = ["Accept", "Connect", "Handshake", "SendFile"]

#: ``SendFile``'s read/write fallback block size.
_FILE_BLOCK = 1 << 18
_HAS_SENDFILE = hasattr(os, "sendfile")
_SENDFILE_UNSUPPORTED = frozenset(
    getattr(errno, name) for name in ("EINVAL", "ENOSYS", "ENOTSUP", "EOPNOTSUPP", "ENOTSOCK")
    if hasattr(errno, name))


class Accept(SocketOperation):
    """Accept a connection on a listening socket; result: ``(conn, addr)``.

    ``conn`` is a non-blocking :class:`~cogen.core.sockets.Socket` (with
    ``TCP_NODELAY`` for TCP). On a listening socket wrapped for TLS, ``conn``
    is a TLS socket whose handshake is done lazily by its first read or write
    (or explicitly with ``yield conn.handshake()``). Connections the client
    aborted before we accepted or set them up are closed and skipped.
    """

    __slots__ = ()

    def process(self, sched: Scheduler, coro: Coroutine) -> Any:
        sock = self.sock
        accept = sock.raw.accept
        while True:
            try:
                conn, addr = accept()
            except BlockingIOError:
                return self._wait_read(sched, coro)
            except OSError as exc:
                if exc.errno in ACCEPT_ABORTED:
                    continue
                raise translate(exc, sock.fd < 0) from exc
            try:
                return sock.wrap_accepted(conn), addr
            except (OSError, ValueError):
                # this connection broke before we could set it up (reset,
                # TLS wrapping failed): drop it and accept the next one
                conn.close()


class Connect(SocketOperation):
    """Connect the socket to ``addr``; result: the socket.

    Raises :class:`ConnectionRefused` (``ECONNREFUSED``) or another
    :class:`SocketError` carrying the ``errno``. Host names are resolved by a
    blocking ``getaddrinfo``: give numeric addresses in servers. TCP sockets
    get ``TCP_NODELAY``. A TLS socket (``sock.wrap(...)`` before connecting)
    does its handshake lazily on the first read or write, or explicitly with
    ``yield sock.handshake()``.
    """

    __slots__ = ("_in_progress", "_retry", "addr")

    #: Unix-domain ``connect`` says ``EAGAIN`` when the listener's backlog is
    #: full, and the socket never becomes "writable" for that: retry this often.
    RETRY_DELAY = 0.005

    def __init__(self, sock: Socket, addr: Any, timeout: Any = USE_DEFAULT,
                 prio: int = priority.DEFAULT) -> None:
        SocketOperation.__init__(self, sock, timeout, prio)
        self.addr = addr
        self._in_progress = False
        self._retry: list[Any] | None = None

    def process(self, sched: Scheduler, coro: Coroutine) -> Any:
        sock = self.sock
        raw = sock.raw
        if self._in_progress:
            try:
                err = raw.getsockopt(_std.SOL_SOCKET, _std.SO_ERROR)
            except OSError as exc:
                raise translate(exc, sock.fd < 0) from exc
            if err:
                raise error_from_errno(err, f"connect to {self.addr!r}")
            return self._connected()
        try:
            err = raw.connect_ex(self.addr)
        except _std.gaierror as exc:
            raise SocketError(f"cannot resolve {self.addr!r}: {exc}") from exc
        except OSError as exc:
            raise translate(exc, sock.fd < 0) from exc
        if err == 0 or err == errno.EISCONN:
            return self._connected()
        if err in (errno.EINPROGRESS, errno.EALREADY, errno.EINTR) or (
                err == errno.EWOULDBLOCK and raw.family not in TCP_FAMILIES):
            if err == errno.EWOULDBLOCK:
                sock.attach(sched)
                self._retry = sched.call_later(self.RETRY_DELAY, self._retry_now, sched, coro)
                return PENDING
            self._in_progress = True
            return self._wait_write(sched, coro)
        raise error_from_errno(err, f"connect to {self.addr!r}")

    def _connected(self) -> Socket:
        sock = self.sock
        if sock.raw.family in TCP_FAMILIES:
            try:
                sock.raw.setsockopt(_std.IPPROTO_TCP, _std.TCP_NODELAY, 1)
            except OSError:  # pragma: no cover - e.g. a raw socket
                pass
        return sock

    def _retry_now(self, sched: Scheduler, coro: Coroutine) -> None:
        self._retry = None
        try:
            result = self.process(sched, coro)
        except Exception as exc:  # noqa: BLE001 - goes to the coroutine, as from process()
            sched.throw(coro, exc)
            return
        if result is not PENDING:
            sched.resume(coro, result)

    def cleanup(self, sched: Scheduler, coro: Coroutine) -> None:
        if self._retry is not None:
            sched.cancel_call(self._retry)
            self._retry = None


class Handshake(SocketOperation):
    """Do the TLS handshake now; result: the socket.

    Optional: the first read or write does it anyway. Yielding it again
    after the handshake completes at once. Raises :class:`TLSError` (bad
    certificate, protocol mismatch) or :class:`ConnectionClosed`.
    """

    __slots__ = ()

    def process(self, sched: Scheduler, coro: Coroutine) -> Any:
        sock = self.sock
        if not sock.is_tls:
            raise SocketError(f"Handshake on {sock!r}, which is not a TLS socket; wrap it first")
        try:
            writing = handshake_step(cast(ssl.SSLSocket, sock.raw))
        except OSError as exc:
            raise translate(exc, sock.fd < 0) from exc
        if writing is None:
            return sock
        return self._wait_write(sched, coro) if writing else self._wait_read(sched, coro)


class SendFile(SocketOperation):
    """Send a file's bytes; result: the number of bytes sent.

    Args:
        fileobj: a file opened in binary mode.
        sock: the socket.
        offset: where in the file to start.
        length: how many bytes to send; None: up to the end of the file.
            Fewer are sent if the file ends first.
        blocksize: the read size of the read/write fallback.

    Zero-copy with ``os.sendfile`` for regular files on plain sockets; TLS
    sockets, file-likes without a descriptor and platforms without
    ``sendfile`` use a read/write loop (the file reads block: they are meant
    for local files). Like ``socket.sendfile``, the file position is left
    after the last byte sent. If the operation times out, ``op.sent`` says
    how many bytes went out.
    """

    __slots__ = ("_chunk", "_in_fd", "_started", "blocksize", "fileobj", "length", "offset", "sent")

    def __init__(self, fileobj: Any, sock: Socket, offset: int = 0, length: int | None = None,
                 blocksize: int = _FILE_BLOCK, timeout: Any = USE_DEFAULT,
                 prio: int = priority.DEFAULT) -> None:
        SocketOperation.__init__(self, sock, timeout, prio)
        if "b" not in getattr(fileobj, "mode", "b"):
            raise ValueError(f"SendFile needs a file opened in binary mode, not {fileobj!r}")
        if offset < 0 or (length is not None and length < 0) or blocksize < 1:
            raise ValueError(f"bad SendFile range: offset={offset!r} length={length!r} "
                             f"blocksize={blocksize!r}")
        self.fileobj = fileobj
        self.offset = offset
        self.length = length
        self.blocksize = blocksize
        self.sent = 0
        self._in_fd: int | None = None  # None: not decided yet; -1: use the fallback
        self._chunk: memoryview | None = None
        self._started = False

    def _pick(self) -> int:
        if not _HAS_SENDFILE or self.sock.is_tls:
            return -1
        try:
            fd = self.fileobj.fileno()
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return -1
        except (AttributeError, OSError, io.UnsupportedOperation, ValueError):
            return -1
        return int(fd)

    def process(self, sched: Scheduler, coro: Coroutine) -> Any:
        if self._in_fd is None:
            self._in_fd = self._pick()
        if self._in_fd >= 0:
            return self._zero_copy(sched, coro)
        return self._fallback(sched, coro)

    def _done(self) -> int:
        self._chunk = None
        seek = getattr(self.fileobj, "seek", None)
        if seek is not None and self.sent:
            try:
                seek(self.offset + self.sent)
            except (OSError, ValueError):  # pragma: no cover - unseekable streams
                pass
        return self.sent

    def _zero_copy(self, sched: Scheduler, coro: Coroutine) -> Any:
        sock = self.sock
        out_fd, in_fd, length = sock.fd, cast(int, self._in_fd), self.length
        while True:
            count = (1 << 30) if length is None else min(length - self.sent, 1 << 30)
            if count <= 0:
                return self._done()
            try:
                n = os.sendfile(out_fd, in_fd, self.offset + self.sent, count)
            except BlockingIOError:
                return self._wait_write(sched, coro)
            except OSError as exc:
                if not self.sent and exc.errno in _SENDFILE_UNSUPPORTED and sock.fd >= 0:
                    self._in_fd = -1
                    return self._fallback(sched, coro)
                raise translate(exc, sock.fd < 0) from exc
            if not n:
                return self._done()
            self.sent += n

    def _fallback(self, sched: Scheduler, coro: Coroutine) -> Any:
        sock = self.sock
        send = sock.raw.send
        fileobj, length = self.fileobj, self.length
        if not self._started:
            self._started = True
            if self.offset or getattr(fileobj, "seekable", lambda: False)():
                fileobj.seek(self.offset)
        chunk = self._chunk
        while True:
            if chunk is None:
                want = self.blocksize if length is None else min(self.blocksize, length - self.sent)
                if want <= 0:
                    return self._done()
                data = fileobj.read(want)
                if not data:
                    return self._done()
                check_data(data)
                chunk = memoryview(data).cast("B")
            try:
                n = send(chunk)
            except WANT_WRITE:
                self._chunk = chunk
                return self._wait_write(sched, coro)
            except SSL_WANT_READ:
                self._chunk = chunk
                return self._wait_read(sched, coro)
            except OSError as exc:
                self._chunk = None
                raise translate(exc, sock.fd < 0) from exc
            self.sent += n
            chunk = chunk[n:] if n < len(chunk) else None
            self._chunk = chunk
