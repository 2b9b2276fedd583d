"""The scheduler's timers: one heap of deadlines, sleeps and timed callbacks.

Theory of operation
-------------------
Timers are ``[deadline, seq, kind, a, b]`` lists on a heap, ``kind`` one of
``SLEEP`` (``a`` the value to resume coroutine ``b`` with), ``TIMEOUT`` (the
deadline of operation ``a`` that coroutine ``b`` parked on) or ``CALL``
(``a(*b)``, a ``call_later`` callback). A coroutine's own entry (a sleep or a
deadline) is in its ``timer`` slot. Cancelling an entry blanks its ``kind``
and the heap is rebuilt when cancelled entries outnumber live ones, so short
waits that complete early (the common case for a server) cost no more than a
push.

``TimerHeap`` is the lowest layer of :class:`~cogen.core.schedulers.Scheduler`
(see docs/internals.rst, "Where the scheduler lives"); every reading of the
clock is here, so that the tests can replace ``monotonic``.
"""
from __future__ import annotations

import heapq
import logging
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from cogen.core.events import CoroutineException, OperationTimeout
from cogen.core.util import USE_DEFAULT

if TYPE_CHECKING:
    from cogen.core.coroutines import Coroutine
    from cogen.core.reactors import Reactor

__all__ = ["CALL", "SLEEP", "TIMEOUT", "WOKEN", "TimerHeap", "monotonic"]

log = logging.getLogger("cogen")

#: The kinds of timer entries (entry[2]); 0 is a cancelled entry.
SLEEP, TIMEOUT, CALL = 1, 2, 3
#: The clock of every deadline (the tests replace it with a fake one).
monotonic = time.monotonic

#: Put in ``coro.timer`` (see ``Scheduler.woke_itself``) by an operation whose
#: ``process`` woke its own coroutine and still returns ``PENDING``: the
#: scheduler then arms no deadline for that wait, which is already over, and
#: clears the marker. A dead timer entry, so ``resume`` treats it as nothing
#: to cancel.
WOKEN: list[Any] = [0.0, 0, 0, None, None]


class TimerHeap:
    """The timer heap of a scheduler, and the deadlines of its timed operations."""

    timers: list[list[Any]]
    _timer_seq: int
    _timers_live: int
    _timers_dead: int
    active: deque[tuple[Any, Coroutine]]
    reactor: Reactor
    default_timeout: float | None

    def _push_timer(self, delay: float, kind: int, a: Any, b: Any) -> list[Any]:
        self._timer_seq += 1
        entry = [monotonic() + delay, self._timer_seq, kind, a, b]
        heapq.heappush(self.timers, entry)
        self._timers_live += 1
        return entry

    def _arm(self, op: Any, coro: Coroutine, timeout: Any) -> None:
        """Give ``coro`` the deadline of the timed operation it just parked on."""
        if timeout is USE_DEFAULT:
            timeout = self.default_timeout
            if timeout is None:
                return
        coro.timer = self._push_timer(timeout, TIMEOUT, op, coro)

    def _kill_timer(self, coro: Coroutine, timer: list[Any]) -> None:
        coro.timer = None
        if timer[2]:
            # the entry stays in the heap until its time or a compaction:
            # it must not keep the operation and the coroutine alive so long
            timer[2] = timer[3] = timer[4] = 0
            self._timers_live -= 1
            self._timers_dead += 1
            if self._timers_dead > 512 and self._timers_dead > self._timers_live:
                self.timers = [t for t in self.timers if t[2]]
                heapq.heapify(self.timers)
                self._timers_dead = 0

    def _cancel_timer(self, coro: Coroutine) -> None:
        if coro.timer is not None:
            self._kill_timer(coro, coro.timer)

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
            if kind == SLEEP:
                coro = entry[4]
                coro.timer = None
                self.active.append((entry[3], coro))
            elif kind == TIMEOUT:
                op, coro = entry[3], entry[4]
                coro.timer = None
                self._timeout(op, coro)
            else:
                try:
                    entry[3](*entry[4])
                except Exception:
                    log.exception("error in timer callback %r", entry[3])

    def _withdraw_io(self, coro: Coroutine) -> None:
        """Take ``coro`` off the descriptor it is parked on in the reactor, if any."""
        io = coro.io_wait
        if io is not None:
            coro.io_wait = None
            if io >= 0:
                self.reactor.remove_reader(io)
            else:
                self.reactor.remove_writer(~io)

    def _timeout(self, op: Any, coro: Coroutine) -> None:
        self._withdraw_io(coro)
        try:
            op.cleanup(self, coro)
        except Exception as exc:
            self.active.append((CoroutineException(exc), coro))
            return
        timeout = op.timeout
        if timeout is USE_DEFAULT:
            timeout = self.default_timeout
        self.active.append((CoroutineException(OperationTimeout(op, timeout)), coro))


    def _timer_wait(self, timeout: float | None) -> float | None:
        """Seconds until the first live deadline (at most ``timeout``); there is one."""
        timers = self.timers
        while not timers[0][2]:
            # a cancelled deadline: drop it now rather than wake up for it
            # (there is a live one further down, so this ends)
            heapq.heappop(timers)
            self._timers_dead -= 1
        wait: float = max(0.0, timers[0][0] - monotonic())
        if timeout is not None and wait > timeout:
            return timeout
        return wait

    def _fire_due(self) -> None:
        """Fire the timers whose deadline has passed."""
        timers = self.timers
        if timers:
            now = monotonic()
            if timers[0][0] <= now:
                self._fire_timers(now)
