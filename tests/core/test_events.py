"""Tests of cogen.core.events: the built-in operations, priorities and custom operations.

The priority expectations follow the original cogen's tests/test_sched.py and
the bit meanings in cogen/core/util.py: the ``CORO`` bit lets the coroutine
that yielded an operation continue at once; the ``OP`` bit puts the other
party of the operation (the woken waiters, the added coroutine) at the front
of the run queue.
"""
from __future__ import annotations

import datetime
import logging
import time
from collections.abc import Callable
from typing import Any

import pytest

from cogen.core import events
from cogen.core.coroutines import Coroutine, coroutine
from cogen.core.events import OperationTimeout
from cogen.core.schedulers import Scheduler
from cogen.core.util import PENDING, USE_DEFAULT, priority
from cogen.errors import CogenError

pytestmark = pytest.mark.timeout(60)

MakeSched = Callable[..., Scheduler]


def run_one(sched: Scheduler, func: Any, *args: Any) -> Coroutine:
    instance = sched.add(func, *args)
    sched.run()
    return instance


# -- priorities: the original's expectations ------------------------------------------


def test_signal_ordering_under_each_priority_matches_the_original(make_sched: MakeSched, prio: int) -> None:
    sched = make_sched(default_priority=prio)
    msgs: list[int] = []

    class X:
        pass

    x = X()

    @coroutine
    def signalee() -> Any:
        msgs.append(1)
        yield events.WaitForSignal("test_sig")
        msgs.append(3)
        yield events.WaitForSignal(x)
        msgs.append(5)

    @coroutine
    def signaler() -> Any:
        msgs.append(2)
        yield events.Signal("test_sig")
        msgs.append(4)
        yield events.Signal(x, recipients=1)
        msgs.append(6)

    sched.add(signalee)
    sched.add(signaler)
    sched.run()
    if prio & priority.CORO:
        # the signaller continues first, even when it was parked by recipients=
        assert msgs == [1, 2, 4, 3, 6, 5]
    else:
        assert msgs == [1, 2, 3, 4, 5, 6]


def test_add_coro_ordering_under_each_priority_matches_the_original(make_sched: MakeSched, prio: int) -> None:
    sched = make_sched(default_priority=prio)
    msgs: list[int] = []
    adder_first = bool(prio & priority.CORO)

    @coroutine
    def added(x: int) -> Any:
        msgs.append(x)
        yield

    @coroutine
    def adder(c: Any) -> Any:
        msgs.append(1)
        yield events.AddCoro(c, args=(3 if adder_first else 2,))
        msgs.append(2 if adder_first else 3)

    sched.add(adder, args=(added,))
    sched.run()
    assert msgs == [1, 2, 3]


# -- priorities: every bit, with a third coroutine queued ------------------------------

SIGNAL_ORDER = {
    priority.LAST: ["w-wait", "bystander", "w-woken", "s-after"],
    priority.CORO: ["w-wait", "s-after", "bystander", "w-woken"],
    priority.OP: ["w-wait", "w-woken", "bystander", "s-after"],
    priority.FIRST: ["w-wait", "s-after", "w-woken", "bystander"],
}


def test_signal_priority_bits_place_signaller_and_waiter_around_a_queued_bystander(
        make_sched: MakeSched, prio: int) -> None:
    sched = make_sched(default_priority=prio)
    log: list[str] = []

    @coroutine
    def waiter() -> Any:
        log.append("w-wait")
        yield events.WaitForSignal("go")
        log.append("w-woken")

    @coroutine
    def signaller() -> Any:
        yield events.Signal("go")
        log.append("s-after")

    @coroutine
    def bystander() -> Any:
        log.append("bystander")
        yield

    sched.add(waiter)
    sched.add(signaller)
    sched.add(bystander)
    sched.run()
    assert log == SIGNAL_ORDER[prio]


ADD_ORDER = {
    priority.LAST: ["bystander", "added", "adder-after"],
    priority.CORO: ["adder-after", "bystander", "added"],
    priority.OP: ["added", "bystander", "adder-after"],
    priority.FIRST: ["adder-after", "added", "bystander"],
}


def test_add_coro_priority_bits_place_adder_and_added_around_a_queued_bystander(
        make_sched: MakeSched, prio: int) -> None:
    sched = make_sched(default_priority=prio)
    log: list[str] = []

    @coroutine
    def added() -> Any:
        log.append("added")
        yield

    @coroutine
    def adder() -> Any:
        yield events.AddCoro(added)
        log.append("adder-after")

    @coroutine
    def bystander() -> Any:
        log.append("bystander")
        yield

    sched.add(adder)
    sched.add(bystander)
    sched.run()
    assert log == ADD_ORDER[prio]


def test_priority_given_to_the_operation_overrides_the_scheduler_default(
    make_sched: MakeSched, prio: int
) -> None:
    sched = make_sched(default_priority=priority.LAST if prio else priority.FIRST)
    log: list[str] = []

    @coroutine
    def waiter() -> Any:
        log.append("w-wait")
        yield events.WaitForSignal("go")
        log.append("w-woken")

    @coroutine
    def signaller() -> Any:
        yield events.Signal("go", prio=prio)
        log.append("s-after")

    @coroutine
    def bystander() -> Any:
        log.append("bystander")
        yield

    sched.add(waiter)
    sched.add(signaller)
    sched.add(bystander)
    sched.run()
    assert log == SIGNAL_ORDER[prio]


def test_signal_wakes_several_waiters_in_order_or_with_op_last_waiter_first(
        make_sched: MakeSched, prio: int) -> None:
    # the OP bit puts them at the front of the run queue in reverse, as the
    # original's deque.extendleft did
    sched = make_sched(default_priority=prio)
    woken: list[int] = []

    @coroutine
    def waiter(i: int) -> Any:
        yield events.WaitForSignal("go")
        woken.append(i)

    @coroutine
    def signaller() -> Any:
        yield events.Sleep(0)
        return (yield events.Signal("go"))

    for i in range(5):
        sched.add(waiter, i)
    sig = sched.add(signaller)
    sched.run()
    assert woken == ([4, 3, 2, 1, 0] if prio & priority.OP else [0, 1, 2, 3, 4])
    assert sig.result == 5


def test_sleep_zero_goes_to_the_back_of_the_queue_whatever_the_priority(
    make_sched: MakeSched, prio: int
) -> None:
    sched = make_sched(default_priority=prio)
    log: list[str] = []

    @coroutine
    def sleeper() -> Any:
        yield events.Sleep(0, prio=prio)
        log.append("sleeper")

    @coroutine
    def bystander() -> Any:
        log.append("bystander")
        yield

    sched.add(sleeper)
    sched.add(bystander)
    sched.run()
    assert log == ["bystander", "sleeper"]


# -- Sleep -----------------------------------------------------------------------------


def test_sleep_returns_itself_after_at_least_the_delay(sched: Scheduler) -> None:
    got: list[Any] = []

    @coroutine
    def sleeper() -> Any:
        op = events.Sleep(0.02)
        t0 = time.monotonic()
        got.append((yield op) is op)
        got.append(time.monotonic() - t0)

    run_one(sched, sleeper)
    assert got[0] is True
    assert got[1] >= 0.02


def test_sleep_zero_yields_to_the_others_and_returns_itself(sched: Scheduler) -> None:
    log: list[Any] = []

    @coroutine
    def sleeper() -> Any:
        op = events.Sleep(0)
        log.append("a1")
        log.append((yield op) is op)

    @coroutine
    def other() -> Any:
        log.append("b")
        yield

    sched.add(sleeper)
    sched.add(other)
    sched.run()
    assert log == ["a1", "b", True]


def test_sleep_takes_a_timedelta(sched: Scheduler) -> None:
    got = []

    @coroutine
    def sleeper() -> Any:
        t0 = time.monotonic()
        yield events.Sleep(datetime.timedelta(milliseconds=20))
        got.append(time.monotonic() - t0)

    run_one(sched, sleeper)
    assert got[0] >= 0.02


def test_sleep_until_a_datetime(sched: Scheduler) -> None:
    got = []

    @coroutine
    def sleeper() -> Any:
        until = datetime.datetime.now() + datetime.timedelta(milliseconds=30)
        yield events.Sleep(until)
        got.append(datetime.datetime.now() >= until - datetime.timedelta(milliseconds=2))

    run_one(sched, sleeper)
    assert got == [True]


def test_sleep_until_an_aware_datetime(sched: Scheduler) -> None:
    got = []

    @coroutine
    def sleeper() -> Any:
        t0 = time.monotonic()
        yield events.Sleep(datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(milliseconds=20))
        got.append(time.monotonic() - t0)

    run_one(sched, sleeper)
    assert got[0] >= 0.015


@pytest.mark.parametrize(
    "delay", [-1, -0.5, datetime.timedelta(seconds=-1)], ids=["int", "float", "timedelta"]
)
def test_sleep_with_a_negative_delay_is_a_pure_yield(sched: Scheduler, delay: Any) -> None:
    log: list[str] = []

    @coroutine
    def sleeper() -> Any:
        yield events.Sleep(delay)
        log.append("sleeper")

    @coroutine
    def other() -> Any:
        log.append("other")
        yield

    sched.add(sleeper)
    sched.add(other)
    sched.run()
    assert log == ["other", "sleeper"]


def test_sleep_until_a_datetime_in_the_past_is_a_pure_yield(sched: Scheduler) -> None:
    got = []

    @coroutine
    def sleeper() -> Any:
        op = events.Sleep(datetime.datetime.now() - datetime.timedelta(hours=1))
        got.append((yield op) is op)

    run_one(sched, sleeper)
    assert got == [True]


@pytest.mark.parametrize("bad", ["1", None, True, [1]])
def test_sleep_refuses_values_that_are_not_durations(bad: Any) -> None:
    with pytest.raises(TypeError, match="Sleep"):
        events.Sleep(bad)


# -- Signal and WaitForSignal ----------------------------------------------------------


def test_every_waiter_gets_the_signalled_value_and_the_signaller_gets_the_count(sched: Scheduler) -> None:
    got: list[Any] = []

    @coroutine
    def waiter() -> Any:
        got.append((yield events.WaitForSignal("topic")))

    @coroutine
    def signaller() -> Any:
        yield events.Sleep(0)
        return (yield events.Signal("topic", {"v": 1}))

    sched.add(waiter)
    sched.add(waiter)
    sig = sched.add(signaller)
    sched.run()
    assert got == [{"v": 1}, {"v": 1}]
    assert sig.result == 2


def test_signal_without_waiters_returns_zero_and_is_not_latched(sched: Scheduler) -> None:
    got: list[Any] = []

    @coroutine
    def signaller() -> Any:
        got.append((yield events.Signal("early")))

    @coroutine
    def late_waiter() -> Any:
        yield events.Sleep(0)
        try:
            yield events.WaitForSignal("early", timeout=0.01)
        except OperationTimeout:
            got.append("timed out")

    sched.add(signaller)
    sched.add(late_waiter)
    sched.run()
    assert got == [0, "timed out"]


def test_signal_names_can_be_any_hashable_object(sched: Scheduler) -> None:
    key = object()
    got = []

    @coroutine
    def waiter() -> Any:
        got.append((yield events.WaitForSignal(key)))
        got.append((yield events.WaitForSignal(("tuple", 1))))

    @coroutine
    def signaller() -> Any:
        yield events.Sleep(0)
        yield events.Signal(key, "a")
        yield events.Sleep(0)
        yield events.Signal(("tuple", 1), "b")

    sched.add(waiter)
    sched.add(signaller)
    sched.run()
    assert got == ["a", "b"]


def test_wait_for_signal_times_out_with_operation_timeout_and_leaves_the_waiter_list(
    sched: Scheduler,
) -> None:
    got: list[Any] = []

    @coroutine
    def waiter() -> Any:
        op = events.WaitForSignal("never", timeout=0.01)
        try:
            yield op
        except OperationTimeout as exc:
            got.append((exc.operation is op, exc.timeout, isinstance(exc, CogenError)))
        got.append((yield events.Signal("never")))

    run_one(sched, waiter)
    assert got == [(True, 0.01, True), 0]
    assert not sched.sigwait


def test_wait_for_signal_with_a_timeout_gets_the_value_when_signalled_in_time(sched: Scheduler) -> None:
    got: list[Any] = []

    @coroutine
    def waiter() -> Any:
        got.append((yield events.WaitForSignal("x", timeout=5)))
        t0 = time.monotonic()
        yield events.Sleep(0.01)
        got.append(time.monotonic() - t0 >= 0.01)

    @coroutine
    def signaller() -> Any:
        yield events.Sleep(0)
        yield events.Signal("x", "v")

    sched.add(waiter)
    sched.add(signaller)
    t0 = time.monotonic()
    sched.run()
    assert got == ["v", True]
    assert time.monotonic() - t0 < 2.5  # the 5 s deadline was cancelled, not waited for


@pytest.mark.parametrize(
    "timeout", [datetime.timedelta(milliseconds=10), 0.01, 0], ids=["timedelta", "float", "zero"]
)
def test_timeouts_can_be_numbers_or_timedeltas(sched: Scheduler, timeout: Any) -> None:
    got = []

    @coroutine
    def waiter() -> Any:
        try:
            yield events.WaitForSignal("never", timeout=timeout)
        except OperationTimeout as exc:
            got.append(exc.timeout)

    run_one(sched, waiter)
    assert got == [pytest.approx(0.01 if timeout else 0)]


def test_default_timeout_of_the_scheduler_applies_when_none_is_given(make_sched: MakeSched) -> None:
    sched = make_sched(default_timeout=0.01)
    got = []

    @coroutine
    def waiter() -> Any:
        try:
            yield events.WaitForSignal("never")
        except OperationTimeout as exc:
            got.append(exc.timeout)

    run_one(sched, waiter)
    assert got == [0.01]


@pytest.mark.parametrize("forever", [None, -1])
def test_timeout_none_or_minus_one_waits_forever_despite_a_default(
    make_sched: MakeSched, forever: Any
) -> None:
    sched = make_sched(default_timeout=0.001)
    got: list[Any] = []

    @coroutine
    def waiter() -> Any:
        got.append((yield events.WaitForSignal("late", timeout=forever)))

    @coroutine
    def signaller() -> Any:
        yield events.Sleep(0.03)
        yield events.Signal("late", "finally")

    sched.add(waiter)
    sched.add(signaller)
    sched.run()
    assert got == ["finally"]


@pytest.mark.parametrize("bad, error", [("1", TypeError), (True, TypeError), (-0.5, ValueError)])
def test_timed_operations_refuse_bad_timeouts_naming_them(bad: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match=repr(bad).replace("(", r"\(")):
        events.WaitForSignal("x", timeout=bad)


def test_signal_with_recipients_parks_the_signaller_until_enough_waiters(sched: Scheduler) -> None:
    log: list[Any] = []

    @coroutine
    def signaller() -> Any:
        log.append("signal")
        n = yield events.Signal("x", "v", recipients=2)
        log.append(("signalled", n))

    @coroutine
    def waiter(i: int, delay: int) -> Any:
        for _ in range(delay):
            yield events.Sleep(0)
        log.append(("wait", i))
        log.append(("got", i, (yield events.WaitForSignal("x"))))

    sched.add(signaller)
    sched.add(waiter, 1, 1)
    sched.add(waiter, 2, 3)
    sched.run()
    assert log[:3] == ["signal", ("wait", 1), ("wait", 2)]
    assert sorted(log[3:], key=repr) == sorted([("signalled", 2), ("got", 1, "v"), ("got", 2, "v")], key=repr)


def test_signal_with_recipients_times_out_and_wakes_nobody(sched: Scheduler) -> None:
    log: list[Any] = []

    @coroutine
    def signaller() -> Any:
        op = events.Signal("x", "early", recipients=2, timeout=0.01)
        try:
            yield op
        except OperationTimeout as exc:
            log.append(("timeout", exc.operation is op))
        log.append(("late signal", (yield events.Signal("x", "late"))))

    @coroutine
    def waiter() -> Any:
        log.append(("got", (yield events.WaitForSignal("x"))))

    sched.add(signaller)
    sched.add(waiter)
    sched.run()
    assert log == [("timeout", True), ("got", "late"), ("late signal", 1)]
    assert not sched.signals


def test_a_parked_signal_fired_by_a_timed_wait_leaves_no_deadline_behind(
        sched: Scheduler, caplog: pytest.LogCaptureFixture) -> None:
    log: list[Any] = []

    @coroutine
    def signaller() -> Any:
        log.append(("signalled", (yield events.Signal("x", "v", recipients=1))))

    @coroutine
    def waiter() -> Any:
        log.append(("got", (yield events.WaitForSignal("x", timeout=0.01))))
        yield events.Sleep(0.05)  # would be cut short by a left-over 0.01 s deadline
        log.append("slept")

    sched.add(signaller)
    sched.add(waiter)
    with caplog.at_level(logging.ERROR, logger="cogen"):
        sched.run()
    assert sorted(log, key=repr) == sorted([("signalled", 1), ("got", "v"), "slept"], key=repr)
    assert not caplog.records


# -- AddCoro ---------------------------------------------------------------------------


def test_add_coro_passes_args_and_kwargs_and_returns_the_new_instance(sched: Scheduler) -> None:
    got: list[Any] = []

    @coroutine
    def added(a: int, b: int, *, c: int) -> Any:
        yield events.Sleep(0)
        return (a, b, c)

    @coroutine
    def adder() -> Any:
        instance = yield events.AddCoro(added, args=(1, 2), kwargs={"c": 3})
        got.append(isinstance(instance, Coroutine))
        got.append((yield events.Join(instance)))

    run_one(sched, adder)
    assert got == [True, (1, 2, 3)]


def test_add_coro_accepts_an_instance(sched: Scheduler) -> None:
    got: list[Any] = []

    @coroutine
    def added() -> Any:
        return "ran"
        yield

    @coroutine
    def adder() -> Any:
        instance = added()
        got.append((yield events.AddCoro(instance)) is instance)
        got.append((yield events.Join(instance)))

    run_one(sched, adder)
    assert got == [True, "ran"]


# -- Join ------------------------------------------------------------------------------


def test_join_returns_the_return_value_of_the_joined_coroutine(sched: Scheduler) -> None:
    @coroutine
    def worker() -> Any:
        yield events.Sleep(0.001)
        return "value"

    @coroutine
    def joiner(target: Coroutine) -> Any:
        return (yield events.Join(target))

    target = sched.add(worker)
    assert run_one(sched, joiner, target).result == "value"


def test_join_of_a_failed_coroutine_gives_none_and_leaves_the_exception_on_it(
        sched: Scheduler, caplog: pytest.LogCaptureFixture) -> None:
    @coroutine
    def worker() -> Any:
        yield events.Sleep(0)
        raise KeyError("from worker")

    @coroutine
    def joiner(target: Coroutine) -> Any:
        return ("resumed", (yield events.Join(target)))

    target = sched.add(worker)
    with caplog.at_level(logging.ERROR, logger="cogen"):
        assert run_one(sched, joiner, target).result == ("resumed", None)
    assert isinstance(target.exception, KeyError)
    # nobody else sees the exception, so it is logged as unhandled
    assert any(r.exc_info and r.exc_info[1] is target.exception for r in caplog.records)


def test_join_of_an_already_finished_coroutine_completes_at_once(sched: Scheduler) -> None:
    @coroutine
    def good() -> Any:
        return 1
        yield

    @coroutine
    def bad() -> Any:
        raise ValueError("bad")
        yield

    finished_good, finished_bad = sched.add(good), sched.add(bad)
    sched.run()
    got: list[Any] = []

    @coroutine
    def joiner() -> Any:
        got.append((yield events.Join(finished_good)))
        got.append((yield events.Join(finished_bad)))

    run_one(sched, joiner)
    assert got == [1, None]
    assert isinstance(finished_bad.exception, ValueError)


def test_join_like_the_original_test_join(sched: Scheduler) -> None:
    msgs: list[int] = []

    @coroutine
    def callee_1() -> Any:
        return 2
        yield

    @coroutine
    def callee_2() -> Any:
        yield

    @coroutine
    def callee_3() -> Any:
        yield
        raise Exception("some_message")  # noqa: TRY002

    @coroutine
    def caller() -> Any:
        msgs.append(1)
        msgs.append((yield events.Join(sched.add(callee_1))))
        ret = yield events.Join(sched.add(callee_2))
        msgs.append(3 if ret is None else -1)
        c = sched.add(callee_3)
        ret = yield events.Join(c)
        msgs.append(4 if ret is None and str(c.exception) == "some_message" else -1)

    run_one(sched, caller)
    assert msgs == [1, 2, 3, 4]


def test_join_wakes_every_joiner(sched: Scheduler) -> None:
    got: list[Any] = []

    @coroutine
    def worker() -> Any:
        yield events.Sleep(0.001)
        return "x"

    @coroutine
    def joiner(target: Coroutine) -> Any:
        got.append((yield events.Join(target)))

    target = sched.add(worker)
    for _ in range(3):
        sched.add(joiner, target)
    sched.run()
    assert got == ["x", "x", "x"]


def test_join_times_out_and_the_joined_coroutine_carries_on(sched: Scheduler) -> None:
    got: list[Any] = []

    @coroutine
    def worker() -> Any:
        yield events.WaitForSignal("release")
        return "finished"

    @coroutine
    def joiner(target: Coroutine) -> Any:
        try:
            yield events.Join(target, timeout=0.01)
        except OperationTimeout:
            got.append("timeout")
        got.append(list(target.waiters))
        yield events.Signal("release")

    target = sched.add(worker)
    sched.add(joiner, target)
    sched.run()
    assert got == ["timeout", []]
    assert target.result == "finished"


def test_join_refuses_things_that_are_not_coroutine_instances() -> None:
    with pytest.raises(TypeError, match="'nope'"):
        events.Join("nope")  # type: ignore[arg-type]


# -- the result rule and custom operations ---------------------------------------------


def test_an_operation_with_no_result_returns_itself(sched: Scheduler) -> None:
    got = []

    @coroutine
    def worker() -> Any:
        for op in (events.Operation(), events.Sleep(0), events.Sleep(0.001)):
            got.append((yield op) is op)

    run_one(sched, worker)
    assert got == [True, True, True]


class Answer(events.Operation):
    """Completes at once with 42."""

    def process(self, sched: Scheduler, coro: Coroutine) -> Any:
        return 42


class Later(events.TimedOperation):
    """Parks the coroutine; a ``call_later`` resumes it with ``value``."""

    def __init__(self, delay: float, value: Any, timeout: Any = USE_DEFAULT) -> None:
        super().__init__(timeout)
        self.delay = delay
        self.value = value
        self.handle: Any = None

    def process(self, sched: Scheduler, coro: Coroutine) -> Any:
        self.handle = sched.call_later(self.delay, sched.resume, coro, self.value)
        return PENDING

    def cleanup(self, sched: Scheduler, coro: Coroutine) -> None:
        sched.cancel_call(self.handle)


class Broken(events.Operation):
    def process(self, sched: Scheduler, coro: Coroutine) -> Any:
        raise ZeroDivisionError("in process")


def test_custom_operation_returning_a_value(sched: Scheduler) -> None:
    @coroutine
    def worker() -> Any:
        return (yield Answer())

    assert run_one(sched, worker).result == 42


def test_custom_operation_parked_and_resumed_from_call_later(sched: Scheduler) -> None:
    @coroutine
    def worker() -> Any:
        return (yield Later(0.001, "later"))

    assert run_one(sched, worker).result == "later"


def test_custom_timed_operation_times_out_and_its_cleanup_runs(sched: Scheduler) -> None:
    got: list[Any] = []

    @coroutine
    def worker() -> Any:
        try:
            yield Later(5.0, "too late", timeout=0.01)
        except OperationTimeout:
            got.append("timeout")
        yield events.Sleep(0)
        return "done"

    t0 = time.monotonic()
    instance = run_one(sched, worker)
    assert instance.result == "done"
    assert got == ["timeout"]
    assert time.monotonic() - t0 < 2.5  # the 5 s call_later was cancelled by cleanup


def test_custom_operation_raising_in_process_raises_in_the_coroutine(sched: Scheduler) -> None:
    @coroutine
    def worker() -> Any:
        try:
            yield Broken()
        except ZeroDivisionError as exc:
            return str(exc)

    assert run_one(sched, worker).result == "in process"


def test_bad_operations_like_the_original_test_bad_ops(sched: Scheduler) -> None:
    class HarmlessError(Exception):
        pass

    class ErrorOperation(events.TimedOperation):
        def process(self, sched: Scheduler, coro: Coroutine) -> Any:
            super().process(sched, coro)
            raise HarmlessError

    botched: list[Any] = []

    @coroutine
    def worker() -> Any:
        sticky_reference = ErrorOperation(timeout=0.01)
        try:
            yield sticky_reference
        except HarmlessError:
            pass
        else:
            botched.append("no error")
        try:
            yield events.Sleep(0.05)
        except BaseException as exc:  # noqa: BLE001
            botched.append(exc)
        yield events.Sleep(0.05)

    @coroutine
    def monitor(coro: Coroutine) -> Any:
        yield events.Join(coro)

    worker_instance = sched.add(worker)
    sched.add(monitor, worker_instance)
    sched.run()
    assert botched == []
    assert worker_instance.state == Coroutine.STATE_COMPLETED


def test_custom_operation_cleanup_raising_is_thrown_into_the_coroutine(sched: Scheduler) -> None:
    class BadCleanup(events.TimedOperation):
        def process(self, sched: Scheduler, coro: Coroutine) -> Any:
            return PENDING

        def cleanup(self, sched: Scheduler, coro: Coroutine) -> None:
            raise RuntimeError("cleanup failed")

    @coroutine
    def worker() -> Any:
        try:
            yield BadCleanup(timeout=0.001)
        except RuntimeError as exc:
            return str(exc)

    assert run_one(sched, worker).result == "cleanup failed"


def test_operation_reprs_name_them() -> None:
    assert "Sleep" in repr(events.Sleep(1))
    assert "'n'" in repr(events.Signal("n"))
    assert "'n'" in repr(events.WaitForSignal("n"))
    assert "Answer" in repr(Answer())
    op = events.WaitForSignal("n")
    assert "timed out after 1.5s" in str(OperationTimeout(op, 1.5))


# -- the scheduler's fast paths agree with the operations' own process() ---------------


def test_subclasses_of_the_builtin_operations_behave_like_them(sched: Scheduler) -> None:
    processed: list[str] = []

    class Nap(events.Sleep):
        def process(self, sched: Scheduler, coro: Coroutine) -> Any:
            processed.append("nap")
            return super().process(sched, coro)

    class Wait(events.WaitForSignal):
        pass

    class Send(events.Signal):
        pass

    got: list[Any] = []

    @coroutine
    def waiter() -> Any:
        got.append((yield Wait("x", timeout=5)))

    @coroutine
    def signaller() -> Any:
        op = Nap(0)
        got.append((yield op) is op)
        yield Nap(0.001)
        got.append((yield Send("x", "v")))

    sched.add(waiter)
    sched.add(signaller)
    t0 = time.monotonic()
    sched.run()
    assert sorted(got, key=repr) == sorted([True, 1, "v"], key=repr)
    assert processed == ["nap", "nap"]
    assert time.monotonic() - t0 < 2.5


def test_a_signal_under_each_priority_cancels_the_deadlines_of_the_waiters_it_wakes(
        make_sched: MakeSched, prio: int) -> None:
    sched = make_sched()
    got: list[Any] = []

    @coroutine
    def waiter(i: int) -> Any:
        got.append((i, (yield events.WaitForSignal("x", timeout=5))))
        yield events.Sleep(0.01)  # a left-over deadline would cut this short

    @coroutine
    def signaller() -> Any:
        yield events.Sleep(0)
        got.append((yield events.Signal("x", "v", prio=prio)))

    sched.add(waiter, 1)
    sched.add(waiter, 2)
    sched.add(signaller)
    t0 = time.monotonic()
    sched.run()
    assert sorted(got, key=repr) == sorted([(1, "v"), (2, "v"), 2], key=repr)
    assert time.monotonic() - t0 < 2.5


def test_signals_on_other_names_work_while_a_signal_with_recipients_is_parked(sched: Scheduler) -> None:
    log: list[Any] = []

    @coroutine
    def parked() -> Any:
        log.append(("parked got", (yield events.Signal("gate", "open", recipients=1))))

    @coroutine
    def ponger() -> Any:
        for _ in range(3):
            log.append((yield events.WaitForSignal("ping")))
        log.append(("gate", (yield events.WaitForSignal("gate"))))

    @coroutine
    def pinger() -> Any:
        for i in range(3):
            yield events.Sleep(0)
            yield events.Signal("ping", i)

    sched.add(parked)
    sched.add(ponger)
    sched.add(pinger)
    sched.run()
    assert log[:3] == [0, 1, 2]
    assert sorted(log[3:], key=repr) == sorted([("gate", "open"), ("parked got", 1)], key=repr)
