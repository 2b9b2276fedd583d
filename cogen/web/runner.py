"""The one loop that serves: a scheduler, its servers, signals, the watchdog, run.

Theory of operation
-------------------
Every way of starting cogen's server ends here: :func:`cogen.web.serve`,
the ``cogen-web`` command (:func:`cogen.web.cli.serve`), PasteDeploy's
:class:`~cogen.web.paste.PasteServer`, each prefork worker
(:mod:`cogen.web.workers`) and the gunicorn worker
(:class:`~cogen.web.gunicorn.CogenWorker`). A :class:`Runner` is built in
two steps, so that an entry point can report a bad address before anything
runs and can name the runner in its signal handlers:

1. ``Runner(app, listen, options, ...)`` makes the scheduler, wraps the app
   (the stats route), makes one :class:`~cogen.web.wsgi.WSGIServer` per
   address or inherited socket and the process's
   :class:`~cogen.web.health.ProcessHealth`. If an address cannot be used,
   whatever was opened is closed and the error raised (or mapped by
   ``listen_error``).
2. :meth:`Runner.run` installs the signal handlers (in the main thread
   only) and the parent watch, starts the servers (logging ``listening on``
   for each, unless ``announce`` is false), calls ``on_ready``, starts the
   watchdog and runs the loop until the scheduler runs out of work. It
   always cleans up: the watchdog stops, the heartbeat file goes, the
   handlers are restored, the scheduler is closed.

:meth:`Runner.stop` is the graceful stop, whoever asks for it (a signal, the
master's death, ``--max-requests``, gunicorn's ``alive`` flag): it logs the
reason once, closes the signal handlers (so a second signal has its default
effect: it acts at once), stops the servers accepting and lets their
requests finish for ``grace`` seconds, then closes the broker so that the
loop can end. Calling it again does nothing.
"""
from __future__ import annotations

import logging
import signal
import socket
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cogen.web._heartbeat import Heartbeat
    from cogen.web.wsgi import WSGIServer

__all__ = ["Runner", "describe", "reopen_logs", "stats_document", "with_stats"]

log = logging.getLogger("cogen.web")

#: Maps an address that could not be used, and why, to the exception to raise instead.
ListenError = Callable[[Any, BaseException], BaseException]


class Runner:
    """One serving process's loop: see the module docstring.

    Args:
        app: the WSGI application.
        listen: addresses (``'host:port'``, ``'[::1]:port'``,
            ``'unix:/path'``, a ``(host, port)`` pair) or listening sockets,
            one server each.
        options: the server options (:mod:`cogen.web.options`).
        grace: seconds requests in flight may take to finish on a stop.
        fallback_broker: the scheduler's broker when ``options`` names none
            (a prefork worker's :class:`~cogen.core.broker.LocalOnlyWarning`).
        blocked_loop_warning: the watchdog's threshold (seconds; 0 or None:
            no warnings).
        stats_path: answer GET on this path with the figures as JSON (None: no route).
        peer_figures: given this process's pid, the figures of the other
            processes serving the same app (for the stats route).
        heartbeat: a prefork worker's :class:`~cogen.web._heartbeat.Heartbeat`:
            the watchdog beats it, the run removes it at the end.
        multiprocess: PEP 3333's ``wsgi.multiprocess`` for every request (None: the server's).
        on_request_served: set as every server's ``on_request_served``.
        listen_error: see :data:`ListenError` (None: the error itself is raised).
        logger: where the stop and ``listening on`` lines go.
        stop_line: the stop line, ``%s`` standing for the reason.
        announce: log ``listening on`` for each server when it starts.
    Raises:
        OSError, ValueError, TypeError: an address cannot be used (or what
            ``listen_error`` maps it to); nothing is left open.
    """

    def __init__(self, app: Callable[..., Any], listen: Sequence[Any],
                 options: Mapping[str, Any], *, grace: float = 30.0,
                 fallback_broker: Any = None, blocked_loop_warning: float | None = None,
                 stats_path: str | None = None,
                 peer_figures: Callable[[int], list[dict[str, Any]]] | None = None,
                 heartbeat: Heartbeat | None = None, multiprocess: bool | None = None,
                 on_request_served: Callable[[], Any] | None = None,
                 listen_error: ListenError | None = None, logger: logging.Logger = log,
                 stop_line: str = "%s, shutting down gracefully", announce: bool = True) -> None:
        from cogen.core.schedulers import Scheduler
        from cogen.web.health import ProcessHealth
        self.grace = grace
        self.heartbeat = heartbeat
        self.log = logger
        self.stop_line = stop_line
        self.announce = announce
        self.sched = Scheduler(broker=options.get("broker") or fallback_broker)
        self.is_stopping = False
        self.health = ProcessHealth(self.sched, (), blocked_loop_warning,
                                    on_healthy=heartbeat.beat if heartbeat else None,
                                    on_blocked=heartbeat.blocked if heartbeat else None)
        self._peer_figures = peer_figures
        self.servers = self._open(with_stats(app, stats_path, self._stats), listen, options,
                                  listen_error)
        self.health.servers = self.servers
        for srv in self.servers:
            if on_request_served is not None:
                srv.on_request_served = on_request_served
            if multiprocess is not None:
                srv.base_environ["wsgi.multiprocess"] = multiprocess
        self._signals: Any = None
        self._parent: Any = None

    def _open(self, app: Callable[..., Any], listen: Sequence[Any], options: Mapping[str, Any],
              listen_error: ListenError | None) -> list[WSGIServer]:
        from cogen.web.wsgi import WSGIServer
        servers: list[WSGIServer] = []
        for where in listen:
            try:
                servers.append(WSGIServer(where, app, self.sched, **options))
            except BaseException as exc:
                for srv in servers:
                    srv.socket.close()
                self.sched.close()
                if listen_error is not None and isinstance(exc, (ValueError, TypeError, OSError)):
                    raise listen_error(where, exc) from None
                raise
        return servers

    def _stats(self) -> dict[str, Any]:
        mine = self.health.figures()
        peers = self._peer_figures(mine["pid"]) if self._peer_figures is not None else []
        return stats_document([mine, *peers])

    def close(self) -> None:
        """Close the servers' sockets and the scheduler of a runner that will not :meth:`run`."""
        for srv in self.servers:
            srv.socket.close()
        self.sched.close()

    def run(self, signals: Mapping[int, Callable[[int], Any]] | None = None,
            parent_fd: int | None = None, on_ready: Callable[[], Any] | None = None,
            tick: Callable[[], Any] | None = None, interval: float = 10.0) -> None:
        """Serve until the scheduler runs out of work (after :meth:`stop`, or the servers shut down).

        Args:
            signals: signal number to handler (run as loop code), installed
                in the main thread only; :meth:`on_signal` is the graceful stop.
            parent_fd: the read end of a pipe only the parent process
                writes: its EOF stops the runner ("the master process is gone").
            on_ready: called once the servers accept, before the loop runs.
            tick: if given, the loop runs one step at a time (at most
                ``interval`` seconds each) and calls ``tick()`` before each.
        Raises:
            Whatever the loop raises, after the clean-up.
        """
        from cogen.core.signals import ParentWatch, SignalPipe
        sched = self.sched
        try:
            # Handlers first: whoever reads "listening on" may signal at once.
            if signals and threading.current_thread() is threading.main_thread():
                self._signals = SignalPipe(sched, signals)
            if parent_fd is not None:
                self._parent = ParentWatch(sched, parent_fd,
                                           lambda: self.stop("the master process is gone"))
            for srv in self.servers:
                if self.announce:
                    self.log.info("listening on %s", describe(srv))
                srv.start()
            if on_ready is not None:
                on_ready()
            self.health.start()
            if tick is None:
                sched.run()
            else:
                while True:
                    tick()
                    if not sched.has_work():
                        break
                    sched.run_once(interval)
        finally:
            self.health.stop()
            if self.heartbeat is not None:
                self.heartbeat.remove()
            self._close_watches()
            sched.close()

    def _close_watches(self) -> None:
        if self._signals is not None:
            self._signals.close()
        if self._parent is not None:
            self._parent.close()

    def on_signal(self, signum: int) -> None:
        """A signal handler for :meth:`run`: the graceful stop, "received SIGTERM" its reason."""
        self.stop(f"received {signal.Signals(signum).name}")

    def stop(self, reason: str | None = None, serve_queued: bool = True) -> None:
        """Stop gracefully, as loop code: see the module docstring; later calls do nothing.

        ``reason``, if given, is logged (in :attr:`stop_line`);
        ``serve_queued`` is :meth:`~cogen.web.wsgi.WSGIServer.shutdown`'s.
        """
        if self.is_stopping:
            return
        self.is_stopping = True
        from cogen.web._broker import close_broker_after
        # The default handlers are back before the line is logged: whoever
        # reads it may send the second signal at once, and it must act.
        self._close_watches()
        if reason is not None:
            self.log.info(self.stop_line, reason)
        for srv in self.servers:
            srv.shutdown(self.grace, serve_queued=serve_queued)
        close_broker_after(self.sched, self.servers)


def reopen_logs(signum: int = 0) -> None:
    """Reopen the log files (the SIGUSR1 handler, as loop code), and say so in the log."""
    from cogen.web._procman import reopen_log_files
    count = reopen_log_files()
    log.info("received SIGUSR1: reopened %d log file(s)", count)


def with_stats(app: Callable[..., Any], path: str | None,
               figures: Callable[[], dict[str, Any]]) -> Callable[..., Any]:
    """``app`` behind a :class:`~cogen.web.health.StatsMiddleware` on ``path`` (if set)."""
    if not path:
        return app
    from cogen.web.health import StatsMiddleware
    return StatsMiddleware(app, path, figures)


def stats_document(workers: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The JSON of the stats route: each worker's figures and their totals."""
    keys = ("connections", "requests_active", "requests_parked", "requests_served",
            "blocked_loop_events")
    total = {key: sum(int(w.get(key, 0)) for w in workers) for key in keys}
    return {"workers": list(workers), "total": total}


def describe(where: Any, is_tls: bool | None = None) -> str:
    """A server's or a listening socket's address as a URL-ish string (with the real port).

    ``where`` is a :class:`~cogen.web.wsgi.WSGIServer` (TLS if it has an
    SSL context) or a socket (TLS if ``is_tls``): ``http://127.0.0.1:8080``,
    ``https://[::1]:8443``, ``unix:/path``.
    """
    if isinstance(where, socket.socket):
        addr: Any = where.getsockname()
        is_unix = where.family == socket.AF_UNIX
        scheme = "https" if is_tls else "http"
    else:
        addr = where.address
        is_unix = isinstance(addr, str)
        scheme = "https" if where.ssl_context else "http"
    if is_unix:
        return f"unix:{addr}"
    host = f"[{addr[0]}]" if ":" in addr[0] else addr[0]
    return f"{scheme}://{host}:{addr[1]}"
