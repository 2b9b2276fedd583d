"""Non-blocking I/O on a bare descriptor: the primitives under sockets and servers.

Theory of operation
-------------------
Every I/O path in cogen tries its non-blocking system call first and parks
the coroutine on the reactor only when the call said it would block: the
socket operations of :mod:`cogen.core.sockets` do it in ``process`` (the
scheduler calls ``process`` again once the descriptor is ready), and the
code written as plain generators (the web server's connections, the signal
pipe) does it by yielding a :class:`WaitIO` and retrying afterwards. Both
classify a failed call with the same tuples (:data:`WOULD_BLOCK`,
:data:`WANT_WRITE`; TLS may need to *write* in order to read and the other
way round) and both park through the scheduler's ``wait_readable`` /
``wait_writable`` (see ``docs/internals.rst``, "The operation interface").

Never parking without a fresh ``EAGAIN`` is what keeps the edge-triggered
epoll reactor safe, and it covers TLS too: bytes that OpenSSL already
decrypted are returned by the next ``recv`` without the descriptor becoming
readable again, and since every path calls ``recv`` before it parks they
are never stranded.

The generator helpers here (:func:`recv_some`, :func:`send_all`,
:func:`send_file`, :func:`handshake`) run inside the caller's coroutine
with ``yield from``, with one :class:`WaitIO` per descriptor, and raise
:class:`ClientDisconnected` for any failure of the peer's connection: a
server has nothing more to say to a peer that is gone, whatever the errno.
The socket operations raise the finer :mod:`cogen.core.sockets` errors.
"""
from __future__ import annotations

import errno
import os
import ssl
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from cogen.core.events import Operation, TimedOperation
from cogen.core.util import PENDING
from cogen.errors import CogenError

if TYPE_CHECKING:
    from cogen.core.coroutines import Coroutine
    from cogen.core.schedulers import Scheduler

__all__ = [
    "ACCEPT_ABORTED",
    "PARKED",
    "SSL_WANT_READ",
    "SSL_WANT_WRITE",
    "WANT_WRITE",
    "WOULD_BLOCK",
    "ClientDisconnected",
    "WaitIO",
    "handshake",
    "handshake_step",
    "recv_some",
    "send_all",
    "send_file",
    "send_parts",
]

#: The most buffers one ``sendmsg()`` takes (``IOV_MAX``; 1024 on Linux and
#: the BSDs, and the least POSIX allows is 16).
try:
    IOV_MAX: int = min(os.sysconf("SC_IOV_MAX"), 1024)
except (AttributeError, ValueError, OSError):
    IOV_MAX = 16
if IOV_MAX < 16:
    IOV_MAX = 16

#: What a non-blocking read (or accept) raises when it would block.
WOULD_BLOCK = (BlockingIOError, InterruptedError, ssl.SSLWantReadError)
#: What a non-blocking write raises when it would block.
WANT_WRITE = (BlockingIOError, InterruptedError, ssl.SSLWantWriteError)
#: The errors of an ``accept`` whose connection the client aborted before it
#: was taken (a reset in the listen queue): skip it and accept the next one.
ACCEPT_ABORTED = frozenset(getattr(errno, name) for name in ("ECONNABORTED", "EPROTO")
                           if hasattr(errno, name))
#: TLS only: a read that must wait for the socket to be writable ...
SSL_WANT_WRITE = ssl.SSLWantWriteError
#: ... and a write that must wait for it to be readable.
SSL_WANT_READ = ssl.SSLWantReadError


class ClientDisconnected(CogenError):
    """The peer went away (reset, broken pipe, closed, failed TLS) while we talked to it."""


class _Parked(Operation):
    """Park the coroutine on nothing: only an exception thrown in wakes it."""

    __slots__ = ()

    def process(self, sched: Scheduler, coro: Coroutine) -> Any:
        return PENDING


#: Yield this to park until another coroutine throws an exception in (or resumes it).
PARKED = _Parked()


class WaitIO(TimedOperation):
    """Park until a descriptor is readable (or writable); result: the op itself.

    One instance serves a descriptor for its whole life: :meth:`wait` sets
    the direction and timeout before each yield. ``owner`` is the object the
    reactor keeps for the descriptor (the socket), so that a closed one is
    told apart from its reused number. Timeouts raise ``OperationTimeout``.

    Wait only after the socket call would block (``WOULD_BLOCK`` /
    ``WANT_WRITE``): the epoll reactor is edge-triggered, and the edge that
    a wait is woken by is the change from "would block" to "ready". A read
    edge that came while nobody waited is remembered for the next reader;
    a write edge is not, so a write wait on a socket that is writable
    already, with no failed write before it, may not be woken before its
    timeout.
    """

    __slots__ = ("armed", "fd", "owner", "writing")

    def __init__(self, fd: int, owner: Any) -> None:
        self.prio = -1
        self.timeout = None
        self.fd = fd
        self.owner = owner
        self.writing = False
        self.armed = False

    def process(self, sched: Scheduler, coro: Coroutine) -> Any:
        if self.armed:
            self.armed = False
            return self
        self.armed = True
        if self.writing:
            sched.wait_writable(self.fd, self.owner, self, coro)
        else:
            sched.wait_readable(self.fd, self.owner, self, coro)
        return PENDING

    def wait(self, writing: bool, timeout: float | None) -> WaitIO:
        """Prepare for a yield (``writing``: wait to write, else to read); returns self."""
        self.armed = False
        self.writing = writing
        self.timeout = timeout
        return self


def recv_some(sock: Any, waiter: WaitIO, size: int, timeout: float | None) -> Generator[Any, Any, bytes]:
    """Receive at least one byte (at most ``size``), parking while there is none.

    Returns the non-empty bytes. Raises ClientDisconnected at end of stream
    or if the connection failed, OperationTimeout if nothing came within
    ``timeout`` seconds of a wait.
    """
    recv = sock.recv
    while True:
        try:
            data: bytes = recv(size)
        except WOULD_BLOCK:
            yield waiter.wait(False, timeout)
            continue
        except SSL_WANT_WRITE:
            yield waiter.wait(True, timeout)
            continue
        except OSError as exc:
            raise ClientDisconnected(f"recv failed: {exc}") from exc
        if not data:
            raise ClientDisconnected("the client closed the connection mid-request")
        return data


def send_all(sock: Any, waiter: WaitIO, data: Any, timeout: float | None) -> Generator[Any, Any, int]:
    """Send every byte of ``data``, parking when the socket buffer is full.

    Returns the number of bytes sent. Raises ClientDisconnected if the peer
    is gone, OperationTimeout if it does not read within ``timeout``.
    """
    view = memoryview(data)
    total = len(view)
    sent = 0
    while sent < total:
        try:
            sent += sock.send(view[sent:])
        except WANT_WRITE:
            yield waiter.wait(True, timeout)
        except SSL_WANT_READ:
            yield waiter.wait(False, timeout)
        except OSError as exc:
            raise ClientDisconnected(f"send failed: {exc}") from exc
    return total


def send_parts(sock: Any, waiter: WaitIO, parts: list[Any], sent: int,
               timeout: float | None) -> Generator[Any, Any, None]:
    """Send every byte of ``parts`` in order, past the first ``sent`` bytes.

    Gathers up to :data:`IOV_MAX` buffers into each ``sendmsg()``, so a body
    of many pieces costs a system call per socket buffer's worth and none of
    the pieces is copied into one; parks when the socket buffer is full.
    ``sock`` is a plain socket (TLS has no ``sendmsg``). Raises
    ClientDisconnected if the peer is gone, OperationTimeout if it does not
    read within ``timeout``.
    """
    index = 0
    count = len(parts)
    while True:
        while index < count and sent >= len(parts[index]):
            sent -= len(parts[index])
            index += 1
        if index == count:
            return
        batch = parts[index:index + IOV_MAX]
        if sent:
            batch[0] = memoryview(batch[0])[sent:]
        try:
            sent += sock.sendmsg(batch)
        except WOULD_BLOCK:
            yield waiter.wait(True, timeout)
        except OSError as exc:
            raise ClientDisconnected(f"send failed: {exc}") from exc


def send_file(sock: Any, waiter: WaitIO, fd: int, offset: int, count: int,
              timeout: float | None) -> Generator[Any, Any, int]:
    """Send ``count`` bytes of file ``fd`` from ``offset`` with ``os.sendfile``.

    Returns the bytes sent (fewer if the file was shorter than expected).
    Raises ClientDisconnected if the peer is gone, OperationTimeout if it
    does not read within ``timeout``.
    """
    sent = 0
    while sent < count:
        try:
            n = os.sendfile(sock.fileno(), fd, offset + sent, count - sent)
        except (BlockingIOError, InterruptedError):
            yield waiter.wait(True, timeout)
            continue
        except OSError as exc:
            raise ClientDisconnected(f"sendfile failed: {exc}") from exc
        if n == 0:
            break
        sent += n
    return sent


def handshake_step(tls: ssl.SSLSocket) -> bool | None:
    """Advance a non-blocking TLS handshake by one call.

    Returns None when it is done, else the direction to wait for before the
    next step (True: writable, False: readable). TLS and OS errors
    propagate as they are: the caller translates them.
    """
    try:
        tls.do_handshake()
    except SSL_WANT_READ:
        return False
    except SSL_WANT_WRITE:
        return True
    return None


def handshake(tls: ssl.SSLSocket, waiter: WaitIO, deadline: float,
              clock: Any) -> Generator[Any, Any, ssl.SSLSocket]:
    """Do the server side of a TLS handshake by ``deadline`` (on ``clock()``); returns ``tls``.

    Raises ClientDisconnected if the handshake fails, OperationTimeout if
    the peer is too slow.
    """
    while True:
        try:
            writing = handshake_step(tls)
        except (ssl.SSLError, OSError) as exc:
            raise ClientDisconnected(f"TLS handshake failed: {exc}") from exc
        if writing is None:
            return tls
        yield waiter.wait(writing, max(0.0, deadline - clock()))
