"""Publish/subscribe: every subscriber sees every message published after it subscribed.

Theory of operation
-------------------
Messages live in one list, ``messages``, whose first element has the
absolute index ``base``; the next message published gets index
``base + len(messages)`` (the *end*). A subscriber is nothing but its key
mapped to the absolute index of the first message it has not fetched yet, so
subscribing, fetching and publishing never copy per-subscriber data.

``fetch`` returns ``messages[position - base:]`` and moves the position to
the end, or, when there is nothing new, parks the fetching coroutine in
``_waiting`` (one parked fetch per subscriber). ``publish`` appends the
message and resumes every parked fetch with ``[message]``: a parked
subscriber is always caught up, so that is exactly what it has not seen.

Messages below every subscriber's position can never be fetched again:
``compact`` drops them by advancing ``base``. ``publish`` compacts whenever
the list has doubled since the last compaction (and holds at least
``COMPACT_MIN`` messages), so the list never holds more than about twice the
backlog of the slowest subscriber, at an amortised cost of O(1) per message
for the scan over the subscribers.

A subscription keyed by a coroutine (``key=None`` means the root coroutine of
the caller's call chain) can never fetch again once that coroutine has
finished; compaction ends such subscriptions, so a coroutine that forgot to
unsubscribe does not pin the messages for ever. Subscriptions with explicit
keys last until ``unsubscribe``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cogen.core.coroutines import Coroutine
from cogen.core.events import Operation, TimedOperation
from cogen.core.util import PENDING, USE_DEFAULT, priority
from cogen.errors import CogenError

if TYPE_CHECKING:
    from cogen.core.schedulers import Scheduler

__all__ = [
    "COMPACT_MIN",
    "NotSubscribedError",
    "PSFetch",
    "PSPublish",
    "PSSubscribe",
    "PSUnsubscribe",
    "PublishSubscribeQueue",
]

#: ``publish`` does not compact lists shorter than this (a compaction scans
#: every subscriber, so it is batched).
COMPACT_MIN = 64


class NotSubscribedError(CogenError, LookupError):
    """Raised in a coroutine that fetches for a key that is not subscribed.

    Also raised in a coroutine parked in ``fetch`` when its subscription is
    removed with ``unsubscribe``. ``.key`` is the subscriber key.
    """

    def __init__(self, key: Any, queue: Any) -> None:
        super().__init__(f"{key!r} is not subscribed to {queue!r}")
        self.key = key


def _key(key: Any, coro: Coroutine) -> Any:
    return key if key is not None else coro.root


def _shared(queue: PublishSubscribeQueue, sched: Scheduler) -> Any:
    """The broker's backend of a named queue, or None (the queue is local)."""
    if queue.name is None or sched.broker is None:
        return None
    return sched.broker.queue(queue.name)


class PSSubscribe(Operation):
    """The operation :meth:`PublishSubscribeQueue.subscribe` returns.

    Result: True if the key was not subscribed before, False if it was (its
    position is then kept).
    """

    __slots__ = ("key", "queue")

    def __init__(self, queue: PublishSubscribeQueue, key: Any = None, prio: int = priority.DEFAULT) -> None:
        Operation.__init__(self, prio)
        self.queue = queue
        self.key = key

    def process(self, sched: Scheduler, coro: Coroutine) -> Any:
        shared = _shared(self.queue, sched)
        if shared is not None:
            return shared.subscribe(self.key).process(sched, coro)
        return self.queue._subscribe(_key(self.key, coro))


class PSUnsubscribe(Operation):
    """The operation :meth:`PublishSubscribeQueue.unsubscribe` returns.

    Result: True if the key was subscribed, False if it was not.
    """

    __slots__ = ("key", "queue")

    def __init__(self, queue: PublishSubscribeQueue, key: Any = None, prio: int = priority.DEFAULT) -> None:
        Operation.__init__(self, prio)
        self.queue = queue
        self.key = key

    def process(self, sched: Scheduler, coro: Coroutine) -> Any:
        shared = _shared(self.queue, sched)
        if shared is not None:
            return shared.unsubscribe(self.key).process(sched, coro)
        return self.queue._unsubscribe(_key(self.key, coro))


class PSPublish(Operation):
    """The operation :meth:`PublishSubscribeQueue.publish` returns.

    Result: the number of parked fetches it woke.
    """

    __slots__ = ("message", "queue")

    def __init__(self, queue: PublishSubscribeQueue, message: Any, prio: int = priority.DEFAULT) -> None:
        Operation.__init__(self, prio)
        self.queue = queue
        self.message = message

    def process(self, sched: Scheduler, coro: Coroutine) -> Any:
        shared = _shared(self.queue, sched)
        if shared is not None:
            return shared.publish(self.message).process(sched, coro)
        prio = self.prio if self.prio >= 0 else sched.default_priority
        return self.queue._publish(self.message, bool(prio & priority.OP))


class PSFetch(TimedOperation):
    """The operation :meth:`PublishSubscribeQueue.fetch` returns.

    Result: the list of messages the subscriber has not fetched yet.
    """

    __slots__ = ("_parked_key", "key", "queue")

    def __init__(self, queue: PublishSubscribeQueue, key: Any = None, timeout: Any = USE_DEFAULT,
                 prio: int = priority.DEFAULT) -> None:
        TimedOperation.__init__(self, timeout, prio)
        self.queue = queue
        self.key = key
        self._parked_key: Any = None

    def process(self, sched: Scheduler, coro: Coroutine) -> Any:
        shared = _shared(self.queue, sched)
        if shared is not None:
            timeout = self.timeout
            if timeout is USE_DEFAULT:
                timeout = sched.default_timeout
            # the shared fetch bounds its own wait: no second deadline on this operation
            self.timeout = None
            return shared.fetch(self.key, timeout).process(sched, coro)
        queue = self.queue
        key = _key(self.key, coro)
        position = queue.subscribers.get(key)
        if position is None:
            raise NotSubscribedError(key, queue)
        end = queue.base + len(queue.messages)
        if position < end:
            queue.subscribers[key] = end
            return queue.messages[position - queue.base:]
        previous = queue._waiting.get(key)
        if previous is not None:
            # A newer fetch for the same subscriber takes over (a web client
            # that reconnected while its old request was still parked); the
            # old one completes with nothing rather than failing.
            previous[0].resume(previous[1], [])
        queue._waiting[key] = (sched, coro)
        self._parked_key = key
        return PENDING

    def cleanup(self, sched: Scheduler, coro: Coroutine) -> None:
        waiting = self.queue._waiting
        parked = waiting.get(self._parked_key)
        if parked is not None and parked[1] is coro:
            del waiting[self._parked_key]

    def __repr__(self) -> str:
        return f"<PSFetch key={self.key!r} from {self.queue!r}>"


class PublishSubscribeQueue:
    """A message queue in which every subscriber gets every message.

    Subscribers are identified by a key: any hashable object given
    explicitly (so that successive coroutines, e.g. the requests of one web
    client, can be one subscriber), or, with ``key=None``, the root coroutine
    of the calling coroutine's call chain. A subscriber sees the messages
    published after it subscribed, in order.

    ``subscribe``, ``unsubscribe``, ``publish`` and ``fetch`` return
    operations to yield::

        yield q.subscribe()
        yield q.publish("hello")
        messages = yield q.fetch(timeout=30)   # ["hello"]

    Not thread-safe: use it from the scheduler's thread.

    With ``name``, and a scheduler with a broker (``Scheduler(broker=...)``,
    ``cogen-web --broker``), the queue is shared by every process using
    the broker: its messages are kept by the broker (a Redis stream, see
    :mod:`cogen.redis.broker`), so a subscriber's successive fetches, served
    by any process, see every message once and in order. Keys must then be
    ``str`` and messages ``bytes``, ``str`` or JSON-serialisable;
    ``publish`` returns the number of subscribers. Without a broker a named
    queue is a local one like any other.
    """

    def __init__(self, name: str | None = None) -> None:
        if name is not None and not isinstance(name, str):
            raise TypeError(f"a queue name is a str, not {name!r}")
        #: The name the queue is shared under through a broker (None: never shared).
        self.name = name
        #: The messages some subscriber has not fetched yet (and, between
        #: compactions, some that every subscriber has).
        self.messages: list[Any] = []
        #: The absolute index of ``messages[0]``.
        self.base = 0
        #: Subscriber key -> absolute index of its first unfetched message.
        self.subscribers: dict[Any, int] = {}
        self._waiting: dict[Any, tuple[Scheduler, Coroutine]] = {}
        self._compact_at = COMPACT_MIN

    def subscribe(self, key: Any = None, prio: int = priority.DEFAULT) -> PSSubscribe:
        """Return an operation that subscribes ``key`` (None: the calling coroutine).

        The subscriber will see the messages published from now on.
        Subscribing a key that is already subscribed changes nothing (it
        keeps its unfetched messages). Result: True if the key was new.
        """
        return PSSubscribe(self, key, prio)

    def unsubscribe(self, key: Any = None, prio: int = priority.DEFAULT) -> PSUnsubscribe:
        """Return an operation that ends the subscription of ``key`` (None: the calling coroutine).

        A fetch parked for that key gets :class:`NotSubscribedError`. When
        the last subscriber leaves, the stored messages are dropped.
        Result: True if the key was subscribed, False if it was not.
        """
        return PSUnsubscribe(self, key, prio)

    def publish(self, message: Any, prio: int = priority.DEFAULT) -> PSPublish:
        """Return an operation that publishes ``message`` to every subscriber.

        Parked fetches are woken with ``[message]`` (at the front of the run
        queue with the ``priority.OP`` bit). With no subscriber the message
        is dropped at once. Result: the number of parked fetches woken.
        """
        return PSPublish(self, message, prio)

    def fetch(self, key: Any = None, timeout: Any = USE_DEFAULT, prio: int = priority.DEFAULT) -> PSFetch:
        """Return an operation that gets the messages ``key`` has not fetched yet.

        Result: a new list with all of them, oldest first. When there is none
        the coroutine parks until one is published (at most ``timeout``
        seconds, then ``OperationTimeout``; a timed-out fetch loses nothing).
        Raises :class:`NotSubscribedError` in the coroutine if ``key`` (None:
        the calling coroutine) is not subscribed. A second fetch for a key
        that already has one parked takes its place: the older one completes
        with an empty list.
        """
        return PSFetch(self, key, timeout, prio)

    def compact(self) -> int:
        """Drop the messages every subscriber has fetched; return how many.

        Also ends subscriptions keyed by a coroutine that has finished. With
        no subscriber left every message is dropped. ``publish`` calls this
        as needed, so calling it by hand is only a way to free memory sooner.
        """
        subscribers = self.subscribers
        finished = [key for key in subscribers
                    if isinstance(key, Coroutine) and not key.running and key not in self._waiting]
        for key in finished:
            del subscribers[key]
        if subscribers:
            dropped = min(subscribers.values()) - self.base
        else:
            dropped = len(self.messages)
        if dropped:
            del self.messages[:dropped]
            self.base += dropped
        self._compact_at = max(COMPACT_MIN, 2 * len(self.messages))
        return dropped

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} messages={len(self.messages)} "
                f"subscribers={len(self.subscribers)} waiting={len(self._waiting)}>")

    # -- what the operations do -------------------------------------------------------
    def _subscribe(self, key: Any) -> bool:
        if key in self.subscribers:
            return False
        self.subscribers[key] = self.base + len(self.messages)
        return True

    def _unsubscribe(self, key: Any) -> bool:
        if self.subscribers.pop(key, None) is None:
            return False
        parked = self._waiting.pop(key, None)
        if parked is not None:
            parked[0].throw(parked[1], NotSubscribedError(key, self))
        if not self.subscribers:
            self.compact()
        return True

    def _publish(self, message: Any, first: bool) -> int:
        messages = self.messages
        if not self.subscribers:
            self.base += len(messages) + 1
            messages.clear()
            return 0
        messages.append(message)
        waiting = self._waiting
        woken = len(waiting)
        if waiting:
            self._waiting = {}
            end = self.base + len(messages)
            subscribers = self.subscribers
            # With ``first`` each resume goes to the front of the run queue,
            # so wake in reverse to keep the subscription order.
            parked = reversed(waiting.items()) if first else waiting.items()
            for key, (sched, coro) in parked:
                subscribers[key] = end
                sched.resume(coro, [message], first)
        if len(messages) >= self._compact_at:
            self.compact()
        return woken
