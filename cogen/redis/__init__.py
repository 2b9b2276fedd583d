"""A Redis client on cogen sockets: ``yield r.get(key)`` / ``await r.get(key)``.

::

    from cogen.redis import Redis

    r = Redis.from_url("redis://localhost:6379/0")

    @coroutine
    def handler():
        yield r.set("visits", 0)
        n = yield r.incr("visits")
        pipe = r.pipeline()
        pipe.get("visits").lpush("log", "hit")
        value, length = yield pipe.execute()

RESP2 and RESP3 (``protocol=3``), parsing with ``hiredis`` when installed
(``pip install 'cogen[redis]'``) and a pure-Python parser otherwise; a
connection pool, per-command timeouts, retries with backoff after a broken
connection, AUTH (user and password), SELECT, TLS (``rediss://``) and
``redis://``, ``rediss://`` and ``unix://`` URLs as redis-py reads them; pub/sub
with redis-py's message shapes.

Modules: :mod:`cogen.redis.client` (:class:`Redis`, :class:`Pipeline`),
:mod:`cogen.redis.pubsub` (:class:`PubSub`), :mod:`cogen.redis.connection`
(:class:`Connection`, :class:`ConnectionPool`, :func:`parse_url`),
:mod:`cogen.redis.resp` (the sans-IO protocol) and
:mod:`cogen.redis.errors`.
"""
from __future__ import annotations

from cogen.redis.client import Pipeline, Redis
from cogen.redis.connection import Connection, ConnectionParams, ConnectionPool, parse_url
from cogen.redis.errors import (
    AuthenticationError,
    ConnectionError,
    DataError,
    ProtocolError,
    RedisError,
    ResponseError,
    TimeoutError,
)
from cogen.redis.pubsub import PubSub

__all__ = [
    "AuthenticationError",
    "Connection",
    "ConnectionError",
    "ConnectionParams",
    "ConnectionPool",
    "DataError",
    "Pipeline",
    "ProtocolError",
    "PubSub",
    "Redis",
    "RedisError",
    "ResponseError",
    "TimeoutError",
    "from_url",
    "parse_url",
]

from_url = Redis.from_url
