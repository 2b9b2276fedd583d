"""The scheduler's fast path for Sleep, WaitForSignal, Signal and WaitIO against their process().

The loop carries out these three operations itself when it sees their exact
classes; a subclass goes through ``process``, the code every other caller
uses. Each scenario here runs once with the plain classes and once with
subclasses that change nothing, under every scheduler default priority and
every operation priority, and the two traces must be identical: the order
coroutines run in, the results, the timeouts.
"""
from __future__ import annotations

import itertools
import socket
from typing import Any

import pytest

from cogen.core import _timers
from cogen.core.events import OperationTimeout, Signal, Sleep, WaitForSignal
from cogen.core.io import WaitIO
from cogen.core.schedulers import Scheduler
from cogen.core.util import priority


class SlowSleep(Sleep):
    """A Sleep the fast path does not recognise."""

    __slots__ = ()


class SlowWaitForSignal(WaitForSignal):
    """A WaitForSignal the fast path does not recognise."""

    __slots__ = ()


class SlowSignal(Signal):
    """A Signal the fast path does not recognise."""

    __slots__ = ()


class SlowWaitIO(WaitIO):
    """A WaitIO the fast path does not recognise."""

    __slots__ = ()


@pytest.fixture(autouse=True)
def stepping_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """The scheduler's clock moves half a millisecond per reading, whatever the machine's load.

    Both paths read it equally often, so a timer fires in the same round of
    the loop in both runs: the traces may then be compared exactly.
    """
    now = [1000.0]

    def clock() -> float:
        now[0] += 0.0005
        return now[0]

    monkeypatch.setattr(_timers, "monotonic", clock)


FAST = (Sleep, WaitForSignal, Signal)
SLOW = (SlowSleep, SlowWaitForSignal, SlowSignal)
PRIOS = [priority.DEFAULT, priority.LAST, priority.CORO, priority.OP, priority.FIRST]


def _sleepers(ops: tuple[Any, ...], default: int, prio: int) -> list[Any]:
    sleep, _wait, _signal = ops
    sched = Scheduler(default_priority=default)
    trace: list[Any] = []

    def sleeper(name: str, delays: list[float]) -> Any:
        for i, delay in enumerate(delays):
            result = yield sleep(delay, prio)
            trace.append((name, i, isinstance(result, Sleep) and result.delay == delay))

    sched.add(sleeper, "a", [0, 0, 0])
    sched.add(sleeper, "b", [0, -1, 0])
    sched.add(sleeper, "c", [0.002, 0, 0.001])
    sched.add(sleeper, "d", [0.001, 0])
    sched.run()
    return trace


def _signals(ops: tuple[Any, ...], default: int, wait_prio: int, sig_prio: int) -> list[Any]:
    _sleep, wait, signal = ops
    sched = Scheduler(default_priority=default)
    trace: list[Any] = []

    def waiter(name: str, rounds: int) -> Any:
        for i in range(rounds):
            value = yield wait("x", prio=wait_prio)
            trace.append((name, "got", i, value))

    def signaller() -> Any:
        for i in range(3):
            woken = yield signal("x", value=i, prio=sig_prio)
            trace.append(("sig", "woke", i, woken))
        woken = yield signal("nobody", prio=sig_prio)
        trace.append(("sig", "woke", "nobody", woken))

    def bystander() -> Any:
        for i in range(4):
            trace.append(("by", i))
            yield None

    for name in ("w1", "w2", "w3"):
        sched.add(waiter, name, 2)
    sched.add(bystander)
    sched.add(signaller)
    sched.run()
    return trace


def _timeouts(ops: tuple[Any, ...], default: int, prio: int) -> list[Any]:
    _sleep, wait, signal = ops
    sched = Scheduler(default_priority=default)
    trace: list[Any] = []

    def waiter(name: str, timeout: float) -> Any:
        try:
            value = yield wait("t", timeout=timeout, prio=prio)
        except OperationTimeout as exc:
            trace.append((name, "timeout", exc.timeout))
        else:
            trace.append((name, "got", value))

    def late_signaller() -> Any:
        yield Sleep(0.02)
        trace.append(("sig", (yield signal("t", value="late", prio=prio))))

    sched.add(waiter, "short", 0.005)
    sched.add(waiter, "long", 5.0)
    sched.add(late_signaller)
    sched.run()
    return trace


@pytest.mark.parametrize("default,prio", list(itertools.product(
    [priority.LAST, priority.CORO, priority.OP, priority.FIRST], PRIOS)))
def test_sleep_runs_alike_through_the_fast_path_and_process(default: int, prio: int) -> None:
    fast = _sleepers(FAST, default, prio)
    assert fast == _sleepers(SLOW, default, prio)
    assert len(fast) == 11


@pytest.mark.parametrize("default,wait_prio,sig_prio", list(itertools.product(
    [priority.LAST, priority.CORO, priority.OP, priority.FIRST], PRIOS, PRIOS)))
def test_signals_run_alike_through_the_fast_path_and_process(default: int, wait_prio: int,
                                                             sig_prio: int) -> None:
    fast = _signals(FAST, default, wait_prio, sig_prio)
    assert fast == _signals(SLOW, default, wait_prio, sig_prio)
    assert ("sig", "woke", "nobody", 0) in fast


@pytest.mark.parametrize("default,prio", list(itertools.product(
    [priority.LAST, priority.FIRST], PRIOS)))
def test_signal_timeouts_run_alike_through_the_fast_path_and_process(default: int, prio: int) -> None:
    fast = _timeouts(FAST, default, prio)
    assert fast == _timeouts(SLOW, default, prio)
    assert sorted(fast, key=repr) == [("long", "got", "late"), ("short", "timeout", 0.005), ("sig", 1)]


def test_the_slow_classes_do_go_through_process() -> None:
    calls: list[str] = []

    class Counted(SlowSleep):
        __slots__ = ()

        def process(self, sched: Scheduler, coro: Any) -> Any:
            calls.append("process")
            return super().process(sched, coro)

    sched = Scheduler()

    def one() -> Any:
        yield Counted(0)

    sched.add(one)
    sched.run()
    assert calls == ["process"]


def _io_waits(wait_io: type[WaitIO], default: int) -> list[Any]:
    sched = Scheduler(default_priority=default)
    trace: list[Any] = []
    left, right = socket.socketpair()
    left.setblocking(False)
    right.setblocking(False)

    def reader() -> Any:
        waiter = wait_io(left.fileno(), left)
        for i, timeout in enumerate([5.0, 5.0, 0.005]):
            try:
                result = yield waiter.wait(False, timeout)
            except OperationTimeout as exc:
                trace.append(("r", i, "timeout", exc.timeout))
                break
            trace.append(("r", i, result is waiter, left.recv(16)))
        # a timed-out WaitIO yielded again without wait(): it completes at once
        trace.append(("again", (yield waiter) is waiter))

    def writer() -> Any:
        right.send(b"a")  # before the reader parks: it is readable at once
        yield None
        trace.append(("sent", 1))
        yield Sleep(0.001)
        right.send(b"b")
        trace.append(("sent", 2))

    sched.add(reader)
    sched.add(writer)
    try:
        sched.run()
    finally:
        left.close()
        right.close()
    return trace


@pytest.mark.parametrize("default", [priority.LAST, priority.CORO, priority.OP, priority.FIRST])
def test_io_waits_run_alike_through_the_fast_path_and_process(default: int) -> None:
    fast = _io_waits(WaitIO, default)
    assert fast == _io_waits(SlowWaitIO, default)
    assert ("r", 0, True, b"a") in fast and ("r", 1, True, b"b") in fast
    assert ("r", 2, "timeout", 0.005) in fast and fast[-1] == ("again", True)
