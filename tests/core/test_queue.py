"""Tests for cogen.core.queue: the cooperative Queue, LifoQueue and PriorityQueue."""
from __future__ import annotations

import queue as stdlib_queue
import random
from collections import Counter
from typing import Any

import pytest

from cogen.core import events, queue, reactors
from cogen.core.coroutines import coroutine
from cogen.core.schedulers import Scheduler
from cogen.core.util import priority
from cogen.errors import CogenError
from cogen.testing import run_to_end as run

pytestmark = pytest.mark.timeout(60)

REACTORS = list(reactors.available())
PRIORITIES = [priority.LAST, priority.CORO, priority.OP, priority.FIRST]


# -- producers and consumers ---------------------------------------------------------

@pytest.mark.parametrize("prio", PRIORITIES)
@pytest.mark.parametrize("reactor", REACTORS)
def test_many_producers_and_consumers_lose_and_duplicate_nothing(reactor: str, prio: int) -> None:
    sched = Scheduler(reactor=reactor, default_priority=prio)
    q = queue.Queue(3)
    producers, consumers, per_producer = 10, 7, 200
    got: dict[int, list[tuple[int, int]]] = {c: [] for c in range(consumers)}

    @coroutine
    def producer(p: int) -> Any:
        for i in range(per_producer):
            yield q.put((p, i))
            if i % 7 == 0:
                yield events.Sleep(0)

    @coroutine
    def consumer(c: int) -> Any:
        while True:
            item = yield q.get()
            if item is None:
                return
            got[c].append(item)
            q.task_done()

    @coroutine
    def boss() -> Any:
        started = []
        for p in range(producers):
            started.append((yield events.AddCoro(producer, (p,))))
        for c in started:
            yield events.Join(c)
        yield q.join()
        for _ in range(consumers):
            yield q.put(None)

    try:
        run(sched, boss(), *[consumer(c) for c in range(consumers)])
    finally:
        sched.close()
    everything = [item for items in got.values() for item in items]
    assert len(everything) == producers * per_producer
    assert Counter(everything) == Counter((p, i) for p in range(producers) for i in range(per_producer))
    # FIFO: each consumer sees each producer's items in the order they were put
    for items in got.values():
        for p in range(producers):
            seq = [i for (pp, i) in items if pp == p]
            assert seq == sorted(seq)
    # only the stop markers were never marked done
    assert q.qsize() == 0 and q.unfinished_tasks == consumers


@pytest.mark.parametrize("prio", PRIORITIES)
def test_one_producer_one_consumer_keeps_fifo_order(prio: int) -> None:
    sched = Scheduler(default_priority=prio)
    q = queue.Queue(5)
    out: list[int] = []

    @coroutine
    def producer() -> Any:
        for i in range(1000):
            yield q.put(i)

    @coroutine
    def consumer() -> Any:
        for _ in range(1000):
            out.append((yield q.get()))

    run(sched, consumer(), producer())
    sched.close()
    assert out == list(range(1000))


def test_parked_getters_are_served_first_come_first_served(sched: Scheduler) -> None:
    q = queue.Queue()
    got: dict[int, Any] = {}

    @coroutine
    def getter(n: int) -> Any:
        got[n] = yield q.get()

    @coroutine
    def producer() -> Any:
        assert len(q._getters) == 5
        for i in range(3):
            yield q.put(f"item{i}")
        q.put_nowait("item3")
        q.put_nowait("item4")

    run(sched, *[getter(n) for n in range(5)], producer())
    assert got == {n: f"item{n}" for n in range(5)}
    assert q.empty()


def test_parked_putters_are_served_first_come_first_served(sched: Scheduler) -> None:
    q = queue.Queue(1)
    q.put_nowait("first")
    out: list[Any] = []

    @coroutine
    def putter(n: int) -> Any:
        yield q.put(n)

    @coroutine
    def consumer() -> Any:
        assert len(q._putters) == 5 and q.full()
        for _ in range(6):
            out.append((yield q.get()))

    run(sched, *[putter(n) for n in range(5)], consumer())
    assert out == ["first", 0, 1, 2, 3, 4]


def test_get_on_full_queue_moves_a_parked_putters_item_in(sched: Scheduler) -> None:
    q = queue.Queue(2)
    events_seen: list[str] = []

    @coroutine
    def putter() -> Any:
        for i in range(3):
            yield q.put(i)
        events_seen.append("put done")

    @coroutine
    def getter() -> Any:
        while not q._putters:
            yield events.Sleep(0)
        assert q.full() and len(q._putters) == 1
        assert q.get_nowait() == 0
        # the parked putter's item is already in: the queue is full again
        assert list(q.queue) == [1, 2] and not q._putters
        events_seen.append("got")

    run(sched, putter(), getter())
    assert events_seen == ["got", "put done"]


def test_put_hands_item_straight_to_a_parked_getter(sched: Scheduler) -> None:
    q = queue.Queue(1)

    @coroutine
    def getter() -> Any:
        return (yield q.get())

    @coroutine
    def putter() -> Any:
        yield q.put("a")
        # "a" went to the parked getter, so the bounded queue still has room
        assert q.qsize() == 0
        yield q.put("b", block=False)
        assert list(q.queue) == ["b"]

    assert run(sched, getter(), putter())[0] == "a"


# -- timeouts ------------------------------------------------------------------------

def test_get_timeout_consumes_nothing(sched: Scheduler) -> None:
    q = queue.Queue()

    @coroutine
    def getter() -> Any:
        with pytest.raises(events.OperationTimeout):
            yield q.get(timeout=0.02)
        assert not q._getters
        q.put_nowait("later")
        assert q.qsize() == 1
        return (yield q.get(timeout=0.02))

    assert run(sched, getter()) == ["later"]


def test_put_timeout_inserts_nothing(sched: Scheduler) -> None:
    q = queue.Queue(2)

    @coroutine
    def putter() -> Any:
        yield q.put(1)
        yield q.put(2)
        with pytest.raises(events.OperationTimeout):
            yield q.put(3, timeout=0.02)
        assert list(q.queue) == [1, 2] and not q._putters and q.unfinished_tasks == 2
        assert q.get_nowait() == 1
        assert list(q.queue) == [2]

    run(sched, putter())


def test_timed_waiters_lose_no_items(sched: Scheduler) -> None:
    rnd = random.Random(1234)
    q = queue.Queue(4)
    total = 600
    received: list[int] = []
    put_ok: list[int] = []
    timeouts = Counter[str]()
    stop: list[bool] = []

    @coroutine
    def getter() -> Any:
        while not stop:
            try:
                received.append((yield q.get(timeout=rnd.choice([0, 0.001, 0.003]))))
            except events.OperationTimeout:
                timeouts["get"] += 1
            if rnd.random() < 0.3:
                yield events.Sleep(rnd.choice([0, 0.002]))

    @coroutine
    def putter(start: int) -> Any:
        for i in range(start, total, 3):
            while True:
                try:
                    yield q.put(i, timeout=rnd.choice([0, 0.001, 0.004]))
                    put_ok.append(i)
                    break
                except events.OperationTimeout:
                    timeouts["put"] += 1
            if rnd.random() < 0.3:
                yield events.Sleep(rnd.choice([0, 0.002]))

    @coroutine
    def boss() -> Any:
        putters = []
        for start in range(3):
            putters.append((yield events.AddCoro(putter, (start,))))
        for p in putters:
            yield events.Join(p)
        stop.append(True)

    run(sched, boss(), *[getter() for _ in range(5)])
    left = list(q.queue)
    assert sorted(put_ok) == list(range(total))
    assert sorted(received + left) == list(range(total))
    assert q.unfinished_tasks == total
    assert timeouts["get"] and timeouts["put"]  # the test exercised both paths


def test_timed_out_getter_never_steals_from_the_next_one(sched: Scheduler) -> None:
    q = queue.Queue()
    got: list[Any] = []

    @coroutine
    def impatient() -> Any:
        with pytest.raises(events.OperationTimeout):
            yield q.get(timeout=0.01)

    @coroutine
    def patient() -> Any:
        got.append((yield q.get(timeout=5)))

    @coroutine
    def producer(first: Any) -> Any:
        yield events.Join(first)
        yield q.put("x")

    first = sched.add(impatient)
    sched.add(patient)
    sched.add(producer, first)
    sched.run()
    assert got == ["x"] and q.empty()


# -- non-blocking calls --------------------------------------------------------------

def test_block_false_raises_full_and_empty_in_the_coroutine(sched: Scheduler) -> None:
    q = queue.Queue(1)

    @coroutine
    def body() -> Any:
        with pytest.raises(queue.Empty):
            yield q.get(block=False)
        yield q.put(1, block=False)
        with pytest.raises(queue.Full):
            yield q.put(2, block=False, timeout=10)
        return (yield q.get(block=False))

    assert run(sched, body()) == [1]


def test_nowait_methods_act_at_once_outside_coroutines() -> None:
    q = queue.Queue(2)
    with pytest.raises(queue.Empty):
        q.get_nowait()
    q.put_nowait("a")
    q.put_nowait("b")
    assert q.full() and q.qsize() == 2 and not q.empty()
    with pytest.raises(queue.Full):
        q.put_nowait("c")
    assert q.get_nowait() == "a"
    assert q.get_nowait() == "b"
    assert q.empty() and not q.full()


def test_full_and_empty_are_stdlib_and_cogen_errors() -> None:
    assert issubclass(queue.Full, stdlib_queue.Full) and issubclass(queue.Full, CogenError)
    assert issubclass(queue.Empty, stdlib_queue.Empty) and issubclass(queue.Empty, CogenError)
    q = queue.Queue()
    with pytest.raises(stdlib_queue.Empty):
        q.get_nowait()


def test_unbounded_queue_is_never_full() -> None:
    for maxsize in (0, -1):
        q = queue.Queue(maxsize)
        for i in range(1000):
            q.put_nowait(i)
        assert not q.full() and q.qsize() == 1000


def test_put_nowait_wakes_a_parked_getter(sched: Scheduler) -> None:
    q = queue.Queue()

    @coroutine
    def getter() -> Any:
        return (yield q.get())

    g = sched.add(getter)
    sched.run_once()
    assert len(q._getters) == 1
    q.put_nowait(42)
    sched.run()
    assert g.result == 42 and q.empty()


# -- task_done and join --------------------------------------------------------------

def test_join_waits_until_every_item_is_marked_done(sched: Scheduler) -> None:
    q = queue.Queue(2)
    log: list[str] = []

    @coroutine
    def worker() -> Any:
        while True:
            item = yield q.get()
            yield events.Sleep(0.001)
            log.append(f"done {item}")
            q.task_done()

    @coroutine
    def boss() -> Any:
        for i in range(5):
            yield q.put(i)
        yield q.join()
        log.append("joined")

    w = sched.add(worker)
    sched.add(boss)
    sched.add(boss)
    while "joined" not in log or log.count("joined") < 2:
        sched.run_once(None)
    assert log.count("done 0") == 2 and len(log) == 12
    assert log[-2:] == ["joined", "joined"]
    assert q.unfinished_tasks == 0
    w.close()


def test_join_on_a_finished_queue_completes_at_once(sched: Scheduler) -> None:
    q = queue.Queue()

    @coroutine
    def body() -> Any:
        yield q.join()
        yield q.put(1)
        assert q.get_nowait() == 1
        q.task_done()
        yield q.join()
        return "ok"

    assert run(sched, body()) == ["ok"]


def test_task_done_too_many_times_raises_value_error() -> None:
    q = queue.Queue()
    q.put_nowait(1)
    q.get_nowait()
    q.task_done()
    with pytest.raises(ValueError):
        q.task_done()
    assert q.unfinished_tasks == 0


def test_join_timeout_leaves_the_joiner_list(sched: Scheduler) -> None:
    q = queue.Queue()
    q.put_nowait(1)

    @coroutine
    def body() -> Any:
        with pytest.raises(events.OperationTimeout):
            yield q.join(timeout=0.01)
        assert not q._joiners
        q.get_nowait()
        q.task_done()
        yield q.join(timeout=0.01)

    run(sched, body())


# -- other orders --------------------------------------------------------------------

def test_lifo_queue_returns_the_newest_item_first(sched: Scheduler) -> None:
    q = queue.LifoQueue(3)

    @coroutine
    def body() -> Any:
        for i in range(3):
            yield q.put(i)
        with pytest.raises(queue.Full):
            q.put_nowait(9)
        out = []
        for _ in range(3):
            out.append((yield q.get()))
        return out

    assert run(sched, body()) == [[2, 1, 0]]


def test_priority_queue_returns_the_lowest_item_first(sched: Scheduler) -> None:
    q = queue.PriorityQueue()
    items = [(5, "e"), (1, "a"), (3, "c"), (2, "b"), (4, "d")]

    @coroutine
    def body() -> Any:
        for item in items:
            yield q.put(item)
        out = []
        for _ in items:
            out.append((yield q.get()))
        return out

    assert run(sched, body()) == [sorted(items)]


def test_priority_queue_with_parked_putters_keeps_order(sched: Scheduler) -> None:
    q = queue.PriorityQueue(2)
    out: list[int] = []

    @coroutine
    def putter() -> Any:
        for n in (9, 8, 7, 6, 5):
            yield q.put(n)

    @coroutine
    def getter() -> Any:
        yield events.Sleep(0)
        while len(out) < 5:
            out.append((yield q.get()))

    run(sched, putter(), getter())
    # 9 and 8 were in; the get of 8 lets the parked 7 in and goes on at once
    # (as in the original), taking 7 and 9; then 6 and 5 arrive one by one
    assert out == [8, 7, 9, 6, 5]


# -- ported from the original's test_queue.py ----------------------------------------

@pytest.mark.parametrize("prio", PRIORITIES)
def test_original_queue_scenario(prio: int) -> None:
    sched = Scheduler(default_priority=prio)
    size = 20
    q = queue.Queue(size)
    msgs: list[int] = []

    @coroutine
    def foo() -> Any:
        for i in range(size):
            yield q.put(i)
        with pytest.raises(queue.Full):
            q.put_nowait("x")
        assert list(q.queue) == list(range(size))
        yield events.Signal("go")
        yield q.put(size)
        msgs.append(-1)

    @coroutine
    def bar() -> Any:
        yield events.WaitForSignal("go")
        while True:
            try:
                msgs.append((yield q.get(timeout=0.05)))
            except events.OperationTimeout:
                msgs.append(-2)
                break

    run(sched, bar(), foo())
    sched.close()
    assert [m for m in msgs if m >= 0] == list(range(size + 1))
    assert msgs[-1] == -2 and -1 in msgs


def test_repr_mentions_sizes() -> None:
    q = queue.Queue(3)
    q.put_nowait(1)
    assert "size=1" in repr(q) and "maxsize=3" in repr(q)
    assert "QGet" in repr(q.get()) and "QPut" in repr(q.put(1)) and "QJoin" in repr(q.join())
