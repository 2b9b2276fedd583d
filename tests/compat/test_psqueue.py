"""The original's tests/test_psqueue.py (QueueTest_MixIn on a PublishSubscribeQueue), ported.

Every priority and every reactor.
"""
from __future__ import annotations

from typing import Any

from cogen.common import coroutine, events, priority
from cogen.core import pubsub


def test_pubsub(compat_sched: Any, prio: int) -> None:
    m = compat_sched()
    q = pubsub.PublishSubscribeQueue()
    msgs: list[Any] = []

    @coroutine
    def foo():
        yield q.subscribe()
        while 1:
            try:
                val = yield q.fetch(timeout=0.1)
                msgs.extend(val)
            except events.OperationTimeout:
                msgs.append("OK")
                yield events.Signal("lazy")
                break

    @coroutine
    def lazy_foo():
        yield q.subscribe()
        yield events.WaitForSignal("lazy")
        while 1:
            try:
                val = yield q.fetch(timeout=0.1)
                msgs.extend(val)
            except events.OperationTimeout:
                break

    @coroutine
    def bar():
        for i in range(5):
            yield q.publish(i)

    m.add(lazy_foo)
    m.add(foo)
    m.add(bar)
    m.run()
    assert msgs == [0, 1, 2, 3, 4, "OK", 0, 1, 2, 3, 4]


def test_compact(compat_sched: Any, prio: int) -> None:
    m = compat_sched()
    q = pubsub.PublishSubscribeQueue()
    msgs: list[Any] = []

    @coroutine
    def lazy_foo():
        yield events.WaitForSignal("lazy")
        yield q.subscribe()
        while 1:
            try:
                val = yield q.fetch(timeout=0.1)
                msgs.extend(val)
            except events.OperationTimeout:
                break

    @coroutine
    def bar():
        for i in range(5):
            yield q.publish(i)
            if i == 2:
                q.compact()
                yield events.Signal("lazy")

    m.add(lazy_foo)
    m.add(bar)
    m.run()
    assert msgs == [3, 4]


def test_compact2(compat_sched: Any, prio: int) -> None:
    m = compat_sched()
    q = pubsub.PublishSubscribeQueue()
    msgs: list[Any] = []

    @coroutine
    def lazy_foo():
        yield q.subscribe()
        while 1:
            try:
                val = yield q.fetch(timeout=0.1)
                msgs.extend(val)
            except events.OperationTimeout:
                break

    @coroutine
    def bar():
        for i in range(5):
            yield q.publish(i)
            if i == 1:
                yield events.AddCoro(lazy_foo, prio=priority.CORO)
            if i == 2:
                q.compact()

    m.add(bar)
    m.run()
    assert msgs == [3, 4]
