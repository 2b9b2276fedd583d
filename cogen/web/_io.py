"""The web server's own I/O exception; the primitives themselves are :mod:`cogen.core.io`."""
from __future__ import annotations

from cogen.errors import CogenError

__all__ = ["ServerClosing"]


class ServerClosing(CogenError):
    """Thrown into a connection's coroutine when the server shuts down and closes it."""
