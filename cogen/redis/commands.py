"""Typed helpers for common Redis commands, shared by the client and its pipeline.

Each helper builds the command's arguments and a function that turns the
raw reply into the documented result, then hands both to ``_command``: the
client runs the command (returning a coroutine to yield or await), the
pipeline queues it (returning the pipeline, for chaining). Any other
command goes through ``execute(name, *args)`` and returns the raw reply.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["Commands"]

Callback = Callable[[Any], Any]


def _ok(reply: Any) -> bool:
    return reply in (b"OK", "OK")


def _bool(reply: Any) -> bool:
    return bool(reply)


def _pairs_to_dict(reply: Any) -> dict[Any, Any]:
    """A flat ``[k1, v1, k2, v2...]`` (RESP2) or a map (RESP3) as a dict."""
    if isinstance(reply, dict):
        return reply
    if reply is None:
        return {}
    it = iter(reply)
    return dict(zip(it, it, strict=False))


def _stream_entries(reply: Any) -> list[tuple[Any, dict[Any, Any]]]:
    """``[[id, [f1, v1...]], ...]`` as ``[(id, {f1: v1...}), ...]``."""
    if reply is None:
        return []
    return [(entry[0], _pairs_to_dict(entry[1])) for entry in reply]


def _xread(reply: Any) -> list[list[Any]]:
    """XREAD's reply, RESP2 (array) or RESP3 (map), as ``[[stream, [(id, fields)...]], ...]``."""
    if reply is None:
        return []
    items = reply.items() if isinstance(reply, dict) else ((r[0], r[1]) for r in reply)
    return [[name, _stream_entries(entries)] for name, entries in items]


class Commands:
    """The typed command helpers; a subclass provides ``_command(callback, *args)``."""

    def _command(self, callback: Callback | None, *args: Any) -> Any:
        raise NotImplementedError

    # -- connection -----------------------------------------------------------------
    def ping(self) -> Any:
        """``PING``; result: True."""
        return self._command(lambda reply: reply in (b"PONG", "PONG"), "PING")

    def echo(self, value: Any) -> Any:
        """``ECHO value``; result: the value as the server sent it back."""
        return self._command(None, "ECHO", value)

    # -- keys and strings -------------------------------------------------------------
    def get(self, name: Any) -> Any:
        """``GET name``; result: the value, or None if the key does not exist."""
        return self._command(None, "GET", name)

    def set(self, name: Any, value: Any, ex: float | None = None, px: int | None = None,
            nx: bool = False, xx: bool = False, keepttl: bool = False, get: bool = False) -> Any:
        """``SET name value [EX s|PX ms] [NX|XX] [KEEPTTL] [GET]``.

        Result: True if set, None if ``nx``/``xx`` prevented it; with ``get``,
        the old value (None if there was none) instead.
        """
        args: list[Any] = ["SET", name, value]
        if ex is not None:
            args += ["EX", int(ex)]
        if px is not None:
            args += ["PX", int(px)]
        if nx:
            args.append("NX")
        if xx:
            args.append("XX")
        if keepttl:
            args.append("KEEPTTL")
        if get:
            args.append("GET")
            return self._command(None, *args)
        return self._command(lambda reply: True if reply is not None else None, *args)

    def delete(self, *names: Any) -> Any:
        """``DEL name...``; result: how many keys were removed."""
        return self._command(None, "DEL", *names)

    def exists(self, *names: Any) -> Any:
        """``EXISTS name...``; result: how many of the keys exist."""
        return self._command(None, "EXISTS", *names)

    def expire(self, name: Any, seconds: int) -> Any:
        """``EXPIRE name seconds``; result: True if the key exists (and now expires)."""
        return self._command(_bool, "EXPIRE", name, int(seconds))

    def incr(self, name: Any, amount: int = 1) -> Any:
        """``INCRBY name amount``; result: the new value."""
        return self._command(None, "INCRBY", name, amount)

    def decr(self, name: Any, amount: int = 1) -> Any:
        """``DECRBY name amount``; result: the new value."""
        return self._command(None, "DECRBY", name, amount)

    # -- lists ----------------------------------------------------------------------
    def lpush(self, name: Any, *values: Any) -> Any:
        """``LPUSH name value...``; result: the list's new length."""
        return self._command(None, "LPUSH", name, *values)

    def rpush(self, name: Any, *values: Any) -> Any:
        """``RPUSH name value...``; result: the list's new length."""
        return self._command(None, "RPUSH", name, *values)

    def lpop(self, name: Any, count: int | None = None) -> Any:
        """``LPOP name [count]``; result: the value (a list with ``count``), None if empty."""
        return self._command(None, "LPOP", name, *(() if count is None else (count,)))

    def rpop(self, name: Any, count: int | None = None) -> Any:
        """``RPOP name [count]``; result: the value (a list with ``count``), None if empty."""
        return self._command(None, "RPOP", name, *(() if count is None else (count,)))

    def lrange(self, name: Any, start: int, end: int) -> Any:
        """``LRANGE name start end``; result: a list (``end`` is inclusive, -1 is the last)."""
        return self._command(None, "LRANGE", name, start, end)

    def llen(self, name: Any) -> Any:
        """``LLEN name``; result: the list's length (0 if there is no such key)."""
        return self._command(None, "LLEN", name)

    # -- hashes ---------------------------------------------------------------------
    def hset(self, name: Any, key: Any = None, value: Any = None,
             mapping: Mapping[Any, Any] | None = None) -> Any:
        """``HSET name key value...`` (``key``/``value`` and/or ``mapping``); result: fields added."""
        args: list[Any] = []
        if key is not None:
            args += [key, value]
        for k, v in (mapping or {}).items():
            args += [k, v]
        if not args:
            raise ValueError("hset needs a key and value or a non-empty mapping")
        return self._command(None, "HSET", name, *args)

    def hget(self, name: Any, key: Any) -> Any:
        """``HGET name key``; result: the value or None."""
        return self._command(None, "HGET", name, key)

    def hgetall(self, name: Any) -> Any:
        """``HGETALL name``; result: a dict (empty if there is no such key)."""
        return self._command(_pairs_to_dict, "HGETALL", name)

    # -- pub/sub --------------------------------------------------------------------
    def publish(self, channel: Any, message: Any) -> Any:
        """``PUBLISH channel message``; result: how many subscribers got it (on this server)."""
        return self._command(None, "PUBLISH", channel, message)

    # -- streams --------------------------------------------------------------------
    def xadd(self, name: Any, fields: Mapping[Any, Any], id: Any = "*", maxlen: int | None = None,
             approximate: bool = True) -> Any:
        """``XADD name [MAXLEN [~] n] id field value...``; result: the new entry's id.

        ``approximate`` trims with ``~`` (cheaper: whole nodes, so a few more
        than ``maxlen`` entries may stay).
        """
        if not fields:
            raise ValueError("xadd needs at least one field")
        args: list[Any] = ["XADD", name]
        if maxlen is not None:
            args += ["MAXLEN", "~", maxlen] if approximate else ["MAXLEN", maxlen]
        args.append(id)
        for k, v in fields.items():
            args += [k, v]
        return self._command(None, *args)

    def xread(self, streams: Mapping[Any, Any], count: int | None = None, block: int | None = None) -> Any:
        """``XREAD [COUNT n] [BLOCK ms] STREAMS name... id...``.

        ``streams`` maps each stream to the id to read after (``'$'``: only
        new entries; ``'0'``: from the start). Result: ``[[stream, [(id,
        {field: value}), ...]], ...]`` for the streams with entries (``[]``
        when ``block`` ran out), with RESP2 and RESP3 alike. The command's
        timeout must be longer than ``block``.
        """
        if not streams:
            raise ValueError("xread needs at least one stream")
        args: list[Any] = ["XREAD"]
        if count is not None:
            args += ["COUNT", count]
        if block is not None:
            args += ["BLOCK", block]
        args.append("STREAMS")
        args += list(streams.keys())
        args += list(streams.values())
        return self._command(_xread, *args)

    def xrange(self, name: Any, min: Any = "-", max: Any = "+", count: int | None = None) -> Any:
        """``XRANGE name min max [COUNT n]``; result: ``[(id, {field: value}), ...]``."""
        args: list[Any] = ["XRANGE", name, min, max]
        if count is not None:
            args += ["COUNT", count]
        return self._command(_stream_entries, *args)

    def xlen(self, name: Any) -> Any:
        """``XLEN name``; result: the number of entries."""
        return self._command(None, "XLEN", name)

    # -- server ---------------------------------------------------------------------
    def flushdb(self) -> Any:
        """``FLUSHDB``: remove every key of the selected database; result: True."""
        return self._command(_ok, "FLUSHDB")
