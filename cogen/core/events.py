"""Operations: what a coroutine yields to the scheduler.

Theory of operation
-------------------
A coroutine yields an :class:`Operation`. The scheduler calls
``op.process(sched, coro)``, which either returns the operation's result at
once (the scheduler resumes the coroutine with it, sooner or later according
to the operation's priority), or returns :data:`~cogen.core.util.PENDING`
after arranging a later wake-up through the scheduler's small interface:

- ``sched.resume(coro, value, first=False)`` and
  ``sched.throw(coro, exc, first=False)`` put the coroutine back on the run
  queue with a value or an exception;
- ``sched.wait_readable(fd, owner, op, coro)`` / ``sched.wait_writable(...)``
  park it on the reactor: when the descriptor is ready the scheduler calls
  ``op.process(sched, coro)`` *again*, so an I/O operation simply retries its
  non-blocking system call;
- ``sched.call_later(delay, fn, *args)`` runs a plain callback later.

A :class:`TimedOperation` that returns ``PENDING`` gets a deadline from its
``timeout`` (or the scheduler's ``default_timeout``). When the deadline passes
first, the scheduler calls ``op.cleanup(sched, coro)`` (undo the parking: leave
waiter lists) and throws :class:`OperationTimeout` into the coroutine. Waking
the coroutine through ``resume``/``throw`` cancels the deadline, so exactly
one of the two ever happens.

Custom operations subclass :class:`Operation` or :class:`TimedOperation` and
override ``process`` (and ``cleanup`` if they park on something of their own).
"""
from __future__ import annotations

import datetime
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

from cogen.core.util import PENDING, USE_DEFAULT, priority
from cogen.errors import CogenError

if TYPE_CHECKING:
    from cogen.core.coroutines import Coroutine
    from cogen.core.schedulers import Scheduler

__all__ = [
    "AddCoro",
    "Call",
    "CoroutineException",
    "Join",
    "Operation",
    "OperationTimeout",
    "Signal",
    "Sleep",
    "TimedOperation",
    "WaitForSignal",
]


class OperationTimeout(CogenError):
    """Raised inside a coroutine whose operation did not complete in time.

    ``.operation`` is the operation that timed out and ``.timeout`` the number
    of seconds it was given.
    """

    def __init__(self, operation: Operation, timeout: float | None = None) -> None:
        super().__init__(operation, timeout)
        self.operation = operation
        self.timeout = timeout

    def __str__(self) -> str:
        return f"{self.operation!r} timed out after {self.timeout}s"


class CoroutineException:
    """A value on the run queue meaning "throw this into the coroutine".

    Not an exception itself: it wraps one (``.exc``). Operations never need to
    build it by hand; ``sched.throw`` does.
    """

    __slots__ = ("exc",)

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def __repr__(self) -> str:
        return f"CoroutineException({self.exc!r})"


class Operation:
    """Base class of everything a coroutine may yield.

    Args:
        prio: a :class:`~cogen.core.util.priority` value; ``DEFAULT`` uses the
            scheduler's ``default_priority``.

    Subclasses override :meth:`process`. An operation is also awaitable, so
    ``async def`` coroutines write ``await events.Sleep(1)``.
    """

    __slots__ = ("prio",)
    #: Timed operations override this; ``None`` means the scheduler never
    #: arms a deadline for the operation.
    timeout: Any = None

    def __init__(self, prio: int = priority.DEFAULT) -> None:
        self.prio = prio

    def process(self, sched: Scheduler, coro: Coroutine) -> Any:
        """Run the operation for ``coro``.

        Returns the result to resume the coroutine with (an operation that has
        no result returns itself), or :data:`~cogen.core.util.PENDING` after
        arranging a wake-up. An exception raised here is thrown into the
        coroutine. May be called again when a descriptor it waited on becomes
        ready.
        """
        return self

    def cleanup(self, sched: Scheduler, coro: Coroutine) -> None:
        """Undo whatever parking ``process`` did; called when the deadline passes."""

    def __await__(self) -> Generator[Any, Any, Any]:
        return (yield self)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} at 0x{id(self):x}>"


class TimedOperation(Operation):
    """An operation that may wait, bounded by a timeout.

    Args:
        timeout: seconds to wait (a number or a ``datetime.timedelta``);
            ``None`` (or ``-1``, the original's spelling) waits forever; left
            out, the scheduler's ``default_timeout`` applies.
        prio: see :class:`Operation`.

    When the time runs out, :class:`OperationTimeout` is raised in the
    coroutine and the operation is withdrawn (it will not complete later).
    """

    __slots__ = ("timeout",)

    def __init__(self, timeout: Any = USE_DEFAULT, prio: int = priority.DEFAULT) -> None:
        self.prio = prio
        self.timeout = timeout if timeout is USE_DEFAULT else _timeout_seconds(timeout)


def _timeout_seconds(timeout: Any) -> float | None:
    """Check and convert a ``timeout=`` argument other than ``USE_DEFAULT``."""
    if (type(timeout) is int or type(timeout) is float) and timeout >= 0:
        seconds: float = timeout  # the common case, on the path of every timed socket operation
        return seconds
    if timeout is None:
        return None
    if isinstance(timeout, datetime.timedelta):
        timeout = timeout.total_seconds()
    elif isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be a number of seconds or None, not {timeout!r}")
    if timeout == -1:
        return None
    if timeout < 0:
        raise ValueError(f"timeout must not be negative, got {timeout!r}")
    seconds = timeout
    return seconds


class Sleep(Operation):
    """Suspend the coroutine for ``delay`` seconds; result: the Sleep itself.

    ``delay`` is a number of seconds, a ``datetime.timedelta`` or an absolute
    ``datetime.datetime`` to wake at. ``Sleep(0)`` (or a negative delay) is a
    pure yield: the coroutine goes to the back of the run queue, whatever the
    priority.
    """

    __slots__ = ("delay",)
    #: Always LAST (the ``prio`` argument is accepted for the original's
    #: sake); a class attribute, so that ``Sleep(0)`` stores one slot only.
    prio = priority.LAST

    def __init__(self, delay: Any = 0, prio: int = priority.LAST) -> None:
        if delay.__class__ is not int and delay.__class__ is not float:
            delay = _seconds(delay)
        self.delay = delay

    def process(self, sched: Scheduler, coro: Coroutine) -> Any:
        if self.delay <= 0:
            return self
        sched.resume_after(self.delay, coro, self)
        return PENDING

    def __repr__(self) -> str:
        return f"<Sleep {self.delay}s>"


def _seconds(value: Any) -> float:
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, datetime.datetime):
        now = datetime.datetime.now(value.tzinfo)
        return (value - now).total_seconds()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise TypeError(f"Sleep needs seconds, a timedelta or a datetime, not {value!r}")


class WaitForSignal(TimedOperation):
    """Wait until somebody yields ``Signal(name)``; result: the signalled value.

    ``name`` is any hashable object.
    """

    __slots__ = ("name",)

    def __init__(self, name: Any, timeout: Any = USE_DEFAULT, prio: int = priority.DEFAULT) -> None:
        # TimedOperation.__init__ inlined: this is on the hot path
        self.prio = prio
        self.timeout = timeout if timeout is USE_DEFAULT else _timeout_seconds(timeout)
        self.name = name

    def process(self, sched: Scheduler, coro: Coroutine) -> Any:
        waiting = sched.add_signal_waiter(self.name, coro)
        pending = sched.parked_signal(self.name)
        if pending is not None and waiting >= pending[0].recipients:
            sig, sigcoro = pending
            sched.unpark_signal(self.name)
            woken = sig.fire(sched)  # this coroutine included
            # as in the original, the parked signaller goes after the woken
            # waiters, or before them all when its priority has the CORO bit
            prio = sig.prio if sig.prio >= 0 else sched.default_priority
            sched.resume(sigcoro, woken, bool(prio & priority.CORO))
            sched.woke_itself(coro)
        return PENDING

    def cleanup(self, sched: Scheduler, coro: Coroutine) -> None:
        sched.remove_signal_waiter(self.name, coro)

    def __repr__(self) -> str:
        return f"<WaitForSignal {self.name!r}>"


class Signal(TimedOperation):
    """Wake the coroutines waiting on ``name``; result: how many were woken.

    Every waiter gets ``value`` as its result. With ``recipients=N`` the
    signalling coroutine waits (bounded by ``timeout``) until at least N
    coroutines are waiting, then wakes them all, as in the original cogen.

    Under a scheduler's broker (``Scheduler(broker=...)``) a signal without
    ``recipients`` whose name is a ``str`` or ``bytes`` also wakes the
    waiters of every other process sharing the broker: see
    :mod:`cogen.redis.broker` for the values that may cross and what the
    result then counts.
    """

    __slots__ = ("name", "recipients", "value")

    def __init__(self, name: Any, value: Any = None, recipients: int | None = None,
                 timeout: Any = USE_DEFAULT, prio: int = priority.DEFAULT) -> None:
        # TimedOperation.__init__ inlined: this is on the hot path
        self.prio = prio
        self.timeout = timeout if timeout is USE_DEFAULT else _timeout_seconds(timeout)
        self.name = name
        self.value = value
        self.recipients = recipients or 0

    def process(self, sched: Scheduler, coro: Coroutine) -> Any:
        if sched.broker is not None and not self.recipients:
            return sched.broker.signal(self, sched, coro)
        if self.recipients and sched.signal_waiter_count(self.name) < self.recipients:
            sched.park_signal(self.name, self, coro)
            return PENDING
        return self.fire(sched)

    def fire(self, sched: Scheduler) -> int:
        """Wake the waiters of ``name`` in ``sched`` now; returns how many were woken.

        What ``process`` does once the signal may go, without the broker and
        ``recipients``: for a broker delivering another process's signal, and
        ``WaitForSignal`` releasing a parked one.
        """
        waiters = sched.take_signal_waiters(self.name)
        if not waiters:
            return 0
        prio = self.prio if self.prio >= 0 else sched.default_priority
        return self.fire_waiters(sched, waiters, bool(prio & priority.OP))

    def fire_waiters(self, sched: Scheduler, waiters: list[Coroutine], first: bool) -> int:
        """Resume ``waiters`` with the value: in order, or if ``first`` ahead of the queue.

        Ahead of the queue they go in reverse order (the last to wait runs
        first), as the original's ``deque.extendleft`` put them.
        """
        value = self.value
        resume = sched.resume
        if first:
            for wcoro in waiters:
                resume(wcoro, value, True)
        else:
            for wcoro in waiters:
                resume(wcoro, value)
        return len(waiters)

    def cleanup(self, sched: Scheduler, coro: Coroutine) -> None:
        pending = sched.parked_signal(self.name)
        if pending is not None and pending[1] is coro:
            sched.unpark_signal(self.name)

    def __repr__(self) -> str:
        return f"<Signal {self.name!r}>"


class AddCoro(Operation):
    """Start another coroutine; result: the new coroutine instance.

    ``coro`` is a ``@coroutine`` function (called with ``args``/``kwargs``),
    or a coroutine instance. With the ``OP`` priority bit the new coroutine
    runs before the ones already queued.
    """

    __slots__ = ("args", "coro", "kwargs")

    def __init__(self, coro: Callable[..., Any] | Coroutine, args: tuple[Any, ...] = (),
                 kwargs: dict[str, Any] | None = None, prio: int = priority.DEFAULT) -> None:
        self.prio = prio
        self.coro = coro
        self.args = args
        self.kwargs = kwargs or {}

    def process(self, sched: Scheduler, coro: Coroutine) -> Any:
        prio = self.prio if self.prio >= 0 else sched.default_priority
        # process() runs outside the yielding coroutine's context: the new one
        # gets a copy of that context, as if started from its body
        return sched.add(self.coro, args=self.args, kwargs=self.kwargs,
                         prio=priority.FIRST if prio & priority.OP else priority.LAST,
                         context=coro.ctx.copy())


class Join(TimedOperation):
    """Wait for a coroutine to finish; result: its return value.

    If it failed, the result is None, as in the original cogen: the exception
    stays on the joined coroutine (``coro.exception``, also logged on the
    ``cogen`` logger) and is not raised in the joiner. Joining a coroutine
    that already finished completes at once.
    """

    __slots__ = ("coro",)

    def __init__(self, coro: Coroutine, timeout: Any = USE_DEFAULT, prio: int = priority.DEFAULT) -> None:
        TimedOperation.__init__(self, timeout, prio)
        if not hasattr(coro, "waiters"):
            raise TypeError(f"Join needs a coroutine instance, not {coro!r}")
        self.coro = coro

    def process(self, sched: Scheduler, coro: Coroutine) -> Any:
        target = self.coro
        if target.state >= target.STATE_COMPLETED:
            return target.result  # None for a failed one
        if target.waiters:
            target.waiters.append(coro)
        else:
            target.waiters = [coro]  # the shared empty tuple until now
        return PENDING

    def cleanup(self, sched: Scheduler, coro: Coroutine) -> None:
        if coro in self.coro.waiters:
            self.coro.waiters.remove(coro)  # type: ignore[union-attr]

    def __repr__(self) -> str:
        return f"<Join {self.coro!r}>"


def Call(coro: Callable[..., Any], args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None,
         **_ignored: Any) -> Coroutine:
    """The original's ``events.Call``: ``yield Call(f, args)`` is ``yield f(*args)``."""
    instance: Coroutine = coro(*args, **(kwargs or {}))
    return instance


