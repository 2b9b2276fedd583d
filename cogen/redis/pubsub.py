"""Redis pub/sub on a dedicated connection, with redis-py's message shapes.

::

    p = r.pubsub()
    yield p.subscribe("news")
    msg = yield p.get_message(timeout=5)
    # {'type': 'subscribe', 'pattern': None, 'channel': b'news', 'data': 1}

A message is a dict: ``type`` (a ``str``: ``'subscribe'``, ``'message'``,
``'psubscribe'``, ``'pmessage'``, ``'unsubscribe'``, ``'punsubscribe'``,
``'pong'``), ``pattern`` (the matching pattern of a ``pmessage``, else
None), ``channel`` and ``data`` (the payload, or the subscription count of a
(un)subscribe confirmation). With RESP3 the messages are pushes; the shapes
are the same.

If the connection breaks, the call that noticed raises
:class:`~cogen.redis.errors.ConnectionError`; the next call reconnects and
subscribes again to every channel and pattern (their confirmations arrive as
ordinary ``subscribe``/``psubscribe`` messages). Messages published while
the connection was down are lost: that is Redis pub/sub (use a stream for
messages that must not be lost).
"""
from __future__ import annotations

from collections.abc import Generator
from typing import Any

from cogen.core.coroutines import coroutine
from cogen.redis.connection import Connection, ConnectionParams, Deadline, classify_error
from cogen.redis.errors import ResponseError, TimeoutError
from cogen.redis.resp import encode_command

__all__ = ["PubSub"]

_KINDS = frozenset({"message", "pmessage", "subscribe", "unsubscribe", "psubscribe", "punsubscribe",
                    "pong", "smessage", "ssubscribe", "sunsubscribe"})


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _key(value: Any) -> Any:
    """Channel names as the server echoes them back (bytes, or str when decoding)."""
    return value.encode() if isinstance(value, str) else value


class PubSub:
    """Subscriptions on one connection of their own; see the module docstring.

    Args:
        params: the connection parameters (``Redis.pubsub()`` passes its own).
    """

    def __init__(self, params: ConnectionParams) -> None:
        self.params = params
        self.connection = Connection(params)
        self.channels: set[Any] = set()
        self.patterns: set[Any] = set()

    def __repr__(self) -> str:
        return f"<cogen.redis.PubSub {self.params.describe()} channels={len(self.channels)} " \
               f"patterns={len(self.patterns)}>"

    @property
    def subscribed(self) -> bool:
        """True while subscribed to a channel or a pattern."""
        return bool(self.channels or self.patterns)

    @coroutine
    def _ensure(self, deadline: Deadline) -> Generator[Any, Any, None]:
        conn = self.connection
        if conn.is_connected:
            return
        yield conn.connect(deadline)
        cmds = []
        if self.channels:
            cmds.append(("SUBSCRIBE", *sorted(self.channels)))
        if self.patterns:
            cmds.append(("PSUBSCRIBE", *sorted(self.patterns)))
        if cmds:
            yield conn.send(b"".join(encode_command(*c) for c in cmds), deadline)

    @coroutine
    def _send(self, deadline: Deadline, command: str, names: tuple[Any, ...],
              subscriptions: set[Any] | None, adding: bool) -> Generator[Any, Any, None]:
        """Send one (un)subscribe command, then record the change in ``subscriptions``.

        Recorded after ``_ensure``, so that a reconnect does not subscribe
        to the new names twice.
        """
        yield self._ensure(deadline)
        yield self.connection.send(encode_command(command, *names), deadline)
        if subscriptions is None:
            return
        if adding:
            subscriptions.update(_key(n) for n in names)
        elif names:
            subscriptions.difference_update(_key(n) for n in names)
        else:
            subscriptions.clear()

    def subscribe(self, *channels: Any, timeout: float | None = 10.0) -> Any:
        """A coroutine that subscribes to ``channels`` (the confirmations come as messages)."""
        if not channels:
            raise ValueError("subscribe needs at least one channel")
        return self._send(Deadline("SUBSCRIBE", timeout), "SUBSCRIBE", channels, self.channels, True)

    def psubscribe(self, *patterns: Any, timeout: float | None = 10.0) -> Any:
        """A coroutine that subscribes to the glob-style ``patterns``."""
        if not patterns:
            raise ValueError("psubscribe needs at least one pattern")
        return self._send(Deadline("PSUBSCRIBE", timeout), "PSUBSCRIBE", patterns, self.patterns, True)

    def unsubscribe(self, *channels: Any, timeout: float | None = 10.0) -> Any:
        """A coroutine that unsubscribes from ``channels`` (all, if none given)."""
        return self._send(Deadline("UNSUBSCRIBE", timeout), "UNSUBSCRIBE", channels, self.channels, False)

    def punsubscribe(self, *patterns: Any, timeout: float | None = 10.0) -> Any:
        """A coroutine that unsubscribes from ``patterns`` (all, if none given)."""
        return self._send(Deadline("PUNSUBSCRIBE", timeout), "PUNSUBSCRIBE", patterns, self.patterns, False)

    def ping(self, timeout: float | None = 10.0) -> Any:
        """A coroutine that sends ``PING``; its answer comes as a ``pong`` message."""
        return self._send(Deadline("PING", timeout), "PING", (), None, False)

    @coroutine
    def get_message(self, timeout: float | None = 0.0,
                    ignore_subscribe_messages: bool = False) -> Generator[Any, Any, dict[str, Any] | None]:
        """The next message, waiting up to ``timeout`` seconds (None: forever); None if none came.

        With ``ignore_subscribe_messages`` the (un)subscribe confirmations are
        skipped. Raises :class:`~cogen.redis.errors.ConnectionError` if the
        connection broke (the next call reconnects and resubscribes).
        """
        # Connecting (after a failure: reconnecting and subscribing again) is
        # bounded on its own, so that timeout=0 polls and timeout=None waits
        # both get a working connection or an error.
        yield self._ensure(Deadline("pub/sub connect", self.params.socket_connect_timeout or 10.0))
        deadline = Deadline("pub/sub read", timeout)
        while True:
            try:
                reply = yield self.connection.read_reply(deadline, keep_pushes=False, timeout_closes=False)
            except TimeoutError:
                return None
            msg = self._to_message(reply)
            if msg is None:
                continue
            if ignore_subscribe_messages and msg["type"] not in ("message", "pmessage", "smessage", "pong"):
                continue
            return msg

    def _to_message(self, reply: Any) -> dict[str, Any] | None:
        if isinstance(reply, ResponseError):
            raise classify_error(reply)
        if not isinstance(reply, list) or not reply:
            return None
        kind = _text(reply[0]).lower()
        if kind not in _KINDS:
            return None
        if kind == "pmessage":
            return {"type": kind, "pattern": reply[1], "channel": reply[2], "data": reply[3]}
        if kind == "pong":
            data = reply[1] if len(reply) > 1 else b""
            return {"type": kind, "pattern": None, "channel": None, "data": data}
        if kind in ("psubscribe", "punsubscribe"):
            return {"type": kind, "pattern": reply[1], "channel": reply[1], "data": reply[2]}
        return {"type": kind, "pattern": None, "channel": reply[1], "data": reply[2]}

    def close(self) -> None:
        """Close the connection and forget the subscriptions."""
        self.channels.clear()
        self.patterns.clear()
        self.connection.close()
