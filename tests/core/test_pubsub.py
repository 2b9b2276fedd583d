"""Tests for cogen.core.pubsub: PublishSubscribeQueue."""
from __future__ import annotations

import gc
from typing import Any

import pytest

from cogen.core import events, pubsub, reactors
from cogen.core.coroutines import coroutine
from cogen.core.schedulers import Scheduler
from cogen.core.util import priority
from cogen.errors import CogenError
from cogen.testing import run_to_end as run

pytestmark = pytest.mark.timeout(60)

REACTORS = list(reactors.available())
PRIORITIES = [priority.LAST, priority.CORO, priority.OP, priority.FIRST]


def test_fetch_returns_every_unseen_message_in_one_list(sched: Scheduler) -> None:
    q = pubsub.PublishSubscribeQueue()

    @coroutine
    def body() -> Any:
        assert (yield q.subscribe()) is True
        for i in range(5):
            assert (yield q.publish(i)) == 0
        first = yield q.fetch()
        yield q.publish("x")
        second = yield q.fetch()
        return first, second

    assert run(sched, body()) == [([0, 1, 2, 3, 4], ["x"])]


def test_parked_fetch_is_woken_by_publish(sched: Scheduler) -> None:
    q = pubsub.PublishSubscribeQueue()
    woken: list[int] = []

    @coroutine
    def subscriber() -> Any:
        yield q.subscribe()
        return (yield q.fetch(timeout=10))

    @coroutine
    def publisher() -> Any:
        while not q._waiting:
            yield events.Sleep(0)
        woken.append((yield q.publish("hello")))

    assert run(sched, subscriber(), publisher())[0] == ["hello"]
    assert woken == [1]


@pytest.mark.parametrize("prio", PRIORITIES)
def test_thousand_subscribers_each_see_every_message_in_order(prio: int) -> None:
    sched = Scheduler(default_priority=prio)
    q = pubsub.PublishSubscribeQueue()
    count, messages = 1000, 50
    seen: dict[int, list[int]] = {}
    woken_total = []

    @coroutine
    def subscriber(n: int) -> Any:
        yield q.subscribe()
        got: list[int] = []
        while len(got) < messages:
            got.extend((yield q.fetch(timeout=10)))
        seen[n] = got
        yield q.unsubscribe()

    @coroutine
    def publisher() -> Any:
        yield events.WaitForSignal("ready")
        for i in range(messages):
            woken_total.append((yield q.publish(i)))
            if i % 3 == 0:
                yield events.Sleep(0)

    @coroutine
    def starter() -> Any:
        for n in range(count):
            yield events.AddCoro(subscriber, (n,))
        while len(q.subscribers) < count:
            yield events.Sleep(0)
        yield events.Signal("ready", recipients=1)

    run(sched, publisher(), starter())
    sched.close()
    assert len(seen) == count
    assert all(got == list(range(messages)) for got in seen.values())
    assert 0 < sum(woken_total) <= count * messages
    assert not q.subscribers and len(q.messages) <= pubsub.COMPACT_MIN


def test_late_subscriber_does_not_see_older_messages(sched: Scheduler) -> None:
    q = pubsub.PublishSubscribeQueue()

    @coroutine
    def early() -> Any:
        yield q.subscribe()
        yield events.Signal("early")
        got: list[int] = []
        while len(got) < 6:
            got.extend((yield q.fetch(timeout=10)))
        return got

    @coroutine
    def late() -> Any:
        yield events.WaitForSignal("published 3")
        yield q.subscribe()
        yield events.Signal("late")
        got: list[int] = []
        while len(got) < 3:
            got.extend((yield q.fetch(timeout=10)))
        return got

    @coroutine
    def publisher() -> Any:
        yield events.Sleep(0)
        for i in range(3):
            yield q.publish(i)
        yield events.Signal("published 3", recipients=1)
        yield events.WaitForSignal("late")
        for i in range(3, 6):
            yield q.publish(i)

    results = run(sched, early(), late(), publisher())
    assert results[:2] == [[0, 1, 2, 3, 4, 5], [3, 4, 5]]


def test_slow_subscriber_bounds_memory_through_compaction(sched: Scheduler) -> None:
    q = pubsub.PublishSubscribeQueue()
    total, slow_every = 5000, 300
    fast_got: list[int] = []
    slow_got: list[int] = []
    high_water = [0]

    @coroutine
    def fast() -> Any:
        yield q.subscribe("fast")
        while len(fast_got) < total:
            fast_got.extend((yield q.fetch("fast", timeout=10)))

    @coroutine
    def slow() -> Any:
        # fetches from outside a coroutine body of its own: explicit key
        while len(slow_got) < total:
            yield events.WaitForSignal("slow turn")
            slow_got.extend((yield q.fetch("slow", timeout=10)))

    @coroutine
    def publisher() -> Any:
        yield q.subscribe("slow")
        for i in range(total):
            yield q.publish(i)
            high_water[0] = max(high_water[0], len(q.messages))
            if i % slow_every == slow_every - 1 or i == total - 1:
                yield events.Signal("slow turn", recipients=1)

    run(sched, fast(), slow(), publisher())
    assert fast_got == list(range(total)) and slow_got == list(range(total))
    # the slow subscriber is at most slow_every behind: memory stays in proportion
    assert high_water[0] <= 2 * slow_every + pubsub.COMPACT_MIN
    assert q.compact() >= 0 and len(q.messages) == 0


def test_compact_drops_what_everyone_fetched_and_returns_the_count(sched: Scheduler) -> None:
    q = pubsub.PublishSubscribeQueue()

    @coroutine
    def body() -> Any:
        yield q.subscribe("a")
        yield q.subscribe("b")
        for i in range(10):
            yield q.publish(i)
        assert (yield q.fetch("a")) == list(range(10))
        assert q.compact() == 0
        assert (yield q.fetch("b")) == list(range(10))
        assert q.compact() == 10 and len(q.messages) == 0
        yield q.publish(10)
        yield q.publish(11)
        assert (yield q.fetch("a")) == [10, 11]
        yield q.unsubscribe("b")
        assert q.compact() == 2 and len(q.messages) == 0
        yield q.publish(12)
        yield q.unsubscribe("a")  # the last one out drops what is stored
        assert len(q.messages) == 0
        yield q.publish("nobody listens")
        assert len(q.messages) == 0

    run(sched, body())


def test_explicit_key_spans_successive_coroutines(sched: Scheduler) -> None:
    q = pubsub.PublishSubscribeQueue()

    @coroutine
    def request(n: int) -> Any:
        if n == 0:
            yield q.subscribe("client-1")
            return []
        return (yield q.fetch("client-1", timeout=10))

    @coroutine
    def server() -> Any:
        results = []
        yield events.Join((yield events.AddCoro(request, (0,))))
        for i in range(3):
            yield q.publish(i)
        results.append((yield events.Join((yield events.AddCoro(request, (1,))))))
        for i in range(3, 5):
            yield q.publish(i)
        results.append((yield events.Join((yield events.AddCoro(request, (2,))))))
        return results

    assert run(sched, server()) == [[[0, 1, 2], [3, 4]]]


def test_implicit_key_is_the_root_of_the_call_chain(sched: Scheduler) -> None:
    q = pubsub.PublishSubscribeQueue()

    @coroutine
    def helper_subscribe() -> Any:
        return (yield q.subscribe())

    @coroutine
    def helper_fetch() -> Any:
        return (yield q.fetch(timeout=10))

    @coroutine
    def root() -> Any:
        yield helper_subscribe()
        assert list(q.subscribers) == [me[0]]
        yield q.publish("m")
        return (yield helper_fetch())

    me: list[Any] = []
    c = sched.add(root)
    me.append(c)
    sched.run()
    assert c.exception is None and c.result == ["m"]


def test_subscription_of_a_finished_coroutine_is_dropped_on_compaction(sched: Scheduler) -> None:
    q = pubsub.PublishSubscribeQueue()

    @coroutine
    def forgetful() -> Any:
        yield q.subscribe()

    @coroutine
    def publisher(other: Any) -> Any:
        yield events.Join(other)
        assert len(q.subscribers) == 1
        for i in range(pubsub.COMPACT_MIN * 4):
            yield q.publish(i)
        assert not q.subscribers and len(q.messages) == 0

    f = sched.add(forgetful)
    sched.add(publisher, f)
    sched.run()


def test_fetch_without_subscribing_raises_in_the_coroutine(sched: Scheduler) -> None:
    q = pubsub.PublishSubscribeQueue()

    @coroutine
    def body() -> Any:
        with pytest.raises(pubsub.NotSubscribedError) as info:
            yield q.fetch()
        assert "not subscribed" in str(info.value)
        with pytest.raises(pubsub.NotSubscribedError):
            yield q.fetch("nobody")
        assert issubclass(pubsub.NotSubscribedError, CogenError)

    run(sched, body())


def test_unsubscribe(sched: Scheduler) -> None:
    q = pubsub.PublishSubscribeQueue()

    @coroutine
    def parked() -> Any:
        yield q.subscribe("k")
        with pytest.raises(pubsub.NotSubscribedError):
            yield q.fetch("k", timeout=10)
        return "thrown"

    @coroutine
    def body() -> Any:
        while "k" not in q._waiting:
            yield events.Sleep(0)
        assert (yield q.unsubscribe("k")) is True
        assert (yield q.unsubscribe("k")) is False
        yield q.subscribe()
        yield q.publish(1)
        yield q.unsubscribe()
        with pytest.raises(pubsub.NotSubscribedError):
            yield q.fetch()
        return "ok"

    assert run(sched, parked(), body()) == ["thrown", "ok"]
    assert not q.subscribers and len(q.messages) == 0


def test_fetch_timeout_loses_nothing(sched: Scheduler) -> None:
    q = pubsub.PublishSubscribeQueue()

    @coroutine
    def body() -> Any:
        yield q.subscribe()
        with pytest.raises(events.OperationTimeout):
            yield q.fetch(timeout=0.01)
        assert not q._waiting
        yield q.publish("after")
        return (yield q.fetch(timeout=0.01))

    assert run(sched, body()) == [["after"]]


def test_newer_fetch_for_the_same_key_takes_over(sched: Scheduler) -> None:
    q = pubsub.PublishSubscribeQueue()

    @coroutine
    def old() -> Any:
        yield q.subscribe("client")
        return (yield q.fetch("client", timeout=10))

    @coroutine
    def new() -> Any:
        while "client" not in q._waiting:
            yield events.Sleep(0)
        return (yield q.fetch("client", timeout=10))

    @coroutine
    def publisher(waiter: Any) -> Any:
        yield events.Join(waiter)
        yield q.publish("m")

    o = sched.add(old)
    n = sched.add(new)
    sched.add(publisher, o)
    sched.run()
    assert o.result == [] and n.result == ["m"]


@pytest.mark.parametrize("prio", PRIORITIES)
def test_publish_with_op_priority_wakes_in_subscription_order(prio: int) -> None:
    sched = Scheduler(default_priority=prio)
    q = pubsub.PublishSubscribeQueue()
    order: list[int] = []

    @coroutine
    def subscriber(n: int) -> Any:
        yield q.subscribe()
        yield q.fetch(timeout=10)
        order.append(n)

    @coroutine
    def publisher() -> Any:
        while len(q._waiting) < 5:
            yield events.Sleep(0)
        yield q.publish("m")

    run(sched, *[subscriber(n) for n in range(5)], publisher())
    sched.close()
    assert order == list(range(5))


# -- ported from the original's test_psqueue.py --------------------------------------

@pytest.mark.parametrize("prio", PRIORITIES)
def test_original_pubsub_scenario(prio: int) -> None:
    sched = Scheduler(default_priority=prio)
    q = pubsub.PublishSubscribeQueue()
    msgs: list[Any] = []

    @coroutine
    def foo() -> Any:
        yield q.subscribe()
        while True:
            try:
                msgs.extend((yield q.fetch(timeout=0.05)))
            except events.OperationTimeout:
                msgs.append("OK")
                yield events.Signal("lazy")
                break

    @coroutine
    def lazy_foo() -> Any:
        yield q.subscribe()
        yield events.WaitForSignal("lazy")
        while True:
            try:
                msgs.extend((yield q.fetch(timeout=0.05)))
            except events.OperationTimeout:
                break

    @coroutine
    def bar() -> Any:
        yield events.Sleep(0)
        for i in range(5):
            yield q.publish(i)

    run(sched, lazy_foo(), foo(), bar())
    sched.close()
    assert msgs == [0, 1, 2, 3, 4, "OK", 0, 1, 2, 3, 4]


def test_queue_does_not_keep_finished_subscribers_alive(sched: Scheduler) -> None:
    q = pubsub.PublishSubscribeQueue()

    @coroutine
    def subscriber() -> Any:
        yield q.subscribe()

    sched.add(subscriber)
    sched.run()

    @coroutine
    def publisher() -> Any:
        yield q.publish(1)
        q.compact()

    sched.add(publisher)
    sched.run()
    gc.collect()
    assert not q.subscribers
