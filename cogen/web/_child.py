"""A prefork worker's life after the fork (see :mod:`cogen.web.workers`).

:func:`worker_main` resets the signals the master handles, closes the
master's descriptors, imports the app and serves it with a
:class:`~cogen.web.runner.Runner` on the inherited sockets, until SIGTERM,
``--max-requests`` or the master's death. It reports on its status pipe
(:class:`StatusPipe`): ``R`` when it serves, ``E`` and a reason when it
cannot.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import signal
import socket
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from cogen.web._heartbeat import Heartbeat, app_module_files, read_heartbeats, write_module_files
from cogen.web.config import CommandSettings
from cogen.web.loader import UsageError, load_app

__all__ = ["MASTER_SIGNALS", "StatusPipe", "WorkerPlan", "serve_worker", "worker_main"]

log = logging.getLogger("cogen.web.workers")

#: Signals the master handles; blocked across fork so a child never runs its handlers.
MASTER_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP, signal.SIGCHLD,
                  signal.SIGUSR1)


@dataclasses.dataclass(frozen=True)
class WorkerPlan:
    """What a forked worker serves and how; the master makes one for each fork.

    ``app_spec``/``call``: the app to load (:func:`cogen.web.loader.load_app`);
    ``sockets``: the master's listening sockets; ``options``: the server
    options; ``grace``: the graceful stop's seconds; ``workers``: how many
    workers the master keeps; ``settings``: the command's; ``heartbeat_dir``:
    the master's heartbeat directory; ``request_limit``: this worker's
    ``--max-requests`` with its jitter (0: none).
    """

    app_spec: str
    call: bool
    sockets: Sequence[socket.socket]
    options: Mapping[str, Any]
    grace: float
    workers: int
    settings: CommandSettings
    heartbeat_dir: str | None
    request_limit: int


def worker_main(plan: WorkerPlan, alive_fd: int, status_fd: int, inherited: Sequence[int]) -> int:
    """The worker's life, in the forked child; returns its exit status.

    ``inherited`` are the master's descriptors to close; ``status_fd`` is
    the write end of this worker's status pipe, ``alive_fd`` the read end
    of the pipe only the master writes. Exit status 2: the app does not load.
    """
    signal.set_wakeup_fd(-1)
    for sig in (signal.SIGTERM, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)
    for sig in (signal.SIGINT, signal.SIGQUIT, signal.SIGHUP, signal.SIGUSR1):
        signal.signal(sig, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, MASTER_SIGNALS)
    for fd in inherited:
        os.close(fd)
    status = StatusPipe(status_fd)
    try:
        app = load_app(plan.app_spec, plan.call)
    except UsageError as exc:
        status.send(f"E{exc}", exc.details)
        return 2
    try:
        return serve_worker(app, plan, alive_fd, status, _app_roots(plan.app_spec))
    except Exception as exc:
        status.send(f"E{type(exc).__name__}: {exc}")
        raise


def serve_worker(app: Any, plan: WorkerPlan, alive_fd: int, status: StatusPipe,
                 reload_roots: Sequence[str] = ()) -> int:
    """Serve ``app`` on the inherited sockets until SIGTERM or the master's death; returns 0.

    ``reload_roots``: with ``--reload``, where the app's module files are
    listed from (for the master to watch).
    """
    from cogen.core.broker import LocalOnlyWarning
    from cogen.web.runner import Runner, reopen_logs
    settings = plan.settings
    beat_dir = plan.heartbeat_dir
    limit = plan.request_limit
    heartbeat = (Heartbeat(beat_dir, lambda: runner.health.figures(),
                           min(1.0, (settings.timeout or 4.0) / 4))
                 if beat_dir else None)

    def on_served() -> None:
        served = sum(srv.requests_served for srv in runner.servers)
        if served >= limit and heartbeat is not None and not heartbeat.is_retiring:
            heartbeat.retire()
            runner.stop(f"served {served} requests (--max-requests)")

    def peer_figures(pid: int) -> list[dict[str, Any]]:
        return [record["figures"] for other, record in
                sorted(read_heartbeats(beat_dir).items() if beat_dir else ())
                if other != pid and isinstance(record.get("figures"), dict)]

    def ready() -> None:
        if settings.reload and beat_dir:
            # before "R": a change after the worker said it serves is a change
            write_module_files(beat_dir, app_module_files(reload_roots))
        status.send("R")

    # Without a broker, the first Signal warns that it reaches this worker only.
    # Several processes serve this app: PEP 3333's wsgi.multiprocess.
    runner = Runner(app, plan.sockets, plan.options, grace=plan.grace,
                    fallback_broker=LocalOnlyWarning(plan.workers),
                    blocked_loop_warning=settings.blocked_loop_warning,
                    stats_path=settings.stats_path, peer_figures=peer_figures,
                    heartbeat=heartbeat, multiprocess=plan.workers > 1,
                    on_request_served=on_served if limit else None, logger=log,
                    stop_line="%s: shutting down gracefully", announce=False)
    runner.run(signals={signal.SIGTERM: runner.on_signal, signal.SIGUSR1: reopen_logs},
               parent_fd=alive_fd, on_ready=ready)
    return 0


class StatusPipe:
    """The worker's end of its status pipe: one line (``R``, or ``E`` and a reason), once."""

    def __init__(self, fd: int) -> None:
        self.fd: int | None = fd

    def send(self, message: str, details: str = "") -> None:
        """Write ``message`` as one line (then ``details``) and close the pipe; later calls do nothing."""
        fd, self.fd = self.fd, None
        if fd is None:
            return
        data = memoryview((message.replace("\n", " ") + "\n" + details).encode("utf-8", "replace"))
        try:
            while data:
                data = data[os.write(fd, data):]
        except OSError:
            pass
        finally:
            os.close(fd)


def _app_roots(app_spec: str) -> list[str]:
    """Where --reload looks for the app's files: the current directory and the app's package."""
    roots = [os.getcwd()]
    top = sys.modules.get(app_spec.partition(":")[0].split(".")[0])
    path = getattr(top, "__file__", None)
    if path:
        roots.append(os.path.dirname(os.path.abspath(path)))
    return roots
