"""The Redis broker: ``Signal`` and ``PublishSubscribeQueue(name=...)`` across processes.

Theory of operation
-------------------
Every process sharing a broker runs one *listener* coroutine subscribed to
the Redis channel ``<prefix>signal``. A ``Signal(name, value)`` with a
``str``/``bytes`` name wakes this process's waiters at once, then
``PUBLISH`` es ``{origin, name, value}`` (JSON) on that channel; every other
process's listener wakes its own waiters with the value (a process skips
the messages it sent). The signalling coroutine resumes when Redis has
acknowledged the publish. Its result is the number of coroutines woken in
this process plus the number of *other processes* the signal reached (each
woke its own waiters; how many, this process cannot know). If Redis cannot
be reached within the Signal's timeout (the scheduler's default, else
:attr:`RedisBroker.publish_timeout`) the signalling coroutine gets
:class:`BrokerError`; this process's waiters were woken all the same.

Values cross as ``bytes``, ``str`` or JSON-serialisable objects (``None``,
numbers, lists, dicts with str keys...; tuples arrive as lists). Anything
else raises ``TypeError`` at the Signal, before anything is woken.

A ``PublishSubscribeQueue(name=...)`` is a Redis stream ``<prefix>q:<name>``
(``XADD ... MAXLEN ~ stream_maxlen``) plus a hash of its subscribers' keys,
each mapped to the id of the last entry it fetched. ``fetch`` reads the
entries after that id (``XREAD``) and moves the id on before returning, so
successive fetches of one key, in any process, see every message once and
in order (after a Redis failure at the wrong moment, a fetch may return
again messages the previous one returned: at least once, never lost). A
fetch with nothing to read parks; one reader coroutine per
queue and process then waits in ``XREAD BLOCK`` and hands new entries to
the parked fetches. Keys must be ``str`` (an explicit subscriber id:
the coroutine default cannot cross processes).

Faults: when Redis goes away, the listener logs one warning, retries with
backoff (``reconnect_backoff`` doubling up to ``max_backoff``) and
subscribes again, logging once more when it is back. Parked waiters keep
waiting up to their own timeouts; signals sent by other processes meanwhile
are lost (Redis pub/sub keeps nothing), stream messages are not: an
``XADD`` Redis acknowledged is fetched after recovery, as long as Redis kept
it (a restart without persistence empties it).
"""
from __future__ import annotations

import base64
import json
import logging
import os
import uuid
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from cogen.core.coroutines import coroutine
from cogen.core.events import OperationTimeout, Signal, Sleep, TimedOperation, WaitForSignal
from cogen.core.util import PENDING, USE_DEFAULT
from cogen.redis.client import Redis
from cogen.redis.connection import ConnectionPool
from cogen.redis.errors import ConnectionError, RedisError
from cogen.redis.pubsub import PubSub

if TYPE_CHECKING:
    from cogen.core.coroutines import Coroutine
    from cogen.core.schedulers import Scheduler

__all__ = ["BrokerError", "RedisBroker", "StreamQueue", "decode_value", "encode_value"]

log = logging.getLogger("cogen.broker")


class BrokerError(ConnectionError):
    """The broker could not reach Redis in time (a Signal's publish, a queue operation).

    The cause (a connection error or a timeout) is chained as ``__cause__``.
    """


# -- values --------------------------------------------------------------------------
def encode_value(value: Any) -> Any:
    """The JSON-ready form of a value that crosses processes.

    Raises:
        TypeError: not ``bytes``, ``str`` or JSON-serialisable.
    """
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"b": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, str):
        return {"s": value}
    try:
        json.dumps(value, allow_nan=True)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"a value of type {type(value).__name__} ({value!r:.60}) cannot cross processes: "
                        f"give bytes, str or a JSON-serialisable object ({exc})") from None
    return {"j": value}


def decode_value(data: Any) -> Any:
    """The value :func:`encode_value` encoded."""
    if "b" in data:
        return base64.b64decode(data["b"])
    if "s" in data:
        return data["s"]
    return data["j"]


def _ms_seq(entry_id: Any) -> tuple[int, int]:
    text = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


# A fetch moves its subscriber's position on only if it is still subscribed
# (an unsubscribe meanwhile must not be undone) and only forwards.
_ADVANCE = """
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"""


class RedisBroker:
    """A broker through one Redis server (see the module docstring).

    Args:
        redis: a Redis URL or a :class:`~cogen.redis.Redis` client.
        prefix: the prefix of every key and channel the broker uses.
        publish_timeout: the longest a Signal waits for Redis when neither
            it nor the scheduler sets a timeout.
        stream_maxlen: roughly how many messages a named queue's stream keeps.
        reconnect_backoff, max_backoff: the listener's retry delays.
    """

    def __init__(self, redis: str | Redis, prefix: str = "cogen:", publish_timeout: float = 5.0,
                 stream_maxlen: int = 10000, reconnect_backoff: float = 0.1,
                 max_backoff: float = 2.0) -> None:
        if isinstance(redis, str):
            redis = Redis.from_url(redis, retries=1)
        self.redis = redis
        # Parked XREAD BLOCKs hold a connection each: a pool of their own.
        self.blocking = Redis(connection_pool=ConnectionPool(redis.params, 4096), retries=0)
        self.prefix = prefix
        self.channel = prefix + "signal"
        self.publish_timeout = publish_timeout
        self.stream_maxlen = stream_maxlen
        self.reconnect_backoff = reconnect_backoff
        self.max_backoff = max_backoff
        #: Named queues are shared (apps may test ``sched.broker.is_shared``).
        self.is_shared = True
        #: True while the listener is subscribed, False during an outage, None before it first tried.
        self.is_up: bool | None = None
        self._sched: Scheduler | None = None
        self._pubsub: PubSub | None = None
        self._queues: dict[str, StreamQueue] = {}
        self._closed = False
        self._origin_pid = -1
        self._wake_key = (self, "wake")  # not a str: never crosses processes
        self._origin = ""

    def __repr__(self) -> str:
        return f"<cogen.redis.RedisBroker {self.redis.params.describe()} up={self.is_up}>"

    @property
    def origin(self) -> str:
        """This process's id in the messages it sends (new after a fork)."""
        if self._origin_pid != os.getpid():
            self._origin_pid = os.getpid()
            self._origin = f"{os.getpid()}-{uuid.uuid4().hex}"
        return self._origin

    # -- the Broker interface -----------------------------------------------------------
    def attach(self, sched: Scheduler) -> None:
        """Add the listener coroutine to ``sched`` (it connects when the scheduler runs)."""
        if self._sched is not None:
            raise RuntimeError(f"{self!r} already serves {self._sched!r}")
        self._sched = sched
        sched.add(self._listen)

    def signal(self, op: Signal, sched: Scheduler, coro: Coroutine) -> Any:
        """Wake the local waiters, publish to the other processes; see the module docstring."""
        name = op.name
        if not isinstance(name, (str, bytes)):
            return op.fire(sched)
        message = {"o": self.origin, "n": encode_value(name), "v": encode_value(op.value)}
        payload = json.dumps(message, separators=(",", ":"))
        woken = op.fire(sched)
        timeout = op.timeout
        if timeout is USE_DEFAULT:
            timeout = sched.default_timeout
        if timeout is None:
            timeout = self.publish_timeout
        # The publish below is bounded by this timeout itself: the scheduler
        # must not arm a second deadline on the Signal (it would resume the
        # coroutine while the publish is still running for it).
        op.timeout = None
        return self._publish(name, payload, woken, timeout).process(sched, coro)

    def queue(self, name: str) -> StreamQueue:
        """The stream-backed queue named ``name``."""
        q = self._queues.get(name)
        if q is None:
            q = self._queues[name] = StreamQueue(self, name)
        return q

    def close(self) -> None:
        """Stop the listener and close the connections."""
        if self._closed:
            return
        self._closed = True
        if self._sched is not None:
            Signal(self._wake_key).fire(self._sched)  # a listener waiting to retry stops now
        if self._pubsub is not None:
            self._pubsub.close()
        self.redis.close()
        self.blocking.close()

    # -- signals ------------------------------------------------------------------------
    @coroutine
    def _publish(self, name: Any, payload: str, woken: int, timeout: float) -> Generator[Any, Any, int]:
        # Our own listener counts among the receivers if it was subscribed
        # (acknowledged) before the publish was sent.
        was_up = self.is_up is True
        try:
            receivers = yield self.redis.execute("PUBLISH", self.channel, payload, timeout=timeout)
        except (RedisError, OperationTimeout) as exc:
            raise BrokerError(f"Signal({name!r}) reached this process only: the broker's Redis at "
                              f"{self.redis.params.describe()} did not take it within {timeout}s "
                              f"({exc})") from exc
        if was_up:
            receivers -= 1
        return woken + max(0, int(receivers))

    @coroutine
    def _listen(self) -> Generator[Any, Any, None]:
        """Receive other processes' signals; reconnect with backoff, forever."""
        delay = self.reconnect_backoff
        where = self.redis.params.describe()
        while not self._closed:
            try:
                if self._pubsub is None:
                    self._pubsub = self.redis.pubsub()
                    yield self._pubsub.subscribe(self.channel)
                msg = yield self._pubsub.get_message(timeout=None)
            except RedisError as exc:
                if self._closed:
                    return
                if self.is_up is not False:
                    log.warning("broker: lost Redis at %s (%s); signals from other processes are not "
                                "delivered until it is back; retrying", where, exc)
                    self.is_up = False
                try:  # a Sleep that close() can cut short
                    yield WaitForSignal(self._wake_key, timeout=delay)
                except OperationTimeout:
                    pass
                delay = min(self.max_backoff, delay * 2)
                continue
            if msg is None:
                continue
            kind = msg["type"]
            if kind == "subscribe":
                if self.is_up is False:
                    log.info("broker: Redis at %s is back; signals cross processes again", where)
                self.is_up = True
                delay = self.reconnect_backoff
            elif kind == "message":
                self._deliver(msg["data"])

    def _deliver(self, data: Any) -> None:
        try:
            message = json.loads(data)
            if message["o"] == self.origin:
                return
            name, value = decode_value(message["n"]), decode_value(message["v"])
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("broker: ignored a malformed message on %s: %r (%s)", self.channel, data[:200], exc)
            return
        sched = self._sched
        if sched is not None:
            Signal(name, value).fire(sched)


class _Park(TimedOperation):
    """Park a fetch until the queue's reader hands it entries; result: the entries."""

    __slots__ = ("key", "position", "queue")

    def __init__(self, queue: StreamQueue, key: str, position: tuple[int, int], timeout: Any) -> None:
        TimedOperation.__init__(self, timeout)
        self.queue = queue
        self.key = key
        self.position = position

    def process(self, sched: Scheduler, coro: Coroutine) -> Any:
        return self.queue._park(self, sched, coro)

    def cleanup(self, sched: Scheduler, coro: Coroutine) -> None:
        parked = self.queue._waiting.get(self.key)
        if parked is not None and parked[1] is coro:
            del self.queue._waiting[self.key]


class StreamQueue:
    """The shared backend of ``PublishSubscribeQueue(name=...)`` under a :class:`RedisBroker`.

    Its methods are coroutines with the results of the queue's operations
    (see :class:`cogen.core.pubsub.PublishSubscribeQueue`), except that
    ``publish`` returns the number of subscribers (in every process), and
    that messages must be ``bytes``, ``str`` or JSON-serialisable.
    """

    def __init__(self, broker: RedisBroker, name: str) -> None:
        self.broker = broker
        self.name = name
        self.stream = f"{broker.prefix}q:{name}"
        self.subscribers_key = f"{broker.prefix}q:{name}:subs"
        self._waiting: dict[str, tuple[Scheduler, Coroutine, _Park]] = {}
        self._reader_running = False

    def __repr__(self) -> str:
        return f"<cogen.redis.StreamQueue {self.stream!r} parked={len(self._waiting)}>"

    @staticmethod
    def _check_key(key: Any) -> str:
        if not isinstance(key, str):
            raise TypeError(f"a PublishSubscribeQueue shared through a broker needs str subscriber keys, "
                            f"not {key!r}")
        return key

    @coroutine
    def _run(self, what: str, *args: Any) -> Generator[Any, Any, Any]:
        try:
            return (yield self.broker.redis.execute(*args, timeout=self.broker.publish_timeout))
        except (ConnectionError, OperationTimeout) as exc:
            raise BrokerError(f"{what} on queue {self.name!r}: the broker's Redis did not answer "
                              f"({exc})") from exc

    @coroutine
    def subscribe(self, key: Any) -> Generator[Any, Any, bool]:
        """Subscribe ``key`` from the stream's current end; True if it was new."""
        key = self._check_key(key)
        last = yield self._run("subscribe", "XREVRANGE", self.stream, "+", "-", "COUNT", 1)
        position = last[0][0] if last else b"0-0"
        return bool((yield self._run("subscribe", "HSETNX", self.subscribers_key, key, position)))

    @coroutine
    def unsubscribe(self, key: Any) -> Generator[Any, Any, bool]:
        """End ``key``'s subscription; a fetch parked for it here gets NotSubscribedError."""
        from cogen.core.pubsub import NotSubscribedError

        key = self._check_key(key)
        removed = yield self._run("unsubscribe", "HDEL", self.subscribers_key, key)
        parked = self._waiting.pop(key, None)
        if parked is not None:
            parked[0].throw(parked[1], NotSubscribedError(key, self))
        return bool(removed)

    @coroutine
    def publish(self, message: Any) -> Generator[Any, Any, int]:
        """``XADD`` the message (trimmed to about ``stream_maxlen``); result: the number of subscribers."""
        payload = json.dumps(encode_value(message), separators=(",", ":"))
        pipe = self.broker.redis.pipeline(transaction=True)
        pipe.xadd(self.stream, {"m": payload}, maxlen=self.broker.stream_maxlen)
        pipe.execute_command("HLEN", self.subscribers_key)
        try:
            _id, count = yield pipe.execute(timeout=self.broker.publish_timeout)
        except (ConnectionError, OperationTimeout) as exc:
            raise BrokerError(f"publish on queue {self.name!r}: the broker's Redis did not take it "
                              f"({exc})") from exc
        return int(count)

    @coroutine
    def fetch(self, key: Any, timeout: Any = USE_DEFAULT) -> Generator[Any, Any, list[Any]]:
        """The messages after ``key``'s position, oldest first; parks (up to ``timeout``) if none."""
        from cogen.core.pubsub import NotSubscribedError

        key = self._check_key(key)
        position = yield self._run("fetch", "HGET", self.subscribers_key, key)
        if position is None:
            raise NotSubscribedError(key, self)
        raw = yield self._run("fetch", "XRANGE", self.stream, b"(" + position, "+", "COUNT", 1000)
        entries = [(e[0], _payload(e[1])) for e in raw]
        if not entries:
            entries = yield _Park(self, key, _ms_seq(position), timeout)
        if not entries:
            return []
        try:
            yield self._run("fetch", "EVAL", _ADVANCE, 1, self.subscribers_key, key, entries[-1][0])
        except BrokerError as exc:
            # Redis failed while moving the position on: it may or may not
            # have done it. Deliver what was read anyway; if the position did
            # not move, the next fetch returns these messages again (at least
            # once rather than lost).
            log.debug("broker: %s; the next fetch of %r may repeat %d messages", exc, key, len(entries))
        return [decode_value(json.loads(payload)) for _id, payload in entries]

    # -- parking ------------------------------------------------------------------------
    def _park(self, op: _Park, sched: Scheduler, coro: Coroutine) -> Any:
        previous = self._waiting.get(op.key)
        if previous is not None:
            previous[0].resume(previous[1], [])  # a newer fetch of the same key takes over
        self._waiting[op.key] = (sched, coro, op)
        if not self._reader_running:
            self._reader_running = True
            sched.add(self._reader, args=(op.position,))
        return PENDING

    @coroutine
    def _reader(self, start: tuple[int, int]) -> Generator[Any, Any, None]:
        """Wait in XREAD BLOCK while fetches are parked; hand them the new entries."""
        last = start
        try:
            while self._waiting and not self.broker._closed:
                low = min([last] + [p[2].position for p in self._waiting.values()])
                try:
                    reply = yield self.broker.blocking.xread({self.stream: f"{low[0]}-{low[1]}"}, count=1000,
                                                             block=1000)
                except RedisError as exc:
                    log.debug("broker: XREAD on %s failed (%s); retrying", self.stream, exc)
                    yield Sleep(self.broker.reconnect_backoff)
                    continue
                if not reply:
                    continue
                entries = reply[0][1]
                last = _ms_seq(entries[-1][0])
                for key, (sched, coro, op) in list(self._waiting.items()):
                    new = [e for e in entries if _ms_seq(e[0]) > op.position]
                    if new:
                        del self._waiting[key]
                        sched.resume(coro, [(e[0], _payload(e[1])) for e in new])
        finally:
            self._reader_running = False


def _payload(fields_: Any) -> Any:
    """The ``m`` field of a stream entry (a flat field list, or a dict once parsed)."""
    if isinstance(fields_, dict):
        return fields_[b"m"]
    return fields_[list(fields_[::2]).index(b"m") * 2 + 1]
