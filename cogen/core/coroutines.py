"""Coroutines: the ``@coroutine`` decorator, coroutine instances and ``local``.

Theory of operation
-------------------
``@coroutine`` turns a generator function, an ``async def`` function or a
plain function into a factory of :class:`Coroutine` instances. An instance
starts in ``STATE_NEED_INIT``; the scheduler's first ``send(None)`` calls the
wrapped function. A plain function's return value completes the coroutine at
once; a generator or native coroutine object becomes the body that is sent
values and thrown exceptions from then on. (A generator function is called
when the instance is made, since the call runs none of its body: the first
step is then the generator's own ``send``. Wrong arguments still fail the
coroutine at its first step.)

Yielding a not-yet-started coroutine instance *calls* it: the callee runs
first, and the caller is resumed with its return value or has its exception
thrown in (the traceback keeps the callee's frames). A call links callee to
caller through ``caller`` instead of nesting Python frames, so call depth is
limited by memory, not by the recursion limit.

Every coroutine runs in its own :class:`contextvars.Context` (``ctx``): a
copy of the context it was created in (``Scheduler.add`` and ``AddCoro``
copy their caller's), which the scheduler enters for every step (``send``,
``throw``) and for ``close``. A called sub-coroutine shares its caller's
context, as an awaited coroutine shares its task's in asyncio. So a
``ContextVar`` set by one coroutine is never seen by another, only by the
sub-coroutines it calls and (as a copy) by the coroutines it starts.
"""
from __future__ import annotations

import contextvars
import functools
import inspect
from collections.abc import Callable, Generator
from types import FunctionType, GeneratorType, MethodType
from typing import Any

from cogen.core.events import Operation
from cogen.core.util import PENDING

__all__ = ["Coroutine", "coro", "coroutine", "current", "local"]

#: What a started coroutine's ``f_kws`` holds (never written to).
_NO_KWARGS: dict[str, Any] = {}
#: ``co_flags`` bit of a generator function's code (``inspect.CO_GENERATOR``).
_CO_GENERATOR = inspect.CO_GENERATOR



class Coroutine(Operation):
    """A running instance of a ``@coroutine`` function.

    Attributes:
        state: one of the ``STATE_*`` constants.
        result: the return value once ``STATE_COMPLETED``.
        exception: the exception instance once ``STATE_FAILED``, else None.
        name: the wrapped function's name.
        waiters: the coroutines waiting in ``events.Join`` for this one (an
            empty tuple until the first one joins).
        ctx: the :class:`contextvars.Context` every step runs in.
        timer: the scheduler's: the timer entry of this coroutine's sleep or
            deadline, None when it has none.
        io_wait: the scheduler's: the descriptor it is parked on, ``fd`` for
            a read and ``~fd`` for a write, None when it is not.
        scheduled: True once handed to a scheduler to start (added, started
            by ``AddCoro`` or called), before its first step too: an
            instance runs once, so a second start is refused.
    """

    STATE_NEED_INIT, STATE_RUNNING, STATE_COMPLETED, STATE_FAILED = range(4)
    _STATE_NAMES = ("NOTSTARTED", "RUNNING", "COMPLETED", "FAILED")

    __slots__ = (
        "__weakref__",
        "_caller_root",
        "_locals",
        "caller",
        "ctx",
        "exception",
        "f_args",
        "f_kws",
        "func",
        "gen",
        "io_wait",
        "name",
        "result",
        "scheduled",
        "send",
        "state",
        "timer",
        "waiters",
    )

    def __init__(self, func: Any, *args: Any, **kwargs: Any) -> None:
        self.prio = -1
        self.scheduled = False
        self.caller: Coroutine | None = None
        self.waiters: list[Coroutine] | tuple[()] = ()  # most coroutines are never joined
        self.result: Any = None
        self.exception: BaseException | None = None
        self.timer: list[Any] | None = None
        self.io_wait: Any = None
        self._locals: dict[int, tuple[local, dict[str, Any]]] | None = None
        # None for a coroutine that is not a sub-call; not ``self``, which would
        # make every coroutine a reference cycle that only the GC can free
        self._caller_root: Coroutine | None = None
        #: the context every step of this coroutine runs in (see the module docstring)
        self.ctx: contextvars.Context = _copy_context()
        # a generator function, or a method that is one (the common cases)
        body = func.__func__ if type(func) is MethodType else func
        if type(body) is FunctionType and body.__code__.co_flags & _CO_GENERATOR:
            # A generator function runs none of its body when called, so the
            # generator is made now: the first step is then a plain
            # ``gen.send`` with no ``_start`` in between, and ``send`` is not
            # a method bound to ``self`` (a cycle only the GC frees).
            try:
                gen = func(*args, **kwargs) if kwargs else func(*args)
            except TypeError:
                pass  # wrong arguments: raised at the first step, as for the others
            else:
                self.func: Callable[..., Any] | None = None
                self.f_args = ()
                self.f_kws = _NO_KWARGS
                self.gen = gen
                self.send: Callable[[Any], Any] = gen.send
                self.name = func.__name__
                self.state = self.STATE_NEED_INIT
                return
        if type(func) is FunctionType:  # before the hasattr()s: one that misses is slow
            self.func = func
            self.f_args = args
            self.f_kws = kwargs
            self.gen = None
            self.send = self._start
            self.name = func.__name__
            self.state = self.STATE_NEED_INIT
        elif hasattr(func, "send") and hasattr(func, "throw"):
            # an already created generator or native coroutine object
            if args or kwargs:
                raise TypeError("arguments cannot be given with a generator object")
            self.func = None
            self.gen = func
            self.send = func.send
            self.name = getattr(func, "__name__", type(func).__name__)
            self.state = self.STATE_RUNNING
        elif callable(func):
            self.func = func
            self.f_args = args
            self.f_kws = kwargs
            self.gen = None
            self.send = self._start
            self.name = getattr(func, "__name__", type(func).__name__)
            self.state = self.STATE_NEED_INIT
        else:
            raise TypeError(f"a coroutine needs a callable or a generator, not {func!r}")

    def _start(self, value: Any) -> Any:
        """Call the wrapped function; the first step of the coroutine."""
        func = self.func
        self.func = None
        assert func is not None
        args, kws = self.f_args, self.f_kws
        # released (cheaper than del): the body's frame holds what it still needs
        self.f_args = ()
        self.f_kws = _NO_KWARGS
        gen = func(*args, **kws) if kws else func(*args)
        if type(gen) is GeneratorType or (hasattr(gen, "send") and hasattr(gen, "throw")):
            self.gen = gen
            self.send = send = gen.send
            return send(None)
        raise StopIteration(gen)

    def throw(self, exc: BaseException) -> Any:
        """Throw ``exc`` into the body; a coroutine not yet started fails with it."""
        if self.gen is None:
            self.func = None
            self.state = self.STATE_RUNNING
            raise exc
        return self.gen.throw(exc)

    @property
    def root(self) -> Coroutine:
        """The coroutine at the top of this one's chain of callers (itself if none)."""
        return self._caller_root or self

    @property
    def started(self) -> bool:
        """True once handed to a scheduler to start or past its first step: it cannot start again."""
        return self.scheduled or self.state != self.STATE_NEED_INIT

    @property
    def running(self) -> bool:
        """True until the coroutine has completed or failed."""
        return self.state < self.STATE_COMPLETED

    def process(self, sched: Any, coro: Coroutine) -> Any:
        """Yielding a coroutine instance calls it (see the module docstring)."""
        if self.started:
            raise TypeError(f"cannot call {self!r}: it was already started; use Join to wait for it")
        self.scheduled = True
        self.caller = coro
        self._caller_root = coro.root
        self.ctx = coro.ctx  # one logical thread of control: one context
        sched.resume(self, None, True)
        return PENDING

    def __await__(self) -> Generator[Any, Any, Any]:
        return (yield self)

    def close(self) -> None:
        """Close the body (GeneratorExit inside it) if it is still running."""
        gen = self.gen
        if gen is not None and self.state == self.STATE_RUNNING:
            run_in_context(self.ctx, gen.close)

    def __repr__(self) -> str:
        return (f"<Coroutine {self.name} at 0x{id(self):x}, "
                f"state: {self._STATE_NAMES[self.state]}>")


def coroutine(func: Callable[..., Any]) -> Callable[..., Coroutine]:
    """Decorate a generator, ``async def`` or plain function as a coroutine.

    Calling the decorated function returns a :class:`Coroutine` instance that
    has not started: give it to ``Scheduler.add``, yield it from another
    coroutine to call it, or use it with ``events.AddCoro``/``Join``.
    """
    if isinstance(func, type) and issubclass(func, Coroutine):
        return func

    @functools.wraps(func)
    def make_coroutine(*args: Any, **kwargs: Any) -> Coroutine:
        return Coroutine(func, *args, **kwargs)

    make_coroutine.__wrapped__ = func
    make_coroutine.is_cogen_coroutine = True  # type: ignore[attr-defined]
    return make_coroutine


coro = coroutine

_copy_context = contextvars.copy_context


def run_in_context(ctx: contextvars.Context, func: Callable[[], Any]) -> Any:
    """Call ``func()`` in ``ctx``; returns what it returns.

    When ``ctx`` is entered already (a coroutine closing a sub-coroutine that
    shares its context, from inside its own step), ``func`` is called
    directly: it then runs in ``ctx`` all the same.
    """
    called = False

    def call() -> Any:
        nonlocal called
        called = True
        return func()

    try:
        return ctx.run(call)
    except RuntimeError:
        if called:
            raise
    return func()

#: The coroutine instance being stepped right now (None outside the scheduler).
current: Coroutine | None = None


def _current_root() -> Coroutine:
    c = current
    if c is None:
        raise RuntimeError("coroutine-local data used outside a running coroutine")
    return c.root


class local:
    """Per-coroutine attribute storage, like ``threading.local``.

    Values set while one coroutine runs are invisible to the others and go
    away with the coroutine. A called sub-coroutine shares its caller's
    values (they are one logical thread of control); a coroutine started with
    ``AddCoro``/``Scheduler.add`` has its own, empty. Using it outside a
    running coroutine raises ``RuntimeError``; code running in a thread pool
    worker (``cogen.core.threads``) must not use it.

    Every coroutine also runs in its own :class:`contextvars.Context` (its
    ``ctx``), so ``ContextVar`` values are per coroutine too, with one
    difference: a started coroutine begins with a *copy* of its starter's
    context values, where its ``local`` begins empty.
    """

    __slots__ = ("__weakref__",)

    def __getattribute__(self, name: str) -> Any:
        # Per-coroutine values win over class attributes (a subclass's
        # defaults), as with threading.local; dunders are the object's own.
        if name[:2] != "__":
            d = _namespace(self, False)
            if d is not None and name in d:
                return d[name]
        try:
            return object.__getattribute__(self, name)
        except AttributeError:
            raise AttributeError(f"{name!r} is not set for the current coroutine") from None

    def __setattr__(self, name: str, value: Any) -> None:
        d = _namespace(self, True)
        assert d is not None
        d[name] = value

    def __delattr__(self, name: str) -> None:
        d = _namespace(self, False)
        if d is None or name not in d:
            raise AttributeError(f"{name!r} is not set for the current coroutine")
        del d[name]


def _namespace(obj: local, create: bool) -> dict[str, Any] | None:
    """The attribute dict of ``obj`` for the current coroutine's call chain."""
    root = _current_root()
    store = root._locals
    if store is None:
        if not create:
            return None
        store = root._locals = {}
    entry = store.get(id(obj))
    if entry is None:
        if not create:
            return None
        # The entry holds the local itself, so its id cannot be reused by a
        # new local (which would then see these values) while the entry exists.
        entry = store[id(obj)] = (obj, {})
    return entry[1]


def is_coroutine_function(obj: Any) -> bool:
    """True for ``@coroutine`` functions, generator functions and ``async def``."""
    return bool(getattr(obj, "is_cogen_coroutine", False)
                or inspect.isgeneratorfunction(obj) or inspect.iscoroutinefunction(obj))
