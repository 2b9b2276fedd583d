"""cogen.core.pipe: Iterate, chunk, sentinel, IterationStopped."""
from __future__ import annotations

import logging
from typing import Any

import pytest

from cogen.core import events
from cogen.core.coroutines import coroutine
from cogen.core.pipe import Iterate, IterationStopped, chunk, sentinel
from cogen.core.schedulers import Scheduler
from cogen.core.util import priority
from cogen.errors import CogenError


def consume(sched: Scheduler, producer: Any, *args: Any, **kwargs: Any) -> list[Any]:
    """Iterate over ``producer`` to the end in ``sched``; the values in order."""
    got: list[Any] = []

    @coroutine
    def consumer() -> Any:
        it = yield Iterate(producer, args=args, **kwargs)
        while True:
            val = yield it
            if val is kwargs.get("sentinel", sentinel):
                return
            got.append(val)

    c = sched.add(consumer)
    sched.run()
    assert c.state == c.STATE_COMPLETED
    return got


def test_consumer_gets_every_chunk_then_the_sentinel(make_sched: Any, prio: int) -> None:
    sched = make_sched(default_priority=prio)

    @coroutine
    def producer(n: int) -> Any:
        for i in range(n):
            assert (yield chunk(i)) is None
        yield events.Sleep(0.001)  # the producer may wait on other things between chunks
        yield chunk("last")

    assert consume(sched, producer, 5) == [0, 1, 2, 3, 4, "last"]


def test_no_other_coroutine_runs_between_a_chunk_and_its_consumption(make_sched: Any, prio: int) -> None:
    sched = make_sched(default_priority=prio)
    log: list[Any] = []

    @coroutine
    def producer() -> Any:
        for i in range(3):
            log.append(("chunk", i))
            yield chunk(i)

    @coroutine
    def consumer() -> Any:
        it = yield Iterate(producer)
        while (val := (yield it)) is not sentinel:
            log.append(("got", val))

    @coroutine
    def bystander() -> Any:
        for _ in range(10):
            log.append("bystander")
            yield events.Sleep(0)

    sched.add(consumer)
    sched.add(bystander)
    sched.run()
    pipe_log = [entry for entry in log if entry != "bystander"]
    assert pipe_log == [("chunk", 0), ("got", 0), ("chunk", 1), ("got", 1), ("chunk", 2), ("got", 2)]
    for i in range(3):
        assert log[log.index(("chunk", i)) + 1] == ("got", i)


def test_like_the_original_test_iter_with_the_signal_after_the_wait(sched: Scheduler) -> None:
    # the original's test_iter, with the signalling coroutine started with the
    # CORO bit so that the producer waits before the signal comes
    msgs: list[Any] = []

    @coroutine
    def iterable() -> Any:
        msgs.append("started")
        assert not (yield chunk(1))
        assert not (yield chunk(2))
        yield events.WaitForSignal("test_sig")
        msgs.append("sig")
        assert not (yield chunk(None))
        assert not (yield chunk(sentinel))
        yield events.WaitForSignal("never")

    @coroutine
    def sig1(name: str) -> Any:
        yield events.Signal(name)

    @coroutine
    def iterator() -> Any:
        it = yield Iterate(iterable)
        while True:
            val = yield it
            if val is sentinel:
                msgs.append("end")
                break
            msgs.append(val)
            if val == 2:
                yield events.AddCoro(sig1, args=("test_sig",), prio=priority.CORO)

    sched.add(iterator)
    sched.run()
    assert msgs == ["started", 1, 2, "sig", None, "end"]


def test_custom_sentinel_and_a_coroutine_instance(sched: Scheduler) -> None:
    @coroutine
    def producer() -> Any:
        yield chunk(None)

    end = object()
    assert consume(sched, producer(), sentinel=end) == [None]


def test_plain_generator_function_and_sub_coroutine_chunks(sched: Scheduler) -> None:
    @coroutine
    def helper(x: int) -> Any:
        yield chunk(x)
        yield chunk(x + 1)

    def producer() -> Any:  # not decorated
        yield helper(10)
        yield chunk(12)

    assert consume(sched, producer) == [10, 11, 12]


def test_stop_raises_iteration_stopped_in_the_producer(sched: Scheduler) -> None:
    log: list[Any] = []

    @coroutine
    def producer() -> Any:
        try:
            yield chunk(1)
            log.append("not reached")
        except IterationStopped:
            log.append("raised")

    @coroutine
    def consumer() -> Any:
        it = yield Iterate(producer)
        log.append((yield it))
        log.append((yield it.stop()) is sentinel)
        log.append((yield it) is sentinel)

    sched.add(consumer)
    sched.run()
    assert log == [1, True, True, "raised"]


def test_an_uncaught_iteration_stopped_ends_the_producer_quietly(
        sched: Scheduler, caplog: pytest.LogCaptureFixture) -> None:
    @coroutine
    def producer() -> Any:
        while True:
            yield chunk(0)

    @coroutine
    def consumer() -> Any:
        it = yield Iterate(producer)
        yield it
        yield it.stop()

    with caplog.at_level(logging.ERROR, logger="cogen"):
        c = sched.add(consumer)
        sched.run()
    assert c.state == c.STATE_COMPLETED
    assert not caplog.records


def test_stop_before_the_first_value_never_starts_the_producer(sched: Scheduler) -> None:
    started: list[bool] = []

    @coroutine
    def producer() -> Any:
        started.append(True)
        yield chunk(1)

    @coroutine
    def consumer() -> Any:
        it = yield Iterate(producer)
        return (yield it.stop())

    c = sched.add(consumer)
    sched.run()
    assert c.result is sentinel and not started


def test_a_failing_producer_ends_the_iteration_and_is_logged(
        sched: Scheduler, caplog: pytest.LogCaptureFixture) -> None:
    @coroutine
    def producer() -> Any:
        yield chunk(1)
        raise KeyError("broken producer")

    with caplog.at_level(logging.ERROR, logger="cogen"):
        assert consume(sched, producer) == [1]
    assert "broken producer" in caplog.text


def test_chunk_outside_iterate_raises_type_error(sched: Scheduler) -> None:
    @coroutine
    def lonely() -> Any:
        try:
            yield chunk(1)
        except TypeError as exc:
            return str(exc)

    c = sched.add(lonely)
    sched.run()
    assert "not run by Iterate" in c.result


def test_iterate_refuses_a_started_instance_and_non_coroutines(sched: Scheduler) -> None:
    @coroutine
    def producer() -> Any:
        yield chunk(1)

    errors: list[type[BaseException]] = []

    @coroutine
    def consumer(target: Any) -> Any:
        try:
            yield Iterate(target)
        except (TypeError, ValueError) as exc:
            errors.append(type(exc))

    started = sched.add(producer)
    sched.add(consumer, started)
    sched.add(consumer, 42)
    sched.run()
    assert errors == [ValueError, TypeError]


def test_iteration_stopped_is_a_cogen_error() -> None:
    assert issubclass(IterationStopped, CogenError)


def test_a_second_coroutine_waiting_on_the_same_token_gets_runtime_error(sched: Scheduler) -> None:
    @coroutine
    def producer() -> Any:
        yield events.Sleep(0.01)
        yield chunk("only")

    tokens: list[Any] = []

    @coroutine
    def consumer() -> Any:
        it = yield Iterate(producer)
        tokens.append(it)
        return (yield it)

    @coroutine
    def intruder() -> Any:
        yield events.Sleep(0)
        try:
            yield tokens[0]
        except RuntimeError as exc:
            return str(exc)

    c = sched.add(consumer)
    i = sched.add(intruder)
    sched.run()
    assert c.result == "only"
    assert "already being waited on" in i.result
