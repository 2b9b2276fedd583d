"""A one-way pipe: a consumer coroutine iterates over what a producer coroutine yields.

Usage, as in the original cogen::

    @coroutine
    def producer():
        for i in range(100):
            yield chunk(i)            # hand i to the consumer; resumed with None

    @coroutine
    def consumer():
        it = yield Iterate(producer)
        while True:
            val = yield it            # the next chunk's value, or the sentinel
            if val is sentinel:
                break
            ...

Theory of operation
-------------------
``yield Iterate(f, args, kwargs)`` creates the producer (not started) and an
:class:`IterateToken`, and resumes the consumer with the token. The two
coroutines then hand control to each other directly, like the original's
hand-offs: yielding the token parks the consumer and resumes the producer
(starting it the first time); the producer's ``yield chunk(value)`` parks the
producer and resumes the consumer with ``value``. Both hand-offs put the
other coroutine at the front of the run queue, whatever the priority, so no
other coroutine runs between a chunk and its consumption.

The producer runs inside a small driver coroutine that calls it; the driver
carries the token, so ``chunk`` finds it from any coroutine the producer
calls (through the call chain's root). When the producer returns (or fails:
its exception is then logged as unhandled), a consumer parked on the token
is resumed with the sentinel; yielding the token after that gives the
sentinel again.

``yield it.stop()`` ends the iteration early: the consumer goes on at once
with the sentinel, and :class:`IterationStopped` is raised in the producer
at its pending ``yield chunk(...)`` (a producer that does not catch it just
ends; that is not logged as an error). A producer never started is never
started.
"""
from __future__ import annotations

from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

from cogen.core.coroutines import Coroutine
from cogen.core.events import Operation
from cogen.core.util import PENDING, priority
from cogen.errors import CogenError

if TYPE_CHECKING:
    from cogen.core.schedulers import Scheduler

__all__ = ["IterateToken", "Iterate", "IterationStopped", "chunk", "chunk_sentinel", "end_sentinel",
           "sentinel"]


class IterationStopped(CogenError):
    """Raised in a producer at its ``yield chunk(...)`` when the consumer called ``stop()``."""


class chunk_sentinel:
    """The type of :data:`sentinel`."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<cogen.core.pipe.sentinel>"


#: What yielding the token gives once the producer has finished (or the
#: iteration was stopped), unless ``Iterate`` was given another sentinel.
sentinel = end_sentinel = chunk_sentinel()


def _run_next(sched: Scheduler, op: Operation, coro: Coroutine, value: Any) -> Any:
    """Resume ``coro``, which yielded ``op``, with ``value`` before anything queued."""
    sched.resume(coro, value, True)
    sched.woke_itself(coro)
    return PENDING


class _IterDriver(Coroutine):
    """The coroutine that calls the producer and carries its token."""

    __slots__ = ("iter_token",)
    iter_token: IterateToken


def _drive(token: IterateToken, producer: Coroutine) -> Generator[Any, Any, None]:
    try:
        yield producer
    except IterationStopped:
        if not token.stopped:
            raise
    finally:
        token._producer_done()


class IterateToken(Operation):
    """The handle ``yield Iterate(...)`` gives the consumer; yield it for the next value.

    Result of ``yield token``: the value of the producer's next
    ``chunk(value)``, or the sentinel once the producer has finished or the
    iteration was stopped. Raises ``RuntimeError`` if another coroutine is
    already waiting on the same token.
    """

    __slots__ = ("_consumer", "_driver", "_parked", "_sched", "_started", "finished", "sentinel",
                 "stopped")

    def __init__(self, producer: Coroutine, sched: Scheduler, sentinel: Any) -> None:
        self.prio = priority.DEFAULT
        self.sentinel = sentinel
        self.stopped = False
        self.finished = False
        self._sched = sched
        self._started = False
        self._consumer: Coroutine | None = None  # the consumer while parked on the token
        self._parked: Coroutine | None = None  # the coroutine parked at ``yield chunk``
        driver = _IterDriver(_drive, self, producer)
        driver.name = producer.name
        driver.iter_token = self
        self._driver = driver

    def process(self, sched: Scheduler, coro: Coroutine) -> Any:
        if self.finished or self.stopped:
            if self._parked is not None:  # the first yield after stop(): end the producer
                parked, self._parked = self._parked, None
                sched.throw(parked, IterationStopped())
            return _run_next(sched, self, coro, self.sentinel)
        if self._consumer is not None:
            raise RuntimeError(f"{self!r} is already being waited on by {self._consumer!r}; "
                               f"one consumer at a time")
        self._consumer = coro
        if not self._started:
            self._started = True
            sched.resume(self._driver, None, True)
        elif self._parked is not None:
            parked, self._parked = self._parked, None
            sched.resume(parked, None, True)
        return PENDING

    def stop(self) -> IterateToken:
        """End the iteration; returns the token, to yield (its result: the sentinel)."""
        self.stopped = True
        return self

    def _chunk(self, sched: Scheduler, coro: Coroutine, value: Any) -> Any:
        """The producer (or a coroutine it called) yielded ``chunk(value)``."""
        if self.stopped:
            raise IterationStopped("the consumer stopped the iteration")
        consumer = self._consumer
        assert consumer is not None, "a producer runs only while its consumer waits"
        self._consumer = None
        self._parked = coro
        sched.resume(consumer, value, True)
        return PENDING

    def _producer_done(self) -> None:
        self.finished = True
        self._parked = None
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            self._sched.resume(consumer, self.sentinel, True)

    def __repr__(self) -> str:
        state = "finished" if self.finished else "stopped" if self.stopped else "running"
        return f"<IterateToken {self._driver.name} {state}>"


class chunk(Operation):
    """What a producer yields to hand ``value`` to its consumer; result: None.

    Yielded outside a producer run by :class:`Iterate` it raises
    ``TypeError``; after the consumer stopped the iteration it raises
    :class:`IterationStopped`.
    """

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.prio = priority.DEFAULT
        self.value = value

    def process(self, sched: Scheduler, coro: Coroutine) -> Any:
        token = getattr(coro.root, "iter_token", None)
        if token is None:
            raise TypeError("chunk() yielded by a coroutine that is not run by Iterate")
        return token._chunk(sched, coro, self.value)

    def __repr__(self) -> str:
        return f"<chunk {self.value!r}>"


class Iterate(Operation):
    """Start iterating over a producer coroutine; result: its :class:`IterateToken`.

    Args:
        coro: a ``@coroutine`` function (or generator function) called with
            ``args``/``kwargs``, or a coroutine instance not started yet.
        sentinel: what yielding the token gives at the end (:data:`sentinel`
            by default).

    The producer starts when the consumer first yields the token.
    """

    __slots__ = ("args", "coro", "kwargs", "sentinel")

    def __init__(self, coro: Callable[..., Any] | Coroutine, args: tuple[Any, ...] = (),
                 kwargs: dict[str, Any] | None = None, sentinel: Any = sentinel,
                 prio: int = priority.DEFAULT) -> None:
        self.prio = prio
        self.coro = coro
        self.args = args
        self.kwargs = kwargs or {}
        self.sentinel = sentinel

    def process(self, sched: Scheduler, coro: Coroutine) -> Any:
        target = self.coro
        if isinstance(target, Coroutine):
            if self.args or self.kwargs:
                raise TypeError(f"{target!r} is already an instance; it takes no arguments")
            if target.started:
                raise ValueError(f"{target!r} was already started")
            producer = target
        elif getattr(target, "is_cogen_coroutine", False):
            producer = target(*self.args, **self.kwargs)
        elif callable(target):
            producer = Coroutine(target, *self.args, **self.kwargs)
        else:
            raise TypeError(f"cannot iterate over {target!r}: not a coroutine")
        return _run_next(sched, self, coro, IterateToken(producer, sched, self.sentinel))

    def __repr__(self) -> str:
        return f"<Iterate {getattr(self.coro, '__name__', self.coro)!r}>"
