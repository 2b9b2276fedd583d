"""Every coroutine runs in its own contextvars.Context (cogen/core/coroutines.py)."""
from __future__ import annotations

import contextvars
from typing import Any

from cogen.core import coroutines, events
from cogen.core.coroutines import coroutine
from cogen.core.schedulers import Scheduler

request_id: contextvars.ContextVar[Any] = contextvars.ContextVar("request_id", default=None)


def test_two_coroutines_see_only_their_own_values_across_yields(sched: Scheduler, prio: int) -> None:
    seen: dict[str, list[Any]] = {"a": [], "b": []}

    @coroutine
    def worker(name: str):
        request_id.set(name)
        for _ in range(5):
            yield events.Sleep(0, prio=prio)
            seen[name].append(request_id.get())

    sched.add(worker, "a")
    sched.add(worker, "b")
    sched.run()
    assert seen == {"a": ["a"] * 5, "b": ["b"] * 5}


def test_a_thousand_coroutines_each_keep_their_value(sched: Scheduler) -> None:
    wrong: list[tuple[int, Any]] = []
    done: list[int] = []

    @coroutine
    def worker(n: int):
        request_id.set(n)
        for step in range(3):
            yield events.WaitForSignal(("tick", n % 7), timeout=5) if step == 1 else events.Sleep(0)
            if request_id.get() != n:
                wrong.append((n, request_id.get()))
        done.append(n)

    @coroutine
    def ticker():
        for _ in range(10):
            yield events.Sleep(0)
        for k in range(7):
            yield events.Signal(("tick", k))

    for n in range(1000):
        sched.add(worker, n)
    sched.add(ticker)
    sched.run()
    assert wrong == []
    assert sorted(done) == list(range(1000))


def test_nothing_leaks_to_the_scheduler_thread(sched: Scheduler) -> None:
    @coroutine
    def setter():
        request_id.set("inside")
        yield events.Sleep(0)

    sched.add(setter)
    sched.run()
    assert request_id.get() is None


def test_a_child_added_with_sched_add_inherits_a_copy(sched: Scheduler) -> None:
    log: list[tuple[str, Any]] = []

    @coroutine
    def child():
        log.append(("child sees", request_id.get()))
        request_id.set("child")
        yield events.Sleep(0)
        log.append(("child after parent changed", request_id.get()))

    @coroutine
    def parent():
        request_id.set("parent")
        c = sched.add(child)
        request_id.set("parent again")
        yield events.Join(c)
        log.append(("parent after child", request_id.get()))

    sched.add(parent)
    sched.run()
    assert log == [("child sees", "parent"), ("child after parent changed", "child"),
                   ("parent after child", "parent again")]


def test_a_child_started_with_addcoro_inherits_a_copy(sched: Scheduler) -> None:
    log: list[Any] = []

    @coroutine
    def child(tag: str):
        log.append((tag, request_id.get()))
        request_id.set("child")
        yield None

    @coroutine
    def parent():
        request_id.set("parent")
        c1 = yield events.AddCoro(child, args=("function",))
        c2 = yield events.AddCoro(child("instance"))
        yield events.Join(c1)
        yield events.Join(c2)
        log.append(("parent", request_id.get()))

    sched.add(parent)
    sched.run()
    assert sorted(log) == [("function", "parent"), ("instance", "parent"), ("parent", "parent")]


def test_a_sub_coroutine_shares_its_callers_context(sched: Scheduler) -> None:
    log: list[Any] = []

    @coroutine
    def callee():
        log.append(("callee sees", request_id.get()))
        request_id.set("set by callee")
        yield events.Sleep(0)
        return request_id.get()

    @coroutine
    def caller():
        request_id.set("caller")
        result = yield callee()
        log.append(("callee returned", result))
        log.append(("caller sees", request_id.get()))

    sched.add(caller)
    sched.run()
    assert log == [("callee sees", "caller"), ("callee returned", "set by callee"),
                   ("caller sees", "set by callee")]


def test_async_def_coroutines_are_isolated_too(sched: Scheduler) -> None:
    seen: dict[str, Any] = {}

    async def worker(name: str) -> None:
        request_id.set(name)
        await events.Sleep(0)
        await events.Sleep(0)
        seen[name] = request_id.get()

    sched.add(worker, "x")
    sched.add(worker, "y")
    sched.run()
    assert seen == {"x": "x", "y": "y"}


def test_throw_and_close_run_in_the_coroutines_context(sched: Scheduler) -> None:
    log: list[Any] = []

    @coroutine
    def times_out():
        request_id.set("timed")
        try:
            yield events.WaitForSignal("never", timeout=0.01)
        except events.OperationTimeout:
            log.append(("except", request_id.get()))

    @coroutine
    def closed():
        request_id.set("closed")
        try:
            yield events.WaitForSignal("never")
        finally:
            log.append(("finally", request_id.get()))

    sched.add(times_out)
    c = sched.add(closed)
    sched.run_once()
    sched.run_once(0.5)
    sched.run_once(0.5)
    c.close()
    assert sorted(log) == [("except", "timed"), ("finally", "closed")]


def test_add_with_an_explicit_context(sched: Scheduler) -> None:
    ctx = contextvars.copy_context()
    ctx.run(request_id.set, "given")
    seen: list[Any] = []

    @coroutine
    def worker():
        seen.append(request_id.get())
        yield None

    sched.add(worker, context=ctx)
    sched.run()
    assert seen == ["given"]
    assert ctx[request_id] == "given"


def test_a_coroutine_closing_a_coroutine_that_shares_its_context(sched: Scheduler) -> None:
    # closing from inside a step, while the shared context is entered
    log: list[Any] = []

    @coroutine
    def sub():
        try:
            yield events.WaitForSignal("never")
        finally:
            log.append(request_id.get())

    @coroutine
    def owner():
        request_id.set("owner")
        s = sched.add(sub, context=coroutines.current.ctx)
        yield None
        yield None
        s.close()

    sched.add(owner)
    sched.run()
    assert log == ["owner"]


def test_context_isolation_holds_with_every_priority_for_signals(make_sched: Any, prio: int) -> None:
    sched = make_sched(default_priority=prio)
    seen: list[tuple[str, Any]] = []

    @coroutine
    def waiter(name: str):
        request_id.set(name)
        yield events.WaitForSignal("go")
        seen.append((name, request_id.get()))

    @coroutine
    def signaller():
        request_id.set("signaller")
        yield events.Sleep(0)
        yield events.Signal("go")
        seen.append(("signaller", request_id.get()))

    for i in range(2):
        sched.add(waiter, f"w{i}")
    sched.add(signaller)
    sched.run()
    assert sorted(seen) == [("signaller", "signaller"), ("w0", "w0"), ("w1", "w1")]
