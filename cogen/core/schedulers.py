"""The scheduler: run queue, timers, reactor and thread-safe wake-up.

Theory of operation
-------------------
``active`` is a deque of ``(value, coroutine)`` pairs: the coroutine is to be
resumed with ``value`` (or, when the value is a ``CoroutineException``, have
the wrapped exception thrown in). One *iteration* of the loop steps every
pair that was queued when it began, then asks the reactor for ready
descriptors (without blocking if there is more to run, else until the next
timer), then fires due timers and calls queued thread callbacks. When no
descriptor is waited on, no timer is armed and no callback is queued, that
poll could find nothing, so ``run()`` goes straight on to the next round.

The commonest operations (``Sleep``, ``WaitForSignal``, ``Signal``) are
carried out inside the loop itself rather than through their ``process``
methods, which define the same behaviour for everything else.

Stepping a coroutine sends it its value and gets an operation back; the
operation's ``process`` either returns a result (the coroutine is resumed
at once or queued, by priority) or ``PENDING`` (it parked the coroutine; a
timed operation then gets a deadline on the timer heap).

Timers are ``[deadline, seq, kind, op, coro]`` lists on a heap; cancelling
one blanks its ``kind`` and the heap is rebuilt when cancelled entries
outnumber live ones, so short waits that complete early (the common case for
a server) cost no more than a push.
"""
from __future__ import annotations

import contextvars
import heapq
import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from cogen.core import broker as _broker
from cogen.core import coroutines as _coroutines
from cogen.core.coroutines import Coroutine
from cogen.core.events import (
    CoroutineException,
    OperationTimeout,
    Signal,
    Sleep,
    WaitForSignal,
)
from cogen.core.reactors import Reactor, get_reactor
from cogen.core.util import PENDING, USE_DEFAULT, priority

__all__ = ["Scheduler"]

log = logging.getLogger("cogen")

_SLEEP, _TIMEOUT, _CALL = 1, 2, 3
_monotonic = time.monotonic

#: Put in ``coro._timer`` (see ``woke_itself``) by an operation whose
#: ``process`` woke its own coroutine and still returns ``PENDING``: the
#: scheduler then arms no deadline for that wait, which is already over, and
#: clears the marker. A dead timer entry, so ``resume`` treats it as nothing
#: to cancel.
_WOKEN: list[Any] = [0.0, 0, 0, None, None]


class Scheduler:
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
        self._thread_id: int | None = None
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
        if isinstance(coro, Coroutine):
            if args or kwargs:
                raise TypeError(f"{coro!r} is already an instance; it takes no arguments")
            instance = coro
            if instance.state != Coroutine.STATE_NEED_INIT or instance.caller is not None:
                raise ValueError(f"{instance!r} was already started")
        elif getattr(coro, "is_cogen_coroutine", False):
            instance = coro(*args, **(kwargs or {}))
        elif callable(coro) or hasattr(coro, "send"):
            instance = Coroutine(coro, *args, **(kwargs or {}))
        else:
            raise TypeError(f"cannot add {coro!r}: not a coroutine")
        if context is not None:
            instance.ctx = context
        elif instance is coro:  # made earlier, maybe elsewhere: copy the context of now
            instance.ctx = contextvars.copy_context()
        if prio > 0 and prio & priority.OP:
            self.active.appendleft((None, instance))
        else:
            self.active.append((None, instance))
        return instance

    # -- the interface operations use (docs/internals.rst, "The operation interface")
    def resume(self, coro: Coroutine, value: Any, first: bool = False) -> None:
        """Queue ``coro`` to be resumed with ``value`` (at the front if ``first``)."""
        timer = coro._timer
        if timer is not None:
            self._kill_timer(coro, timer)
        if first:
            self.active.appendleft((value, coro))
        else:
            self.active.append((value, coro))

    def throw(self, coro: Coroutine, exc: BaseException, first: bool = False) -> None:
        """Queue ``coro`` to have ``exc`` raised at its yield."""
        self.resume(coro, CoroutineException(exc), first)

    def cancel(self, coro: Coroutine, exc: BaseException, op: Any = None) -> bool:
        """Withdraw ``coro`` from whatever it waits on and raise ``exc`` at its yield.

        For a coroutine parked on an operation that will not end soon (a
        long poll whose client went away). ``op`` is the operation it
        yielded, if known: its ``cleanup`` undoes the parking (a
        ``WaitForSignal`` leaves the signal's waiters, a thread's ``Run`` is
        cancelled), and a callee coroutine runs on, its outcome dropped.
        Without ``op``, only the scheduler's own tables are searched (timers,
        the reactor, signal waiters). A coroutine already queued to resume
        (its wait ended in this very iteration) gets ``exc`` instead of that
        outcome.

        Call it from the loop's thread (a coroutine, or a callback). Returns
        False, doing nothing, if ``coro`` has finished.
        """
        if coro.state in (Coroutine.STATE_COMPLETED, Coroutine.STATE_FAILED):
            return False
        value = CoroutineException(exc)
        active = self.active
        for index, (_val, queued) in enumerate(active):
            if queued is coro:
                active[index] = (value, coro)
                return True
        if self._ready:
            self._ready = [(o, c) for o, c in self._ready if c is not coro]
        timer = coro._timer
        if timer is not None:
            if timer is _WOKEN:
                coro._timer = None
            else:
                self._kill_timer(coro, timer)
        io = coro._io
        if io is not None:
            coro._io = None
            if io >= 0:
                self.reactor.remove_reader(io)
            else:
                self.reactor.remove_writer(~io)
        if isinstance(op, Coroutine):
            if op.caller is coro:
                op.caller = None
        elif op is not None:
            try:
                op.cleanup(self, coro)
            except Exception:
                log.exception("error withdrawing %r from %r", coro, op)
        else:
            for name, waiters in list(self.sigwait.items()):
                if coro in waiters:
                    waiters.remove(coro)
                    if not waiters:
                        del self.sigwait[name]
            for name, (_sig, parked) in list(self.signals.items()):
                if parked is coro:
                    del self.signals[name]
        active.append((value, coro))
        return True

    def resume_after(self, delay: float, coro: Coroutine, value: Any) -> None:
        """Park ``coro`` for ``delay`` seconds, then queue it to be resumed with ``value``.

        For a ``process`` that then returns ``PENDING`` (``Sleep``); the
        timer is the coroutine's own, so no deadline is armed besides it, and
        :meth:`resume` or :meth:`cancel` withdraw it.
        """
        coro._timer = self._push_timer(delay, _SLEEP, value, coro)

    def woke_itself(self, coro: Coroutine) -> None:
        """Say that ``process`` queued its own ``coro`` and still returns PENDING: arm no deadline.

        Only for operations that must place their own coroutine on the run
        queue relative to others (``WaitForSignal`` firing a parked
        ``Signal``, the queue and pipe hand-offs), from a ``process`` called
        when the coroutine yields the operation; the loop consumes the
        marker right after.
        """
        coro._timer = _WOKEN

    def expect_external(self) -> None:
        """Count one wait on something outside the loop (a thread): ``run()`` waits for it."""
        self.pending_external += 1

    def external_done(self) -> None:
        """Uncount a wait :meth:`expect_external` counted (it ended or was withdrawn)."""
        self.pending_external -= 1

    # -- the signal tables (Signal and WaitForSignal) --------------------------------
    def add_signal_waiter(self, name: Any, coro: Coroutine) -> int:
        """Add ``coro`` to the waiters of signal ``name``; returns how many wait now."""
        waiters = self.sigwait.get(name)
        if waiters is None:
            self.sigwait[name] = [coro]
            return 1
        waiters.append(coro)
        return len(waiters)

    def remove_signal_waiter(self, name: Any, coro: Coroutine) -> None:
        """Take ``coro`` off the waiters of ``name`` (nothing if it is not there)."""
        waiters = self.sigwait.get(name)
        if waiters:
            try:
                waiters.remove(coro)
            except ValueError:
                pass
            if not waiters:
                del self.sigwait[name]

    def signal_waiter_count(self, name: Any) -> int:
        """How many coroutines wait for signal ``name``."""
        waiters = self.sigwait.get(name)
        return 0 if waiters is None else len(waiters)

    def take_signal_waiters(self, name: Any) -> list[Coroutine]:
        """Remove and return the waiters of ``name``, in the order they came (maybe empty)."""
        return self.sigwait.pop(name, None) or []

    def park_signal(self, name: Any, op: Any, coro: Coroutine) -> None:
        """Park a ``Signal(recipients=N)`` and its ``coro`` until enough waiters come."""
        self.signals[name] = (op, coro)

    def parked_signal(self, name: Any) -> tuple[Any, Coroutine] | None:
        """The ``(Signal, coroutine)`` parked on ``name``, or None."""
        return self.signals.get(name)

    def unpark_signal(self, name: Any) -> None:
        """Forget the Signal parked on ``name`` (nothing if none is)."""
        self.signals.pop(name, None)

    # -- the reactor ----------------------------------------------------------------
    def wait_readable(self, fd: int, owner: Any, op: Any, coro: Coroutine) -> None:
        """Park ``coro`` until ``fd`` is readable; then ``op.process`` runs again."""
        if self.reactor.add_reader(fd, owner, op, coro):
            self._ready.append((op, coro))  # known to be readable: retry at once
        else:
            coro._io = fd

    def wait_writable(self, fd: int, owner: Any, op: Any, coro: Coroutine) -> None:
        """Park ``coro`` until ``fd`` is writable; then ``op.process`` runs again."""
        coro._io = ~fd
        self.reactor.add_writer(fd, owner, op, coro)

    def forget_fd(self, fd: int, exc: BaseException | None = None, closing: bool = False) -> None:
        """Tell the reactor to drop ``fd``; waiters on it get ``exc`` if given.

        Pass ``closing=True`` when ``fd`` is closed right after and not
        duplicated anywhere: the reactor may then skip a system call.
        """
        for _op, coro in self.reactor.forget(fd, closing):
            coro._io = None
            if exc is not None:
                self.throw(coro, exc)

    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> list[Any]:
        """Call ``fn(*args)`` from the loop after ``delay`` seconds; returns a handle for ``cancel_call``."""
        return self._push_timer(delay, _CALL, fn, args)

    def cancel_call(self, handle: list[Any]) -> None:
        """Cancel a ``call_later`` that has not run yet."""
        if handle[2]:
            handle[2] = 0
            self._timers_live -= 1
            self._timers_dead += 1

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

    # -- timers ---------------------------------------------------------------------
    def _push_timer(self, delay: float, kind: int, a: Any, b: Any) -> list[Any]:
        self._timer_seq += 1
        entry = [_monotonic() + delay, self._timer_seq, kind, a, b]
        heapq.heappush(self.timers, entry)
        self._timers_live += 1
        return entry

    def _arm(self, op: Any, coro: Coroutine, timeout: Any) -> None:
        """Give ``coro`` the deadline of the timed operation it just parked on."""
        if timeout is USE_DEFAULT:
            timeout = self.default_timeout
            if timeout is None:
                return
        coro._timer = self._push_timer(timeout, _TIMEOUT, op, coro)

    def _kill_timer(self, coro: Coroutine, timer: list[Any]) -> None:
        coro._timer = None
        if timer[2]:
            timer[2] = 0
            self._timers_live -= 1
            self._timers_dead += 1
            if self._timers_dead > 512 and self._timers_dead > self._timers_live:
                self.timers = [t for t in self.timers if t[2]]
                heapq.heapify(self.timers)
                self._timers_dead = 0

    def _cancel_timer(self, coro: Coroutine) -> None:
        if coro._timer is not None:
            self._kill_timer(coro, coro._timer)

    def _fire_timers(self, now: float) -> None:
        timers = self.timers
        pop = heapq.heappop
        while timers and timers[0][0] <= now:
            entry = pop(timers)
            kind = entry[2]
            if not kind:
                self._timers_dead -= 1
                continue
            self._timers_live -= 1
            entry[2] = 0
            if kind == _SLEEP:
                coro = entry[4]
                coro._timer = None
                self.active.append((entry[3], coro))
            elif kind == _TIMEOUT:
                op, coro = entry[3], entry[4]
                coro._timer = None
                self._timeout(op, coro)
            else:
                try:
                    entry[3](*entry[4])
                except Exception:
                    log.exception("error in timer callback %r", entry[3])

    def _timeout(self, op: Any, coro: Coroutine) -> None:
        io = coro._io
        if io is not None:
            coro._io = None
            if io >= 0:
                self.reactor.remove_reader(io)
            else:
                self.reactor.remove_writer(~io)
        try:
            op.cleanup(self, coro)
        except Exception as exc:
            self.active.append((CoroutineException(exc), coro))
            return
        timeout = op.timeout
        if timeout is USE_DEFAULT:
            timeout = self.default_timeout
        self.active.append((CoroutineException(OperationTimeout(op, timeout)), coro))

    # -- stepping coroutines --------------------------------------------------------
    def _run_active(self, keep_going: bool = False) -> None:
        """Step every pair that is queued now (not the ones this queues).

        With ``keep_going`` (``run()`` passes it), go on with the pairs queued
        meanwhile, round after round, for as long as a poll could find nothing
        to do: no descriptor waited on, no timer armed, no thread callback
        queued and no ``stop()``. Then a coroutine that only yields
        ``Sleep(0)``, or two that only signal each other, cost a loop
        iteration per switch and not a whole ``run_once`` each.
        """
        active = self.active
        popleft = active.popleft
        append = active.append
        default_prio = self.default_priority
        arm_default = self.default_timeout is not None
        sigwait, signals, broker = self.sigwait, self.signals, self.broker
        reactor = self.reactor
        readers, writers = reactor.readers, reactor.writers
        # Micro-optimisations of this loop, measured with callgrind on
        # CPython 3.11: ``type(x)`` is cheaper than ``x.__class__``; the
        # module's dict is written instead of ``coroutines.current = ...``
        # (a generic setattr); ``coro.send`` is read into a local before the
        # call (a call through a slot attribute is not specialised); and
        # priority bits are tested by comparing (``&`` is not specialised).
        # The outer loop is a ``while True``: only an unconditional jump back
        # counts towards the warm-up after which CPython 3.11 specialises the
        # code, and run() may call this method only once.
        module_vars = _coroutines.__dict__
        n = len(active)
        while True:
            if n == 0:  # the end of a round
                if (not keep_going or readers or writers or self._timers_live or self._callbacks
                        or self._stopping or self._ready):
                    break
                n = len(active)
                if n == 0:
                    break
            n -= 1
            val, coro = popleft()
            module_vars["current"] = coro
            # every step runs in the coroutine's own context (see cogen.core.coroutines)
            run = coro.ctx.run
            while True:
                try:
                    if type(val) is CoroutineException:
                        op = run(coro.throw, val.exc)
                    else:
                        op = run(coro.send, val)
                except StopIteration as stop:
                    self._finish(coro, stop.value, None)
                    break
                except (KeyboardInterrupt, SystemExit):
                    module_vars["current"] = None
                    raise
                except BaseException as exc:
                    self._finish(coro, None, exc)
                    break
                # Fast paths: the commonest operations are done here, without
                # their process() calls (only for these exact classes, so that
                # subclasses overriding process() get theirs). They must do what
                # Sleep.process, WaitForSignal.process and Signal._fire do:
                # tests/core/test_fast_path.py runs every case through both.
                cls = type(op)
                if cls is Sleep:
                    if op.delay > 0:
                        self.resume_after(op.delay, coro, op)
                    else:
                        append((op, coro))
                    break
                if cls is WaitForSignal and not signals:  # no Signal(recipients=) parked
                    name = op.name
                    waiters = sigwait.get(name)
                    if waiters is None:
                        sigwait[name] = [coro]
                    else:
                        waiters.append(coro)
                    timeout = op.timeout
                    if timeout is not None and (arm_default or timeout is not USE_DEFAULT):
                        self._arm(op, coro, timeout)
                    break
                if cls is Signal and op.recipients == 0 and broker is None:
                    prio = op.prio
                    if prio < 0:
                        prio = default_prio
                    waiters = sigwait.pop(op.name, None)
                    if waiters is None:
                        result = 0
                    elif prio >= 2:  # the OP bit: the woken go first, the last to wait first
                        result = op._fire_waiters(self, waiters, True)
                    else:
                        value = op.value
                        for wcoro in waiters:
                            if wcoro._timer is not None:
                                self._kill_timer(wcoro, wcoro._timer)
                            append((value, wcoro))
                        result = len(waiters)
                    if prio == 1 or prio == 3:  # the CORO bit: resume the signaller at once
                        val = result
                        continue
                    append((result, coro))
                    break
                if op is None:
                    append((None, coro))
                    break
                try:
                    process = op.process
                except AttributeError:
                    val = self._not_an_operation(op)
                    continue
                try:
                    result = process(self, coro)
                except Exception as exc:
                    val = CoroutineException(exc)
                    continue
                if result is PENDING:
                    timer = coro._timer
                    if timer is None:
                        timeout = op.timeout
                        # USE_DEFAULT with no default_timeout: nothing to arm
                        if timeout is not None and (arm_default or timeout is not USE_DEFAULT):
                            self._arm(op, coro, timeout)
                    elif timer is _WOKEN:
                        coro._timer = None
                    break
                prio = op.prio
                if prio < 0:
                    prio = default_prio
                if prio == 1 or prio == 3:  # the CORO bit: resume the coroutine at once
                    val = result
                    continue
                append((result, coro))
                break
        module_vars["current"] = None

    def _not_an_operation(self, op: Any) -> Any:
        if hasattr(op, "send") and hasattr(op, "throw"):
            # a bare generator or native coroutine object: call it as a sub-coroutine
            return CoroutineException(TypeError(
                f"yielded a generator object {op!r}; decorate its function with @coroutine to call it"))
        return CoroutineException(TypeError(
            f"yielded {op!r} ({type(op).__name__}), which is not an operation; "
            f"yield an Operation, a coroutine instance or None"))

    def _finish(self, coro: Coroutine, result: Any, exc: BaseException | None) -> None:
        coro.gen = None
        coro.send = None  # type: ignore[assignment]
        if exc is None:
            coro.state = Coroutine.STATE_COMPLETED
            coro.result = result
            value = result
        else:
            coro.state = Coroutine.STATE_FAILED
            coro.exception = exc
            value = CoroutineException(exc)
        caller = coro.caller
        if caller is not None:
            coro.caller = None
            self.active.appendleft((value, caller))
        elif exc is not None:
            log.error("unhandled exception in coroutine %r", coro, exc_info=exc)
        if coro.waiters:
            # Joiners get the return value, None for a failed coroutine (as in
            # the original): the exception stays on coro.exception.
            waiters = coro.waiters
            coro.waiters = ()
            for w in waiters:
                self.resume(w, result)

    def _process_ready(self) -> None:
        ready = self._ready
        if not ready:
            return
        self._ready = []
        append = self.active.append
        for op, coro in ready:
            coro._io = None
            try:
                result = op.process(self, coro)
            except Exception as exc:
                self.throw(coro, exc)
                continue
            if result is not PENDING:
                timer = coro._timer
                if timer is not None:
                    self._kill_timer(coro, timer)
                append((result, coro))

    def _run_callbacks(self) -> None:
        self._wake_pending = False
        callbacks = self._callbacks
        popleft = callbacks.popleft
        for _ in range(len(callbacks)):
            fn, args = popleft()
            try:
                fn(*args)
            except Exception:
                log.exception("error in callback %r", fn)

    # -- the loop -------------------------------------------------------------------
    def has_work(self) -> bool:
        """True while some coroutine can still run (now or after a wait)."""
        reactor = self.reactor
        return bool(self.active or self._timers_live or reactor.readers or reactor.writers
                    or self.pending_external > 0 or self._callbacks or self._ready)

    def run_once(self, timeout: float | None = 0.0) -> bool:
        """Run one iteration, waiting at most ``timeout`` seconds for I/O or timers.

        Returns :meth:`has_work`. This is the way to drive cogen from another
        event loop: call it whenever that loop is idle.
        """
        return self._iterate(timeout, False)

    def _iterate(self, timeout: float | None, keep_going: bool) -> bool:
        """One iteration: step the queued coroutines, poll, fire timers, run callbacks."""
        self.iterations += 1
        active = self.active
        if active:
            self._run_active(keep_going)
        reactor = self.reactor
        watching = reactor.readers or reactor.writers
        if active or self._callbacks or self._stopping or self._ready:
            wait: float | None = 0.0
        elif self._timers_live:
            timers = self.timers
            while not timers[0][2]:
                # a cancelled deadline: drop it now rather than wake up for it
                # (there is a live one further down, so this ends)
                heapq.heappop(timers)
                self._timers_dead -= 1
            wait = max(0.0, timers[0][0] - _monotonic())
            if timeout is not None and wait > timeout:
                wait = timeout
        elif watching or self.pending_external > 0:
            wait = timeout
        else:
            wait = 0.0
        if wait != 0.0 or watching:
            reactor.poll(wait, self._ready)
        if self._ready:
            self._process_ready()
        if self._timers_live or self._timers_dead:
            timers = self.timers
            if timers:
                now = _monotonic()
                if timers[0][0] <= now:
                    self._fire_timers(now)
        if self._callbacks:
            self._run_callbacks()
        return self.has_work()

    def iter_run(self) -> Iterator[None]:
        """The loop as a generator: one iteration per ``next()``."""
        self.running = True
        self._thread_id = threading.get_ident()
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
        self._thread_id = threading.get_ident()
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
        if self._thread_id is not None and threading.get_ident() != self._thread_id:
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
            if threading.get_ident() == self._thread_id:
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
        found += [entry[4] for entry in self.timers if entry[2] in (_SLEEP, _TIMEOUT)]
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


