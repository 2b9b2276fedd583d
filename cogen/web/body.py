"""Request bodies: reading them from the connection, buffering, streaming."""
from __future__ import annotations

import io
import tempfile
from collections.abc import Generator
from typing import Any

from cogen.core.coroutines import Coroutine
from cogen.core.events import Operation
from cogen.web.http import CONTINUE_RESPONSE, RequestBody, RequestHead

__all__ = ["AsyncInput", "BodySource", "EmptyInput", "Immediate", "UnreadableInput", "read_whole_body"]


class BodySource:
    """The body of one request, read off its connection piece by piece.

    ``conn`` provides ``buf`` (received bytes not consumed yet), the
    generator methods ``recv_more(timeout)`` and ``send(data)``, and
    ``send_continue()`` (a :class:`~cogen.web.http.ConnectionState`: whether
    ``100 Continue`` must go out before the body is read).
    """

    __slots__ = ("body", "conn", "pending", "timeout")

    def __init__(self, conn: Any, head: RequestHead, max_body: int | None, timeout: float | None,
                 max_trailer_bytes: int = 65536, max_trailer_count: int = 100) -> None:
        self.conn = conn
        #: the framing, decoded as RequestParser decodes it
        self.body = RequestBody(head, max_body=max_body, max_trailer_bytes=max_trailer_bytes,
                                max_trailer_count=max_trailer_count)
        self.pending = b""
        self.timeout = timeout

    @property
    def done(self) -> bool:
        """True once the whole body was consumed."""
        return not self.pending and self.body.done

    def read_some(self, limit: int = 65536) -> Generator[Any, Any, bytes]:
        """Return the next 1..limit body bytes, or b'' at the end of the body."""
        if self.pending:
            data, self.pending = self.pending[:limit], self.pending[limit:]
            return data
        conn = self.conn
        body = self.body
        while not body.done:
            buf = conn.buf
            if buf:
                data, used = body.decode(buf, limit)
                if used:
                    conn.buf = buf[used:]
                if data:
                    if len(data) > limit:  # (a chunked body gives all it has)
                        data, self.pending = data[:limit], data[limit:]
                    return data
                if used:
                    continue
                if body.done:
                    break
            if conn.send_continue():
                yield from conn.send(CONTINUE_RESPONSE)
            yield from conn.recv_more(self.timeout)
        return b""


def read_whole_body(source: BodySource,
                    memory_limit: int | None) -> Generator[Any, Any, tuple[Any, int]]:
    """Read all of ``source`` into a file-like (BytesIO, or a temp file beyond ``memory_limit``).

    ``memory_limit`` None keeps every body in memory (``max_body`` still
    bounds it). Returns ``(stream positioned at 0, length)``.
    """
    parts = []
    size = 0
    spool: Any = None
    while True:
        data = yield from source.read_some(262144)
        if not data:
            break
        size += len(data)
        if spool is None:
            parts.append(data)
            if memory_limit is not None and size > memory_limit:
                spool = tempfile.TemporaryFile()
                spool.write(b"".join(parts))
                parts = []
        else:
            spool.write(data)
    if spool is None:
        return io.BytesIO(parts[0] if len(parts) == 1 else b"".join(parts)), size
    spool.seek(0)
    return spool, size


class EmptyInput:
    """``wsgi.input`` of a request without a body."""

    __slots__ = ()

    def read(self, size: int = -1) -> bytes:
        return b""

    def readline(self, size: int = -1) -> bytes:
        return b""

    def readlines(self, hint: int = -1) -> list[bytes]:
        return []

    def __iter__(self) -> EmptyInput:
        return self

    def __next__(self) -> bytes:
        raise StopIteration


class UnreadableInput(io.RawIOBase):
    """``wsgi.input`` of a streaming request: reading it synchronously is an error."""

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        raise OSError("this app streams its request body: read it with environ['cogen.input'] "
                      "operations, or wrap the app in cogen.web.extensions.sync_input")


class Immediate(Operation):
    """An operation whose result is known when it is made (buffered input)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.prio = -1
        self.value = value

    def process(self, sched: Any, coro: Any) -> Any:
        return self.value


class AsyncInput:
    """``environ['cogen.input']``: the request body through operations.

    ``read(n)`` gives up to ``n`` bytes (at least one unless the body is
    over: then ``b''``), ``read()`` the rest of the body, ``readline(n)`` one
    line of at most ``n`` bytes. Each returns an operation to yield.
    """

    __slots__ = ("is_buffered", "source", "stream")

    def __init__(self, stream: Any = None, source: BodySource | None = None) -> None:
        self.stream = stream
        self.source = source
        self.is_buffered = source is None

    def read(self, size: int = -1) -> Any:
        if self.source is None:
            return Immediate(self.stream.read(size) if size is not None and size >= 0
                              else self.stream.read())
        return Coroutine(self._read, size)

    def readline(self, size: int = -1) -> Any:
        if self.source is None:
            return Immediate(self.stream.readline(size if size is not None else -1))
        return Coroutine(self._readline, size)

    def _read(self, size: int | None) -> Generator[Any, Any, bytes]:
        source = self.source
        assert source is not None
        if size is not None and size >= 0:
            if size == 0:
                return b""
            return (yield from source.read_some(size))
        parts: list[bytes] = []
        while True:
            data = yield from source.read_some(262144)
            if not data:
                return b"".join(parts)
            parts.append(data)

    def _readline(self, size: int | None) -> Generator[Any, Any, bytes]:
        source = self.source
        assert source is not None
        limit = size if size is not None and size >= 0 else 1 << 62
        parts: list[bytes] = []
        got = 0
        while got < limit:
            data = yield from source.read_some(limit - got)
            if not data:
                break
            nl = data.find(b"\n")
            if nl >= 0 and nl + 1 < len(data):
                source.pending = data[nl + 1:] + source.pending
                data = data[:nl + 1]
            parts.append(data)
            got += len(data)
            if nl >= 0:
                break
        return b"".join(parts)


