"""The WSGI server's public names, kept where users import them from.

:class:`WSGIServer` is :class:`cogen.web.server.WSGIServer` (the listener,
the accept loop, the stop), :class:`FileWrapper` is
:class:`cogen.web.response.FileWrapper` (``wsgi.file_wrapper``) and
:func:`parse_bind` is :func:`cogen.web.server.parse_bind`. One connection's
request loop is :mod:`cogen.web.connection`; docs/internals.rst gives the
whole layout.
"""
from __future__ import annotations

from cogen.web.response import FileWrapper
from cogen.web.server import WSGIServer, listen_socket, parse_bind

__all__ = ["FileWrapper", "WSGIServer", "listen_socket", "parse_bind"]
