"""cogen.web: an HTTP/1.1 WSGI server that runs each request as a coroutine.

``serve(app, host, port, **options)`` is the one-liner for scripts;
:class:`cogen.web.wsgi.WSGIServer` is the full form, added to a scheduler
that also runs the program's own coroutines.
"""
from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["WSGIServer", "serve"]


def serve(app: Callable[..., Any], host: str = "127.0.0.1", port: int = 8080,
          **options: Any) -> None:
    """Serve ``app`` on ``host:port`` until SIGTERM/SIGINT (or the server is shut down).

    ``options`` are the server options of :mod:`cogen.web.options`, plus
    ``bind=`` to give an address in another form (``'unix:/path'``,
    ``'[::1]:8080'``) and ``grace=`` seconds for the graceful shutdown.
    """
    from cogen.core.schedulers import Scheduler
    from cogen.web.wsgi import WSGIServer
    grace = options.pop("grace", 30.0)
    bind = options.pop("bind", None) or ((host, port))
    sched = Scheduler()
    server = WSGIServer(bind, app, sched, **options)
    server.start()
    from cogen.web.cli import describe
    logging.getLogger("cogen.web").info("listening on %s", describe(server))
    if threading.current_thread() is threading.main_thread():
        def stop(signum: int, frame: Any) -> None:
            sched.call_soon_threadsafe(server.shutdown, grace)
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
    sched.run()


def __getattr__(name: str) -> Any:
    if name == "WSGIServer":
        from cogen.web.wsgi import WSGIServer
        return WSGIServer
    raise AttributeError(name)
