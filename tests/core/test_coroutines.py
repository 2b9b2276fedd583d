"""Tests of cogen.core.coroutines: @coroutine, coroutine instances and sub-calls."""
from __future__ import annotations

import gc
import logging
import sys
import traceback
import weakref
from typing import Any

import pytest

from cogen.core import events
from cogen.core.coroutines import Coroutine, coroutine, is_coroutine_function
from cogen.core.schedulers import Scheduler
from cogen.core.util import priority

pytestmark = pytest.mark.timeout(60)


def run_one(sched: Scheduler, func: Any, *args: Any) -> Coroutine:
    instance = sched.add(func, *args)
    sched.run()
    return instance


# -- the three kinds of coroutine function -------------------------------------------


def test_generator_coroutine_starts_not_started_and_completes_with_its_return_value(sched: Scheduler) -> None:
    @coroutine
    def gen(x: int) -> Any:
        yield events.Sleep(0)
        return x * 2

    instance = gen(21)
    assert isinstance(instance, Coroutine)
    assert instance.state == Coroutine.STATE_NEED_INIT
    assert instance.running
    sched.add(instance)
    sched.run()
    assert instance.state == Coroutine.STATE_COMPLETED
    assert instance.result == 42
    assert instance.exception is None
    assert not instance.running


def test_async_def_coroutine_awaits_sleep_and_returns(sched: Scheduler) -> None:
    seen = []

    @coroutine
    async def native() -> str:
        op = events.Sleep(0.001)
        seen.append((await op) is op)
        return "done"

    instance = run_one(sched, native)
    assert seen == [True]
    assert instance.state == Coroutine.STATE_COMPLETED
    assert instance.result == "done"


def test_async_def_coroutine_awaits_a_sub_coroutine_and_gets_its_result(sched: Scheduler) -> None:
    @coroutine
    def callee(x: int) -> Any:
        yield events.Sleep(0)
        return x + 1

    @coroutine
    async def async_callee(x: int) -> Any:
        return await callee(x) + 1

    @coroutine
    async def caller() -> Any:
        return await async_callee(1) * 10

    assert run_one(sched, caller).result == 30


def test_async_def_coroutine_catches_exception_from_awaited_sub_coroutine(sched: Scheduler) -> None:
    @coroutine
    async def failing() -> None:
        await events.Sleep(0)
        raise KeyError("inner")

    @coroutine
    async def caller() -> Any:
        try:
            await failing()
        except KeyError as exc:
            return exc.args[0]
        return "not raised"

    assert run_one(sched, caller).result == "inner"


def test_plain_function_coroutine_completes_at_once_with_its_return_value(sched: Scheduler) -> None:
    calls = []

    @coroutine
    def plain(a: int, b: int = 0) -> int:
        calls.append((a, b))
        return a + b

    instance = sched.add(plain, args=(1,), kwargs={"b": 2})
    assert calls == []  # not called before the scheduler steps it
    sched.run()
    assert calls == [(1, 2)]
    assert instance.state == Coroutine.STATE_COMPLETED
    assert instance.result == 3


def test_plain_function_coroutine_that_raises_fails(sched: Scheduler) -> None:
    @coroutine
    def plain() -> None:
        raise ValueError("plain failure")

    instance = run_one(sched, plain)
    assert instance.state == Coroutine.STATE_FAILED
    assert isinstance(instance.exception, ValueError)
    assert instance.result is None


def test_undecorated_generator_and_async_functions_can_be_added(sched: Scheduler) -> None:
    def gen() -> Any:
        yield events.Sleep(0)
        return "gen"

    async def native() -> str:
        await events.Sleep(0)
        return "native"

    a = sched.add(gen)
    b = sched.add(native)
    sched.run()
    assert (a.result, b.result) == ("gen", "native")


def test_adding_an_already_created_generator_object_wraps_it(sched: Scheduler) -> None:
    def gen() -> Any:
        yield events.Sleep(0)
        return 5

    instance = sched.add(gen())
    assert isinstance(instance, Coroutine)
    sched.run()
    assert instance.result == 5


def test_coroutine_refuses_arguments_with_a_generator_object() -> None:
    def gen() -> Any:
        yield

    g = gen()
    with pytest.raises(TypeError):
        Coroutine(g, 1)
    g.close()


def test_coroutine_refuses_things_that_are_neither_callable_nor_generators() -> None:
    with pytest.raises(TypeError, match="42"):
        Coroutine(42)


def test_coroutine_decorator_keeps_name_doc_and_wrapped_function() -> None:
    def handler(conn: Any) -> Any:
        """Handle a connection."""
        yield

    decorated = coroutine(handler)
    assert decorated.__name__ == "handler"
    assert decorated.__doc__ == "Handle a connection."
    assert decorated.__wrapped__ is handler  # type: ignore[attr-defined]
    assert is_coroutine_function(decorated)
    assert is_coroutine_function(handler)
    assert not is_coroutine_function(len)
    instance = decorated(None)
    assert instance.name == "handler"
    assert "handler" in repr(instance) and "NOTSTARTED" in repr(instance)


def test_state_is_running_while_the_coroutine_is_suspended(sched: Scheduler) -> None:
    states = []

    @coroutine
    def sleeper() -> Any:
        yield events.Sleep(0.001)

    @coroutine
    def observer(other: Coroutine) -> Any:
        yield events.Sleep(0)
        states.append(other.state)

    target = sched.add(sleeper)
    sched.add(observer, target)
    sched.run()
    assert states == [Coroutine.STATE_RUNNING]
    assert target.state == Coroutine.STATE_COMPLETED


def test_state_stays_not_started_until_the_first_step(sched: Scheduler) -> None:
    """Queued is not started: a generator coroutine is NEED_INIT until its first step."""
    seen = []

    @coroutine
    def worker() -> Any:
        yield events.Sleep(0)

    @coroutine
    def observer(other: Coroutine) -> Any:
        seen.append(other.state)  # ``other`` is queued behind this one
        yield events.Sleep(0)
        seen.append(other.state)

    target = worker()
    sched.add(observer, target)
    sched.add(target)
    assert target.state == Coroutine.STATE_NEED_INIT
    sched.run()
    assert seen == [Coroutine.STATE_NEED_INIT, Coroutine.STATE_RUNNING]
    assert "COMPLETED" in repr(target)


@pytest.mark.parametrize("kind", ["generator", "async def", "plain"])
def test_wrong_arguments_fail_the_coroutine_at_its_first_step(
        sched: Scheduler, caplog: pytest.LogCaptureFixture, kind: str) -> None:
    """As in the original: the call is made by the first step, so the error is the coroutine's."""
    def gen(a: int) -> Any:
        yield events.Sleep(0)

    async def native(a: int) -> None:
        await events.Sleep(0)

    def plain(a: int) -> None:
        return None

    func = coroutine({"generator": gen, "async def": native, "plain": plain}[kind])
    instance = func(1, 2)  # no error here
    assert instance.state == Coroutine.STATE_NEED_INIT
    other = sched.add(gen, 1)
    sched.add(instance)
    with caplog.at_level(logging.ERROR, logger="cogen"):
        sched.run()
    assert instance.state == Coroutine.STATE_FAILED
    assert isinstance(instance.exception, TypeError)
    assert other.state == Coroutine.STATE_COMPLETED
    assert "unhandled exception" in caplog.text


@pytest.mark.parametrize("started", [False, True])
@pytest.mark.parametrize("kind", ["function", "method"])
def test_a_generator_coroutine_is_freed_by_reference_counting_alone(
        sched: Scheduler, started: bool, kind: str) -> None:
    """No reference cycle through the instance: dropping the last reference frees it,
    run or never run, without waiting for the cycle collector."""
    def worker(payload: object) -> Any:
        yield events.Sleep(0)

    payload = Probe()
    instance = Coroutine(worker if kind == "function" else payload.work, payload)
    if started:
        sched.add(instance)
        sched.run()
    assert instance.state == (Coroutine.STATE_COMPLETED if started else Coroutine.STATE_NEED_INIT)
    gc.disable()
    try:
        ref, payload_ref = weakref.ref(instance), weakref.ref(payload)
        del instance, payload
        assert ref() is None and payload_ref() is None
    finally:
        gc.enable()


class Probe:
    """Something a weak reference can follow, with a generator method."""

    def work(self, other: object) -> Any:
        yield events.Sleep(0)


def test_failed_coroutine_keeps_its_exception(sched: Scheduler) -> None:
    @coroutine
    def failing() -> Any:
        yield events.Sleep(0)
        raise RuntimeError("boom")

    instance = run_one(sched, failing)
    assert instance.state == Coroutine.STATE_FAILED
    assert isinstance(instance.exception, RuntimeError)
    assert str(instance.exception) == "boom"
    assert "FAILED" in repr(instance)


# -- yielding odd things -------------------------------------------------------------


def test_yield_none_reschedules_behind_the_others_and_resumes_with_none(sched: Scheduler) -> None:
    log: list[Any] = []

    @coroutine
    def yielder() -> Any:
        log.append("a1")
        got = yield None
        log.append(("a2", got))

    @coroutine
    def other() -> Any:
        log.append("b1")
        yield None
        log.append("b2")

    sched.add(yielder)
    sched.add(other)
    sched.run()
    assert log == ["a1", "b1", ("a2", None), "b2"]


@pytest.mark.parametrize("garbage", [5, "x", object()], ids=["int", "str", "object"])
def test_yielding_a_non_operation_raises_type_error_naming_it_and_the_coroutine_continues(
        sched: Scheduler, garbage: Any) -> None:
    caught = []

    @coroutine
    def confused() -> Any:
        try:
            yield garbage
        except TypeError as exc:
            caught.append(str(exc))
        yield events.Sleep(0)
        return "continued"

    instance = run_one(sched, confused)
    assert instance.result == "continued"
    assert len(caught) == 1
    assert repr(garbage) in caught[0]


def test_yielding_an_uncaught_non_operation_fails_the_coroutine(sched: Scheduler) -> None:
    @coroutine
    def confused() -> Any:
        yield 5

    instance = run_one(sched, confused)
    assert isinstance(instance.exception, TypeError)


def test_yielding_a_bare_generator_object_raises_type_error(sched: Scheduler) -> None:
    def undecorated() -> Any:
        yield events.Sleep(0)

    caught = []

    @coroutine
    def caller() -> Any:
        g = undecorated()
        try:
            yield g
        except TypeError as exc:
            caught.append(str(exc))
        g.close()

    run_one(sched, caller)
    assert len(caught) == 1 and "@coroutine" in caught[0]


def test_yielding_an_already_started_coroutine_raises_type_error(sched: Scheduler) -> None:
    @coroutine
    def worker() -> Any:
        yield events.Sleep(0.001)

    caught = []

    @coroutine
    def caller(other: Coroutine) -> Any:
        yield events.Sleep(0)
        try:
            yield other
        except TypeError as exc:
            caught.append(str(exc))

    started = sched.add(worker)
    sched.add(caller, started)
    sched.run()
    assert len(caught) == 1 and "Join" in caught[0]


def test_adding_a_queued_instance_again_is_refused_and_it_runs_once(sched: Scheduler) -> None:
    runs = []

    @coroutine
    def worker() -> Any:
        runs.append("start")
        yield events.Sleep(0)
        return 7

    instance = sched.add(worker)
    with pytest.raises(ValueError, match="already started"):
        sched.add(instance)
    sched.run()
    assert runs == ["start"]
    assert instance.state == Coroutine.STATE_COMPLETED and instance.result == 7


@pytest.mark.parametrize("how", ["added", "added by AddCoro"])
def test_calling_a_queued_instance_before_its_first_step_raises_type_error(
        sched: Scheduler, caplog: pytest.LogCaptureFixture, how: str) -> None:
    """Queued to start is started: yielding it (a call) would run it twice."""
    runs = []
    caught = []

    @coroutine
    def worker() -> Any:
        runs.append("start")
        yield events.Sleep(0)
        return 7

    instance = worker()

    @coroutine
    def caller() -> Any:
        if how == "added by AddCoro":
            # the CORO bit: this coroutine goes on before the instance has run
            yield events.AddCoro(instance, prio=priority.CORO)
        try:
            yield instance
        except TypeError as exc:
            caught.append(str(exc))

    if how == "added":
        sched.add(caller)  # runs first: the instance is queued behind it
        sched.add(instance)
    else:
        sched.add(caller)
    with caplog.at_level(logging.ERROR, logger="cogen"):
        sched.run()
    assert len(caught) == 1 and "already started" in caught[0]
    assert runs == ["start"]
    assert instance.state == Coroutine.STATE_COMPLETED and instance.result == 7
    assert "unhandled exception" not in caplog.text


def test_adding_an_instance_started_by_addcoro_is_refused(sched: Scheduler) -> None:
    runs = []
    errors = []

    @coroutine
    def worker() -> Any:
        runs.append("start")
        yield events.Sleep(0)
        return 7

    @coroutine
    def starter() -> Any:
        instance = worker()
        yield events.AddCoro(instance, prio=priority.CORO)  # goes on before it has run
        try:
            sched.add(instance)
        except ValueError as exc:
            errors.append(str(exc))
        try:
            yield events.AddCoro(instance)
        except ValueError as exc:
            errors.append(str(exc))
        return (yield events.Join(instance))

    top = sched.add(starter)
    sched.run()
    assert len(errors) == 2 and all("already started" in e for e in errors)
    assert runs == ["start"]
    assert top.result == 7


# -- sub-calls -----------------------------------------------------------------------


def test_sub_calls_return_values_like_the_original_test_call(sched: Scheduler) -> None:
    msgs: list[Any] = []

    @coroutine
    def callee_1() -> Any:
        return 2
        yield

    @coroutine
    def callee_2() -> Any:
        yield events.Sleep(0)

    @coroutine
    def callee_3() -> Any:
        yield
        raise Exception("some_message")  # noqa: TRY002

    @coroutine
    def callee_4() -> Any:
        return (yield callee_4_1())

    @coroutine
    def callee_4_1() -> Any:
        return (yield callee_4_2())

    @coroutine
    def callee_4_2() -> Any:
        return 5
        yield

    @coroutine
    def callee_6(x: int) -> Any:
        return x
        yield

    @coroutine
    def caller() -> Any:
        msgs.append(1)
        msgs.append((yield callee_1()))
        ret = yield events.Call(callee_2)
        msgs.append(3 if ret is None else -1)
        try:
            yield callee_3()
        except Exception as exc:  # noqa: BLE001
            msgs.append(4 if str(exc) == "some_message" else -1)
        msgs.append((yield callee_4()))
        msgs.append((yield events.Call(callee_6, args=(6,))))

    run_one(sched, caller)
    assert msgs == [1, 2, 3, 4, 5, 6]


def test_exception_crossing_sub_calls_keeps_the_callee_frames_in_the_traceback(sched: Scheduler) -> None:
    formatted = []

    @coroutine
    def callee_5() -> Any:
        return (yield callee_5_1())

    @coroutine
    def callee_5_1() -> Any:
        return (yield callee_5_2())

    @coroutine
    def callee_5_2() -> Any:
        yield events.Sleep(0)
        raise Exception("long_one")  # noqa: TRY002

    @coroutine
    def caller() -> Any:
        try:
            yield callee_5()
        except Exception:  # noqa: BLE001
            formatted.append(traceback.format_exc())

    run_one(sched, caller)
    text = formatted[0]
    assert "return (yield callee_5_1())" in text
    assert "return (yield callee_5_2())" in text
    assert 'raise Exception("long_one")' in text
    # innermost last, as with ordinary nested calls
    assert text.index("callee_5_1()") < text.index("callee_5_2()") < text.index("long_one")


def test_exception_caught_by_the_caller_is_not_logged(
    sched: Scheduler, caplog: pytest.LogCaptureFixture
) -> None:
    @coroutine
    def failing() -> Any:
        yield events.Sleep(0)
        raise ValueError("handled upstream")

    @coroutine
    def caller() -> Any:
        try:
            yield failing()
        except ValueError:
            return "caught"

    with caplog.at_level(logging.ERROR, logger="cogen"):
        assert run_one(sched, caller).result == "caught"
    assert not caplog.records


def test_sub_calls_run_before_other_queued_coroutines(sched: Scheduler) -> None:
    log = []

    @coroutine
    def callee() -> Any:
        log.append("callee")
        return "r"
        yield

    @coroutine
    def caller() -> Any:
        log.append("caller")
        log.append((yield callee()))

    @coroutine
    def bystander() -> Any:
        log.append("bystander")
        yield

    sched.add(caller)
    sched.add(bystander)
    sched.run()
    assert log == ["caller", "callee", "r", "bystander"]


def test_call_depth_of_10000_does_not_hit_the_recursion_limit(sched: Scheduler) -> None:
    depth = 10_000
    assert depth > sys.getrecursionlimit() or sys.getrecursionlimit() < 100_000

    @coroutine
    def nest(n: int) -> Any:
        if n == 0:
            return 0
        return (yield nest(n - 1)) + 1

    assert run_one(sched, nest, depth).result == depth


def test_exception_from_call_depth_10000_reaches_the_top(sched: Scheduler) -> None:
    @coroutine
    def nest(n: int) -> Any:
        if n == 0:
            raise LookupError("bottom")
        return (yield nest(n - 1))
        yield

    @coroutine
    def top() -> Any:
        try:
            yield nest(10_000)
        except LookupError as exc:
            return str(exc)

    assert run_one(sched, top).result == "bottom"


def test_events_call_is_a_sub_call(sched: Scheduler) -> None:
    @coroutine
    def add(a: int, b: int = 0) -> Any:
        return a + b
        yield

    @coroutine
    def caller() -> Any:
        return (yield events.Call(add, args=(1,), kwargs={"b": 2}))

    assert run_one(sched, caller).result == 3


# -- closing -------------------------------------------------------------------------


def test_close_runs_the_finally_block_of_a_suspended_coroutine(sched: Scheduler) -> None:
    cleaned = []

    @coroutine
    def worker() -> Any:
        try:
            yield events.Sleep(0)
            yield events.WaitForSignal("never")
        finally:
            cleaned.append(True)

    instance = run_one(sched, worker)
    assert instance.state == Coroutine.STATE_RUNNING
    instance.close()
    assert cleaned == [True]


def test_close_of_a_coroutine_not_started_does_nothing() -> None:
    called = []

    @coroutine
    def worker() -> Any:
        called.append(True)
        yield

    instance = worker()
    instance.close()
    assert called == []
