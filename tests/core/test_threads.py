"""Tests for cogen.core.threads: running blocking callables in a thread pool."""
from __future__ import annotations

import concurrent.futures
import threading
import time
import traceback
from typing import Any

import pytest

from cogen.core import events, reactors, threads
from cogen.core.coroutines import coroutine
from cogen.core.schedulers import Scheduler
from cogen.core.util import priority
from cogen.testing import run_to_end as run

pytestmark = pytest.mark.timeout(60)

REACTORS = list(reactors.available())


def test_run_returns_the_result_computed_in_another_thread(sched: Scheduler) -> None:
    def work(a: int, b: int, scale: int = 1) -> tuple[int, str]:
        return (a + b) * scale, threading.current_thread().name

    @coroutine
    def body() -> Any:
        r1 = yield threads.Run(work, (1, 2), {"scale": 10})
        r2 = yield threads.run_in_thread(work, 3, 4, scale=2)
        return r1, r2

    (r1, r2), = run(sched, body())
    assert r1[0] == 30 and r2[0] == 14
    assert r1[1] != threading.current_thread().name
    assert sched.pending_external == 0


def _fail_deep(value: str) -> None:
    raise ValueError(f"bad value {value!r}")


def _fail(value: str) -> None:
    _fail_deep(value)


def test_exception_is_raised_in_the_coroutine_with_its_traceback(sched: Scheduler) -> None:
    @coroutine
    def body() -> Any:
        try:
            yield threads.run_in_thread(_fail, "x")
        except ValueError as exc:
            return exc
        return None

    exc, = run(sched, body())
    assert isinstance(exc, ValueError) and "bad value 'x'" in str(exc)
    names = [frame.name for frame in traceback.extract_tb(exc.__traceback__)]
    assert "_fail" in names and "_fail_deep" in names and "body" in names
    assert sched.pending_external == 0


def test_unhandled_thread_exception_fails_the_coroutine(sched: Scheduler) -> None:
    @coroutine
    def body() -> Any:
        yield threads.run_in_thread(_fail, "y")

    c = sched.add(body)

    @coroutine
    def joiner() -> Any:
        return ("joined", (yield events.Join(c)))

    assert run(sched, joiner()) == [("joined", None)]
    assert c.state == c.STATE_FAILED
    assert isinstance(c.exception, ValueError)


@pytest.mark.parametrize("reactor", REACTORS)
def test_many_blocking_calls_run_in_parallel_while_the_loop_keeps_running(reactor: str) -> None:
    sched = Scheduler(reactor=reactor)
    pool = threads.set_pool_size(sched, 50)
    calls, delay = 200, 0.05
    ticks = [0]
    finished: list[int] = []
    window: dict[str, int] = {}

    @coroutine
    def ticker() -> Any:
        while len(finished) < calls:
            yield events.Sleep(0.001)
            ticks[0] += 1

    @coroutine
    def blocking(n: int) -> Any:
        yield threads.Run(time.sleep, (delay,))
        finished.append(n)

    @coroutine
    def boss() -> Any:
        started = []
        window["start"] = ticks[0]
        for n in range(calls):
            started.append((yield events.AddCoro(blocking, (n,))))
        for c in started:
            yield events.Join(c)
        window["end"] = ticks[0]

    t0 = time.monotonic()
    try:
        run(sched, ticker(), boss())
    finally:
        sched.close()
    elapsed = time.monotonic() - t0
    assert sorted(finished) == list(range(calls))
    # 200 calls of 0.05s on 50 threads: about 4 rounds, far below 200 * 0.05 = 10s
    assert elapsed < calls * delay / 4
    # the loop was not blocked: the ticker ran many times during the calls
    assert window["end"] - window["start"] > 20
    assert pool.size == 50 and sched.pending_external == 0
    with pytest.raises(RuntimeError):
        pool.submit(time.sleep, 0)  # shut down with the scheduler


def test_timeout_discards_the_late_result(sched: Scheduler) -> None:
    release = threading.Event()
    returned = threading.Event()

    def slow() -> str:
        release.wait(30)
        returned.set()
        return "late"

    @coroutine
    def body() -> Any:
        with pytest.raises(events.OperationTimeout):
            yield threads.Run(slow, timeout=0.02)
        assert sched.pending_external == 0
        release.set()
        # the thread still finishes; its outcome goes nowhere
        return (yield threads.run_in_thread(returned.wait, 30))

    assert run(sched, body()) == [True]
    # let the discarded delivery reach the loop, then check nothing changed
    sched.run_once(0.1)
    assert sched.pending_external == 0


def test_timeout_cancels_a_call_that_has_not_started(sched: Scheduler) -> None:
    pool = threads.ThreadPool(1)
    release = threading.Event()
    ran: list[str] = []

    @coroutine
    def hog() -> Any:
        return (yield threads.Run(release.wait, (30,), pool=pool))

    @coroutine
    def queued() -> Any:
        with pytest.raises(events.OperationTimeout):
            yield threads.Run(ran.append, ("ran",), timeout=0.02, pool=pool)
        release.set()

    try:
        assert run(sched, hog(), queued()) == [True, None]
    finally:
        pool.shutdown()
    assert ran == []


def test_run_keeps_the_scheduler_running_until_the_call_returns(sched: Scheduler) -> None:
    started = threading.Event()
    release = threading.Event()

    def work() -> str:
        started.set()
        release.wait(30)
        return "done"

    @coroutine
    def body() -> Any:
        return (yield threads.run_in_thread(work))

    def releaser() -> None:
        started.wait(30)
        release.set()

    helper = threading.Thread(target=releaser)
    helper.start()
    try:
        assert run(sched, body()) == ["done"]
    finally:
        helper.join()


def test_explicit_pool_is_used_and_left_open(sched: Scheduler) -> None:
    with threads.ThreadPool(2, name="mypool") as pool:
        @coroutine
        def body() -> Any:
            return (yield threads.Run(lambda: threading.current_thread().name, pool=pool))

        name, = run(sched, body())
        assert name.startswith("mypool")
        sched.close()
        assert pool.submit(lambda: 1).result() == 1


def test_default_pool_is_per_scheduler_and_resizable(sched: Scheduler) -> None:
    other = Scheduler()
    try:
        pool = threads.get_pool(sched)
        assert threads.get_pool(sched) is pool and threads.get_pool(other) is not pool
        assert pool.size == threads.DEFAULT_POOL_SIZE
        bigger = threads.set_pool_size(sched, 3)
        assert bigger.size == 3 and threads.get_pool(sched) is bigger
        assert threads.set_pool_size(sched, 3) is bigger
        with pytest.raises(RuntimeError):
            pool.submit(time.sleep, 0)  # the replaced pool was shut down
    finally:
        other.close()
    sched.close()
    with pytest.raises(RuntimeError):
        bigger.submit(time.sleep, 0)


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError):
        threads.ThreadPool(0)
    with pytest.raises(TypeError):
        threads.Run(42)  # type: ignore[arg-type]


def test_a_run_cannot_be_yielded_twice(sched: Scheduler) -> None:
    @coroutine
    def body() -> Any:
        op = threads.run_in_thread(int, "7")
        assert (yield op) == 7
        with pytest.raises(RuntimeError):
            yield op
        return "ok"

    assert run(sched, body()) == ["ok"]


def test_cancelled_call_raises_cancelled_error(sched: Scheduler) -> None:
    pool = threads.ThreadPool(1)
    started = threading.Event()
    release = threading.Event()

    def hold() -> bool:
        started.set()
        return release.wait(30)

    @coroutine
    def hog() -> Any:
        return (yield threads.Run(hold, pool=pool))

    @coroutine
    def victim() -> Any:
        with pytest.raises(concurrent.futures.CancelledError):
            yield threads.Run(int, ("1",), pool=pool)
        release.set()
        return "cancelled"

    @coroutine
    def canceller() -> Any:
        yield threads.run_in_thread(started.wait, 30)  # the hog's call is running
        pool.shutdown(wait=False, cancel_pending=True)

    assert run(sched, hog(), victim(), canceller()) == [True, "cancelled", None]


@pytest.mark.parametrize("prio", [priority.LAST, priority.CORO, priority.OP, priority.FIRST])
def test_works_with_every_priority_and_async_def(prio: int) -> None:
    sched = Scheduler(default_priority=prio)

    async def body() -> Any:
        total = 0
        for i in range(20):
            total += await threads.run_in_thread(pow, i, 2)
        return total

    try:
        assert run(sched, body) == [sum(i * i for i in range(20))]
    finally:
        sched.close()
