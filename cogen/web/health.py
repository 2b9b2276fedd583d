"""Live figures of a serving process, and the blocked-loop watchdog wired to its servers.

:class:`ProcessHealth` gathers, for one process (one scheduler), the figures
an orchestrator or an operator wants: connections open, requests being
served and parked, requests served, blocked-loop events. ``cogen-web``
creates one per process (per worker with ``--workers``), starts its
:class:`~cogen.core.watchdog.Watchdog`, and with ``--stats-path`` answers
that path with the figures as JSON (:class:`StatsMiddleware`), off by
default.
"""
from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from cogen.core.schedulers import Scheduler
from cogen.core.watchdog import Watchdog

__all__ = ["ProcessHealth", "StatsMiddleware"]


class ProcessHealth:
    """The figures and the watchdog of one serving process.

    Args:
        sched: the process's scheduler.
        servers: its :class:`~cogen.web.wsgi.WSGIServer` instances (more may
            be added to :attr:`servers` later).
        blocked_threshold: seconds one coroutine step may hold the loop
            before the watchdog warns; 0 or None: no warnings.
        on_healthy, interval, on_blocked: see :class:`~cogen.core.watchdog.Watchdog`.

    :meth:`start` starts the watchdog thread (only if it has something to
    do), :meth:`stop` stops it.
    """

    def __init__(self, sched: Scheduler, servers: Sequence[Any] = (),
                 blocked_threshold: float | None = 0.1,
                 on_healthy: Callable[[], Any] | None = None,
                 interval: float | None = None,
                 on_blocked: Callable[[str], Any] | None = None) -> None:
        self.servers = list(servers)
        self.started = time.monotonic()
        self.watchdog = Watchdog(sched, blocked_threshold, on_healthy, interval, on_blocked)
        self.watchdog.describers.append(self._describe)

    def _describe(self, coro: Any) -> tuple[object, str] | None:
        for server in self.servers:
            answer: tuple[object, str] | None = server.describe_coroutine(coro)
            if answer is not None:
                return answer
        return None

    def start(self) -> None:
        """Start the watchdog thread if it warns or reports health."""
        if self.watchdog.threshold or self.watchdog.on_healthy or self.watchdog.on_blocked:
            self.watchdog.start()

    def stop(self) -> None:
        """Stop the watchdog thread."""
        self.watchdog.stop()

    def figures(self) -> dict[str, Any]:
        """This process's figures, by name (safe to call from any thread).

        ``pid``, ``uptime`` (seconds), ``connections``, ``requests_active``,
        ``requests_parked``, ``requests_served`` (summed over the servers)
        and ``blocked_loop_events`` (the watchdog's count).
        """
        totals = {"connections": 0, "requests_active": 0, "requests_parked": 0,
                  "requests_served": 0}
        for server in self.servers:
            for key, value in server.figures().items():
                totals[key] = totals.get(key, 0) + value
        return {"pid": os.getpid(), "uptime": round(time.monotonic() - self.started, 3),
                **totals, "blocked_loop_events": self.watchdog.events}


class StatsMiddleware:
    """Answer ``GET path`` with live figures as JSON; pass every other request to ``app``.

    Args:
        app: the WSGI application.
        path: the path that answers (e.g. ``/_cogen/stats``), matched
            against ``PATH_INFO`` exactly.
        figures: returns the figures to send (a JSON-serialisable dict);
            with ``--workers`` it gives every worker's.

    Other methods than GET and HEAD on the path get 405. The answer is
    ``Cache-Control: no-store``.
    """

    def __init__(self, app: Callable[..., Any], path: str,
                 figures: Callable[[], dict[str, Any]]) -> None:
        self.app = app
        self.path = path
        self.figures = figures

    def __call__(self, environ: dict[str, Any],
                 start_response: Callable[..., Any]) -> Iterable[bytes]:
        """The WSGI entry point."""
        if environ.get("PATH_INFO") != self.path:
            result: Iterable[bytes] = self.app(environ, start_response)
            return result
        if environ["REQUEST_METHOD"] not in ("GET", "HEAD"):
            start_response("405 Method Not Allowed", [("Allow", "GET, HEAD"),
                                                      ("Content-Length", "0")])
            return [b""]
        body = json.dumps(self.figures(), sort_keys=True).encode() + b"\n"
        start_response("200 OK", [("Content-Type", "application/json"),
                                  ("Content-Length", str(len(body))),
                                  ("Cache-Control", "no-store")])
        return [body] if environ["REQUEST_METHOD"] == "GET" else [b""]
