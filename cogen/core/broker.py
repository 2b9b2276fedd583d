"""Brokers: how ``Signal`` and named ``PublishSubscribeQueue`` s cross processes.

A scheduler made with ``Scheduler(broker=...)`` hands two things to its
broker, and nothing else changes:

- a ``Signal`` (without ``recipients=``) whose name is a ``str`` or
  ``bytes``: the broker wakes this process's waiters and sends the signal to
  every other process sharing the broker, whose own broker wakes theirs;
  signals with other names (objects, tuples: what the server uses
  internally) stay in the process;
- the operations of a ``PublishSubscribeQueue(name=...)``: the broker keeps
  the queue's messages and subscribers where every process sees them.

A broker is any object with the methods of :class:`Broker`;
:func:`resolve` also accepts a Redis URL (``redis://``, ``rediss://``,
``unix://``), for :class:`cogen.redis.broker.RedisBroker`. The core itself
needs nothing from Redis.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from cogen.core.coroutines import Coroutine
    from cogen.core.events import Signal
    from cogen.core.schedulers import Scheduler

__all__ = ["Broker", "LocalOnlyWarning", "crosses", "install", "resolve"]

log = logging.getLogger("cogen.broker")

_URL_SCHEMES = ("redis://", "rediss://", "unix://")


class Broker(Protocol):
    """What a scheduler asks of its broker."""

    #: True if named queues and signals reach other processes through it.
    is_shared: bool

    def attach(self, sched: Scheduler) -> None:
        """Start serving ``sched`` (e.g. add the coroutine that receives other processes' signals)."""

    def signal(self, op: Signal, sched: Scheduler, coro: Coroutine) -> Any:
        """Carry out ``op`` for ``coro``, as ``Signal.process`` would; returns its result or PENDING."""

    def queue(self, name: str) -> Any:
        """The shared backend of ``PublishSubscribeQueue(name=name)``."""

    def close(self) -> None:
        """Stop serving; called by ``Scheduler.close()``."""


def crosses(name: Any) -> bool:
    """True if a signal with this name crosses processes under a broker (a ``str`` or ``bytes``)."""
    return isinstance(name, (str, bytes))


def resolve(broker: Any) -> Any:
    """The broker object for ``Scheduler(broker=...)``: None, a broker, or a Redis URL.

    Raises:
        ValueError: a string that is not a Redis URL.
        TypeError: an object without the :class:`Broker` methods.
    """
    if broker is None:
        return None
    if isinstance(broker, str):
        if not broker.startswith(_URL_SCHEMES):
            raise ValueError(f"invalid broker {broker!r}: give a redis://, rediss:// or unix:// URL")
        from cogen.redis.broker import RedisBroker

        return RedisBroker(broker)
    missing = [m for m in ("attach", "signal", "queue", "close") if not callable(getattr(broker, m, None))]
    if missing:
        raise TypeError(f"{broker!r} is not a broker: it has no {', '.join(missing)} method")
    return broker


class LocalOnlyWarning:
    """A stand-in broker for a worker of several with none configured.

    The first ``Signal`` that would cross processes logs one warning (its
    waiters in other workers will not wake; how to configure a broker), then
    this object removes itself: later signals take the scheduler's fast path.
    """

    #: Nothing is shared: named queues stay local.
    is_shared = False

    def __init__(self, workers: int) -> None:
        self.workers = workers

    def attach(self, sched: Scheduler) -> None:
        """Nothing to start."""

    def signal(self, op: Signal, sched: Scheduler, coro: Coroutine) -> Any:
        """Fire ``op`` locally; the first time for a str/bytes name, warn and step aside."""
        if crosses(op.name) and sched.broker is self:
            sched.broker = None
            log.warning("Signal(%r) reaches the coroutines of this worker only (pid %d, one of %d "
                        "workers): configure a broker (cogen-web --broker redis://host:6379/0) so that "
                        "signals reach every worker", op.name, _getpid(), self.workers)
        return op.fire(sched)

    def queue(self, name: str) -> Any:
        """No shared backend: the queue stays local."""
        return None

    def close(self) -> None:
        """Nothing to stop."""


def _getpid() -> int:
    import os

    return os.getpid()


def install(sched: Scheduler, broker: Any) -> Any:
    """Give ``sched`` the broker ``broker`` (an object or a Redis URL) unless it has a real one.

    For servers handed an existing scheduler: a scheduler already with a
    broker keeps it (several servers share one scheduler), a
    :class:`LocalOnlyWarning` stand-in is replaced. Returns the scheduler's broker.
    """
    current = sched.broker
    if current is not None and not isinstance(current, LocalOnlyWarning):
        return current
    resolved = resolve(broker)
    if resolved is None:
        return current
    sched.broker = resolved
    resolved.attach(sched)
    sched.on_close(resolved.close)
    return resolved
