"""The original's tests/test_queue.py (QueueTest_MixIn), ported.

Every priority and every reactor. The original's seconds are scaled by
``SCALE``; its ``sys.stderr`` capture of the unhandled ``OperationTimeout``
is a capture of the ``cogen`` logger.
"""
from __future__ import annotations

import logging
from typing import Any

import pytest

from cogen.common import coroutine, events, priority
from cogen.core import queue

from .conftest import SCALE


def test_signal_1s2w(compat_sched: Any, prio: int) -> None:
    m = compat_sched()
    msgs: list[int] = []

    @coroutine
    def signalee():
        msgs.append(2)
        yield events.WaitForSignal("test_sig")
        msgs.append(5)

    @coroutine
    def second_signalee():
        msgs.append(3)
        yield events.Sleep(1 * SCALE)
        msgs.append(4)
        yield events.WaitForSignal("test_sig")
        msgs.append(6)

    @coroutine
    def signaler():
        msgs.append(1)
        yield events.Signal("test_sig", recipients=2)
        msgs.append(7)

    m.add(signaler)
    m.add(signalee)
    m.add(second_signalee)
    m.run()
    if prio == priority.FIRST:
        assert msgs == [1, 2, 3, 4, 7, 6, 5]
    elif prio == priority.OP:
        assert msgs == [1, 2, 3, 4, 6, 5, 7]
    elif prio == priority.CORO:
        assert msgs == [1, 2, 3, 4, 7, 5, 6]
    else:
        assert msgs == [1, 2, 3, 4, 5, 6, 7]


def test_queue(compat_sched: Any, prio: int) -> None:
    m = compat_sched()
    SIZE = 20
    q = queue.Queue(SIZE)
    msgs: list[int] = []
    checks: list[Any] = []

    @coroutine
    def foo():
        for i in range(SIZE):
            yield q.put(i)
        thrown = False
        try:
            yield q.put_nowait("x")
        except queue.Full:
            thrown = True
        checks.append((list(range(SIZE)), list(q.queue)))
        checks.append((thrown, True))

        yield q.put(SIZE)
        msgs.append(-1)

    @coroutine
    def bar():
        yield events.Sleep(1 * SCALE)
        while 1:
            try:
                el = yield q.get(timeout=0.1)
                msgs.append(el)
            except events.OperationTimeout:
                msgs.append(-2)
                break

    @coroutine
    def wait():
        yield events.Sleep(2 * SCALE)

    m.add(foo)
    m.add(wait)
    m.add(bar)
    m.run()
    assert len(checks) == 2
    for expected, actual in checks:  # the original asserted these inside foo
        assert expected == actual
    if prio & priority.CORO:
        assert msgs == [-1] + list(range(SIZE + 1)) + [-2]
    else:
        assert msgs == list(range(SIZE + 1)) + [-1, -2]


def test_queue_timo(compat_sched: Any, prio: int, caplog: pytest.LogCaptureFixture) -> None:
    q = queue.Queue(50)
    msgs: list[Any] = []

    @coroutine
    def get():
        msgs.append((yield q.get(timeout=0.1)))
        msgs.append((yield q.get(timeout=0.1)))
        msgs.append((yield q.get()))

    @coroutine
    def put():
        yield q.put(1)
        yield events.Sleep(3 * SCALE)
        yield q.put(2)

    m = compat_sched(default_priority=priority.LAST, proactor_resolution=0.5)  # the original's Scheduler()
    m.add(put)
    m.add(get)
    with caplog.at_level(logging.ERROR, logger="cogen"):
        m.run()
    assert "OperationTimeout:" in caplog.text

    assert msgs == [1]
    assert list(q.queue) == [2]


def test_join(compat_sched: Any, prio: int) -> None:
    for i in range(1, 6):
        m = compat_sched()
        SIZE = i
        q = queue.Queue(SIZE)
        msgs: list[int] = []
        level = {"b": 0, "w": 0}

        @coroutine
        def worker(n, q=q, msgs=msgs, level=level):
            while 1:
                try:
                    yield q.get(timeout=0.1)
                except events.OperationTimeout:
                    break
                level["w"] -= 1

                msgs.append(1)
                yield events.Sleep(0.01)
                yield q.task_done()
            msgs.append(2)

        @coroutine
        def boss(n, q=q, msgs=msgs, level=level):
            level["b"] += 1
            yield q.put(1)

            level["b"] += 1
            yield q.put(2)

            level["b"] += 1
            yield q.put(3)

            msgs.append(1)
            yield q.join()
            msgs.append(2)

        @coroutine
        def daemon():
            yield events.Sleep(1 * SCALE)

        m.add(worker, args=(1,))
        m.add(worker, args=(2,))
        m.add(worker, args=(3,))
        m.add(boss, args=(-1,))
        m.add(boss, args=(-2,))
        m.add(daemon)
        m.run()

        assert msgs == [1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2]
        assert -level["w"] == level["b"]
