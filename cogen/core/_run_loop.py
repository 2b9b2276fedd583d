"""The scheduler's run loop: stepping coroutines, the fast path, one iteration.

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

Stepping a coroutine sends it its value and gets an operation back; the
operation's ``process`` either returns a result (the coroutine is resumed
at once or queued, by priority) or ``PENDING`` (it parked the coroutine; a
timed operation then gets a deadline on the timer heap).

The commonest operations (``Sleep``, ``WaitForSignal``, ``Signal``) are
carried out inside the loop itself rather than through their ``process``
methods, which define the same behaviour for everything else (the rules:
docs/internals.rst, "The fast path").
"""
from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from cogen.core import coroutines as _coroutines
from cogen.core._sched_interface import OperationInterface
from cogen.core._timers import WOKEN
from cogen.core.coroutines import Coroutine
from cogen.core.events import CoroutineException, Signal, Sleep, WaitForSignal
from cogen.core.io import WaitIO
from cogen.core.util import PENDING, USE_DEFAULT

__all__ = ["RunLoop"]

log = logging.getLogger("cogen")
_COMPLETED = Coroutine.STATE_COMPLETED
_RUNNING = Coroutine.STATE_RUNNING


class RunLoop(OperationInterface):
    """Steps the queued coroutines and runs one iteration of the loop."""

    default_priority: int
    broker: Any
    _callbacks: deque[tuple[Callable[..., Any], tuple[Any, ...]]]
    _wake_pending: bool
    _stopping: bool
    #: Loop iterations so far: the blocked-loop watchdog
    #: (:mod:`cogen.core.watchdog`) samples it from its thread.
    iterations: int

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
        result: Any
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
            # a generator coroutine is made with its generator (see Coroutine):
            # its first step is what makes it RUNNING
            coro.state = _RUNNING
            while True:
                # every step runs in the coroutine's own context (see
                # cogen.core.coroutines); called in place, not through a
                # local: reading ``coro.ctx.run`` into one builds a bound method
                try:
                    if type(val) is CoroutineException:
                        op = coro.ctx.run(coro.throw, val.exc)
                    else:
                        op = coro.ctx.run(coro.send, val)
                except StopIteration as stop:
                    if coro.caller is None and not coro.waiters:
                        # _finish of a coroutine nobody waits for, inlined
                        coro.gen = None
                        coro.send = None  # type: ignore[assignment]
                        coro.state = _COMPLETED
                        coro.result = stop.value
                    else:
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
                # Sleep.process, WaitForSignal.process, Signal.fire and
                # WaitIO.process do:
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
                        result = op.fire_waiters(self, waiters, True)
                    else:
                        value = op.value
                        for wcoro in waiters:
                            if wcoro.timer is not None:
                                self._kill_timer(wcoro, wcoro.timer)
                            append((value, wcoro))
                        result = len(waiters)
                    if prio == 1 or prio == 3:  # the CORO bit: resume the signaller at once
                        val = result
                        continue
                    append((result, coro))
                    break
                if cls is WaitIO and not op.armed:
                    # WaitIO.process on a fresh wait (then the PENDING branch
                    # below): the wait of every connection between requests
                    op.armed = True
                    if op.writing:
                        self.wait_writable(op.fd, op.owner, op, coro)
                    elif reactor.add_reader(op.fd, op.owner, op, coro):
                        self._ready.append((op, coro))  # known to be readable: retry at once
                    else:
                        coro.io_wait = op.fd
                    result = PENDING
                else:
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
                    timer = coro.timer
                    if timer is None:
                        timeout = op.timeout
                        # USE_DEFAULT with no default_timeout: nothing to arm
                        if timeout is not None and (arm_default or timeout is not USE_DEFAULT):
                            self._arm(op, coro, timeout)
                    elif timer is WOKEN:
                        coro.timer = None
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
        for entry in ready:
            op, coro = entry
            coro.io_wait = None
            if type(op) is WaitIO and op.armed:  # WaitIO.process on a wake-up, inlined
                op.armed = False
                if coro.timer is None:
                    append(entry)  # (its result is the op: the entry serves as it is)
                    continue
                result: Any = op
            else:
                try:
                    result = op.process(self, coro)
                except Exception as exc:
                    self.throw(coro, exc)
                    continue
            if result is not PENDING:
                timer = coro.timer
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
            wait = self._timer_wait(timeout)
        elif watching or self.pending_external > 0:
            wait = timeout
        else:
            wait = 0.0
        if wait != 0.0 or watching:
            reactor.poll(wait, self._ready)
        if self._ready:
            self._process_ready()
        if self._timers_live or self._timers_dead:
            self._fire_due()
        if self._callbacks:
            self._run_callbacks()
        return self.has_work()

