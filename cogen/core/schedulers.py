"""The scheduler: run queue, timers, reactor and thread-safe wake-up.

:class:`Scheduler` is assembled from layers, each in its own module (see
docs/internals.rst, "Where the scheduler lives"):

- ``cogen.core._timers.TimerHeap``: the heap of deadlines, sleeps and timed
  callbacks;
- ``cogen.core._sched_interface.OperationInterface``: what operations call
  (``resume``, ``throw``, ``cancel``, ``wait_readable``, the signal tables,
  ...);
- ``cogen.core._run_loop.RunLoop``: stepping coroutines (with the fast path
  of ``Sleep``, ``WaitForSignal`` and ``Signal``) and one iteration of the
  loop;
- this module: construction, ``add``, the thread-safe wake-up, ``run`` and
  ``stop``, shutdown and close.
"""
from __future__ import annotations

import contextvars
import logging
import socket
import threading
from collections import deque
from collections.abc import Callable, Iterator
from types import FunctionType
from typing import Any

from cogen.core import broker as _broker
from cogen.core._run_loop import RunLoop
from cogen.core._timers import SLEEP, TIMEOUT
from cogen.core.coroutines import Coroutine, coroutine
from cogen.core.reactors import Reactor, get_reactor
from cogen.core.util import priority

__all__ = ["Scheduler"]

log = logging.getLogger("cogen")
#: the code of every function @coroutine returns (see Scheduler.add)
_WRAPPER_CODE = coroutine(lambda: None).__code__


class Scheduler(RunLoop):
    """Runs coroutines.

    Args:
        reactor: a reactor name (``'epoll'``, ``'kqueue'``, ``'poll'``,
            ``'select'``), class or instance; None picks the best one.
        default_priority: the :class:`~cogen.core.util.priority` used by
            operations that do not set one (``LAST`` by default).
        default_timeout: seconds that timed operations get when they do not
            set ``timeout=`` (None: wait forever).
        reactor_resolution: the longest a single reactor poll may block
            (None: as long as needed).
        proactor: the original's later name for ``reactor``.
        proactor_resolution: the original's later name for ``reactor_resolution``.
        proactor_multiplex_first: accepted for the original's code; no effect
            (operations always try their system call before waiting). So are
            ``proactor_greedy``, ``proactor_default_size`` and ``ops_greedy``.
        broker: a broker (see :mod:`cogen.core.broker`) or a Redis URL
            (``'redis://host:6379/0'``) through which ``Signal`` s with
            str/bytes names and ``PublishSubscribeQueue(name=...)`` s reach
            every process sharing it. None (the default): they stay in this
            process. A broker keeps a coroutine waiting for other processes'
            signals, so ``run()`` then returns only after ``stop()``.
    """

    def __init__(self, reactor: Any = None, default_priority: int = priority.LAST,
                 default_timeout: float | None = None, reactor_resolution: float | None = None,
                 *, proactor: Any = None, proactor_resolution: float | None = None,
                 proactor_multiplex_first: bool | None = None, proactor_greedy: bool | None = None,
                 proactor_default_size: int | None = None, ops_greedy: bool | None = None,
                 broker: Any = None) -> None:
        if default_priority < 0:
            raise ValueError(f"default_priority must be a priority, not {default_priority!r}")
        if default_timeout is not None and default_timeout < 0:
            default_timeout = None
        self.reactor: Reactor = get_reactor(reactor if reactor is not None else proactor,
                                            reactor_resolution if reactor_resolution is not None
                                            else proactor_resolution)
        self.default_priority = default_priority
        self.default_timeout = default_timeout
        self.active: deque[tuple[Any, Coroutine]] = deque()
        #: signal name -> the coroutines waiting in WaitForSignal, in order
        self.sigwait: dict[Any, list[Coroutine]] = {}
        self.signals: dict[Any, tuple[Any, Coroutine]] = {}
        self.timers: list[list[Any]] = []
        self._timer_seq = 0
        self._timers_live = 0
        self._timers_dead = 0
        self._ready: list[tuple[Any, Coroutine]] = []
        self._callbacks: deque[tuple[Callable[..., Any], tuple[Any, ...]]] = deque()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._wake_pending = False
        self.reactor.set_wakeup_fd(self._wake_r.fileno())
        #: Operations waiting on something outside the scheduler (a thread):
        #: while above zero, ``run()`` keeps waiting for them.
        self.pending_external = 0
        self.running = False
        self._stopping = False
        self._close_when_stopped = False
        self._closed = False
        self._close_callbacks: list[Callable[[], Any]] = []
        #: The thread that runs (or last ran) the loop, None before the first run.
        self.thread_id: int | None = None
        self._close_lock = threading.Lock()
        self._closed_event = threading.Event()
        #: Loop iterations so far: the blocked-loop watchdog
        #: (:mod:`cogen.core.watchdog`) samples it from its thread.
        self.iterations = 0
        #: The broker Signals with str/bytes names go through (None: none).
        self.broker: Any = None
        if broker is not None:
            self.broker = _broker.resolve(broker)
            self.broker.attach(self)
            self.on_close(self.broker.close)

    # -- the original's later names -------------------------------------------------
    @property
    def proactor(self) -> Reactor:
        """The reactor, under the original's later name."""
        return self.reactor

    @property
    def poll(self) -> Reactor:
        """The reactor, under the original's earlier name."""
        return self.reactor

    # -- adding coroutines ----------------------------------------------------------
    def add(self, coro: Any, *pos_args: Any, args: tuple[Any, ...] = (),
            kwargs: dict[str, Any] | None = None, prio: int = priority.LAST,
            context: contextvars.Context | None = None) -> Coroutine:
        """Add a coroutine to run; returns its :class:`Coroutine` instance.

        ``coro`` is a ``@coroutine`` function (called with the arguments), a
        plain generator/``async def``/regular function (wrapped), or an
        instance not started yet. Arguments are given positionally
        (``sched.add(handler, conn, addr)``) or as ``args=``/``kwargs=``. With
        ``prio=priority.FIRST`` it runs before the coroutines already queued.

        The coroutine runs in ``context`` if given, else in a copy of the
        caller's context taken now (as ``asyncio.create_task`` does): what it
        sets in a ``ContextVar`` stays its own.
        """
        if pos_args:
            if args:
                raise TypeError("give the arguments positionally or as args=, not both")
            args = pos_args
        if coro.__class__ is FunctionType and coro.__code__ is _WRAPPER_CODE and not kwargs:
            # a @coroutine function: its Coroutine made here, not by a call of the wrapper
            instance = Coroutine(coro.__wrapped__, *args)  # type: ignore[attr-defined]
        elif isinstance(coro, Coroutine):
            if args or kwargs:
                raise TypeError(f"{coro!r} is already an instance; it takes no arguments")
            instance = coro
            if instance.started:
                raise ValueError(f"{instance!r} was already started")
        elif getattr(coro, "is_cogen_coroutine", False):
            instance = coro(*args, **kwargs) if kwargs else coro(*args)
        elif callable(coro) or hasattr(coro, "send"):
            instance = Coroutine(coro, *args, **(kwargs or {}))
        else:
            raise TypeError(f"cannot add {coro!r}: not a coroutine")
        if context is not None:
            instance.ctx = context
        elif instance is coro:  # made earlier, maybe elsewhere: copy the context of now
            instance.ctx = contextvars.copy_context()
        instance.scheduled = True
        if prio > 0 and prio & priority.OP:
            self.active.appendleft((None, instance))
        else:
            self.active.append((None, instance))
        return instance


    def call_soon_threadsafe(self, fn: Callable[..., Any], *args: Any) -> None:
        """From any thread: have the loop call ``fn(*args)`` soon, waking it if it sleeps.

        Also safe from a signal handler: it takes no lock (a handler that
        interrupted the loop while it held one would deadlock). ``deque``
        appends and pops are atomic, and the order "append, then test the
        flag" here against "clear the flag, then count" in the loop means a
        callback is either counted by the loop or followed by a wake-up byte.
        """
        self._callbacks.append((fn, args))
        if self._wake_pending:
            return
        self._wake_pending = True
        try:
            self._wake_w.send(b"\0")
        except (BlockingIOError, OSError):
            pass

    wakeup = call_soon_threadsafe

    def iter_run(self) -> Iterator[None]:
        """The loop as a generator: one iteration per ``next()``."""
        self.running = True
        self.thread_id = threading.get_ident()
        try:
            while not self._stopping and self.has_work():
                self.run_once(None)
                yield
        finally:
            self.running = False
            self._stopping = False
            if self._close_when_stopped:
                self.close()

    def run(self) -> None:
        """Run until no coroutine can ever run again, or :meth:`stop` is called."""
        self.running = True
        self.thread_id = threading.get_ident()
        iterate = self._iterate
        try:
            while not self._stopping and iterate(None, True):
                pass
        finally:
            self.running = False
            self._stopping = False
            if self._close_when_stopped:
                self.close()

    def stop(self) -> None:
        """Make :meth:`run` return after the current iteration (thread-safe)."""
        self._stopping = True
        if self.thread_id is not None and threading.get_ident() != self.thread_id:
            self.call_soon_threadsafe(lambda: None)

    def shutdown(self, timeout: float | None = None) -> bool:
        """Stop the loop and release the reactor and the wake-up sockets.

        Coroutines still suspended are closed (``GeneratorExit`` at their
        yield, so their ``finally`` blocks run). Called from a coroutine, the
        loop closes things when the current iteration ends. Called from
        another thread while :meth:`run` runs, the close is handed to the loop
        thread (closing the reactor under a running poll would kill it) and
        this call waits up to ``timeout`` seconds (None: as long as it takes)
        for it to be done.

        Returns True once everything is closed, False if it is still to come
        (on the loop thread, or ``timeout`` ran out).
        """
        self._close_when_stopped = True
        self.stop()
        if self.running:
            if threading.get_ident() == self.thread_id:
                return False  # run() closes things when it returns
            # The loop may also have just left run() without seeing the flag:
            # whichever thread gets the lock in close() first does the work.
            if not self._closed_event.wait(timeout):
                if self.running:
                    return False
                self.close()
            return True
        self.close()
        return True

    def on_close(self, callback: Callable[[], Any]) -> None:
        """Have :meth:`close` call ``callback()`` (in registration order, once).

        For resources tied to the scheduler's life, like the thread pool of
        :mod:`cogen.core.threads`. An exception in a callback is logged.
        """
        self._close_callbacks.append(callback)

    def _suspended(self) -> list[Coroutine]:
        """The unfinished coroutines the scheduler can reach, callees before their callers.

        Those queued, parked on the reactor, on a timer or on a signal, and
        from each of them its callers and the coroutines joining it.
        """
        found = [coro for _val, coro in self.active]
        for table in (self.reactor.readers, self.reactor.writers):
            found += [coro for _op, coro in table.values()]
        found += [entry[4] for entry in self.timers if entry[2] in (SLEEP, TIMEOUT)]
        for waiters in self.sigwait.values():
            found += waiters
        found += [coro for _sig, coro in self.signals.values()]
        out: list[Coroutine] = []
        seen: set[int] = set()
        for coro in found:  # grows while iterated
            if id(coro) in seen:
                continue
            seen.add(id(coro))
            out.append(coro)
            if coro.caller is not None:
                found.append(coro.caller)
            found += coro.waiters
        return out

    def close(self) -> None:
        """Close suspended coroutines and release OS resources (idempotent)."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        try:
            self._release()
        finally:
            self._closed_event.set()

    def _release(self) -> None:
        callbacks, self._close_callbacks = self._close_callbacks, []
        for callback in callbacks:
            try:
                callback()
            except Exception:
                log.exception("error in close callback %r", callback)
        for coro in self._suspended():
            try:
                coro.close()
            except Exception:
                log.exception("error closing coroutine %r", coro)
        self.active.clear()
        self.reactor.readers.clear()
        self.reactor.writers.clear()
        self.sigwait.clear()
        self.signals.clear()
        self.timers.clear()
        self._timers_live = self._timers_dead = 0
        self.reactor.close()
        self._wake_r.close()
        self._wake_w.close()

    def __repr__(self) -> str:
        return (f"<Scheduler active:{len(self.active)} timers:{self._timers_live} "
                f"reactor:{self.reactor!r} default_priority:{self.default_priority} "
                f"default_timeout:{self.default_timeout}>")


