"""The exceptions of :mod:`cogen.redis`.

Every one is a :class:`RedisError`, itself a :class:`~cogen.errors.CogenError`.
Whose fault:

- :class:`ResponseError`: the server answered the command with an error reply
  (``-ERR ...``, ``-WRONGTYPE ...``): the command or its arguments were wrong.
  The connection stays usable.
- :class:`ConnectionError`: the server could not be reached, or the
  connection broke (also a builtin :class:`ConnectionError`, so ``except
  ConnectionError`` works). :class:`AuthenticationError` is the server
  refusing our credentials.
- :class:`TimeoutError`: the command did not complete within its timeout;
  also a :class:`cogen.core.events.OperationTimeout`, like every cogen
  timeout. The connection it used is closed (a late reply would otherwise be
  read as the answer to the next command).
- :class:`ProtocolError`: the server sent bytes that are not RESP.
- :class:`DataError`: a command argument that cannot be sent (``None``, a
  ``bool``, a ``dict``...): our fault, detected before anything is sent.
"""
from __future__ import annotations

import builtins

from cogen.core.events import OperationTimeout
from cogen.errors import CogenError

__all__ = [
    "AuthenticationError",
    "ConnectionError",
    "DataError",
    "ProtocolError",
    "RedisError",
    "ResponseError",
    "TimeoutError",
]


class RedisError(CogenError):
    """Base class of every exception raised by :mod:`cogen.redis`."""


class ResponseError(RedisError):
    """The server answered with an error reply; ``str(exc)`` is its text (``'ERR unknown command ...'``).

    ``.code`` is the first word (``'ERR'``, ``'WRONGTYPE'``, ``'NOSCRIPT'``...).
    """

    @property
    def code(self) -> str:
        """The error code: the first word of the server's message."""
        text = str(self)
        return text.split(" ", 1)[0] if text else ""


class DataError(RedisError, TypeError):
    """A command argument of a type that cannot be sent; raised before anything is sent."""


class ConnectionError(RedisError, builtins.ConnectionError):  # noqa: A001 (redis-py's name)
    """The server could not be reached or the connection broke; the original error is ``__cause__``."""


class AuthenticationError(ConnectionError):
    """The server refused the username/password (``WRONGPASS``) or wants one (``NOAUTH``)."""


class ProtocolError(ConnectionError):
    """The server sent bytes that are not valid RESP; the connection is closed."""


class TimeoutError(RedisError, OperationTimeout):  # noqa: A001 (redis-py's name)
    """A command did not complete within its timeout (a :class:`~cogen.core.events.OperationTimeout`).

    ``.command`` is the command name, ``.timeout`` the seconds it had.
    """

    def __init__(self, command: str, timeout: float | None) -> None:
        Exception.__init__(self, command, timeout)
        self.operation = None  # type: ignore[assignment]
        self.command = command
        self.timeout = timeout

    def __str__(self) -> str:
        return f"Redis command {self.command} timed out after {self.timeout}s"
