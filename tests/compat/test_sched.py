"""The original's tests/test_sched.py (SchedulerTest_MixIn), ported.

Each test runs for every priority (the original's ``SchedulerTest_Prio*``
classes) and, beyond the original, on every reactor. Python 3 spellings:
``return x`` in a generator for the original's ``raise StopIteration(x)``, and
``str(exc)`` for ``exc.message``.
"""
from __future__ import annotations

import logging
import time
import traceback
from typing import Any

import pytest

from cogen.common import coroutine, events, priority

from .conftest import SCALE, about


def test_signal(compat_sched: Any, prio: int) -> None:
    m = compat_sched()
    msgs: list[int] = []

    class X:
        pass
    x = X()

    @coroutine
    def signalee():
        msgs.append(1)
        yield events.WaitForSignal("test_sig")
        msgs.append(3)
        yield events.WaitForSignal(x)
        msgs.append(5)

    @coroutine
    def signaler():
        msgs.append(2)
        yield events.Signal("test_sig")
        msgs.append(4)
        yield events.Signal(x, recipients=1)
        msgs.append(6)

    m.add(signalee)
    m.add(signaler)
    m.run()
    if prio == priority.FIRST:
        assert msgs == [1, 2, 4, 3, 6, 5]
    elif prio == priority.OP:
        assert msgs == [1, 2, 3, 4, 5, 6]
    elif prio == priority.CORO:
        assert msgs == [1, 2, 4, 3, 6, 5]
    else:
        assert msgs == [1, 2, 3, 4, 5, 6]


def test_add_coro(compat_sched: Any, prio: int) -> None:
    m = compat_sched()
    msgs: list[int] = []

    @coroutine
    def added(x):
        msgs.append(x)

    @coroutine
    def adder(c):
        msgs.append(1)
        yield events.AddCoro(c, args=(prio & priority.CORO and 3 or 2,))
        msgs.append(prio & priority.CORO and 2 or 3)

    m.add(adder, args=(added,))
    m.run()
    assert msgs == [1, 2, 3]


def test_call(compat_sched: Any, prio: int) -> None:
    m = compat_sched()
    msgs: list[int] = []
    exc_text: list[str] = []

    @coroutine
    def caller():
        msgs.append(1)
        ret = yield callee_1()
        msgs.append(ret)
        ret = yield callee_2()
        msgs.append(ret is None and 3 or -1)
        try:
            ret = yield callee_3()
        except Exception as e:
            msgs.append(str(e) == "some_message" and 4 or -1)

        ret = yield callee_4()
        msgs.append(ret)
        try:
            ret = yield callee_5()
        except Exception:
            exc_text.append(traceback.format_exc())

        ret = yield callee_6(6)
        msgs.append(ret)

    @coroutine
    def callee_1():
        raise StopIteration(2)  # a plain function: its StopIteration is its result

    @coroutine
    def callee_2():
        pass

    @coroutine
    def callee_3():
        yield
        raise Exception("some_message")
        yield

    @coroutine
    def callee_4():
        return (yield callee_4_1())

    @coroutine
    def callee_4_1():
        return (yield callee_4_2())

    @coroutine
    def callee_4_2():
        raise StopIteration(5)

    @coroutine
    def callee_5():
        return (yield callee_5_1())

    @coroutine
    def callee_5_1():
        return (yield callee_5_2())

    @coroutine
    def callee_5_2():
        raise Exception("long_one")

    @coroutine
    def callee_6(x):
        raise StopIteration(x)

    m.add(caller)
    m.run()
    assert msgs == [1, 2, 3, 4, 5, 6]
    assert "return (yield callee_5_1())" in exc_text[0]
    assert "return (yield callee_5_2())" in exc_text[0]
    assert 'raise Exception("long_one")' in exc_text[0]


def test_join(compat_sched: Any, prio: int, caplog: pytest.LogCaptureFixture) -> None:
    m = compat_sched()
    msgs: list[int] = []
    joined: list[Any] = []

    @coroutine
    def caller():
        msgs.append(1)
        ret = yield events.Join(m.add(callee_1))
        msgs.append(ret)
        ret = yield events.Join(m.add(callee_2))
        msgs.append(3 if ret is None else -1)
        c = m.add(callee_3)
        joined.append(c)
        ret = yield events.Join(c)
        msgs.append(4 if ret is None and str(c.exception) == "some_message" else -1)

    @coroutine
    def callee_1():
        raise StopIteration(2)

    @coroutine
    def callee_2():
        pass

    @coroutine
    def callee_3():
        yield
        raise Exception("some_message")
        yield

    m.add(caller)
    with caplog.at_level(logging.ERROR, logger="cogen"):  # the original's sys.stderr = StringIO()
        m.run()
    assert msgs == [1, 2, 3, 4]


def test_bad_ops(compat_sched: Any, prio: int) -> None:
    m = compat_sched()

    class HarmlessError(Exception):
        pass

    class ErrorOperation(events.TimedOperation):
        def process(self, sched, coro):
            super().process(sched, coro)
            raise HarmlessError

    botched: list[Any] = []

    @coroutine
    def worker():
        sticky_reference = ErrorOperation(timeout=0.01)
        try:
            yield sticky_reference
        except HarmlessError:
            pass
        else:
            botched.append(HarmlessError)
        try:
            yield events.Sleep(0.05)
        except BaseException as exc:
            botched.append(exc)
        yield events.Sleep(0.05)

    @coroutine
    def monitor(coro):
        yield events.Join(coro)

    m.add(monitor, args=(m.add(worker),))
    m.run()
    assert botched == []


def test_sleep(compat_sched: Any, prio: int) -> None:
    m = compat_sched()
    sleept: list[bool] = []

    @coroutine
    def sleeper():
        yield events.Sleep(1 * SCALE)
        sleept.append(True)

    ts = time.time()
    m.add(sleeper)
    m.run()
    assert about(time.time() - ts, 1 * SCALE)
    assert sleept
