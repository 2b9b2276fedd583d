"""Tests of cogen.core.schedulers: adding, running, stopping, timers, wake-ups, shutdown, scale."""
from __future__ import annotations

import logging
import random
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from cogen.core import _timers, events, reactors
from cogen.core.coroutines import Coroutine, coroutine
from cogen.core.events import OperationTimeout
from cogen.core.schedulers import Scheduler
from cogen.core.util import PENDING, USE_DEFAULT, priority

pytestmark = pytest.mark.timeout(60)

MakeSched = Callable[..., Scheduler]


class WaitReadable(events.TimedOperation):
    """Receive up to 100 bytes from a non-blocking socket, parking on the reactor while none are there."""

    def __init__(self, sock: socket.socket, timeout: Any = USE_DEFAULT) -> None:
        super().__init__(timeout)
        self.sock = sock

    def process(self, sched: Scheduler, coro: Coroutine) -> Any:
        try:
            return self.sock.recv(100)
        except BlockingIOError:
            sched.wait_readable(self.sock.fileno(), self.sock, self, coro)
            return PENDING


class WaitWritable(events.TimedOperation):
    """Complete (with True) once a socket is writable."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self.sock = sock
        self.parked = False

    def process(self, sched: Scheduler, coro: Coroutine) -> Any:
        if self.parked:
            return True
        self.parked = True
        sched.wait_writable(self.sock.fileno(), self.sock, self, coro)
        return PENDING


class FromThread(events.Operation):
    """Run ``fn`` in a new thread; the thread resumes the coroutine through call_soon_threadsafe."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        super().__init__()
        self.fn = fn

    def process(self, sched: Scheduler, coro: Coroutine) -> Any:
        sched.pending_external += 1

        def done(value: Any) -> None:
            sched.pending_external -= 1
            sched.resume(coro, value)

        threading.Thread(target=lambda: sched.call_soon_threadsafe(done, self.fn()), daemon=True).start()
        return PENDING


def watch_long_polls(sched: Scheduler, longer_than: float = 1.0) -> threading.Event:
    """An Event set when the scheduler blocks in its reactor for more than ``longer_than`` seconds."""
    entered = threading.Event()
    real_poll = sched.reactor.poll

    def poll(timeout: float | None, ready: list[Any]) -> None:
        if timeout is None or timeout > longer_than:
            entered.set()
        real_poll(timeout, ready)

    sched.reactor.poll = poll  # type: ignore[method-assign]
    return entered


# -- adding coroutines -----------------------------------------------------------------


def test_add_takes_arguments_positionally_or_as_args_and_kwargs(sched: Scheduler) -> None:
    @coroutine
    def worker(a: int, b: int, c: int = 0) -> Any:
        return (a, b, c)
        yield

    one = sched.add(worker, 1, 2)
    two = sched.add(worker, args=(3, 4), kwargs={"c": 5})
    sched.run()
    assert (one.result, two.result) == ((1, 2, 0), (3, 4, 5))


def test_add_refuses_bad_combinations(sched: Scheduler) -> None:
    @coroutine
    def worker(*a: Any) -> Any:
        yield

    with pytest.raises(TypeError):
        sched.add(worker, 1, args=(2,))
    with pytest.raises(TypeError):
        sched.add(worker(), 1)
    with pytest.raises(TypeError, match="42"):
        sched.add(42)
    instance = sched.add(worker)
    sched.run()
    with pytest.raises(ValueError):
        sched.add(instance)


def test_add_with_first_priority_runs_before_the_queued_coroutines(sched: Scheduler) -> None:
    log = []

    @coroutine
    def worker(name: str) -> Any:
        log.append(name)
        yield

    sched.add(worker, "a")
    sched.add(worker, "b")
    sched.add(worker, "c", prio=priority.FIRST)
    sched.run()
    assert log == ["c", "a", "b"]


def test_active_is_iterable_and_has_a_length(sched: Scheduler) -> None:
    @coroutine
    def worker() -> Any:
        yield

    for _ in range(3):
        sched.add(worker)
    assert len(sched.active) == 3
    assert len(list(sched.active)) == 3
    sched.run()
    assert len(sched.active) == 0


# -- running ---------------------------------------------------------------------------


def test_run_with_nothing_to_do_returns_at_once(sched: Scheduler) -> None:
    sched.run()
    assert not sched.has_work()


def test_run_returns_when_nothing_can_run_again(sched: Scheduler) -> None:
    @coroutine
    def forever() -> Any:
        yield events.WaitForSignal("nobody sends this")

    @coroutine
    def short() -> Any:
        yield events.Sleep(0.001)

    waiting = sched.add(forever)
    sched.add(short)
    sched.run()
    assert waiting.state == Coroutine.STATE_RUNNING
    assert not sched.has_work()


def test_stop_from_a_coroutine_makes_run_return_and_run_resumes_later(sched: Scheduler) -> None:
    log = []

    @coroutine
    def stopper() -> Any:
        log.append("stopping")
        sched.stop()
        yield events.Sleep(0)
        log.append("after restart")

    @coroutine
    def other() -> Any:
        yield events.Sleep(0)
        yield events.Sleep(0)
        log.append("other done")

    sched.add(stopper)
    sched.add(other)
    sched.run()
    assert log == ["stopping"]
    assert sched.has_work()
    sched.run()
    assert log == ["stopping", "after restart", "other done"]


def test_stop_from_another_thread_wakes_a_scheduler_sleeping_on_a_long_timer(sched: Scheduler) -> None:
    @coroutine
    def sleeper() -> Any:
        yield events.Sleep(30)

    sched.add(sleeper)
    entered = watch_long_polls(sched)
    def stop_when_asleep() -> None:
        entered.wait(20)
        sched.stop()

    thread = threading.Thread(target=stop_when_asleep)
    thread.start()
    t0 = time.monotonic()
    sched.run()
    elapsed = time.monotonic() - t0
    thread.join()
    assert entered.is_set()
    assert elapsed < 10


def test_call_soon_threadsafe_wakes_a_scheduler_sleeping_on_a_long_timer(sched: Scheduler) -> None:
    called_in = []

    @coroutine
    def sleeper() -> Any:
        yield events.Sleep(30)

    def callback(tag: str) -> None:
        called_in.append((tag, threading.get_ident()))
        sched.stop()

    sched.add(sleeper)
    entered = watch_long_polls(sched)
    def wake_when_asleep() -> None:
        entered.wait(20)
        sched.call_soon_threadsafe(callback, "woken")

    thread = threading.Thread(target=wake_when_asleep)
    thread.start()
    t0 = time.monotonic()
    sched.run()
    elapsed = time.monotonic() - t0
    thread.join()
    assert called_in == [("woken", threading.get_ident())]  # run on the loop's thread
    assert elapsed < 10


def test_an_operation_completed_from_a_thread_resumes_its_coroutine(sched: Scheduler) -> None:
    @coroutine
    def worker() -> Any:
        return (yield FromThread(lambda: sum(range(10))))

    instance = sched.add(worker)
    sched.run()
    assert instance.result == 45
    assert sched.pending_external == 0


def test_call_later_runs_a_callback_and_cancel_call_withdraws_one(sched: Scheduler) -> None:
    called: list[str] = []
    sched.call_later(0.001, called.append, "a")
    handle = sched.call_later(0.001, called.append, "cancelled")
    sched.cancel_call(handle)
    sched.cancel_call(handle)  # twice is harmless
    sched.run()
    assert called == ["a"]


def test_errors_in_callbacks_are_logged_and_the_loop_goes_on(
        sched: Scheduler, caplog: pytest.LogCaptureFixture) -> None:
    def bad() -> None:
        raise RuntimeError("callback failed")

    @coroutine
    def worker() -> Any:
        yield events.Sleep(0.005)
        return "ran"

    sched.call_later(0, bad)
    sched.call_soon_threadsafe(bad)
    instance = sched.add(worker)
    with caplog.at_level(logging.ERROR, logger="cogen"):
        sched.run()
    assert instance.result == "ran"
    assert len([r for r in caplog.records if r.exc_info]) == 2


def test_run_once_drives_the_scheduler_from_an_outer_loop(sched: Scheduler) -> None:
    @coroutine
    def worker() -> Any:
        for _ in range(5):
            yield events.Sleep(0)
        yield events.Sleep(0.005)
        return "done"

    instance = sched.add(worker)
    iterations = 0
    while sched.run_once(0.1):
        iterations += 1
        assert iterations < 1000
    assert instance.result == "done"
    assert iterations >= 5


def test_run_once_waits_no_longer_than_its_timeout(sched: Scheduler) -> None:
    @coroutine
    def sleeper() -> Any:
        yield events.Sleep(30)

    sched.add(sleeper)
    assert sched.run_once() is True
    t0 = time.monotonic()
    assert sched.run_once(0.02) is True
    assert time.monotonic() - t0 < 5


def test_iter_run_yields_once_per_iteration(sched: Scheduler) -> None:
    @coroutine
    def worker() -> Any:
        for _ in range(3):
            yield events.Sleep(0)
        return "done"

    instance = sched.add(worker)
    steps = sum(1 for _ in sched.iter_run())
    assert instance.result == "done"
    assert steps == 4
    assert not sched.running


# -- errors ----------------------------------------------------------------------------


def test_an_exception_in_a_top_level_coroutine_is_logged_with_traceback_and_others_go_on(
        sched: Scheduler, caplog: pytest.LogCaptureFixture) -> None:
    @coroutine
    def failing() -> Any:
        yield events.Sleep(0)
        raise ValueError("top-level failure")

    @coroutine
    def survivor() -> Any:
        for _ in range(3):
            yield events.Sleep(0)
        return "survived"

    bad = sched.add(failing)
    good = sched.add(survivor)
    with caplog.at_level(logging.ERROR, logger="cogen"):
        sched.run()
    assert good.result == "survived"
    assert bad.state == Coroutine.STATE_FAILED
    records = [r for r in caplog.records if r.name == "cogen"]
    assert len(records) == 1
    assert records[0].levelno == logging.ERROR
    assert "failing" in records[0].getMessage()
    assert records[0].exc_info is not None and records[0].exc_info[1] is bad.exception
    assert 'raise ValueError("top-level failure")' in caplog.text


# -- timers ----------------------------------------------------------------------------


def test_timeouts_fire_within_a_few_ms_of_their_deadline(sched: Scheduler) -> None:
    elapsed: dict[str, float] = {}

    @coroutine
    def sleeper() -> Any:
        t0 = time.monotonic()
        yield events.Sleep(0.05)
        elapsed["sleep"] = time.monotonic() - t0

    @coroutine
    def waiter() -> Any:
        t0 = time.monotonic()
        try:
            yield events.WaitForSignal("never", timeout=0.05)
        except OperationTimeout:
            elapsed["wait"] = time.monotonic() - t0

    sched.add(sleeper)
    sched.add(waiter)
    sched.run()
    for name, value in elapsed.items():
        assert 0.05 <= value < 0.1, name
    assert len(elapsed) == 2


def test_10000_coroutines_sleep_concurrently_and_wake_in_deadline_order(
        sched: Scheduler, monkeypatch: pytest.MonkeyPatch) -> None:
    # The scheduler's clock stands still while the sleepers start, so that
    # every deadline is exactly start + delay and the order is known.
    frozen: list[float | None] = [time.monotonic()]

    def clock() -> float:
        return frozen[0] if frozen[0] is not None else time.monotonic()

    monkeypatch.setattr(_timers, "monotonic", clock)
    rnd = random.Random(1234)
    start = frozen[0]
    assert start is not None
    woken: list[tuple[float, int]] = []
    late: list[float] = []

    @coroutine
    def sleeper(delay: float, index: int) -> Any:
        yield events.Sleep(delay)
        woken.append((delay, index))
        late.append(time.monotonic() - (start + delay))

    @coroutine
    def thaw() -> Any:  # runs after every sleeper has started
        frozen[0] = None
        yield

    for i in range(10_000):
        sched.add(sleeper, rnd.uniform(0.001, 0.05), i)
    sched.add(thaw)
    sched.run()
    assert len(woken) == 10_000
    assert woken == sorted(woken)
    assert min(late) >= 0


def test_100000_coroutines_are_added_and_completed(sched: Scheduler) -> None:
    done = [0]

    @coroutine
    def worker(i: int) -> Any:
        done[0] += 1
        return i
        yield

    instances = [sched.add(worker, i) for i in range(100_000)]
    sched.run()
    assert done[0] == 100_000
    assert all(c.result == i for i, c in enumerate(instances))
    assert len(sched.active) == 0


def test_cancelled_deadlines_do_not_pile_up_in_the_timer_heap(sched: Scheduler) -> None:
    @coroutine
    def waiter() -> Any:
        for _ in range(5000):
            yield events.WaitForSignal("ping", timeout=60)

    @coroutine
    def pinger() -> Any:
        for _ in range(5000):
            yield events.Signal("ping")
            yield events.Sleep(0)

    sched.add(waiter)
    sched.add(pinger)
    sched.run()
    assert len(sched.timers) <= 1100
    assert not sched.has_work()


def test_cancelled_deadlines_do_not_wake_an_idle_loop(sched: Scheduler) -> None:
    polls: list[float | None] = []
    real_poll = sched.reactor.poll

    def poll(timeout: float | None, ready: list[Any]) -> None:
        polls.append(timeout)
        real_poll(timeout, ready)

    sched.reactor.poll = poll  # type: ignore[method-assign]

    @coroutine
    def waiter() -> Any:
        for i in range(50):  # deadlines spread over 5..103 ms, all cancelled
            yield events.WaitForSignal("x", timeout=0.005 + i * 0.002)

    @coroutine
    def signaller() -> Any:
        for _ in range(50):
            yield events.Sleep(0)
            yield events.Signal("x")
        del polls[:]
        yield events.Sleep(0.2)

    sched.add(waiter)
    sched.add(signaller)
    sched.run()
    assert len(polls) <= 5, polls


def test_an_idle_scheduler_waiting_on_a_timer_uses_no_measurable_cpu(sched: Scheduler) -> None:
    @coroutine
    def long_sleeper() -> Any:
        yield events.Sleep(2)

    @coroutine
    def short_sleeper() -> Any:
        yield events.Sleep(0.3)
        sched.stop()

    sched.add(long_sleeper)
    sched.add(short_sleeper)
    cpu0, t0 = time.process_time(), time.monotonic()
    sched.run()
    cpu, wall = time.process_time() - cpu0, time.monotonic() - t0
    assert wall >= 0.3
    assert cpu < 0.05


# -- the reactor through the scheduler ---------------------------------------------------


def test_len_of_the_proactor_counts_pending_io_operations(
        sched: Scheduler, sockpair: tuple[socket.socket, socket.socket]) -> None:
    a, b = sockpair
    seen: list[Any] = []

    @coroutine
    def reader() -> Any:
        return (yield WaitReadable(a))

    @coroutine
    def writer() -> Any:
        yield events.Sleep(0)
        seen.append(len(sched.proactor))
        b.send(b"hello")

    instance = sched.add(reader)
    sched.add(writer)
    sched.run()
    assert seen == [1]
    assert instance.result == b"hello"
    assert len(sched.proactor) == 0


def test_a_timed_out_io_wait_is_withdrawn_from_the_reactor(
        sched: Scheduler, sockpair: tuple[socket.socket, socket.socket]) -> None:
    a, b = sockpair
    got: list[Any] = []

    @coroutine
    def reader() -> Any:
        try:
            yield WaitReadable(a, timeout=0.01)
        except OperationTimeout:
            got.append(len(sched.proactor))
        b.send(b"x")
        got.append((yield WaitReadable(a, timeout=5)))

    sched.add(reader)
    sched.run()
    assert got == [0, b"x"]


def test_wait_writable_wakes_when_the_socket_can_be_written(
        sched: Scheduler, sockpair: tuple[socket.socket, socket.socket]) -> None:
    a, _b = sockpair

    @coroutine
    def writer() -> Any:
        return (yield WaitWritable(a))

    instance = sched.add(writer)
    sched.run()
    assert instance.result is True
    assert len(sched.proactor) == 0


def test_forget_fd_throws_the_given_exception_into_the_waiter(
        sched: Scheduler, sockpair: tuple[socket.socket, socket.socket]) -> None:
    a, _b = sockpair

    @coroutine
    def reader() -> Any:
        try:
            yield WaitReadable(a)
        except ConnectionAbortedError as exc:
            return str(exc)

    @coroutine
    def closer() -> Any:
        yield events.Sleep(0)
        sched.forget_fd(a.fileno(), ConnectionAbortedError("closed under you"))

    instance = sched.add(reader)
    sched.add(closer)
    sched.run()
    assert instance.result == "closed under you"


# -- construction ----------------------------------------------------------------------


def test_scheduler_takes_a_reactor_by_name(reactor_name: str) -> None:
    sched = Scheduler(reactor=reactor_name)
    try:
        assert sched.reactor.name == reactor_name
        assert sched.proactor is sched.reactor is sched.poll
    finally:
        sched.close()


def test_scheduler_takes_the_original_proactor_arguments(reactor_name: str) -> None:
    cls = reactors.available()[reactor_name]
    for spec in (cls, reactor_name, cls(0.01)):
        sched = Scheduler(proactor=spec, proactor_resolution=0.01, proactor_multiplex_first=True,
                          proactor_greedy=False, proactor_default_size=10, ops_greedy=True)
        try:
            assert type(sched.proactor) is cls
            assert sched.proactor.resolution == 0.01
        finally:
            sched.close()


def test_an_unknown_reactor_name_is_a_value_error_naming_the_available_ones() -> None:
    with pytest.raises(ValueError) as info:
        Scheduler(reactor="nosuchthing")
    message = str(info.value)
    assert "'nosuchthing'" in message
    for name in reactors.available():
        assert name in message


def test_a_negative_default_priority_is_refused() -> None:
    with pytest.raises(ValueError):
        Scheduler(default_priority=-1)


def test_reactor_resolution_bounds_each_poll(make_sched: MakeSched) -> None:
    sched = make_sched(reactor_resolution=0.005)
    timeouts: list[float | None] = []
    real_poll = sched.reactor.poll

    def poll(timeout: float | None, ready: list[Any]) -> None:
        timeouts.append(timeout)
        real_poll(timeout, ready)

    sched.reactor.poll = poll  # type: ignore[method-assign]

    @coroutine
    def sleeper() -> Any:
        yield events.Sleep(0.05)

    sched.add(sleeper)
    sched.run()
    assert len(timeouts) >= 5  # the 50 ms wait was cut into polls of at most 5 ms


# -- shutdown --------------------------------------------------------------------------


def test_shutdown_closes_every_suspended_coroutine_and_their_finally_blocks_run(
        sched: Scheduler, sockpair: tuple[socket.socket, socket.socket]) -> None:
    a, _b = sockpair
    cleaned: list[str] = []

    def guarded(name: str, make_op: Callable[[], Any]) -> Any:
        @coroutine
        def body() -> Any:
            try:
                while True:
                    yield make_op()
            finally:
                cleaned.append(name)
        return body

    @coroutine
    def callee() -> Any:
        try:
            yield events.Sleep(30)
        finally:
            cleaned.append("callee")

    @coroutine
    def caller() -> Any:
        try:
            yield callee()
        finally:
            cleaned.append("caller")

    sleeper = sched.add(guarded("sleep", lambda: events.Sleep(30)))
    sched.add(guarded("signal", lambda: events.WaitForSignal("never")))
    sched.add(guarded("timed signal", lambda: events.WaitForSignal("never", timeout=30)))
    sched.add(guarded("parked signal", lambda: events.Signal("never either", recipients=3)))
    sched.add(guarded("io", lambda: WaitReadable(a)))
    sched.add(guarded("queued", lambda: None))
    sched.add(guarded("join", lambda: events.Join(sleeper)))
    sched.add(caller)
    for _ in range(3):
        sched.run_once()
    sched.shutdown()
    assert sorted(cleaned) == sorted(["sleep", "signal", "timed signal", "parked signal", "io", "queued",
                                      "join", "callee", "caller"])
    assert cleaned.index("callee") < cleaned.index("caller")
    sched.shutdown()  # idempotent


def test_shutdown_from_a_coroutine_stops_the_loop_and_closes_the_others(sched: Scheduler) -> None:
    cleaned: list[str] = []

    @coroutine
    def sleeper() -> Any:
        try:
            yield events.Sleep(30)
        finally:
            cleaned.append("sleeper")

    @coroutine
    def killer() -> Any:
        yield events.Sleep(0)
        sched.shutdown()

    sched.add(sleeper)
    sched.add(killer)
    t0 = time.monotonic()
    sched.run()
    assert time.monotonic() - t0 < 10
    assert cleaned == ["sleeper"]


def test_shutdown_logs_a_coroutine_that_refuses_to_close(
        sched: Scheduler, caplog: pytest.LogCaptureFixture) -> None:
    @coroutine
    def stubborn() -> Any:
        try:
            yield events.Sleep(30)
        finally:
            yield events.Sleep(0)

    instance = sched.add(stubborn)
    sched.run_once()
    with caplog.at_level(logging.ERROR, logger="cogen"):
        sched.shutdown()
    assert any(r.exc_info for r in caplog.records)
    with pytest.raises(GeneratorExit):  # let it finish, so that garbage collection has nothing to complain of
        instance.gen.send(None)  # type: ignore[union-attr]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("reactor", reactors.available())
def test_shutdown_from_another_thread_closes_on_the_loop_thread(
        reactor: str, sockpair: tuple[socket.socket, socket.socket]) -> None:
    # Issue 18 item 13: the reactor and the wake-up sockets were closed under
    # the running loop (EBADF in poll, the loop thread died).
    sched = Scheduler(reactor)
    a, _b = sockpair
    closed_on: list[str] = []
    errors: list[BaseException] = []
    parked = threading.Event()

    @coroutine
    def reader() -> Any:
        try:
            parked.set()
            yield WaitReadable(a)
        finally:
            closed_on.append(threading.current_thread().name)

    @coroutine
    def ticker() -> Any:
        while True:
            yield events.Sleep(0.001)

    def run() -> None:
        try:
            sched.run()
        except BaseException as exc:  # noqa: BLE001 - asserted below
            errors.append(exc)

    sched.add(reader)
    sched.add(ticker)
    thread = threading.Thread(target=run, name="loop")
    thread.start()
    assert parked.wait(10)
    sched.shutdown()
    # shutdown() waited for the loop thread to close everything
    assert closed_on == ["loop"]
    assert sched._wake_r.fileno() == -1
    thread.join(10)
    assert not thread.is_alive()
    assert errors == []
    sched.shutdown()  # idempotent, also once stopped


# -- cancel ----------------------------------------------------------------------------


class Gone(Exception):
    pass


def _parked(sched: Scheduler, make_op: Callable[[], Any]) -> tuple[Coroutine, list[Any], Any]:
    """Add a coroutine that yields ``make_op()`` and records what it got; run it until parked."""
    got: list[Any] = []
    op = make_op()

    @coroutine
    def waiter() -> Any:
        try:
            got.append((yield op))
        except Gone as exc:
            got.append(exc)

    coro = sched.add(waiter)
    sched.run_once()
    assert got == []
    return coro, got, op


def test_cancel_withdraws_a_coroutine_from_a_signal_and_its_timeout(sched: Scheduler) -> None:
    coro, got, op = _parked(sched, lambda: events.WaitForSignal("news", timeout=30))
    assert sched.cancel(coro, Gone("client left"), op)
    assert "news" not in sched.sigwait
    sched.run()
    assert [type(g) for g in got] == [Gone]
    assert sched._timers_live == 0
    woken: list[int] = []

    @coroutine
    def signaller() -> Any:
        woken.append((yield events.Signal("news")))

    sched.add(signaller)
    sched.run()
    assert woken == [0]


def test_cancel_without_the_operation_searches_the_signal_waiters(sched: Scheduler) -> None:
    coro, got, _op = _parked(sched, lambda: events.WaitForSignal("news"))
    assert sched.cancel(coro, Gone())
    assert "news" not in sched.sigwait
    sched.run()
    assert [type(g) for g in got] == [Gone]


def test_cancel_withdraws_a_sleep_and_a_reactor_wait(
        sched: Scheduler, sockpair: tuple[socket.socket, socket.socket]) -> None:
    a, b = sockpair
    sleeper, slept, _ = _parked(sched, lambda: events.Sleep(30))
    reader, read, op = _parked(sched, lambda: WaitReadable(a))
    assert sched.cancel(sleeper, Gone())
    assert sched.cancel(reader, Gone(), op)
    assert not sched.reactor.readers
    sched.run()  # returns at once: nothing is left to wait for
    assert [type(g) for g in slept + read] == [Gone, Gone]
    b.send(b"late")  # nobody is woken by it any more
    assert not sched.has_work()


def test_cancel_a_coroutine_whose_wait_just_ended_replaces_the_outcome(sched: Scheduler) -> None:
    coro, got, op = _parked(sched, lambda: events.WaitForSignal("news"))

    @coroutine
    def signaller() -> Any:
        # CORO: the signaller goes on at once, while coro is queued with "value"
        yield events.Signal("news", "value", prio=priority.CORO)
        sched.cancel(coro, Gone(), op)

    sched.add(signaller)
    sched.run()
    assert [type(g) for g in got] == [Gone]


def test_cancel_leaves_a_callee_running_and_drops_its_outcome(sched: Scheduler) -> None:
    finished: list[str] = []

    @coroutine
    def callee() -> Any:
        yield events.Sleep(0.01)
        finished.append("callee")
        return "result"

    coro, got, op = _parked(sched, callee)
    assert sched.cancel(coro, Gone(), op)
    sched.run()
    assert [type(g) for g in got] == [Gone]
    assert finished == ["callee"]


def test_cancel_of_a_finished_coroutine_does_nothing(sched: Scheduler) -> None:
    @coroutine
    def quick() -> Any:
        yield None

    coro = sched.add(quick)
    sched.run()
    assert sched.cancel(coro, Gone()) is False
    assert not sched.has_work()


def test_a_timer_killed_early_does_not_keep_its_coroutine_alive(sched: Scheduler) -> None:
    # The heap keeps a killed timer's entry until its deadline (or a
    # compaction); it kept the operation and the coroutine alive that long.
    import gc
    import weakref

    @coroutine
    def waiter() -> Any:
        yield events.WaitForSignal("go", timeout=3600)

    @coroutine
    def signaller() -> Any:
        yield events.Signal("go")

    coro = sched.add(waiter)
    sched.add(signaller)
    sched.run()
    assert sched.timers, "the killed timer's entry is still in the heap (what this test is about)"
    ref = weakref.ref(coro)
    del coro
    gc.collect()
    assert ref() is None
