"""The scheduler's side of the operation interface.

What an operation's ``process`` and ``cleanup`` may call on the scheduler
(docs/internals.rst, "The operation interface"): queue a coroutine, withdraw
it, park it on a descriptor or a timer, count a wait on a thread, and the
tables ``Signal`` and ``WaitForSignal`` keep. ``OperationInterface`` is the
layer of :class:`~cogen.core.schedulers.Scheduler` above its timers.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from cogen.core._timers import CALL, SLEEP, WOKEN, TimerHeap
from cogen.core.coroutines import Coroutine
from cogen.core.events import CoroutineException

__all__ = ["OperationInterface"]

log = logging.getLogger("cogen")


class OperationInterface(TimerHeap):
    """The calls operations make on the scheduler (see the module docstring)."""

    #: signal name -> the coroutines waiting in WaitForSignal, in order
    sigwait: dict[Any, list[Coroutine]]
    #: signal name -> the ``Signal(recipients=N)`` parked on it and its coroutine
    signals: dict[Any, tuple[Any, Coroutine]]
    #: the reactor's ready waiters, collected by a poll: ``(op, coro)``
    _ready: list[tuple[Any, Coroutine]]
    #: Operations waiting on something outside the scheduler (a thread):
    #: while above zero, ``run()`` keeps waiting for them.
    pending_external: int

    def resume(self, coro: Coroutine, value: Any, first: bool = False) -> None:
        """Queue ``coro`` to be resumed with ``value`` (at the front if ``first``)."""
        timer = coro.timer
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
        timer = coro.timer
        if timer is not None:
            if timer is WOKEN:
                coro.timer = None
            else:
                self._kill_timer(coro, timer)
        self._withdraw_io(coro)
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
        coro.timer = self._push_timer(delay, SLEEP, value, coro)

    def woke_itself(self, coro: Coroutine) -> None:
        """Say that ``process`` queued its own ``coro`` and still returns PENDING: arm no deadline.

        Only for operations that must place their own coroutine on the run
        queue relative to others (``WaitForSignal`` firing a parked
        ``Signal``, the queue and pipe hand-offs), from a ``process`` called
        when the coroutine yields the operation; the loop consumes the
        marker right after.
        """
        coro.timer = WOKEN

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
            coro.io_wait = fd

    def wait_writable(self, fd: int, owner: Any, op: Any, coro: Coroutine) -> None:
        """Park ``coro`` until ``fd`` is writable; then ``op.process`` runs again."""
        coro.io_wait = ~fd
        self.reactor.add_writer(fd, owner, op, coro)

    def forget_fd(self, fd: int, exc: BaseException | None = None, closing: bool = False) -> None:
        """Tell the reactor to drop ``fd``; waiters on it get ``exc`` if given.

        Pass ``closing=True`` when ``fd`` is closed right after and not
        duplicated anywhere: the reactor may then skip a system call.
        """
        for _op, coro in self.reactor.forget(fd, closing):
            coro.io_wait = None
            if exc is not None:
                self.throw(coro, exc)

    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> list[Any]:
        """Call ``fn(*args)`` from the loop after ``delay`` seconds; returns a handle for ``cancel_call``."""
        return self._push_timer(delay, CALL, fn, args)

    def cancel_call(self, handle: list[Any]) -> None:
        """Cancel a ``call_later`` that has not run yet."""
        if handle[2]:
            handle[2] = 0
            self._timers_live -= 1
            self._timers_dead += 1

