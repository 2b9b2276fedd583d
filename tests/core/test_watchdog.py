"""The blocked-loop watchdog, on a real scheduler."""
from __future__ import annotations

import logging
import time
from collections.abc import Generator
from typing import Any

import pytest

from cogen.core.events import Sleep
from cogen.core.schedulers import Scheduler
from cogen.core.watchdog import Watchdog

pytestmark = pytest.mark.timeout(30)


def blocking_step() -> Generator[Any, Any, None]:
    yield Sleep(0)
    time.sleep(0.3)  # the blocking call the watchdog should point at
    yield Sleep(0)


def polite(steps: int) -> Generator[Any, Any, None]:
    for _ in range(steps):
        yield Sleep(0.01)


def test_a_blocking_step_is_reported_once_with_its_stack(
        caplog: pytest.LogCaptureFixture) -> None:
    sched = Scheduler()
    watchdog = Watchdog(sched, 0.05)
    watchdog.describers.append(lambda coro: ("the subject", "the blocking coroutine"))
    sched.add(blocking_step)
    watchdog.start()
    with caplog.at_level(logging.WARNING, "cogen.core.watchdog"):
        sched.run()
        watchdog.stop()
    sched.close()
    warnings = [r for r in caplog.records if r.name == "cogen.core.watchdog"]
    assert len(warnings) == 1
    text = warnings[0].getMessage()
    assert "the blocking coroutine has held the event loop" in text
    assert "time.sleep(0.3)" in text and "in blocking_step" in text
    assert watchdog.events == 1


def test_the_same_subject_is_warned_about_once_but_counted_each_time(
        caplog: pytest.LogCaptureFixture) -> None:
    sched = Scheduler()
    watchdog = Watchdog(sched, 0.05)
    watchdog.describers.append(lambda coro: ("one request", "the request"))
    sched.add(blocking_step)
    sched.add(blocking_step)
    watchdog.start()
    with caplog.at_level(logging.WARNING, "cogen.core.watchdog"):
        sched.run()
        watchdog.stop()
    sched.close()
    assert len([r for r in caplog.records if r.name == "cogen.core.watchdog"]) == 1
    assert watchdog.events == 2


def test_a_loop_that_never_blocks_is_not_reported(caplog: pytest.LogCaptureFixture) -> None:
    sched = Scheduler()
    healthy: list[float] = []
    # 0.2 s: far above any step here, even on a busy machine
    watchdog = Watchdog(sched, 0.2, on_healthy=lambda: healthy.append(time.monotonic()),
                        interval=0.01)
    for _ in range(20):
        sched.add(polite, 30)
    watchdog.start()
    with caplog.at_level(logging.WARNING, "cogen.core.watchdog"):
        sched.run()
        watchdog.stop()
    sched.close()
    assert not [r for r in caplog.records if r.name == "cogen.core.watchdog"]
    assert watchdog.events == 0
    assert healthy  # sampled, and found healthy


def test_threshold_zero_warns_never() -> None:
    sched = Scheduler()
    watchdog = Watchdog(sched, 0, interval=0.01)
    sched.add(blocking_step)
    watchdog.start()
    sched.run()
    watchdog.stop()
    sched.close()
    assert watchdog.events == 0
