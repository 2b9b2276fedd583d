"""Decoding of the chunked transfer coding (RFC 9112 §7.1).

Private: import ChunkedDecoder from cogen.web.http.
"""

# Theory of operation
# ===================
#
# A chunked body is a sequence of
#
#     chunk-size [ chunk-ext ] CRLF chunk-data CRLF        (size > 0)
#
# ended by a last chunk "0" [ chunk-ext ] CRLF, a trailer section (field
# lines, each ending in CRLF) and an empty line. The decoder is a four-state
# machine, SIZE -> DATA -> DATA_END -> SIZE ... -> TRAILERS -> done, driven
# by decode(buf): it consumes as much of the caller's buffer as it can,
# returns the chunk data found (each run copied once: memoryview slices
# joined) and how many bytes it consumed; the caller drops those bytes and
# calls again with the rest plus whatever arrives next.
#
# Everything that could let two parties disagree on where the body ends is a
# 400: anything but 1*HEXDIG before the extensions (no "0x", sign or
# whitespace), more than 16 hex digits, whitespace except the BWS the grammar
# allows around ";" and "=", a bare CR or LF, a chunk not followed by CRLF.
from __future__ import annotations

import re
from typing import Final

from cogen.web.http._common import (
    NAME_CACHE,
    RemoteProtocolError,
    explain_field_lines,
    field_bytes_ok,
    field_name,
    first_bare_cr_lf,
    show,
)

__all__ = ["ChunkedDecoder"]

_TOKEN: Final = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_QUOTED_STRING: Final = (
    rb'"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*"'
)
# chunk = chunk-size [ chunk-ext ] CRLF; chunk-size = 1*HEXDIG;
# chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] );
# chunk-ext-val = token / quoted-string (RFC 9112 §7.1, §7.1.1).
_CHUNK_LINE: Final = re.compile(
    rb"([0-9A-Fa-f]{1,16})(?:[ \t]*;[ \t]*"
    + _TOKEN
    + rb"(?:[ \t]*=[ \t]*(?:"
    + _TOKEN
    + rb"|"
    + _QUOTED_STRING
    + rb"))?)*"
)

# RFC 9110 §6.5.1: fields needed before the content (framing, routing,
# authentication, request modifiers, content format) must not come from
# trailers. We drop these names rather than merge them.
_FORBIDDEN_TRAILERS: Final = frozenset(
    [
        "authorization",
        "cache-control",
        "connection",
        "content-encoding",
        "content-length",
        "content-range",
        "content-type",
        "cookie",
        "expect",
        "host",
        "keep-alive",
        "max-forwards",
        "proxy-authorization",
        "range",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ]
)

_SIZE, _DATA, _DATA_END, _TRAILERS = range(4)


class ChunkedDecoder:
    """Incremental decoder of one chunked request body.

    Args:
        max_body: largest total of chunk sizes accepted, None for no limit;
            checked as soon as a chunk-size line arrives.
        max_line: longest chunk-size line (extensions included, CRLF not).
        max_trailer_bytes: largest trailer section.
        max_trailer_count: most trailer fields.

    Attributes:
        done: the last chunk and the trailer section have been consumed.
        trailers: ``(name, value)`` trailer fields, names lower-cased; names
            with ``_`` and fields not allowed in trailers (Content-Length,
            Transfer-Encoding, Host, ...: RFC 9110 §6.5.1) are dropped.
        received: total of the chunk sizes seen so far.
    """

    __slots__ = (
        "_error",
        "_remaining",
        "_scanned",
        "_state",
        "done",
        "max_body",
        "max_line",
        "max_trailer_bytes",
        "max_trailer_count",
        "received",
        "trailers",
    )

    def __init__(
        self,
        *,
        max_body: int | None = None,
        max_line: int = 4096,
        max_trailer_bytes: int = 65536,
        max_trailer_count: int = 100,
    ) -> None:
        self.max_body = max_body
        self.max_line = max_line
        self.max_trailer_bytes = max_trailer_bytes
        self.max_trailer_count = max_trailer_count
        self.done = False
        self.trailers: list[tuple[str, str]] = []
        self.received = 0
        self._state = _SIZE
        self._remaining = 0
        self._scanned = 0
        self._error: RemoteProtocolError | None = None

    def decode(self, buf: bytes | bytearray) -> tuple[bytes, int]:
        """Decode as much of ``buf`` as possible.

        ``buf`` must start with the first byte not consumed so far. The
        caller removes the consumed bytes (a bytearray may be resized again
        as soon as this returns) and calls again when more arrive. Once
        ``done``, bytes after the body (a pipelined request) are left alone
        and each call returns ``(b"", 0)``.

        Args:
            buf: the unconsumed received bytes.
        Returns:
            ``(data, consumed)``: the chunk data decoded (possibly ``b""``)
            and the number of bytes of ``buf`` used up.
        Raises:
            RemoteProtocolError: 400 for malformed chunked coding or
                trailers, 413 past ``max_body``, 431 for trailers over the
                limits. When the error comes after some data in the same
                call, that data is returned first and the error is raised by
                the next call, so the outcome never depends on how the bytes
                were split. The decoder stays broken afterwards.
        """
        if self._error is not None:
            raise self._error
        pieces: list[memoryview] = []
        pos = 0
        end = len(buf)
        with memoryview(buf) as view:
            try:
                while pos < end and not self.done:
                    state = self._state
                    if state == _DATA:
                        take = min(self._remaining, end - pos)
                        pieces.append(view[pos : pos + take])
                        pos += take
                        self._remaining -= take
                        if not self._remaining:
                            self._state = _DATA_END
                        continue
                    if state == _SIZE:
                        new_pos = self._read_size_line(buf, pos)
                    elif state == _DATA_END:
                        new_pos = self._read_data_end(buf, pos)
                    else:
                        new_pos = self._read_trailers(buf, pos)
                    if new_pos < 0:
                        break
                    pos = new_pos
            except RemoteProtocolError as exc:
                self._error = exc
                if not pieces:
                    raise
            data = b"".join(pieces)
            pieces.clear()  # release the slices before the view
        return data, pos

    def _read_size_line(self, buf: bytes | bytearray, pos: int) -> int:
        limit = pos + self.max_line + 2
        eol = buf.find(b"\r\n", pos, limit)
        if eol < 0:
            if len(buf) >= limit:
                raise RemoteProtocolError(
                    f"chunk-size line longer than {self.max_line} bytes"
                )
            if first_bare_cr_lf(buf, pos, len(buf)) >= 0:
                raise RemoteProtocolError(
                    "bare CR or LF in a chunk-size line (only CRLF ends a line)"
                )
            return -1
        match = _CHUNK_LINE.fullmatch(buf, pos, eol)
        if match is None:
            raise self._size_line_error(bytes(buf[pos:eol]))
        size = int(match.group(1), 16)
        if not size:
            self._state = _TRAILERS
            self._scanned = 0
        else:
            self.received += size
            if self.max_body is not None and self.received > self.max_body:
                raise RemoteProtocolError(
                    f"chunked body over the limit of {self.max_body} bytes", 413
                )
            self._remaining = size
            self._state = _DATA
        return eol + 2

    @staticmethod
    def _size_line_error(line: bytes) -> RemoteProtocolError:
        digits = re.match(rb"[0-9A-Fa-f]*", line)
        if digits is not None and len(digits.group()) > 16:
            return RemoteProtocolError(
                f"chunk-size with more than 16 hex digits: {show(line)}"
            )
        return RemoteProtocolError(f"invalid chunk-size line {show(line)}")

    def _read_data_end(self, buf: bytes | bytearray, pos: int) -> int:
        # RFC 9112 §7.1: chunk-data is followed by CRLF, nothing else.
        if buf.startswith(b"\r\n", pos):
            self._state = _SIZE
            return pos + 2
        if len(buf) - pos == 1 and buf[pos] == 0x0D:
            return -1
        raise RemoteProtocolError(
            f"chunk data not followed by CRLF: {show(buf[pos : pos + 20])}"
        )

    def _read_trailers(self, buf: bytes | bytearray, pos: int) -> int:
        # trailer-section = *( field-line CRLF ) and the final CRLF (RFC 9112 §7.1.2).
        if buf.startswith(b"\r\n", pos):
            self.done = True
            return pos + 2
        end = buf.find(b"\r\n\r\n", max(pos, pos + self._scanned - 3))
        if end < 0:
            error = self._trailer_prefix_error(buf, pos, len(buf), self._scanned)
            if error is not None:
                raise error
            self._scanned = len(buf) - pos
            return -1
        error = self._trailer_prefix_error(buf, pos, end + 4, 0)
        if error is not None:
            raise error
        raw = buf[pos:end]
        text = raw.decode("latin-1")
        lines = text.split("\r\n")
        if not field_bytes_ok(raw, len(lines) - 1):
            raise explain_field_lines(lines, "trailer")
        if len(lines) > self.max_trailer_count:
            raise RemoteProtocolError(
                f"more than {self.max_trailer_count} trailer fields", 431
            )
        trailers = self.trailers
        for line in lines:
            name, colon, value = line.partition(":")
            lname = NAME_CACHE.get(name) if colon else None
            if lname is None:
                lname = field_name(name, colon, line, "trailer")
            if lname and lname not in _FORBIDDEN_TRAILERS:
                trailers.append((lname, value.strip(" \t")))
        self.done = True
        return end + 4

    def _trailer_prefix_error(
        self, buf: bytes | bytearray, pos: int, stop: int, scanned: int
    ) -> RemoteProtocolError | None:
        """Return the error the shortest prefix of the trailer section proves."""
        bare = first_bare_cr_lf(buf, max(pos, pos + scanned - 1), stop)
        too_big = (
            pos + self.max_trailer_bytes + 1
            if stop - pos > self.max_trailer_bytes
            else -1
        )
        if bare >= 0 and (too_big < 0 or bare <= too_big):
            return RemoteProtocolError(
                "bare CR or LF in the trailer section (only CRLF ends a line)"
            )
        if too_big >= 0:
            return RemoteProtocolError(
                f"trailer section longer than {self.max_trailer_bytes} bytes", 431
            )
        return None
