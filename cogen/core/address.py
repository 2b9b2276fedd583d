"""The address grammar shared by ``sockets.listen`` and the web server's ``--bind``.

One grammar, two strictnesses:

- ``(host, port[, ...])``: a socket address as the stdlib takes it; the port
  may be an ``int`` or a string of digits.
- ``'HOST:PORT'``, ``':PORT'`` (all interfaces), ``'[IPV6]:PORT'``.
- ``'PORT'``: a bare port number, on all interfaces.
- ``'unix:PATH'`` or an absolute ``'/PATH'``: a Unix-domain socket. With
  ``relative_paths=True`` (what ``sockets.listen`` takes) any other string
  without a ``:`` is a path too; without it (the server's ``--bind``), such
  a string is rejected, since ``localhost`` is far more likely a missing
  port than a socket file name.

Ports are checked to be within 0..65535 (0: the kernel picks one). Host
names are left as they are: the caller decides whether to resolve them.
"""
from __future__ import annotations

import os
import socket as _std
from typing import Any

__all__ = ["TCP_FAMILIES", "UNIX", "parse_address"]

#: The address families that speak TCP (``TCP_NODELAY``, ``SO_REUSEADDR``).
TCP_FAMILIES = frozenset(getattr(_std, n) for n in ("AF_INET", "AF_INET6") if hasattr(_std, n))
#: ``socket.AF_UNIX`` where the platform has it, else None.
UNIX: Any = getattr(_std, "AF_UNIX", None)


def _port(value: Any, addr: Any) -> int:
    """``value`` as a port number; ValueError naming it and the address otherwise."""
    try:
        if isinstance(value, bool):
            raise ValueError
        port = int(value)
        if not 0 <= port <= 65535:
            raise ValueError
    except (TypeError, ValueError):
        raise ValueError(f"invalid port {value!r} in bind address {addr!r}") from None
    return port


def parse_address(addr: Any, *, relative_paths: bool = True) -> tuple[bool, Any]:
    """Split an address of the grammar above into ``(is_unix, sockaddr)``.

    Returns ``(True, path)`` for a Unix-domain address (``str`` or, given as
    ``bytes``, ``bytes``) and ``(False, (host, port, ...))`` for TCP, the
    host as written (``''`` for all interfaces, IPv6 without brackets) and
    the port an ``int``. A path-like object is taken as a path.

    Raises:
        ValueError: the address fits none of the forms, or its port is not
            a number within 0..65535; the message names the offending value.
    """
    if isinstance(addr, os.PathLike):
        addr = os.fspath(addr)
    if isinstance(addr, bytes):
        return True, addr
    if isinstance(addr, int) and not isinstance(addr, bool):
        return False, ("", _port(addr, addr))
    if isinstance(addr, tuple):
        if len(addr) < 2 or not isinstance(addr[0], str):
            raise ValueError(f"invalid bind address {addr!r}: want (HOST, PORT)")
        return False, (addr[0], _port(addr[1], addr)) + tuple(addr[2:])
    if not isinstance(addr, str):
        raise ValueError(f"invalid bind address {addr!r}")
    if addr.startswith("unix:"):
        return True, addr[5:]
    if addr.isdigit():
        return False, ("", _port(addr, addr))
    if addr.startswith("/") or addr.startswith("\0"):
        return True, addr
    if addr.startswith("["):
        host, sep, port = addr[1:].partition("]:")
        if not sep:
            raise ValueError(f"invalid bind address {addr!r}: want [IPV6]:PORT")
        return False, (host, _port(port, addr))
    host, sep, port = addr.rpartition(":")
    if not sep:
        if relative_paths and addr:
            return True, addr
        raise ValueError(f"invalid bind address {addr!r}: want HOST:PORT, PORT or unix:PATH")
    if relative_paths and "/" in addr:
        return True, addr  # a relative path with a colon in it
    return False, (host, _port(port, addr))
