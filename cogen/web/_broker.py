"""Closing the scheduler's broker when the servers are done, so that a graceful stop ends.

A broker keeps a coroutine waiting for other processes' signals: the
scheduler would never run out of work. Every place that stops servers calls
:func:`close_broker_after` right after ``shutdown``; once every server's
``serve`` coroutine has returned (its requests finished or the grace period
ended) the broker is closed and the loop can end.
"""
from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import Any

from cogen.core.events import Join

__all__ = ["close_broker_after"]


def close_broker_after(sched: Any, servers: Sequence[Any]) -> None:
    """Close ``sched.broker`` (if any) once every server in ``servers`` has stopped serving."""
    broker = sched.broker
    if broker is None:
        return

    def closer() -> Generator[Any, Any, None]:
        for srv in servers:
            coro = getattr(srv, "_serve_coro", None)
            if coro is not None and coro.running:
                try:
                    yield Join(coro)
                except Exception:  # noqa: BLE001, S110 - the server logged its own failure
                    pass
        broker.close()

    sched.add(closer)
