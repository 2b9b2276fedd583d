"""Several worker processes serving the same listening sockets: a prefork master.

Theory of operation
-------------------
:func:`run_master` binds every address once, in the master, so ``--port 0``
gets one real port and the sockets stay open until the master stops:
while at least one process holds a listening socket the kernel keeps queueing
connections on it, so replacing workers never refuses a connection. It then
forks the workers (``os.fork``; POSIX only). A worker imports the app itself,
after the fork; the master never imports it, so every new worker reads the
code from disk again and SIGHUP picks up new code. Each worker runs its own
:class:`~cogen.core.schedulers.Scheduler` with one
:class:`~cogen.web.wsgi.WSGIServer` per inherited socket; the kernel hands
each new connection to whichever worker accepts it first.

A worker reports on a pipe of its own: ``R`` when it serves, or ``E`` and a
one-line reason when it cannot (the app does not import). The master is a
plain loop around ``select``: signal handlers only append the signal number
to a list, ``signal.set_wakeup_fd`` makes the signal wake the ``select``, and
the loop acts on it; it sleeps with a timeout only while a deadline is
pending (a restart backoff, the kill deadline of a stop).

- A worker that dies is replaced at once; if workers keep dying within a
  second of starting, the restarts back off (0.1 s, doubling, up to 10 s).
- SIGTERM/SIGINT/SIGQUIT: the master closes its listening sockets and sends SIGTERM
  to every worker, which takes the connections already queued, closes its
  listening sockets (new connections are then refused) and lets its
  requests in flight finish; after ``grace`` seconds the rest get
  SIGKILL. A second such signal kills them at once.
- Heartbeats (:mod:`cogen.web._heartbeat`): each worker's watchdog thread
  writes a file in a private directory while the worker's loop runs. A
  worker whose last beat is older than ``--timeout`` is stuck (in a CPU loop,
  a blocking call): the master logs one error naming the request it serves
  and kills it (SIGKILL); it is replaced as any dead worker.
- ``--max-requests N`` (plus a random ``0..--max-requests-jitter``, drawn
  per worker): a worker that served that many requests says so in its
  heartbeat and stops gracefully; the master starts its replacement at once.
- ``--reload`` (development): each worker lists the app's module files it
  loaded (those under the current directory and the app's package) in the
  heartbeat directory; once a second the master compares their mtimes, and
  on a change replaces the workers as on SIGHUP, so new code that fails to
  import (a syntax error) leaves the old workers serving, with the error
  logged. The listening sockets stay open throughout.
- SIGUSR1: the master reopens its log files and sends SIGUSR1 to every
  worker, which reopens its own (logrotate).
- SIGHUP: the workers are replaced one by one: start a new worker, wait until
  it reports it serves, then stop an old one gracefully. If a new worker
  cannot start (the new code is broken), the reload is abandoned and the old
  workers keep serving.

Workers block the master's signals across ``fork`` and reset them before
unblocking: SIGTERM stops the worker gracefully, SIGINT, SIGQUIT and SIGHUP
are ignored (the master handles them, and a terminal's Ctrl-C or Ctrl-\\
reaches the whole process group); SIGUSR1 is ignored until the worker's loop handles it. A
worker also stops gracefully when the master dies: it watches a pipe whose
only writer is the master and sees EOF.

Log lines carry the process id (see :func:`cogen.web.cli.configure_logging`).
"""
from __future__ import annotations

import abc
import dataclasses
import logging
import os
import random
import selectors
import shutil
import signal
import socket
import stat
import sys
import time
from collections.abc import Sequence
from typing import Any

from cogen.web._child import MASTER_SIGNALS, WorkerPlan, worker_main
from cogen.web._heartbeat import (
    ModuleFiles,
    make_directory,
    read_heartbeats,
)
from cogen.web.config import CommandSettings
from cogen.web.loader import UsageError
from cogen.web.options import resolve_server_options
from cogen.web.runner import describe, reopen_logs

__all__ = ["Master", "run_master"]

log = logging.getLogger("cogen.web.workers")

#: A worker dying sooner than this after its start counts as a failure (backoff).
_QUICK_DEATH = 1.0
_MAX_BACKOFF = 10.0
#: --reload: seconds between two looks at the module files' mtimes.
_RELOAD_SCAN = 1.0


@dataclasses.dataclass
class _Worker:
    """The master's record of one worker process."""

    pid: int
    generation: int
    started: float
    status_fd: int | None
    status: bytes = b""
    is_ready: bool = False
    is_stopping: bool = False
    is_timed_out: bool = False


def run_master(app_spec: str, call: bool, binds: Sequence[Any], options: dict[str, Any],
               workers: int, grace: float = 30.0,
               settings: CommandSettings | None = None) -> int:
    """Serve ``app_spec`` from ``workers`` processes until SIGTERM/SIGINT; returns the exit status.

    Args:
        app_spec: ``module:attribute``, imported by each worker (see
            :func:`cogen.web.loader.load_app`).
        call: the attribute is a factory to call.
        binds: addresses (``'host:port'``, ``'[::1]:port'``, ``'unix:/path'``).
        options: server options (:mod:`cogen.web.options`) for every worker's servers.
        workers: how many worker processes (1 or more).
        grace: seconds requests in flight may take to finish on a stop.
        settings: the command's settings (their defaults if None): the
            watchdog's threshold, the stats path, --timeout, --max-requests,
            --reload, the pid file.
    Returns:
        0 after a stop, 1 if the workers could not start for a run-time reason.
    Raises:
        UsageError: an address cannot be bound, the platform has no
            ``os.fork``, or the app does not load in the first workers.
    """
    if not hasattr(os, "fork"):
        raise UsageError("several workers need os.fork, which this platform lacks; "
                         "use one worker")
    return Master(app_spec, call, binds, options, workers, grace, settings).run()


class _Replacing(abc.ABC):
    """The master's worker table and when a worker is replaced: dead, stuck, retired, reloaded.

    :class:`Master` forks (:meth:`_spawn`) and stops (:meth:`_stop`); this
    half reads the workers' status pipes and heartbeats, reaps them, and
    decides what follows each one's end (a replacement, a backoff, the end
    of a reload, a fatal error).
    """

    def __init__(self, settings: CommandSettings) -> None:
        self.settings = settings
        self.workers: dict[int, _Worker] = {}
        self._selector = selectors.DefaultSelector()
        self._beat_dir: str | None = None
        self._timeout: float = settings.timeout or 0.0
        self._next_check = 0.0
        self._modules: ModuleFiles | None = None
        self._next_scan = 0.0
        self._generation = 0
        self._is_booted = False
        self._is_stopping = False
        self._failures = 0
        self._spawn_after = 0.0
        self._to_replace: list[int] = []
        self._reload_new: int | None = None
        self._fatal: BaseException | None = None
        self._status = 0

    @abc.abstractmethod
    def _spawn(self) -> int | None:
        """Fork one worker; returns its pid (None if fork failed)."""

    @abc.abstractmethod
    def _stop(self) -> None:
        """Stop every worker gracefully (the master then ends)."""

    def _kill_all(self, signum: int) -> None:
        for worker in list(self.workers.values()):
            self._kill(worker, signum)

    def _kill(self, worker: _Worker, signum: int) -> None:
        if signum == signal.SIGTERM:
            worker.is_stopping = True
        try:
            os.kill(worker.pid, signum)
        except ProcessLookupError:
            pass

    # -- heartbeats -----------------------------------------------------------------
    def _check_heartbeats(self) -> None:
        """Kill the workers stuck past --timeout; replace the retiring ones early."""
        now = time.monotonic()
        if self._beat_dir is None or now < self._next_check:
            return
        self._next_check = now + min(1.0, (self._timeout or 4.0) / 4)
        records = read_heartbeats(self._beat_dir)
        for worker in list(self.workers.values()):
            if worker.is_stopping or worker.is_timed_out:
                continue
            record = records.get(worker.pid, {})
            if record.get("retiring"):
                # stopping by itself (--max-requests): start its replacement now
                worker.is_stopping = True
                log.info("worker %d reached --max-requests: stopping it gracefully", worker.pid)
                continue
            last = max(worker.started, float(record.get("beat") or 0.0))
            if self._timeout and now - last > self._timeout:
                blocked = record.get("blocked")
                log.error("worker %d timed out: its event loop has not run for %.1f s "
                          "(--timeout %g)%s; killing it and starting a new one", worker.pid,
                          now - last, self._timeout,
                          f", blocked in {blocked}" if blocked else "")
                worker.is_timed_out = True
                self._kill(worker, signal.SIGKILL)

    def _check_modules(self) -> None:
        """--reload: replace the workers when a module file they loaded changed."""
        now = time.monotonic()
        if self._modules is None or now < self._next_scan:
            return
        self._next_scan = now + _RELOAD_SCAN
        changed = self._modules.changed()
        if changed and self._is_booted:
            shown = ", ".join(os.path.relpath(path) for path in changed[:3])
            log.info("reload: %s changed", shown + (" and more" if len(changed) > 3 else ""))
            self._begin_reload("a module changed")

    def _request_limit(self) -> int:
        """This new worker's --max-requests, with its jitter (0: no limit)."""
        limit = self.settings.max_requests
        jitter = self.settings.max_requests_jitter
        return limit + random.randint(0, jitter) if limit else 0

    # -- dead workers ---------------------------------------------------------------
    def _read_status(self, worker: _Worker) -> None:
        fd = worker.status_fd
        if fd is None:
            return
        try:
            while True:
                data = os.read(fd, 4096)
                if not data:
                    break
                worker.status += data
        except BlockingIOError:
            return
        self._selector.unregister(fd)
        os.close(fd)
        worker.status_fd = None
        if worker.status.startswith(b"R"):
            worker.is_ready = True
            log.info("worker %d serving", worker.pid)

    def _reap(self, block: bool = False) -> None:
        while self.workers:
            try:
                pid, status = os.waitpid(-1, 0 if block else os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            worker = self.workers.pop(pid, None)
            if worker is not None:
                if self._beat_dir is not None:
                    for name in (f"{pid}.json", f"{pid}.json.tmp", f"{pid}.modules"):
                        try:
                            os.unlink(os.path.join(self._beat_dir, name))
                        except OSError:
                            pass
                self._read_status(worker)
                if worker.status_fd is not None:
                    self._selector.unregister(worker.status_fd)
                    os.close(worker.status_fd)
                    worker.status_fd = None
                self._worker_exited(worker, status)

    def _worker_exited(self, worker: _Worker, status: int) -> None:
        how = _how_it_ended(status)
        if self._fatal is not None:
            return  # the one line that matters is the fatal error
        if self._is_stopping or worker.is_stopping and worker.is_ready:
            log.info("worker %d exited (%s)", worker.pid, how)
            return
        if worker.is_timed_out:
            self._failures = 0
            return  # the error line said it all
        if worker.is_ready and os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
            # only --max-requests makes a worker end by itself
            log.info("worker %d retired after --max-requests; starting a new one", worker.pid)
            self._failures = 0
            return
        now = time.monotonic()
        if not worker.is_ready:
            reason, _, details = worker.status[1:].decode("utf-8", "replace").partition("\n")
            reason = reason.strip() or how
            if not self._is_booted and self._fatal is None:
                code = os.waitstatus_to_exitcode(status)
                if code == 2 and worker.status.startswith(b"E"):
                    self._fatal = UsageError(reason, details)
                else:
                    log.error("worker %d failed to start: %s", worker.pid, reason)
                    self._status = 1
                self._stop()
                return
            # after the boot (a reload, a replacement), the app's traceback goes to the log
            log.error("worker %d failed to start: %s%s", worker.pid, reason,
                      "\n" + details.rstrip("\n") if details else "")
            if worker.pid == self._reload_new:
                log.error("reload abandoned: the old workers keep serving")
                self._reload_new = None
                self._to_replace = []
        else:
            log.warning("worker %d died (%s); starting a new one", worker.pid, how)
        if now - worker.started < _QUICK_DEATH or not worker.is_ready:
            self._failures += 1
            delay = min(0.1 * 2 ** (self._failures - 1), _MAX_BACKOFF)
            self._spawn_after = now + delay
            if self._failures > 1:
                log.warning("workers keep dying: waiting %.1f s before starting another", delay)
        else:
            self._failures = 0

    # -- reload ---------------------------------------------------------------------
    def _begin_reload(self, why: str = "received SIGHUP") -> None:
        self._generation += 1
        self._to_replace = [w.pid for w in self.workers.values()
                            if not w.is_stopping and w.generation < self._generation]
        self._reload_new = None
        log.info("%s: replacing %d worker(s) one by one", why, len(self._to_replace))

    def _advance_reload(self) -> None:
        if self._reload_new is not None:
            new = self.workers.get(self._reload_new)
            if new is None or not new.is_ready:
                return
            self._reload_new = None
            while self._to_replace:
                old = self.workers.get(self._to_replace.pop(0))
                if old is not None and not old.is_stopping:
                    log.info("stopping worker %d (replaced by %d)", old.pid, new.pid)
                    self._kill(old, signal.SIGTERM)
                    break
            if not self._to_replace:
                log.info("reload complete")
            return
        self._to_replace = [pid for pid in self._to_replace
                            if pid in self.workers and not self.workers[pid].is_stopping]
        if self._to_replace and time.monotonic() >= self._spawn_after:
            self._reload_new = self._spawn()


class Master(_Replacing):
    """The prefork master: see the module docstring. Use :func:`run_master`."""

    def __init__(self, app_spec: str, call: bool, binds: Sequence[Any], options: dict[str, Any],
                 workers: int, grace: float, settings: CommandSettings | None = None) -> None:
        self.app_spec = app_spec
        self.call = call
        self.binds = list(binds)
        self.options = dict(options)
        self.count = workers
        self.grace = grace
        super().__init__(settings or CommandSettings.defaults())
        self.sockets: list[socket.socket] = []
        self._signals: list[int] = []
        self._kill_at: float | None = None

    # -- the master's life ----------------------------------------------------------
    def run(self) -> int:
        """Bind, fork, supervise until stopped; returns the exit status."""
        self._bind()
        from cogen.web._procman import write_pid_file
        pidfile = write_pid_file(self.settings.pid, self._close_sockets)
        self._wake_r, self._wake_w = os.pipe()
        self._alive_r, self._alive_w = os.pipe()
        for fd in (self._wake_r, self._wake_w):
            os.set_blocking(fd, False)
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        self._beat_dir = make_directory()
        if self.settings.reload:
            self._modules = ModuleFiles(self._beat_dir)
        old_wakeup = signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        old_handlers = {sig: signal.signal(sig, self._on_signal) for sig in MASTER_SIGNALS}
        try:
            self._loop()
        finally:
            self._kill_all(signal.SIGKILL)
            self._reap(block=True)
            for sig, old in old_handlers.items():
                signal.signal(sig, old if old is not None else signal.SIG_DFL)
            signal.set_wakeup_fd(old_wakeup)
            self._selector.close()
            for fd in (self._wake_r, self._wake_w, self._alive_r, self._alive_w):
                os.close(fd)
            self._close_sockets()
            shutil.rmtree(self._beat_dir, ignore_errors=True)
            if pidfile is not None:
                pidfile.remove()
        if self._fatal is not None:
            raise self._fatal
        log.info("stopped")
        return self._status

    def _bind(self) -> None:
        from cogen.web.server import listen_socket
        opts = resolve_server_options(self.options)
        for bind in self.binds:
            try:
                self.sockets.append(listen_socket(bind, opts))
            except (ValueError, OSError) as exc:
                self._close_sockets()
                if isinstance(exc, OSError):
                    raise UsageError(f"cannot listen on {bind}: {exc.strerror or exc}") from None
                raise UsageError(str(exc)) from None

    def _close_sockets(self) -> None:
        for sock in self.sockets:
            # a socket we were handed (systemd's) is not ours to unlink
            if sock.fileno() >= 0 and sock.family == socket.AF_UNIX and not any(
                    bind is sock for bind in self.binds):
                path = sock.getsockname()
                try:
                    if path and stat.S_ISSOCK(os.stat(path).st_mode):
                        os.unlink(path)
                except OSError:
                    pass
            sock.close()
        self.sockets = []

    def _on_signal(self, signum: int, frame: Any) -> None:
        self._signals.append(signum)

    def _loop(self) -> None:
        while True:
            self._reap()
            while self._signals:
                self._handle_signal(self._signals.pop(0))
            if self._is_stopping:
                if not self.workers:
                    return
                if self._kill_at is not None and time.monotonic() >= self._kill_at:
                    log.warning("%d worker(s) still busy after %.1f s; killing them",
                                len(self.workers), self.grace)
                    self._kill_all(signal.SIGKILL)
                    self._kill_at = None
            else:
                self._check_booted()
                self._check_heartbeats()
                self._check_modules()
                self._advance_reload()
                self._maintain()
            self._wait()

    def _wait(self) -> None:
        now = time.monotonic()
        deadlines = []
        if self._is_stopping:
            if self._kill_at is not None:
                deadlines.append(self._kill_at)
        else:
            if self._spawn_after > now:
                deadlines.append(self._spawn_after)
            if self._timeout or self.settings.max_requests:
                deadlines.append(self._next_check)
            if self._modules is not None:
                deadlines.append(self._next_scan)
        timeout = max(0.0, min(deadlines) - now) if deadlines else None
        for key, _events in self._selector.select(timeout):
            if key.fd == self._wake_r:
                try:
                    while os.read(self._wake_r, 512):
                        pass
                except BlockingIOError:
                    pass
            else:
                self._read_status(key.data)

    # -- signals --------------------------------------------------------------------
    def _handle_signal(self, signum: int) -> None:
        if signum in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
            name = signal.Signals(signum).name
            if self._is_stopping:
                log.info("received %s again: killing the workers now", name)
                self._kill_all(signal.SIGKILL)
                return
            log.info("received %s, shutting down gracefully", name)
            self._stop()
        elif signum == signal.SIGHUP and not self._is_stopping:
            self._begin_reload()
        elif signum == signal.SIGUSR1:
            reopen_logs()
            self._kill_all(signal.SIGUSR1)

    def _stop(self) -> None:
        self._is_stopping = True
        # Nobody will accept on these any more: while the master held them
        # open the kernel went on accepting connections that then hung until
        # the grace period ended. Closed, new connections are refused at once
        # (the workers close their copies as they stop, after taking what
        # the kernel had already queued).
        self._close_sockets()
        self._kill_at = time.monotonic() + self.grace
        self._kill_all(signal.SIGTERM)

    # -- workers --------------------------------------------------------------------
    def _maintain(self) -> None:
        """Start workers until ``count`` are running (not counting those stopping)."""
        while sum(not w.is_stopping for w in self.workers.values()) < self.count:
            if time.monotonic() < self._spawn_after:
                return
            if self._spawn() is None:
                return

    def _check_booted(self) -> None:
        if self._is_booted:
            return
        if sum(w.is_ready and not w.is_stopping for w in self.workers.values()) < self.count:
            return
        self._is_booted = True
        for sock in self.sockets:
            log.info("listening on %s", describe(sock, bool(self.options.get("certfile")
                                                         or self.options.get("ssl_context"))))
        log.info("%d workers serving", self.count)

    def _spawn(self) -> int | None:
        """Fork one worker; returns its pid (None if fork failed: retried after 1 s)."""
        status_r, status_w = os.pipe()
        self._plan = WorkerPlan(self.app_spec, self.call, self.sockets, self.options, self.grace,
                                self.count, self.settings, self._beat_dir, self._request_limit())
        signal.pthread_sigmask(signal.SIG_BLOCK, MASTER_SIGNALS)
        try:
            pid = os.fork()
        except OSError as exc:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, MASTER_SIGNALS)
            os.close(status_r)
            os.close(status_w)
            log.error("cannot start a worker: %s; retrying in 1 s", exc)
            self._spawn_after = time.monotonic() + 1.0
            return None
        if pid == 0:  # the child never returns from here
            code = 1
            try:
                os.close(status_r)
                code = self._child(status_w)
            except BaseException:
                log.exception("worker failed")
            finally:
                for stream in (sys.stdout, sys.stderr):
                    try:
                        stream.flush()
                    except (OSError, ValueError):
                        pass  # a closed or broken stderr: nothing to report it on
                os._exit(code)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, MASTER_SIGNALS)
        os.close(status_w)
        os.set_blocking(status_r, False)
        worker = _Worker(pid, self._generation, time.monotonic(), status_r)
        self.workers[pid] = worker
        self._selector.register(status_r, selectors.EVENT_READ, worker)
        log.debug("started worker %d", pid)
        return pid

    # -- in the worker process ------------------------------------------------------
    def _child(self, status_w: int) -> int:
        """The worker's life, in the forked child; returns its exit status."""
        self._selector.close()
        inherited = [self._wake_r, self._wake_w, self._alive_w] + [
            w.status_fd for w in self.workers.values() if w.status_fd is not None]
        return worker_main(self._plan, self._alive_r, status_w, inherited)


def _how_it_ended(status: int) -> str:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            return f"killed by {signal.Signals(sig).name}"
        except ValueError:
            return f"killed by signal {sig}"
    return f"exit status {os.waitstatus_to_exitcode(status)}"
