"""cogen.web: an HTTP/1.1 WSGI server that runs each request as a coroutine.

``serve(app, host, port, **options)`` is the one-liner for scripts;
:class:`cogen.web.wsgi.WSGIServer` is the full form, added to a scheduler
that also runs the program's own coroutines.
"""
from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any

__all__ = ["WSGIServer", "serve"]


def serve(app: Callable[..., Any], host: str = "127.0.0.1", port: int = 8080,
          **options: Any) -> None:
    """Serve ``app`` on ``host:port`` until SIGTERM/SIGINT (or the server is shut down).

    The first SIGTERM/SIGINT (caught in the main thread only) stops
    accepting and lets requests in flight finish; a second one acts at once.

    ``options`` are the server options of :mod:`cogen.web.options`, plus
    ``bind=`` to give an address in another form (``'unix:/path'``,
    ``'[::1]:8080'``) and ``grace=`` seconds for the graceful shutdown.
    """
    from cogen.web.runner import Runner
    grace = options.pop("grace", 30.0)
    bind = options.pop("bind", None) or ((host, port))
    runner = Runner(app, [bind], options, grace=grace)
    runner.run(signals={signal.SIGTERM: runner.on_signal, signal.SIGINT: runner.on_signal})


def __getattr__(name: str) -> Any:
    if name == "WSGIServer":
        from cogen.web.wsgi import WSGIServer
        return WSGIServer
    raise AttributeError(name)
