"""The reactors under the original cogen's later (0.2.x) names.

``has_select()``, ``has_poll()``, ``has_stdlib_epoll()``,
``has_stdlib_kqueue()`` and ``has_any()`` return a reactor class or None
(``has_iocp()`` and ``has_ctypes_iocp()``, the original's Windows backends,
always None);
``DefaultProactor`` is the best one on this platform. Pass any of them as
``Scheduler(proactor=...)``.
"""
from __future__ import annotations

from cogen.core.reactors import (
    DefaultReactor,
    EpollReactor,
    KQueueReactor,
    PollReactor,
    Reactor,
    SelectReactor,
    has_epoll,
    has_iocp,
    has_kqueue,
    has_poll,
    has_select,
)

__all__ = [
    "DefaultProactor",
    "EpollProactor",
    "KQueueProactor",
    "PollProactor",
    "ProactorBase",
    "SelectProactor",
    "StdlibEpollProactor",
    "StdlibKQueueProactor",
    "has_any",
    "has_ctypes_iocp",
    "has_epoll",
    "has_iocp",
    "has_kqueue",
    "has_poll",
    "has_select",
    "has_stdlib_epoll",
    "has_stdlib_kqueue",
]

has_stdlib_epoll = has_epoll
has_stdlib_kqueue = has_kqueue
has_ctypes_iocp = has_iocp


def has_any() -> type[Reactor]:
    """The best reactor class this platform has."""
    return DefaultReactor


ProactorBase = Reactor
SelectProactor = SelectReactor
PollProactor = PollReactor
EpollProactor = StdlibEpollProactor = EpollReactor
KQueueProactor = StdlibKQueueProactor = KQueueReactor
DefaultProactor = DefaultReactor
