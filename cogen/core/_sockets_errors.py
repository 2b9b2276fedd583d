"""The exceptions of :mod:`cogen.core.sockets` and the OS-error translation.

Every socket error is a :class:`SocketError`, which is both a
:class:`~cogen.errors.CogenError` (so ``except CogenError`` catches it) and an
:class:`OSError` (so ``.errno`` and ``except OSError`` work as with the
stdlib). The subclasses say whose fault the failure is:

- :class:`ConnectionClosed`: the stream is over. Raised as such when the peer
  closed it cleanly (end of stream); :class:`ConnectionReset` when the peer
  broke it (``ECONNRESET``, ``EPIPE``, ...); :class:`SocketClosed` when *we*
  closed the socket, possibly from another coroutine while this one waited.
- :class:`ConnectionRefused`: nobody listens at the address ``Connect`` used.
- :class:`LineTooLong`: the peer sent a line longer than ``ReadLine`` allows.
- :class:`TLSError`: the TLS layer failed (bad certificate, protocol error).

Timeouts are :class:`cogen.core.events.OperationTimeout`, as for every
operation.
"""
from __future__ import annotations

import errno
import os
import ssl

from cogen.errors import CogenError

__all__ = [
    "ConnectionClosed",
    "ConnectionRefused",
    "ConnectionReset",
    "LineTooLong",
    "SocketClosed",
    "SocketError",
    "TLSError",
]


class SocketError(CogenError, OSError):
    """A socket operation failed; ``.errno`` holds the OS error number, if any.

    Built like :class:`OSError`: ``SocketError(errno, strerror)`` or
    ``SocketError(message)``. The original OS error is chained as
    ``__cause__``.
    """


class ConnectionClosed(SocketError, ConnectionError):
    """The connection is over: the peer closed it, broke it, or we closed it.

    Raised as this exact class when the peer ended the stream cleanly (a read
    got end of file). Reads never return ``b""``: they raise this instead.
    """


class ConnectionReset(ConnectionClosed, ConnectionResetError):
    """The peer broke the connection (``ECONNRESET``, ``EPIPE``, ``ECONNABORTED``)."""


class SocketClosed(ConnectionClosed):
    """The socket was closed on our side, before or while the operation waited."""


class ConnectionRefused(SocketError, ConnectionRefusedError):
    """``Connect`` found nobody listening at the address (``ECONNREFUSED``)."""


class LineTooLong(SocketError, OverflowError):
    """``ReadLine`` saw more than ``maxlen`` bytes without a line terminator.

    The bytes stay in the socket's read buffer (nothing is lost): the
    caller may ``Read`` them or close the connection. Also an
    :class:`OverflowError`, which is what the original cogen raised.
    """


class TLSError(SocketError):
    """The TLS layer failed: handshake, certificate or record error.

    The :class:`ssl.SSLError` is chained as ``__cause__``.
    """


_RESET = frozenset(
    getattr(errno, name) for name in ("ECONNRESET", "EPIPE", "ECONNABORTED", "ESHUTDOWN", "ENETRESET")
    if hasattr(errno, name)
)


def translate(exc: OSError, is_closed: bool) -> SocketError:
    """The cogen exception for an OS (or ssl) error; the caller chains it."""
    if is_closed:
        return SocketClosed(errno.EBADF, "the socket was closed")
    if isinstance(exc, ssl.SSLError):
        if isinstance(exc, ssl.SSLZeroReturnError):
            return ConnectionClosed("the peer closed the TLS session")
        if isinstance(exc, ssl.SSLEOFError):
            return ConnectionReset(errno.ECONNRESET, "the peer broke the TLS session: " + str(exc))
        return TLSError(str(exc))
    code = exc.errno
    if code in _RESET:
        return ConnectionReset(code, exc.strerror)
    if code == errno.ECONNREFUSED:
        return ConnectionRefused(code, exc.strerror)
    if code == errno.EBADF:
        return SocketClosed(code, "the socket was closed")
    return SocketError(code, exc.strerror) if code is not None else SocketError(str(exc))


def error_from_errno(code: int, what: str) -> SocketError:
    """The cogen exception for a bare error number (from ``SO_ERROR`` or ``connect_ex``)."""
    exc = OSError(code, f"{os.strerror(code)} ({what})")
    return translate(exc, False)
