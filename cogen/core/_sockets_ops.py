"""The socket I/O operations: Read, ReadAll, ReadLine, Write, WriteAll (and their base class).

Theory of operation
-------------------
Every operation tries its non-blocking system call first, in ``process``,
and parks the coroutine on the reactor only when the call said it would
block (``BlockingIOError``, or ``SSLWantReadError``/``SSLWantWriteError`` on a
TLS socket, which may need to *write* in order to read and the other way
round). When the descriptor is ready the scheduler calls ``process`` again,
which simply retries. Never parking without a fresh ``EAGAIN`` is what makes
the edge-triggered epoll reactor safe, and it also covers TLS: bytes that
OpenSSL already decrypted (``SSLSocket.pending()``) are returned by the next
``recv`` without the descriptor ever becoming readable again, and since we
always ``recv`` before parking they are never stranded.

Each :class:`~cogen.core.sockets.Socket` owns one read buffer (a
``bytearray``) shared by all its read operations. ``Read`` returns buffered
bytes first and receives straight into a new ``bytes`` object when the buffer
is empty (no copy); ``ReadLine`` and ``ReadAll`` append what they receive to
the buffer and cut the result off its front, so what one operation received
beyond its own result is there for the next one, and an operation that
times out or fails loses nothing. Progress that is not in the buffer (how
much ``WriteAll`` or ``SendFile`` sent, how far ``ReadLine`` already
searched) lives on the operation object, so a retried ``process`` resumes
where it stopped.

Only one coroutine may wait to read, and one to write, on a socket at a
time (the reactor keeps one waiter per direction). Accept, Connect,
Handshake and SendFile live in :mod:`cogen.core._sockets_conn`.
"""
from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any

from cogen.core._sockets_errors import (
    ConnectionClosed,
    LineTooLong,
    SocketClosed,
    translate,
)
from cogen.core.events import TimedOperation
from cogen.core.io import SSL_WANT_READ, SSL_WANT_WRITE, WANT_WRITE, WOULD_BLOCK
from cogen.core.util import USE_DEFAULT, priority

if TYPE_CHECKING:
    from cogen.core.coroutines import Coroutine
    from cogen.core.schedulers import Scheduler
    from cogen.core.sockets import Socket

__all__ = [
    "Read",
    "ReadAll",
    "ReadLine",
    "Recv",
    "RecvAll",
    "Send",
    "SendAll",
    "SocketOperation",
    "Write",
    "WriteAll",
    "check_data",
]

#: How much a read asks the kernel for when it may buffer the surplus.
CHUNK = 65536
#: The largest single ``recv`` of ``ReadAll`` (bigger reads only cost memory).
_BIG_CHUNK = 1 << 20



def _take(buf: bytearray, n: int) -> bytes:
    """Cut the first ``n`` bytes off ``buf`` and return them."""
    if n >= len(buf):
        data = bytes(buf)
        buf.clear()
        return data
    if n <= CHUNK:
        data = bytes(buf[:n])
    else:  # one copy instead of two for big results
        with memoryview(buf) as view:
            data = view[:n].tobytes()
    del buf[:n]
    return data


def _eof(sock: Socket) -> ConnectionClosed:
    if sock.fd < 0:
        return SocketClosed(errno.EBADF, "the socket was closed")
    return ConnectionClosed("the peer closed the connection")


def check_data(data: Any) -> Any:
    """Validate bytes-like data for the write operations; returns it unchanged.

    Raises:
        TypeError: for ``str`` (say how to encode it) and for objects that
            are not contiguous buffers.
    """
    if isinstance(data, str):
        raise TypeError(f"socket data must be bytes-like, not str ({data[:32]!r}); "
                        f"encode it first, e.g. data.encode('utf-8')")
    try:
        view = memoryview(data)
    except TypeError:
        raise TypeError(f"socket data must be bytes-like (bytes, bytearray, memoryview), "
                        f"not {type(data).__name__}") from None
    with view:
        if not view.c_contiguous:
            raise TypeError("socket data must be a contiguous buffer")
    return data


def _not_a_socket(op: SocketOperation, sock: Any) -> TypeError:
    return TypeError(f"{type(op).__name__} needs a cogen sockets.Socket, not {sock!r}; "
                     f"wrap a stdlib socket with sockets.Socket.from_socket()")


def _explicit_timeout(op: SocketOperation, sock: Any, timeout: Any, prio: int) -> None:
    if not hasattr(sock, "read_buf"):
        raise _not_a_socket(op, sock)
    TimedOperation.__init__(op, timeout, prio)


class SocketOperation(TimedOperation):
    """Base of the socket operations.

    Args:
        sock: the :class:`~cogen.core.sockets.Socket`.
        timeout: seconds; left out, the socket's ``settimeout`` value, else the
            scheduler's ``default_timeout``; ``None`` waits forever.
        prio: a :class:`~cogen.core.util.priority`.
    """

    __slots__ = ("sock",)

    def __init__(self, sock: Socket, timeout: Any = USE_DEFAULT, prio: int = priority.DEFAULT) -> None:
        # the hot operations (reads and writes) repeat these lines instead of
        # calling this: constructing them is on every message's path
        self.sock = sock
        self.prio = prio
        if timeout is USE_DEFAULT:
            try:
                self.timeout = sock.default_timeout
            except AttributeError:
                raise _not_a_socket(self, sock) from None
        else:
            _explicit_timeout(self, sock, timeout, prio)

    def _wait_read(self, sched: Scheduler, coro: Coroutine) -> Any:
        return self.sock.park_reader(sched, self, coro)

    def _wait_write(self, sched: Scheduler, coro: Coroutine) -> Any:
        return self.sock.park_writer(sched, self, coro)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} on {self.sock!r}>"


class Read(SocketOperation):
    """Read up to ``bufsize`` bytes; result: a non-empty ``bytes``.

    Buffered bytes (left by ``ReadLine``/``ReadAll``) come first, without a
    system call. Raises :class:`ConnectionClosed` at end of stream: the
    result is never ``b""``.
    """

    __slots__ = ("bufsize",)

    def __init__(self, sock: Socket, bufsize: int = CHUNK, timeout: Any = USE_DEFAULT,
                 prio: int = priority.DEFAULT) -> None:
        self.sock = sock
        self.prio = prio
        if timeout is USE_DEFAULT:
            try:
                self.timeout = sock.default_timeout
            except AttributeError:
                raise _not_a_socket(self, sock) from None
        else:
            _explicit_timeout(self, sock, timeout, prio)
        if bufsize < 1:
            raise ValueError(f"Read needs a positive bufsize, not {bufsize!r}")
        self.bufsize = bufsize

    def process(self, sched: Scheduler, coro: Coroutine) -> Any:
        sock = self.sock
        buf = sock.read_buf
        if buf:
            return _take(buf, self.bufsize)
        if sock.at_eof:
            raise _eof(sock)
        try:
            data = sock.raw.recv(self.bufsize)
        except WOULD_BLOCK:
            return self._wait_read(sched, coro)
        except SSL_WANT_WRITE:
            return self._wait_write(sched, coro)
        except OSError as exc:
            raise translate(exc, sock.fd < 0) from exc
        if data:
            return data
        sock.mark_eof()
        raise _eof(sock)


class ReadAll(SocketOperation):
    """Read exactly ``size`` bytes; result: ``bytes`` of that length.

    Raises :class:`ConnectionClosed` if the stream ends first; the bytes
    received so far stay in the socket's read buffer (a following ``Read``
    returns them). On timeout, likewise nothing is lost.
    """

    __slots__ = ("size",)

    def __init__(self, sock: Socket, size: int, timeout: Any = USE_DEFAULT,
                 prio: int = priority.DEFAULT) -> None:
        self.sock = sock
        self.prio = prio
        if timeout is USE_DEFAULT:
            try:
                self.timeout = sock.default_timeout
            except AttributeError:
                raise _not_a_socket(self, sock) from None
        else:
            _explicit_timeout(self, sock, timeout, prio)
        if size < 0:
            raise ValueError(f"ReadAll needs a size >= 0, not {size!r}")
        self.size = size

    def process(self, sched: Scheduler, coro: Coroutine) -> Any:
        sock = self.sock
        buf = sock.read_buf
        size = self.size
        have = len(buf)
        if have >= size:
            return _take(buf, size)
        recv = sock.raw.recv
        while True:
            if sock.at_eof:
                exc = _eof(sock)
                if not isinstance(exc, SocketClosed):
                    exc = ConnectionClosed(f"the peer closed the connection after {have} of the "
                                           f"{size} bytes asked for; they stay in the read buffer")
                raise exc
            want = size - have
            try:
                data = recv(CHUNK if want <= CHUNK else (min(_BIG_CHUNK, want)))
            except WOULD_BLOCK:
                return self._wait_read(sched, coro)
            except SSL_WANT_WRITE:
                return self._wait_write(sched, coro)
            except OSError as exc:
                raise translate(exc, sock.fd < 0) from exc
            if not data:
                sock.mark_eof()
                continue
            if not have and len(data) == size:
                return data
            buf += data
            have = len(buf)
            if have >= size:
                return _take(buf, size)


class ReadLine(SocketOperation):
    """Read one line; result: ``bytes`` ending with ``b"\\n"``.

    A line may hold at most ``maxlen`` bytes, terminator included. Bytes after
    the line stay buffered for the next read operation.

    Raises:
        LineTooLong: ``maxlen`` bytes arrived without a ``b"\\n"``. Nothing is
            consumed: the bytes stay in the read buffer. With ``truncate=True``
            those ``maxlen`` bytes are the result instead, as
            ``file.readline(maxlen)`` does (and the original cogen's
            ``sock.makefile().readline(n)``).
        ConnectionClosed: the stream ended with nothing buffered.

    At end of stream a partial line (no terminator) is returned as it is;
    the next read raises :class:`ConnectionClosed`. So the result is never
    ``b""``, and ``line.endswith(b"\\n")`` tells a complete line.
    """

    __slots__ = ("_scan", "maxlen", "truncate")

    def __init__(self, sock: Socket, maxlen: int = CHUNK, timeout: Any = USE_DEFAULT,
                 prio: int = priority.DEFAULT, *, truncate: bool = False) -> None:
        self.sock = sock
        self.prio = prio
        self.truncate = truncate
        if timeout is USE_DEFAULT:
            try:
                self.timeout = sock.default_timeout
            except AttributeError:
                raise _not_a_socket(self, sock) from None
        else:
            _explicit_timeout(self, sock, timeout, prio)
        if maxlen < 1:
            raise ValueError(f"ReadLine needs a positive maxlen, not {maxlen!r}")
        self.maxlen = maxlen
        self._scan = 0

    def process(self, sched: Scheduler, coro: Coroutine) -> Any:
        sock = self.sock
        buf = sock.read_buf
        maxlen = self.maxlen
        if buf:
            i = buf.find(b"\n", self._scan, maxlen)
            if i >= 0:
                return _take(buf, i + 1)
        recv = sock.raw.recv
        while True:
            have = len(buf)
            if have >= maxlen:
                self._scan = 0
                if self.truncate:
                    return _take(buf, maxlen)
                raise LineTooLong(f"no end of line in the first {maxlen} bytes "
                                  f"(ReadLine maxlen={maxlen}); they stay in the read buffer")
            if sock.at_eof:
                if have:
                    return _take(buf, have)
                raise _eof(sock)
            self._scan = have
            try:
                data = recv(CHUNK)
            except WOULD_BLOCK:
                return self._wait_read(sched, coro)
            except SSL_WANT_WRITE:
                return self._wait_write(sched, coro)
            except OSError as exc:
                raise translate(exc, sock.fd < 0) from exc
            if not data:
                sock.mark_eof()
                continue
            if have:
                buf += data
                i = buf.find(b"\n", have, maxlen)
            else:
                i = data.find(b"\n", 0, maxlen)
                if i == len(data) - 1:
                    return data  # exactly one line arrived: no buffering at all
                buf += data
            if i >= 0:
                return _take(buf, i + 1)


class Write(SocketOperation):
    """Send some of ``data`` with one successful ``send``; result: bytes sent.

    ``data`` is bytes-like (``bytes``, ``bytearray``, ``memoryview``); a
    ``str`` raises ``TypeError``. The result may be less than ``len(data)``:
    use :class:`WriteAll` to send everything.
    """

    __slots__ = ("data",)

    def __init__(self, sock: Socket, data: Any, timeout: Any = USE_DEFAULT,
                 prio: int = priority.DEFAULT) -> None:
        self.sock = sock
        self.prio = prio
        if timeout is USE_DEFAULT:
            try:
                self.timeout = sock.default_timeout
            except AttributeError:
                raise _not_a_socket(self, sock) from None
        else:
            _explicit_timeout(self, sock, timeout, prio)
        if data.__class__ is not bytes:
            check_data(data)
        self.data = data

    def process(self, sched: Scheduler, coro: Coroutine) -> Any:
        sock = self.sock
        try:
            return sock.raw.send(self.data)
        except WANT_WRITE:
            return self._wait_write(sched, coro)
        except SSL_WANT_READ:
            return self._wait_read(sched, coro)
        except OSError as exc:
            raise translate(exc, sock.fd < 0) from exc


class WriteAll(SocketOperation):
    """Send all of ``data``; result: its length in bytes.

    ``data`` is bytes-like; a ``str`` raises ``TypeError``. Partial sends
    continue from a ``memoryview`` slice (no copies). If the operation times
    out or fails, ``op.sent`` says how many bytes went out.
    """

    __slots__ = ("_total", "_view", "data", "sent")

    def __init__(self, sock: Socket, data: Any, timeout: Any = USE_DEFAULT,
                 prio: int = priority.DEFAULT) -> None:
        self.sock = sock
        self.prio = prio
        if timeout is USE_DEFAULT:
            try:
                self.timeout = sock.default_timeout
            except AttributeError:
                raise _not_a_socket(self, sock) from None
        else:
            _explicit_timeout(self, sock, timeout, prio)
        if data.__class__ is bytes:
            self._total = len(data)
        else:
            check_data(data)
            self._total = memoryview(data).nbytes
        self.data = data
        self.sent = 0
        self._view: memoryview | None = None

    def process(self, sched: Scheduler, coro: Coroutine) -> Any:
        sock = self.sock
        send = sock.raw.send
        total = self._total
        try:
            view = self._view
            if view is None:
                sent = send(self.data)
                if sent >= total:
                    self.sent = sent
                    return sent
                self.sent = sent
                view = self._view = memoryview(self.data).cast("B")[sent:]
            while True:
                n = send(view)
                sent = self.sent = self.sent + n
                if sent >= total:
                    self._view = None  # let go of the caller's buffer at once
                    return total
                view = self._view = view[n:]
        except WANT_WRITE:
            return self._wait_write(sched, coro)
        except SSL_WANT_READ:
            return self._wait_read(sched, coro)
        except OSError as exc:
            self._view = None
            raise translate(exc, sock.fd < 0) from exc


Recv = Read
RecvAll = ReadAll
Send = Write
SendAll = WriteAll
