"""Fixtures of the ported original test suite (``tests/compat``).

The original cogen 0.2.x suite made one ``unittest.TestCase`` class per
priority mix-in (``PrioCORO``, ``PrioOP``, ``PrioFIRST``, ``PrioLAST``) and,
for the tests that touch sockets, per proactor. Here the ``prio`` and
``reactor_name`` fixtures of ``tests/conftest.py`` do the same.

The original slept for whole seconds; the ports scale those durations by
:data:`SCALE` and keep the original's absolute tolerance (``assertAlmostEqual
(x, y, 1)``: within 0.05 s), so the timers are held to the same accuracy.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from cogen.core.schedulers import Scheduler
from tests._waiting import wait_until as _wait_until

#: The factor applied to the original's sleeps and timeouts.
SCALE = 0.1


def about(actual: float, expected: float) -> bool:
    """The original's ``assertAlmostEqual(actual, expected, 1)``: within 0.05 s."""
    return round(abs(actual - expected), 1) == 0


def wait_until(condition: Callable[[], Any], timeout: float = 10.0) -> None:
    """Wait (bounded) for ``condition()`` to hold; the ports' stand-in for the original's sleeps."""
    _wait_until(condition, timeout, poll=0.002)


class RunThread(threading.Thread):
    """Run ``sched.run()`` in a thread, recording an exception that escaped it."""

    def __init__(self, sched: Scheduler) -> None:
        super().__init__(daemon=True)
        self.sched = sched
        self.exception: BaseException | None = None

    def run(self) -> None:
        try:
            self.sched.run()
        except BaseException as exc:  # the test checks it
            self.exception = exc

    def join_checked(self, timeout: float = 20.0) -> None:
        """Join the thread; fail if it is still running or its loop raised."""
        self.join(timeout)
        assert not self.is_alive(), "the scheduler thread did not end"
        assert self.exception is None, f"the scheduler loop raised {self.exception!r}"


@pytest.fixture
def compat_sched(make_sched: Callable[..., Scheduler], prio: int) -> Callable[..., Scheduler]:
    """The original's ``Scheduler(default_priority=self.prio, ...)`` on the current reactor."""
    def make(**kwargs: Any) -> Scheduler:
        kwargs.setdefault("default_priority", prio)
        return make_sched(**kwargs)
    return make


@pytest.fixture
def run_thread() -> Iterator[Callable[[Scheduler], RunThread]]:
    """Start ``sched.run()`` in a thread; joined (bounded) at teardown."""
    started: list[RunThread] = []

    def start(sched: Scheduler) -> RunThread:
        thread = RunThread(sched)
        started.append(thread)
        thread.start()
        return thread

    yield start
    for thread in started:
        if thread.is_alive():
            thread.sched.stop()
            thread.join(10)
