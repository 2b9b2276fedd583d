"""WSGI apps for the benchmarks, and a launcher for servers that have no command.

Every server in ``benchmarks/wsgi.py`` serves ``benchmarks.apps:hello``
(run from the repository root, which makes ``benchmarks`` importable)::

    python -m cogen.web benchmarks.apps:hello --port 8080 --no-access-log
    python -m benchmarks.apps gevent --port 8080

gevent.pywsgi has no command of its own, so ``python -m benchmarks.apps
gevent`` starts it. pywsgi writes the response head and body in two
``send()`` calls; without ``TCP_NODELAY`` the body waits for the client's
delayed ACK (about 40 ms per keep-alive request: Nagle's algorithm meets
delayed ACK), which would measure the pitfall rather than the server. The
launcher therefore sets ``TCP_NODELAY`` on every accepted socket, as cogen-web
does on its own.
"""
from __future__ import annotations

import argparse
import socket
import sys
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["HELLO", "application", "hello", "main", "serve_gevent"]

HELLO = b"Hello, World!"


def hello(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    """Answer every request with the 13-byte ``Hello, World!`` and a Content-Length."""
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(HELLO)))])
    return [HELLO]


application = hello


def serve_gevent(host: str, port: int) -> None:
    """Serve :func:`hello` with gevent.pywsgi (stdlib monkey-patched, no access log).

    Sets ``TCP_NODELAY`` on each accepted connection (see the module docstring).
    Runs until the process is killed.
    """
    from gevent import monkey  # type: ignore[import-untyped]

    monkey.patch_all()
    from gevent.pywsgi import WSGIServer  # type: ignore[import-untyped]

    class NoDelayWSGIServer(WSGIServer):  # type: ignore[misc]
        """pywsgi with TCP_NODELAY on every accepted socket."""

        def handle(self, sock: Any, address: Any) -> Any:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return super().handle(sock, address)

    NoDelayWSGIServer((host, port), hello, log=None).serve_forever()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m benchmarks.apps gevent --port P [--host H]``; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.apps",
                                     description="Serve benchmarks.apps:hello on a peer server.")
    parser.add_argument("server", choices=["gevent"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    ns = parser.parse_args(argv)
    serve_gevent(ns.host, ns.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
