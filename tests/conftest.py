"""Fixtures shared by the whole test suite.

- ``reactor_name``: every reactor backend this platform has (``epoll``,
  ``kqueue``, ``poll``, ``select``); a test that uses it, or a fixture built
  on it, runs once per backend.
- ``sched``: a fresh :class:`~cogen.core.schedulers.Scheduler` on that
  backend, closed after the test.
- ``make_sched``: a factory of schedulers on that backend taking the
  ``Scheduler`` keyword arguments; every one made is closed after the test.
- ``prio``: every :class:`~cogen.core.util.priority` (LAST, CORO, OP, FIRST).
- ``sockpair``: a connected non-blocking ``socket.socketpair()``.
"""
from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from cogen.core import reactors
from cogen.core.schedulers import Scheduler
from cogen.core.util import priority

REACTOR_NAMES = list(reactors.available())
PRIORITIES = {"LAST": priority.LAST, "CORO": priority.CORO, "OP": priority.OP, "FIRST": priority.FIRST}


@pytest.fixture(params=REACTOR_NAMES)
def reactor_name(request: pytest.FixtureRequest) -> str:
    """The name of one reactor backend this platform has."""
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def make_sched(reactor_name: str) -> Iterator[Callable[..., Scheduler]]:
    """Build schedulers on the current backend; all are closed at teardown."""
    made: list[Scheduler] = []

    def make(**kwargs: Any) -> Scheduler:
        kwargs.setdefault("reactor", reactor_name)
        sched = Scheduler(**kwargs)
        made.append(sched)
        return sched

    yield make
    for sched in made:
        sched.close()


@pytest.fixture
def sched(make_sched: Callable[..., Scheduler]) -> Scheduler:
    """A scheduler with the default settings on the current backend."""
    return make_sched()


@pytest.fixture(params=list(PRIORITIES.values()), ids=list(PRIORITIES))
def prio(request: pytest.FixtureRequest) -> int:
    """Each of the four priorities."""
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def sockpair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """A connected pair of non-blocking sockets, closed at teardown."""
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    yield a, b
    a.close()
    b.close()
