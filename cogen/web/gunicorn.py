"""A gunicorn worker class: gunicorn manages the processes, cogen serves the requests.

Use it with::

    gunicorn -k cogen.web.gunicorn.CogenWorker app:application

(gunicorn is an optional dependency: ``pip install 'cogen[gunicorn]'``.)

Theory of operation
-------------------
gunicorn's master binds the sockets, forks the workers and kills any worker
that stops calling :meth:`notify` for ``--timeout`` seconds. Each
:class:`CogenWorker` runs one :class:`~cogen.core.schedulers.Scheduler` with
one :class:`~cogen.web.wsgi.WSGIServer` per listener (``listener.sock``),
and drives the loop itself with ``run_once(timeout / 2)``: the reactor wakes
at least that often, the worker notifies the master between iterations, and
the loop ends exactly when the last connection is done (a heartbeat coroutine
sleeping on a timer would keep the scheduler alive up to ``timeout / 2``
after that).

gunicorn's signal handlers only flip ``self.alive``; its wake-up pipe
(``signal.set_wakeup_fd``) is watched by a coroutine, so a SIGTERM wakes the
loop at once. When ``alive`` is false (SIGTERM, ``--max-requests`` reached,
or the master gone) the servers stop accepting and requests in flight may
finish for ``--graceful-timeout`` seconds; gunicorn then starts a fresh
worker if it is still running. SIGQUIT/SIGINT exit at once, as with
gunicorn's own workers.

Settings mapped onto the server's options (:func:`server_options`):
``--keep-alive`` → keepalive_timeout, ``--limit-request-line`` →
max_request_line, ``--limit-request-fields`` → max_header_count,
``--limit-request-field_size`` → max_header_bytes (room for the request line
and that many fields of that size), ``--worker-connections`` →
max_connections, ``--threads`` (above 1) → threads, ``--forwarded-allow-ips``
→ trusted_proxy, ``--certfile``/``--keyfile`` etc. → ssl_context,
``--access-logfile`` → access_log (lines go to gunicorn's access log
handlers, the server's other log lines to its error log handlers). The
broker comes from the environment variable ``COGEN_BROKER`` (``gunicorn
--env COGEN_BROKER=redis://host:6379/0 ...``): gunicorn's own settings have
no place for it.

The blocked-loop watchdog (:mod:`cogen.core.watchdog`) runs in every
worker, its threshold from ``COGEN_WEB_BLOCKED_LOOP_WARNING`` (0.1 s by
default, ``off`` to disable; ``gunicorn --env ...``), for the same reason.
"""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Generator, Iterable
from typing import Any

from gunicorn.workers.base import Worker  # type: ignore[import-untyped]

from cogen.errors import CogenError
from cogen.web.extensions import is_streaming_input

__all__ = ["CogenWorker", "server_options"]

#: gunicorn's "0 means unlimited" for the request line.
_UNLIMITED_LINE = 1 << 30


def server_options(cfg: Any) -> dict[str, Any]:
    """The WSGIServer options (:mod:`cogen.web.options`) for a gunicorn config."""
    line = int(getattr(cfg, "limit_request_line", 4094))
    fields = int(getattr(cfg, "limit_request_fields", 100))
    field_size = int(getattr(cfg, "limit_request_field_size", 8190))
    threads = int(getattr(cfg, "threads", 1) or 1)
    opts: dict[str, Any] = {
        "keepalive_timeout": float(getattr(cfg, "keepalive", 2)),
        "max_request_line": line or _UNLIMITED_LINE,
        "max_header_count": fields or 32768,
        "max_header_bytes": (line or 8190) + (fields or 32768) * (field_size + 2) + 4
        if field_size else None,
        "max_connections": int(getattr(cfg, "worker_connections", 0) or 0),
        "threads": threads if threads > 1 else 0,
        "access_log": bool(getattr(cfg, "accesslog", None)),
    }
    allowed = getattr(cfg, "forwarded_allow_ips", None) or []
    if isinstance(allowed, str):
        allowed = [ip.strip() for ip in allowed.split(",") if ip.strip()]
    opts["trusted_proxy"] = list(allowed)
    broker = os.environ.get("COGEN_BROKER")
    if broker:
        opts["broker"] = broker
    if getattr(cfg, "is_ssl", False):
        from gunicorn import sock  # type: ignore[import-untyped]
        opts["ssl_context"] = sock.ssl_context(cfg)
    return opts


class CogenWorker(Worker):  # type: ignore[misc]  # gunicorn is untyped
    """A gunicorn worker that serves with cogen's coroutine HTTP/1.1 server.

    Each request is a coroutine, so one worker holds thousands of
    connections; apps may yield cogen operations through
    ``environ['cogen']``. See the module docstring for the settings used.
    """

    alive: bool
    nr: int
    max_requests: int
    _sched: Any
    _servers: list[Any]
    _is_stopping: bool
    _is_recycled: bool

    def run(self) -> None:
        """The worker's main loop: serve until ``self.alive`` goes false, then drain."""
        from cogen.core.schedulers import Scheduler
        from cogen.web.health import ProcessHealth
        from cogen.web.wsgi import WSGIServer
        self._route_logs()
        from cogen.core.broker import LocalOnlyWarning
        options = server_options(self.cfg)
        # Without a broker, the first Signal of a worker of several warns that it stays there.
        many = self.cfg.workers > 1
        sched = self._sched = Scheduler(broker=options.get("broker") or
                                        (LocalOnlyWarning(self.cfg.workers) if many else None))
        app = self._counting(self.wsgi)
        self._servers = [WSGIServer(listener.sock, app, sched, **options)
                         for listener in self.sockets]
        for srv in self._servers:
            # gunicorn runs this app in several processes (PEP 3333).
            srv.base_environ["wsgi.multiprocess"] = self.cfg.workers > 1
            srv.start()
        health = ProcessHealth(sched, self._servers, _blocked_threshold())
        self._is_stopping = False
        self._is_recycled = False
        sched.add(self._watch_wakeup_pipe)
        interval = self.timeout / 2 if self.timeout else 10.0
        last_notify = 0.0
        health.start()
        try:
            while True:
                now = time.monotonic()
                if now - last_notify >= interval:
                    self.notify()
                    last_notify = now
                if self.alive and self.ppid != os.getppid():
                    self.log.info("Parent changed, shutting down: %s", self)
                    self.alive = False
                if not self.alive and not self._is_stopping:
                    self._stop()
                if not sched.has_work():
                    break
                sched.run_once(interval)
        finally:
            health.stop()
            sched.close()

    def _stop(self) -> None:
        """Stop accepting; requests in flight may finish for the graceful timeout."""
        self._is_stopping = True
        sched = self._sched
        fd = self.PIPE[0]
        sched.forget_fd(fd, _Stopped())
        for srv in self._servers:
            # recycled after max_requests, the arbiter and the other workers
            # go on accepting: what the kernel queued is theirs
            srv.shutdown(self.cfg.graceful_timeout, serve_queued=not self._is_recycled)
        from cogen.web._broker import close_broker_after
        close_broker_after(sched, self._servers)

    def _watch_wakeup_pipe(self) -> Generator[Any, Any, None]:
        """Drain gunicorn's signal wake-up pipe; the loop then sees ``self.alive``."""
        from cogen.core.io import WaitIO
        fd = self.PIPE[0]
        waiter = WaitIO(fd, self)
        try:
            while not self._is_stopping:
                try:
                    if not os.read(fd, 512):
                        return
                except (BlockingIOError, InterruptedError):
                    yield waiter.wait(False, None)
        except _Stopped:
            pass

    def _counting(self, app: Callable[..., Any]) -> Callable[..., Any]:
        """Wrap ``app`` to count requests and stop after ``self.max_requests``."""
        def counting_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[Any]:
            self.nr += 1
            if self.nr >= self.max_requests and self.alive:
                self.log.info("Autorestarting worker after current request.")
                self._is_recycled = True
                self.alive = False
                self._sched.call_soon_threadsafe(_noop)  # wake the loop to see it
            result: Iterable[Any] = app(environ, start_response)
            return result

        if is_streaming_input(app):
            counting_app.cogen_streaming_input = True  # type: ignore[attr-defined]
        return counting_app

    def _route_logs(self) -> None:
        """Send cogen's log lines to gunicorn's error and access log handlers."""
        error_log = getattr(self.log, "error_log", None)
        if error_log is not None:
            ours = logging.getLogger("cogen")
            ours.handlers[:] = list(error_log.handlers)
            ours.setLevel(error_log.level or logging.INFO)
            ours.propagate = False
        access = logging.getLogger("cogen.web.access")
        access_log = getattr(self.log, "access_log", None)
        if access_log is not None and self.cfg.accesslog:
            access.handlers[:] = list(access_log.handlers)
            access.setLevel(logging.INFO)
            access.propagate = False


class _Stopped(CogenError):
    """Thrown into the wake-up pipe watcher when the worker stops."""


def _blocked_threshold() -> float | None:
    """The watchdog's threshold from ``COGEN_WEB_BLOCKED_LOOP_WARNING`` (a bad value: the default)."""
    from cogen.web.options import COMMAND_OPTIONS_BY_NAME
    opt = COMMAND_OPTIONS_BY_NAME["blocked_loop_warning"]
    text = os.environ.get(opt.env)
    if text is None:
        return float(opt.default)
    try:
        value: float | None = opt.convert(text)
    except ValueError as exc:
        logging.getLogger("cogen.web").warning("%s=%r: %s; using %s s", opt.env, text, exc,
                                               opt.default)
        return float(opt.default)
    return value


def _noop() -> None:
    """Wakes the loop (through ``call_soon_threadsafe``) and does nothing."""
