"""Helpers for testing code built on cogen: run coroutines, loopback sockets.

- :func:`run_in_scheduler` runs one coroutine to completion in a fresh
  scheduler and returns its result (or raises its exception).
- :class:`SchedulerThread` keeps a scheduler running in a background thread
  and runs coroutines on it from the test's thread.
- :func:`loopback_listener`, :func:`tcp_pair` and :func:`has_ipv6` give real
  loopback sockets on ephemeral ports.
- :func:`raise_fd_limit` lifts the soft ``RLIMIT_NOFILE`` for many-connection tests.
"""
from __future__ import annotations

import os
import socket as _std
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

from cogen.core.coroutines import Coroutine
from cogen.core.reactors import available
from cogen.core.schedulers import Scheduler
from cogen.core.sockets import Socket, listen

__all__ = [
    "RunTimeout",
    "SchedulerThread",
    "has_ipv6",
    "loopback_listener",
    "raise_fd_limit",
    "reactor_names",
    "run_in_scheduler",
    "run_to_end",
    "tcp_pair",
]


class RunTimeout(AssertionError):
    """A coroutine given to :func:`run_in_scheduler` or :class:`SchedulerThread` ran out of time."""


def run_to_end(sched: Scheduler, *coros: Any) -> list[Any]:
    """Add ``coros`` to ``sched``, run it until nothing can run, return their results.

    Re-raises the first failure among them; AssertionError if one never finished.
    """
    added = [sched.add(c) for c in coros]
    sched.run()
    for c in added:
        if c.exception is not None:
            raise c.exception
        assert not c.running, f"{c!r} never finished"
    return [c.result for c in added]


def reactor_names() -> list[str]:
    """The names of the reactors this platform has, best first (for ``pytest.mark.parametrize``)."""
    return list(available())


def _instance(coro_fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Coroutine:
    if isinstance(coro_fn, Coroutine):
        if args or kwargs:
            raise TypeError(f"{coro_fn!r} is already an instance; it takes no arguments")
        return coro_fn
    if getattr(coro_fn, "is_cogen_coroutine", False):
        return coro_fn(*args, **kwargs)  # type: ignore[no-any-return]
    return Coroutine(coro_fn, *args, **kwargs)


def run_in_scheduler(coro_fn: Any, *args: Any, reactor: Any = None, timeout: float = 30.0,
                     **kwargs: Any) -> Any:
    """Run ``coro_fn(*args, **kwargs)`` in a new scheduler until it finishes; return its result.

    The coroutine may start others (``events.AddCoro``); the run ends when
    the given one finishes, and the scheduler is then closed (the others get
    ``GeneratorExit``).

    Raises:
        the coroutine's exception, if it failed;
        RunTimeout: it did not finish within ``timeout`` seconds.
    """
    sched = Scheduler(reactor=reactor)
    try:
        coro = sched.add(_instance(coro_fn, args, kwargs))
        deadline = time.monotonic() + timeout
        while coro.running:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RunTimeout(f"{coro!r} did not finish in {timeout}s")
            if not sched.run_once(left) and coro.running:
                raise RunTimeout(f"{coro!r} is stuck: nothing can ever wake it")
        if coro.exception is not None:
            raise coro.exception
        return coro.result
    finally:
        sched.close()


class SchedulerThread:
    """A scheduler running in a background thread until :meth:`stop` (or the ``with`` block ends).

    Args:
        reactor: the reactor name/class for the scheduler.
        **sched_kwargs: more :class:`~cogen.core.schedulers.Scheduler` arguments.

    ``call(coro_fn, *args)`` runs a coroutine on the scheduler and waits for
    its result from the calling thread; ``spawn`` starts one without waiting.
    """

    def __init__(self, reactor: Any = None, **sched_kwargs: Any) -> None:
        self.sched = Scheduler(reactor=reactor, **sched_kwargs)
        # keeps run() waiting while nothing is scheduled yet
        self.sched.expect_external()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="cogen-scheduler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.sched.run()
        except BaseException as exc:  # noqa: BLE001  # pragma: no cover - a scheduler bug, kept for the test
            self.error = exc

    def spawn(self, coro_fn: Any, *args: Any, **kwargs: Any) -> None:
        """Start ``coro_fn(*args, **kwargs)`` on the scheduler (thread-safe)."""
        coro = _instance(coro_fn, args, kwargs)
        self.sched.call_soon_threadsafe(self.sched.add, coro)

    def call(self, coro_fn: Any, *args: Any, timeout: float = 30.0, **kwargs: Any) -> Any:
        """Run ``coro_fn(*args, **kwargs)`` on the scheduler; wait for and return its result.

        Raises the coroutine's exception, or :class:`RunTimeout`.
        """
        coro = _instance(coro_fn, args, kwargs)
        done = threading.Event()

        def runner() -> Any:
            try:
                yield coro
            except Exception:  # noqa: BLE001, S110 - kept in coro.exception, raised in the caller's thread
                pass
            finally:
                done.set()

        holder = Coroutine(runner)
        self.sched.call_soon_threadsafe(self.sched.add, holder)
        if not done.wait(timeout):
            raise RunTimeout(f"{coro!r} did not finish in {timeout}s")
        if coro.exception is not None:
            raise coro.exception
        return coro.result

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Call ``fn(*args)`` in the scheduler's thread (thread-safe)."""
        self.sched.call_soon_threadsafe(fn, *args)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the scheduler, wait for its thread, and close it."""
        if self._thread.is_alive():
            self.sched.stop()
            self._thread.join(timeout)
        if not self._thread.is_alive():
            self.sched.close()

    def __enter__(self) -> SchedulerThread:  # noqa: PYI034 (typing.Self needs 3.11)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def has_ipv6() -> bool:
    """True when this host can bind a socket to ``::1``."""
    if not _std.has_ipv6:
        return False
    try:
        with _std.socket(_std.AF_INET6, _std.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


def loopback_listener(family: int = _std.AF_INET, backlog: int | None = None,
                      **listen_kwargs: Any) -> tuple[Socket, Any]:
    """A listening cogen :class:`Socket` on a free loopback port; returns ``(sock, addr)``.

    ``family`` is ``AF_INET`` (127.0.0.1), ``AF_INET6`` (::1) or ``AF_UNIX``
    (a fresh path in a temporary directory; remove it with
    ``os.unlink(addr)`` and its directory when done, or ignore it). Extra
    keyword arguments go to :func:`cogen.core.sockets.listen`.
    """
    if family == _std.AF_INET:
        addr: Any = ("127.0.0.1", 0)
    elif family == _std.AF_INET6:
        addr = ("::1", 0)
    elif family == getattr(_std, "AF_UNIX", None):
        addr = os.path.join(tempfile.mkdtemp(prefix="cogen-test-"), "sock")
    else:
        raise ValueError(f"unsupported family {family!r}")
    sock = listen(addr, backlog=backlog, family=family, **listen_kwargs)
    return sock, sock.getsockname()


def tcp_pair(family: int = _std.AF_INET) -> tuple[Socket, Socket]:
    """A connected pair of cogen sockets over loopback TCP: ``(client, server)``."""
    host = "::1" if family == _std.AF_INET6 else "127.0.0.1"
    with _std.socket(family, _std.SOCK_STREAM) as lsock:
        lsock.bind((host, 0))
        lsock.listen(1)
        client = _std.create_connection(lsock.getsockname()[:2])
        server, _ = lsock.accept()
    for s in (client, server):
        s.setsockopt(_std.IPPROTO_TCP, _std.TCP_NODELAY, 1)
    return Socket.from_socket(client), Socket.from_socket(server)


def raise_fd_limit(wanted: int) -> bool:
    """Lift the soft ``RLIMIT_NOFILE`` to at least ``wanted``; True if it now is."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        return False
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return True
    if hard != resource.RLIM_INFINITY and hard < wanted:
        return False
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    except (ValueError, OSError):
        return False
    return True
