"""Waiting, bounded, for a state another thread or process reaches."""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_until(condition: Callable[[], Any], timeout: float = 10.0, poll: float = 0.005) -> None:
    """Return once ``condition()`` is true; AssertionError if it is not within ``timeout`` seconds.

    For what no event announces (another process's state, the memory a
    server holds); polls every ``poll`` seconds.
    """
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {condition!r}")
        time.sleep(poll)
