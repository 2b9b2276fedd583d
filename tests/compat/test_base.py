"""The original's tests/base.py: its priority mix-ins and list of proactors.

The original built its test classes from ``priorities`` and
``proactors_available``; the fixtures here must cover the same ones.
"""
from __future__ import annotations

from cogen.common import priority
from cogen.core.proactors import (
    has_ctypes_iocp,
    has_epoll,
    has_iocp,  # noqa: F401 (unused: imported to check the original's name still exists)
    has_kqueue,
    has_poll,
    has_select,
    has_stdlib_epoll,
    has_stdlib_kqueue,
)

from ..conftest import PRIORITIES, REACTOR_NAMES


def test_priority_mixins_are_the_ones_parametrised() -> None:
    priorities = (priority.CORO, priority.OP, priority.FIRST, priority.LAST)
    assert sorted(PRIORITIES.values()) == sorted(priorities)


def test_proactors_available_are_the_reactors_parametrised() -> None:
    def has_connectex() -> bool:  # the original's fallback when win32file is missing
        return False

    proactors_available = [
        j for j in [
            i() for i in (
                has_ctypes_iocp,
                has_connectex,
                has_stdlib_kqueue,
                has_kqueue,
                has_stdlib_epoll,
                has_epoll,
                has_poll,
                has_select,
            )
        ] if j
    ]
    assert proactors_available, "select at least exists everywhere"
    assert sorted({cls.name for cls in proactors_available}) == sorted(REACTOR_NAMES)
