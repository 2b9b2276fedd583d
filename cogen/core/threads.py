"""Run blocking callables in a thread pool without blocking the scheduler.

Theory of operation
-------------------
Yielding :class:`Run` submits the callable to a bounded pool
(:class:`ThreadPool`, a ``concurrent.futures.ThreadPoolExecutor``) and parks
the coroutine, counting it with ``sched.expect_external()`` so that
``Scheduler.run()`` keeps waiting for it. When the callable returns or
raises, the future's done-callback (in the worker thread) hands the outcome
to the loop with one ``sched.call_soon_threadsafe``; there the coroutine is
resumed with the return value or has the exception thrown in, with the
worker's traceback kept. So a call costs one future and one wake-up.

A timeout (``OperationTimeout`` in the coroutine) withdraws the coroutine at
once; the call is cancelled if it had not started, else it runs to the end in
its thread (threads cannot be killed) and its outcome is discarded.

Each scheduler gets a default pool of :data:`DEFAULT_POOL_SIZE` threads
the first time it is needed (resize it with :func:`set_pool_size`); it is
shut down by ``Scheduler.close()``: calls not yet started are cancelled,
running ones finish in the background. A pool given as ``pool=`` belongs to
the caller, who shuts it down.
"""
from __future__ import annotations

import concurrent.futures
import contextvars
import os
import queue
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cogen.core.events import TimedOperation
from cogen.core.util import PENDING, USE_DEFAULT, priority

if TYPE_CHECKING:
    from cogen.core.coroutines import Coroutine
    from cogen.core.schedulers import Scheduler

__all__ = [
    "DEFAULT_POOL_SIZE",
    "Run",
    "ThreadLease",
    "ThreadPool",
    "get_pool",
    "run_in_thread",
    "set_pool_size",
]

#: Threads in a scheduler's default pool unless :func:`set_pool_size` says
#: otherwise (the standard library's default for I/O-bound pools).
DEFAULT_POOL_SIZE = min(32, (os.cpu_count() or 1) + 4)


class ThreadPool:
    """A bounded pool of worker threads for :class:`Run`.

    Args:
        size: the most threads running calls at once; more calls wait for
            a free thread, in order. Threads are started as needed.
        name: prefix of the threads' names.

    Usable as a context manager (``shutdown()`` on exit).
    """

    def __init__(self, size: int = DEFAULT_POOL_SIZE, name: str = "cogen-thread") -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"thread pool size must be a positive integer, not {size!r}")
        self.size = size
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=size,
                                                               thread_name_prefix=name)

    def submit(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        """Schedule ``func(*args, **kwargs)`` on a worker thread; return its future.

        Raises ``RuntimeError`` after :meth:`shutdown`.
        """
        return self._executor.submit(func, *args, **kwargs)

    def lease(self, context: contextvars.Context | None = None) -> ThreadLease:
        """Return a :class:`ThreadLease`: one thread of this pool for a sequence of calls."""
        return ThreadLease(self, context)

    def shutdown(self, wait: bool = True, cancel_pending: bool = False) -> None:
        """Accept no more calls; optionally wait for the running ones.

        With ``cancel_pending`` the calls not started yet are cancelled (a
        coroutine waiting on one gets ``concurrent.futures.CancelledError``).
        Calling it again does nothing more.
        """
        self._executor.shutdown(wait=wait, cancel_futures=cancel_pending)

    def _close_with_scheduler(self) -> None:
        self.shutdown(wait=False, cancel_pending=True)

    def __enter__(self) -> ThreadPool:  # noqa: PYI034 (typing.Self needs 3.11)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()

    def __repr__(self) -> str:
        return f"<ThreadPool size={self.size}>"


_RELEASED = None


class ThreadLease:
    """One worker thread of a :class:`ThreadPool`, held for a sequence of calls.

    Every call submitted to a lease runs on the same thread, in order, from
    the first :meth:`submit` until :meth:`release`: code that keeps state in
    thread-locals (a framework's request context, a database connection)
    finds it again on the next call. The thread is taken from the pool at the
    first call; while all of the pool's threads are held, that call waits for
    one in the pool's queue (it is not refused). With a ``context``, every call
    runs in it, so ``ContextVar`` values carry from one call to the next and
    never to another lease's calls on the same thread.

    A lease is given to :class:`Run` as its ``pool=``. Used by the WSGI server
    with ``threads=N``: one response, from the app call to ``close()``, is
    served by one thread.
    """

    __slots__ = ("_calls", "_context", "_loop", "_pool", "_released")

    def __init__(self, pool: ThreadPool, context: contextvars.Context | None = None) -> None:
        self._pool = pool
        self._context = context
        self._calls: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._loop: concurrent.futures.Future[Any] | None = None
        self._released = False

    def submit(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        """Queue ``func(*args, **kwargs)`` for the lease's thread; return its future.

        Raises ``RuntimeError`` after :meth:`release` or the pool's shutdown.
        """
        if self._released:
            raise RuntimeError(f"{self!r} was released")
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._calls.put((future, func, args, kwargs))
        if self._loop is None:
            self._loop = self._pool.submit(self._serve)
            self._loop.add_done_callback(self._loop_done)
        return future

    def release(self) -> None:
        """Give the thread back to the pool once the calls queued so far have run."""
        if not self._released:
            self._released = True
            if self._loop is not None:
                self._calls.put(_RELEASED)

    def _serve(self) -> None:
        """In the worker thread: run the lease's calls until it is released."""
        calls = self._calls
        context = self._context
        while True:
            item = calls.get()
            if item is _RELEASED:
                return
            future, func, args, kwargs = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                if context is not None:
                    result = context.run(func, *args, **kwargs)
                else:
                    result = func(*args, **kwargs)
            except BaseException as exc:  # handed to the waiting coroutine, as the pool does
                future.set_exception(exc)
            else:
                future.set_result(result)

    def _loop_done(self, loop: concurrent.futures.Future[Any]) -> None:
        """The thread's loop ended: if it never ran (the pool shut down), cancel what waits."""
        if not loop.cancelled():
            return
        self._released = True
        while True:
            try:
                item = self._calls.get_nowait()
            except queue.Empty:
                return
            if item is not _RELEASED:
                item[0].cancel()

    def __repr__(self) -> str:
        return f"<ThreadLease of {self._pool!r}>"


_default_pools: weakref.WeakKeyDictionary[Scheduler, ThreadPool] = weakref.WeakKeyDictionary()


def get_pool(sched: Scheduler) -> ThreadPool:
    """Return the scheduler's default pool, creating it on first use.

    The pool is shut down by ``sched.close()``.
    """
    pool = _default_pools.get(sched)
    if pool is None:
        pool = _new_default_pool(sched, DEFAULT_POOL_SIZE)
    return pool


def set_pool_size(sched: Scheduler, size: int) -> ThreadPool:
    """Give the scheduler a default pool of ``size`` threads; return it.

    Calls already submitted to a previous default pool still complete; that
    pool is shut down once they have.
    """
    old = _default_pools.get(sched)
    if old is not None and old.size == size:
        return old
    pool = _new_default_pool(sched, size)
    if old is not None:
        old.shutdown(wait=False)
    return pool


def _new_default_pool(sched: Scheduler, size: int) -> ThreadPool:
    pool = ThreadPool(size, name=f"cogen-{id(sched):x}")
    _default_pools[sched] = pool
    sched.on_close(pool._close_with_scheduler)
    return pool


class Run(TimedOperation):
    """Call ``func(*args, **kwargs)`` in a worker thread; result: its return value.

    Args:
        func: a plain (blocking) callable.
        args, kwargs: its arguments, as a tuple and a dict (not spread, so
            they never clash with the options below; :func:`run_in_thread`
            takes them spread).
        timeout: seconds to wait for the call (default: the scheduler's
            ``default_timeout``). On expiry ``OperationTimeout`` is raised in
            the coroutine and the call's eventual outcome is discarded; a call
            already running cannot be stopped and keeps its thread busy until
            it returns.
        prio: with the ``priority.CORO`` bit the coroutine goes to the front
            of the run queue when the call completes.
        pool: a :class:`ThreadPool` or a :class:`ThreadLease` (the call then
            runs on the lease's thread); None uses the scheduler's default pool.

    An exception raised by ``func`` is raised in the coroutine, with the
    traceback from the worker thread. A Run is yielded once.
    """

    __slots__ = ("_coro", "_future", "_sched", "args", "func", "kwargs", "pool")

    def __init__(self, func: Callable[..., Any], args: tuple[Any, ...] = (),
                 kwargs: dict[str, Any] | None = None, *, timeout: Any = USE_DEFAULT,
                 prio: int = priority.DEFAULT, pool: ThreadPool | ThreadLease | None = None) -> None:
        TimedOperation.__init__(self, timeout, prio)
        if not callable(func):
            raise TypeError(f"Run needs a callable, not {func!r}")
        self.func = func
        self.args = tuple(args)
        self.kwargs = kwargs or {}
        self.pool = pool
        self._sched: Scheduler | None = None
        self._coro: Coroutine | None = None
        self._future: concurrent.futures.Future[Any] | None = None

    def process(self, sched: Scheduler, coro: Coroutine) -> Any:
        if self._sched is not None:
            raise RuntimeError(f"{self!r} was already yielded; create a new Run for each call")
        pool = self.pool if self.pool is not None else get_pool(sched)
        future = pool.submit(self.func, *self.args, **self.kwargs)
        self._sched = sched
        self._coro = coro
        self._future = future
        sched.expect_external()
        future.add_done_callback(self._finished)
        return PENDING

    def _finished(self, future: concurrent.futures.Future[Any]) -> None:
        """In the worker thread (or the cancelling one): pass the outcome to the loop."""
        assert self._sched is not None
        self._sched.call_soon_threadsafe(self._deliver)

    def _deliver(self) -> None:
        """In the loop: resume the coroutine unless it timed out meanwhile."""
        future, self._future = self._future, None
        coro, self._coro = self._coro, None
        sched = self._sched
        if coro is None or future is None or sched is None:
            return  # timed out: the outcome is discarded
        sched.external_done()
        prio = self.prio if self.prio >= 0 else sched.default_priority
        first = bool(prio & priority.CORO)
        if future.cancelled():
            sched.throw(coro, concurrent.futures.CancelledError(f"{self!r} was cancelled"), first)
            return
        exc = future.exception()
        if exc is None:
            sched.resume(coro, future.result(), first)
        else:
            sched.throw(coro, exc, first)

    def cleanup(self, sched: Scheduler, coro: Coroutine) -> None:
        if self._coro is None:
            return
        self._coro = None
        sched.external_done()
        if self._future is not None:
            self._future.cancel()

    def __repr__(self) -> str:
        name = getattr(self.func, "__qualname__", None) or repr(self.func)
        return f"<Run {name}>"


def run_in_thread(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Run:
    """Return a :class:`Run` of ``func(*args, **kwargs)`` on the default pool.

    The shorthand for ``Run(func, args, kwargs)``, with the scheduler's
    default timeout: ``result = yield run_in_thread(time.sleep, 1)``.
    """
    return Run(func, args, kwargs)
