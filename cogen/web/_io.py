"""Socket I/O for the web server, written against the scheduler's interface.

The connection coroutine calls ``recv``/``send`` on its non-blocking socket
itself and yields a :class:`WaitIO` only when the call would block. So a
small request costs one ``recv`` and one ``send`` and no operation at all,
while a slow peer parks the coroutine on the reactor with a deadline.
"""
from __future__ import annotations

import os
import ssl
from collections.abc import Generator
from typing import Any

from cogen.core.events import Operation, TimedOperation
from cogen.core.util import PENDING
from cogen.errors import CogenError

__all__ = [
    "PARKED",
    "WOULD_BLOCK",
    "ClientDisconnected",
    "ServerClosing",
    "WaitIO",
    "send_all",
    "send_file",
]

#: What a non-blocking call raises when it would block (TLS adds its own).
WOULD_BLOCK = (BlockingIOError, InterruptedError, ssl.SSLWantReadError)
_WANT_WRITE = ssl.SSLWantWriteError


class ClientDisconnected(CogenError):
    """The client went away (reset, broken pipe, closed) while we talked to it."""


class ServerClosing(CogenError):
    """Thrown into a connection's coroutine when the server shuts down and closes it."""


class _Parked(Operation):
    """Park the coroutine on nothing: only an exception thrown in wakes it."""

    __slots__ = ()

    def process(self, sched: Any, coro: Any) -> Any:
        return PENDING


PARKED = _Parked()


class WaitIO(TimedOperation):
    """Park until a descriptor is readable (or writable); result: the op itself.

    One instance serves a connection for its whole life: set ``writing``
    and ``timeout`` before each yield. Timeouts raise ``OperationTimeout``.
    """

    __slots__ = ("armed", "fd", "owner", "writing")

    def __init__(self, fd: int, owner: Any) -> None:
        self.prio = -1
        self.timeout = None
        self.fd = fd
        self.owner = owner
        self.writing = False
        self.armed = False

    def process(self, sched: Any, coro: Any) -> Any:
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
        """Prepare for a yield; returns self."""
        self.armed = False
        self.writing = writing
        self.timeout = timeout
        return self


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
        except (BlockingIOError, InterruptedError, _WANT_WRITE):
            yield waiter.wait(True, timeout)
        except ssl.SSLWantReadError:
            yield waiter.wait(False, timeout)
        except OSError as exc:
            raise ClientDisconnected(f"send failed: {exc}") from exc
    return total


def send_file(sock: Any, waiter: WaitIO, fd: int, offset: int, count: int,
              timeout: float | None) -> Generator[Any, Any, int]:
    """Send ``count`` bytes of file ``fd`` from ``offset`` with ``os.sendfile``.

    Returns the bytes sent (fewer if the file was shorter than expected).
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
