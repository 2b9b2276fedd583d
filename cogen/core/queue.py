"""A cooperative queue with the interface of the standard library's ``queue.Queue``.

Theory of operation
-------------------
A :class:`Queue` holds items plus three FIFO waiter tables: parked getters,
parked putters (each with its item) and parked joiners. Each table maps the
parked coroutine to what is needed to wake it (its scheduler, and for a
putter its operation), in an ``OrderedDict``, so serving the oldest waiter
and withdrawing a timed-out one are both O(1).

Two invariants keep the hand-offs simple:

- getters are parked only while the queue is empty, so a put that finds a
  parked getter gives the item straight to it (the item never enters the
  queue and no other coroutine can take it first);
- putters are parked only while the queue is full, so a get that makes room
  moves the oldest parked putter's item in at once and wakes that putter.

A woken waiter is resumed with its result already decided, and ``resume``
cancels its deadline; a waiter whose deadline passes first is withdrawn by
``cleanup`` before anything was given to or taken from it. So a get that
timed out never consumed an item and a put that timed out never inserted one.

The queue is for coroutines of one scheduler thread: it takes no locks.
"""
from __future__ import annotations

import heapq
import queue as _stdlib_queue
from collections import OrderedDict, deque
from typing import TYPE_CHECKING, Any

from cogen.core.events import TimedOperation
from cogen.core.util import PENDING, USE_DEFAULT, priority
from cogen.errors import CogenError

if TYPE_CHECKING:
    from cogen.core.coroutines import Coroutine
    from cogen.core.schedulers import Scheduler

__all__ = ["Empty", "Full", "LifoQueue", "PriorityQueue", "QGet", "QJoin", "QPut", "Queue"]


class Full(_stdlib_queue.Full, CogenError):
    """Raised by a non-blocking put on a full queue.

    A subclass of the standard library's ``queue.Full`` (and of
    :class:`~cogen.errors.CogenError`), so ``except queue.Full`` catches it
    whichever ``queue`` module the name refers to.
    """


class Empty(_stdlib_queue.Empty, CogenError):
    """Raised by a non-blocking get on an empty queue.

    A subclass of the standard library's ``queue.Empty`` (and of
    :class:`~cogen.errors.CogenError`).
    """


def _prio(op: TimedOperation, sched: Scheduler) -> int:
    """``op``'s priority, the scheduler's default standing in for ``DEFAULT``."""
    return op.prio if op.prio >= 0 else sched.default_priority


def _run_next(sched: Scheduler, op: TimedOperation, coro: Coroutine, value: Any) -> Any:
    """Resume ``coro`` (which yielded ``op``) with ``value`` before anything queued.

    The original's queue operations resume their coroutine at once, whatever
    the priority, once they have queued the other party; putting it at the
    very front of the run queue is the same order.
    """
    sched.resume(coro, value, True)
    sched._woke_own(op, coro)
    return PENDING


class QGet(TimedOperation):
    """The operation :meth:`Queue.get` returns; result: the item.

    Order of resumption, as in the original cogen: the getter goes on at once,
    whatever the priority. Except: when taking the item lets a parked
    putter's item in, a putter whose ``put`` has the ``CORO`` priority bit
    runs first and this getter is queued (at the front with that ``put``'s
    ``OP`` bit); other woken putters are queued (at the front with their
    ``OP`` bit).
    """

    __slots__ = ("block", "queue")

    def __init__(self, queue: Queue, block: bool = True, timeout: Any = USE_DEFAULT,
                 prio: int = priority.DEFAULT) -> None:
        TimedOperation.__init__(self, timeout, prio)
        self.queue = queue
        self.block = block

    def process(self, sched: Scheduler, coro: Coroutine) -> Any:
        queue = self.queue
        if queue._qsize():
            item = queue._get()
            putters = queue._putters
            while putters and not queue.full():
                pcoro, (psched, pop) = putters.popitem(last=False)
                queue._put(pop.item)
                queue.unfinished_tasks += 1
                pprio = _prio(pop, psched)
                if pprio & priority.CORO:
                    sched.resume(coro, item, bool(pprio & priority.OP))
                    psched.resume(pcoro, pop, True)
                    sched._woke_own(self, coro)
                    return PENDING
                psched.resume(pcoro, pop, bool(pprio & priority.OP))
            return _run_next(sched, self, coro, item)
        if not self.block:
            raise Empty(f"get from an empty {type(queue).__name__}")
        queue._getters[coro] = (sched, self)
        return PENDING

    def cleanup(self, sched: Scheduler, coro: Coroutine) -> None:
        self.queue._getters.pop(coro, None)

    def __repr__(self) -> str:
        return f"<QGet block={self.block} from {self.queue!r}>"


class QPut(TimedOperation):
    """The operation :meth:`Queue.put` returns; result: the QPut itself.

    Order of resumption, as in the original cogen: the putter goes on at once,
    whatever the priority. Except: when a getter is parked it gets the item;
    then with a priority other than ``LAST`` the getter runs first and this
    putter is queued (at the front with its ``CORO`` bit); with ``LAST`` the
    getter is queued (at the front if its ``get`` has a priority other than
    ``LAST``).
    """

    __slots__ = ("block", "item", "queue")

    def __init__(self, queue: Queue, item: Any, block: bool = True, timeout: Any = USE_DEFAULT,
                 prio: int = priority.DEFAULT) -> None:
        TimedOperation.__init__(self, timeout, prio)
        self.queue = queue
        self.item = item
        self.block = block

    def process(self, sched: Scheduler, coro: Coroutine) -> Any:
        queue = self.queue
        getters = queue._getters
        if getters:
            gcoro, (gsched, gop) = getters.popitem(last=False)
            queue.unfinished_tasks += 1
            prio = _prio(self, sched)
            if prio:
                sched.resume(coro, self, bool(prio & priority.CORO))
                gsched.resume(gcoro, self.item, True)
                sched._woke_own(self, coro)
                return PENDING
            gsched.resume(gcoro, self.item, bool(_prio(gop, gsched)))
            return _run_next(sched, self, coro, self)
        if queue._offer(self.item, False):
            return _run_next(sched, self, coro, self)
        if not self.block:
            raise Full(f"put to a full {type(queue).__name__} (maxsize={queue.maxsize})")
        queue._putters[coro] = (sched, self)
        return PENDING

    def cleanup(self, sched: Scheduler, coro: Coroutine) -> None:
        self.queue._putters.pop(coro, None)

    def __repr__(self) -> str:
        return f"<QPut {self.item!r} block={self.block} to {self.queue!r}>"


class QJoin(TimedOperation):
    """The operation :meth:`Queue.join` returns; result: the QJoin itself."""

    __slots__ = ("queue",)

    def __init__(self, queue: Queue, timeout: Any = USE_DEFAULT, prio: int = priority.DEFAULT) -> None:
        TimedOperation.__init__(self, timeout, prio)
        self.queue = queue

    def process(self, sched: Scheduler, coro: Coroutine) -> Any:
        if not self.queue.unfinished_tasks:
            return self
        self.queue._joiners[coro] = (sched, self)
        return PENDING

    def cleanup(self, sched: Scheduler, coro: Coroutine) -> None:
        self.queue._joiners.pop(coro, None)

    def __repr__(self) -> str:
        return f"<QJoin {self.queue!r}>"


class Queue:
    """A FIFO queue for coroutines, shaped like the standard ``queue.Queue``.

    Args:
        maxsize: the most items the queue holds; ``0`` (or negative) means
            no limit.

    ``put`` and ``get`` return operations to yield::

        q = Queue(10)
        yield q.put(item)          # parks while the queue is full
        item = yield q.get()       # parks while the queue is empty

    Differences from the standard library, all following from cooperative
    scheduling: a blocking ``put``/``get``/``join`` that runs out of time
    raises :class:`~cogen.core.events.OperationTimeout` (not ``Full`` or
    ``Empty``); the default timeout is the scheduler's ``default_timeout``;
    ``put_nowait``, ``get_nowait`` and ``task_done`` are plain methods that
    act at once and may be called from any code running in the scheduler's
    thread (a coroutine, a callback, or before ``run()``). The queue is not
    thread-safe: from another thread, use ``sched.call_soon_threadsafe``.

    Waiters are served first come, first served.
    """

    queue: Any

    def __init__(self, maxsize: int = 0) -> None:
        self.maxsize = maxsize
        self._init(maxsize)
        self._getters: OrderedDict[Coroutine, tuple[Scheduler, QGet]] = OrderedDict()
        self._putters: OrderedDict[Coroutine, tuple[Scheduler, QPut]] = OrderedDict()
        self._joiners: OrderedDict[Coroutine, tuple[Scheduler, QJoin]] = OrderedDict()
        #: Items put and not yet marked done with :meth:`task_done`.
        self.unfinished_tasks = 0

    # -- the public interface -------------------------------------------------------
    def put(self, item: Any, block: bool = True, timeout: Any = USE_DEFAULT,
            prio: int = priority.DEFAULT) -> QPut:
        """Return an operation that puts ``item`` into the queue.

        Yielding it inserts the item at once when there is room (or hands it
        straight to the oldest parked getter). On a full queue it parks until
        a get makes room (at most ``timeout`` seconds, then
        ``OperationTimeout`` is raised and the item was not inserted), or,
        with ``block=False``, raises :class:`Full` in the coroutine
        (``timeout`` is then ignored). Who runs first when it wakes a getter
        depends on the priorities, as :class:`QPut` describes.
        """
        return QPut(self, item, block, timeout, prio)

    def get(self, block: bool = True, timeout: Any = USE_DEFAULT, prio: int = priority.DEFAULT) -> QGet:
        """Return an operation that removes and returns an item.

        Yielding it on an empty queue parks until an item is put (at most
        ``timeout`` seconds, then ``OperationTimeout`` is raised and no item
        was consumed), or, with ``block=False``, raises :class:`Empty` in the
        coroutine. Making room on a full queue moves the oldest parked
        putter's item in and wakes that putter; who runs first depends on the
        priorities, as :class:`QGet` describes.
        """
        return QGet(self, block, timeout, prio)

    def put_nowait(self, item: Any) -> None:
        """Put ``item`` now, or raise :class:`Full` at once; a plain method.

        A getter this wakes goes to the back of its scheduler's run queue.
        """
        if not self._offer(item, False):
            raise Full(f"put to a full {type(self).__name__} (maxsize={self.maxsize})")

    def get_nowait(self) -> Any:
        """Remove and return an item now, or raise :class:`Empty` at once; a plain method."""
        if not self._qsize():
            raise Empty(f"get from an empty {type(self).__name__}")
        return self._take(False)

    def task_done(self) -> None:
        """Mark one item taken from the queue as fully processed; a plain method.

        When every item put has been marked done, the coroutines parked in
        :meth:`join` are woken. Raises ``ValueError`` if called more times
        than items were put.
        """
        unfinished = self.unfinished_tasks - 1
        if unfinished < 0:
            raise ValueError("task_done() called too many times")
        self.unfinished_tasks = unfinished
        if not unfinished and self._joiners:
            joiners = self._joiners
            self._joiners = OrderedDict()
            for coro, (sched, op) in joiners.items():
                sched.resume(coro, op)

    def join(self, timeout: Any = USE_DEFAULT, prio: int = priority.DEFAULT) -> QJoin:
        """Return an operation that waits until every item put has been marked done.

        Completes at once when nothing is unfinished; otherwise parks (at
        most ``timeout`` seconds, then ``OperationTimeout``). Result: the
        ``QJoin`` itself.
        """
        return QJoin(self, timeout, prio)

    def qsize(self) -> int:
        """Return the number of items in the queue (parked putters' items not counted)."""
        return self._qsize()

    def empty(self) -> bool:
        """Return True if the queue holds no item."""
        return not self._qsize()

    def full(self) -> bool:
        """Return True if the queue holds ``maxsize`` items (never, without a maxsize)."""
        return 0 < self.maxsize <= self._qsize()

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} size={self._qsize()} maxsize={self.maxsize} "
                f"getters={len(self._getters)} putters={len(self._putters)}>")

    # -- the two transitions every operation goes through ---------------------------
    def _offer(self, item: Any, first: bool) -> bool:
        """Insert ``item`` or give it to the oldest parked getter; False if full."""
        if self._getters:
            coro, (sched, _op) = self._getters.popitem(last=False)
            self.unfinished_tasks += 1
            sched.resume(coro, item, first)
            return True
        if 0 < self.maxsize <= self._qsize():
            return False
        self._put(item)
        self.unfinished_tasks += 1
        return True

    def _take(self, first: bool) -> Any:
        """Remove an item (the queue is not empty) and let parked putters fill the room."""
        item = self._get()
        putters = self._putters
        while putters and not (0 < self.maxsize <= self._qsize()):
            coro, (sched, op) = putters.popitem(last=False)
            self._put(op.item)
            self.unfinished_tasks += 1
            sched.resume(coro, op, first)
        return item

    # -- the storage; override these for other orders, as with the stdlib -----------
    def _init(self, maxsize: int) -> None:
        self.queue = deque()

    def _qsize(self) -> int:
        return len(self.queue)

    def _put(self, item: Any) -> None:
        self.queue.append(item)

    def _get(self) -> Any:
        return self.queue.popleft()


class LifoQueue(Queue):
    """A :class:`Queue` that returns the most recently put item first."""

    def _init(self, maxsize: int) -> None:
        self.queue = []

    def _qsize(self) -> int:
        return len(self.queue)

    def _put(self, item: Any) -> None:
        self.queue.append(item)

    def _get(self) -> Any:
        return self.queue.pop()


class PriorityQueue(Queue):
    """A :class:`Queue` that returns the lowest item first (``heapq`` order).

    Items are usually ``(priority, data)`` tuples, as with the standard
    ``queue.PriorityQueue``. A put that finds a parked getter hands its item
    over directly: the queue was empty, so it is the lowest one.
    """

    def _init(self, maxsize: int) -> None:
        self.queue = []

    def _qsize(self) -> int:
        return len(self.queue)

    def _put(self, item: Any) -> None:
        heapq.heappush(self.queue, item)

    def _get(self) -> Any:
        return heapq.heappop(self.queue)
