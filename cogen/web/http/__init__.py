"""Sans-IO HTTP/1.1 for the server side (RFC 9110, RFC 9112).

Bytes in, events out, bytes back.

Nothing here touches a socket, the scheduler or WSGI. The request side turns
received bytes into a :class:`RequestHead` (:func:`parse_request_head`), body
bytes (:class:`ChunkedDecoder` for chunked bodies) or, for those who want a
single object, a stream of events (:class:`RequestParser`). The response side
turns a WSGI status and header list into head bytes plus a
:class:`ResponseFraming` that tells the server how to send the body
(:func:`format_response_head`, :func:`chunk`, :data:`LAST_CHUNK`,
:func:`simple_response`). :class:`ConnectionState` follows a connection
through its request cycle and decides keep-alive, ``100 Continue`` and close.

Every violation by the peer raises :class:`RemoteProtocolError`, carrying the
status code to answer with (the server answers it and closes the connection);
every attempt by us or the application to emit invalid HTTP raises
:class:`LocalProtocolError`.
"""

# Theory of operation
# ===================
#
# The request head is parsed in one go, never line by line: the server keeps
# one receive buffer, and once buf.find(b"\r\n\r\n") succeeds the whole head
# is decoded to latin-1 text once and split once. Validation is done on whole
# blocks by C code, not per character in Python:
#
#   * one bytes.translate() deletes every byte allowed in a head; what is
#     left must be exactly the CRLF pairs the split consumed, so a NUL, a
#     CTL or a bare CR/LF anywhere is caught by one comparison;
#   * one regex fullmatch() checks and splits the request line;
#   * then a short Python loop over the field lines (partition, strip)
#     builds the (name, value) tuples. Field names already seen map to
#     their validated lower-case form through one dict lookup; new names
#     are checked against the token grammar (catching obs-fold and
#     whitespace before the colon too) and cached. The loop sets aside the
#     fields that carry semantics (Host, Content-Length, Transfer-Encoding,
#     Connection, Expect), checked afterwards; a request with only a Host
#     seen before skips all of that.
#
# When a fast check fails we fall into slow code whose only job is to find
# the precise error and name the offending value.
#
# Incremental feeding. A head that is not complete yet costs only a find()
# over the new bytes (``scan_from``), a bounded search for bare CR/LF, and
# two size checks. Errors that can be proven from a prefix of the head (bare
# CR/LF, request line over the limit -> 414, head over the limit -> 431) are
# reported as "the error proven by the shortest prefix", both while the head
# is incomplete and once it is complete, so the outcome does not depend on
# how the bytes were split into reads. Other errors are only decided on the
# complete head, in one fixed order: bytes, request line (400, 505), field
# count (431), field names (400), request-target form, Host, framing
# (Transfer-Encoding 400/501, Content-Length 400/413).
#
# The body. With Content-Length the server simply counts bytes. With
# chunked coding a ChunkedDecoder is a small state machine (size line, data,
# CRLF after data, trailers) fed the receive buffer; it copies each run of
# chunk data once (memoryview slices joined) and says how many bytes it
# consumed. RequestParser glues head and body into events and starts on the
# next pipelined request by itself after each EndOfMessage.
#
# Strictness (docs/internals.rst, "Rules the parser keeps": ambiguous HTTP is
# rejected, not guessed at): only CRLF ends a line, no obs-fold, no
# whitespace around names, exactly one
# Content-Length of 1*DIGIT, Transfer-Encoding only on HTTP/1.1, never with
# Content-Length, and ending in exactly one "chunked".
from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from typing import Final, Literal, TypeAlias

from cogen.web.http._body import RequestBody
from cogen.web.http._chunked import ChunkedDecoder
from cogen.web.http._common import (
    FIELD_BYTES_NO_CRLF,
    NAME_CACHE,
    TOKEN_CHARS,
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
    field_name,
)
from cogen.web.http._request import (
    VALID_HOSTS,
    check_framing_fields,
    check_host,
    head_error,
    parse_version,
    prefix_error,
    request_line_error,
    skip_empty_lines,
    split_other_target,
)
from cogen.web.http._response import (
    CONTINUE_RESPONSE,
    LAST_CHUNK,
    ResponseFraming,
    chunk,
    chunk_parts,
    format_response_head,
    http_date,
    simple_response,
)
from cogen.web.http._state import (
    DONE,
    IDLE,
    MUST_CLOSE,
    RECV_BODY,
    RECV_HEAD,
    SEND_BODY,
    SWITCHED_PROTOCOL,
    ConnectionState,
    State,
)

__all__ = [
    "CONNECTION_CLOSED",
    "CONTINUE_RESPONSE",
    "DONE",
    "IDLE",
    "LAST_CHUNK",
    "MUST_CLOSE",
    "NEED_DATA",
    "RECV_BODY",
    "RECV_HEAD",
    "SEND_BODY",
    "SWITCHED_PROTOCOL",
    "ChunkedDecoder",
    "ConnectionState",
    "Data",
    "EndOfMessage",
    "Event",
    "LocalProtocolError",
    "ProtocolError",
    "RemoteProtocolError",
    "RequestBody",
    "RequestHead",
    "RequestParser",
    "ResponseFraming",
    "Sentinel",
    "State",
    "chunk",
    "chunk_parts",
    "format_response_head",
    "http_date",
    "parse_request_head",
    "simple_response",
]

# request-line = method SP request-target SP HTTP-version (RFC 9112 §3).
# The target may hold any VCHAR but "#": a fragment is never part of a
# request-target (RFC 9112 §3.2), and a server that cut it off would route a
# different path than one that kept it.
_REQUEST_LINE: Final = re.compile(
    f"([{TOKEN_CHARS}]+) ([\\x21\\x22\\x24-\\x7e]+) HTTP/([0-9]\\.[0-9])"
)
_KNOWN_VERSIONS: Final = {"1.1": (1, 1), "1.0": (1, 0)}
_SEMANTIC_FIELDS: Final = frozenset(
    ["host", "content-length", "transfer-encoding", "connection", "expect"]
)


@dataclass(slots=True)
class RequestHead:
    """A parsed, validated request head (request line and header section).

    Attributes:
        method: the method token, case preserved (RFC 9110 §9.1: case-sensitive).
        target: the request-target exactly as sent.
        path: the still percent-encoded path: origin-form ``/a/b``; the path of
            an absolute-form URI (``/`` if it has none, ``*`` for OPTIONS with
            neither path nor query); ``*`` for asterisk-form (OPTIONS); ``""``
            for authority-form (CONNECT).
        query: the part after the first ``?``, ``""`` if none.
        version: ``(1, 0)`` or ``(1, 1)``; any HTTP/1.x with x >= 1 is reported
            as ``(1, 1)`` (RFC 9110 §2.5: same major version, compatible).
        headers: ``(name, value)`` in received order, names lower-cased, values
            without surrounding whitespace, both latin-1 ``str``. Fields whose
            name contains ``_`` are dropped: WSGI maps ``-`` to ``_`` in
            ``HTTP_*`` keys, so ``X_User`` could masquerade as ``X-User``.
        host: the effective host: the authority of an absolute-form or
            authority-form target, else the Host field (``""`` when sent
            empty), else None (HTTP/1.0 without Host).
        content_length: the Content-Length, or None if absent (then a
            non-chunked request has no body, RFC 9112 §6.3).
        chunked: the body uses the chunked transfer coding.
        keep_alive: the client wants the connection kept open afterwards:
            HTTP/1.1 unless ``Connection: close``; HTTP/1.0 only with
            ``Connection: keep-alive`` (RFC 9112 §9.3).
        expect_continue: HTTP/1.1 with ``Expect: 100-continue``: send
            CONTINUE_RESPONSE before reading the body, or skip it and answer
            at once (RFC 9110 §10.1.1). Other expectations are ignored (the
            application still sees the field).
        head_size: bytes of the buffer the head used, leading empty lines and
            the final CRLF CRLF included; the body starts there.
    """

    method: str
    target: str
    path: str
    query: str
    version: tuple[int, int]
    headers: list[tuple[str, str]]
    host: str | None
    content_length: int | None
    chunked: bool
    keep_alive: bool
    expect_continue: bool
    head_size: int


def parse_request_head(
    buf: bytes | bytearray | memoryview,
    *,
    max_request_line: int = 8190,
    max_header_bytes: int = 65536,
    max_header_count: int = 100,
    max_body: int | None = None,
    scan_from: int = 0,
) -> RequestHead | None:
    """Parse the request head at the start of ``buf``.

    Bytes after the head (the body, a pipelined request) are left alone:
    the head ends at ``buf[head.head_size]``.

    Args:
        buf: received bytes. A memoryview is copied first; pass bytes or a
            bytearray on the hot path.
        max_request_line: longest request line accepted, CRLF excluded.
        max_header_bytes: largest head accepted, from the request line to
            the final CRLF CRLF inclusive (leading empty lines excluded).
        max_header_count: most field lines accepted.
        max_body: largest Content-Length accepted, None for no limit.
        scan_from: ``len(buf)`` at a previous call on the same, since grown,
            buffer that returned None; those bytes are not searched again, so
            a head dribbled in byte by byte costs linear time. 0 scans all.
    Returns:
        The head, or None when ``buf`` does not hold a complete head yet (or
        holds only empty lines).
    Raises:
        RemoteProtocolError: 400 for malformed or ambiguous syntax, 414 when
            the request line is over ``max_request_line``, 431 when the head
            is over ``max_header_bytes`` or ``max_header_count`` (both raised
            as soon as the buffered bytes prove it, complete or not), 413 for
            a Content-Length over ``max_body``, 501 for a transfer coding
            other than chunked, 505 for an HTTP major version other than 1.
    """
    if isinstance(buf, memoryview):
        buf = buf.tobytes()
    start = 0
    if buf.startswith((b"\r", b"\n")):
        start = skip_empty_lines(buf)
        if start < 0:
            return None
    end = buf.find(b"\r\n\r\n", max(start, scan_from - 3))
    if end < 0:
        error = prefix_error(
            buf, start, len(buf), scan_from, max_request_line, max_header_bytes
        )
        if error is not None:
            raise error
        return None

    raw = buf[start:end]
    text = raw.decode("latin-1")
    lines = text.split("\r\n")
    if (
        len(lines[0]) > max_request_line
        or end + 4 - start > max_header_bytes
        or raw.translate(None, FIELD_BYTES_NO_CRLF) != b"\r\n" * (len(lines) - 1)
    ):
        raise head_error(buf, start, end, lines, max_request_line, max_header_bytes)
    match = _REQUEST_LINE.fullmatch(lines[0])
    if match is None:
        raise request_line_error(lines[0])
    method, target, version_text = match.groups()
    version = _KNOWN_VERSIONS.get(version_text) or parse_version(version_text)
    if len(lines) > max_header_count + 1:
        raise RemoteProtocolError(f"more than {max_header_count} header fields", 431)

    del lines[0]
    headers: list[tuple[str, str]] = []
    append = headers.append
    framing: list[tuple[str, str]] | None = None
    host = None
    host_count = 0
    cached_name = NAME_CACHE.get
    for line in lines:
        name, colon, value = line.partition(":")
        lname = cached_name(name) if colon else None
        if lname is None:
            lname = field_name(name, colon, line, "header")
            if not lname:
                continue
        value = value.strip(" \t")
        if lname in _SEMANTIC_FIELDS:
            if lname == "host":
                host = value
                host_count += 1
            elif framing is None:
                framing = [(lname, value)]
            else:
                framing.append((lname, value))
        append((lname, value))

    authority = None
    if target[0] == "/" and method != "CONNECT":
        path, _, query = target.partition("?")
    else:
        path, query, authority = split_other_target(method, target)
    if host_count != 1 or host not in VALID_HOSTS:
        check_host(headers, host_count, version)
    if authority is not None:
        host = authority
    if framing is None:
        content_length = None
        chunked = expect_continue = False
        keep_alive = version == (1, 1)
    else:
        content_length, chunked, keep_alive, expect_continue = check_framing_fields(
            framing, version, max_body
        )
    return RequestHead(
        method,
        target,
        path,
        query,
        version,
        headers,
        host,
        content_length,
        chunked,
        keep_alive,
        expect_continue,
        end + 4,
    )


@dataclass(slots=True)
class Data:
    """A piece of request body, never empty.

    Attributes:
        data: the body bytes, transfer coding removed.
    """

    data: bytes


@dataclass(slots=True)
class EndOfMessage:
    """The request body is complete.

    Attributes:
        trailers: trailer fields of a chunked body, as ``(name, value)``
            with lower-case names; empty for other bodies.
    """

    trailers: list[tuple[str, str]] = field(default_factory=list)


class Sentinel(enum.Enum):
    """Values :meth:`RequestParser.next_event` returns that are not events."""

    NEED_DATA = "NEED_DATA"
    CONNECTION_CLOSED = "CONNECTION_CLOSED"


NEED_DATA: Final = Sentinel.NEED_DATA
"""Feed more bytes, then ask again."""
CONNECTION_CLOSED: Final = Sentinel.CONNECTION_CLOSED
"""The peer closed the connection cleanly, between two requests."""

Event: TypeAlias = (
    RequestHead
    | Data
    | EndOfMessage
    | Literal[Sentinel.NEED_DATA, Sentinel.CONNECTION_CLOSED]
)

_HEAD, _BODY, _CLOSED = range(3)


class RequestParser:
    """Turn a connection's received bytes into request events.

    Events, in order, for each request: one :class:`RequestHead`, zero or
    more :class:`Data`, one :class:`EndOfMessage`. After an EndOfMessage the
    parser starts on the next request by itself, reading from the bytes
    already buffered (HTTP/1.1 pipelining); whether to serve it is the
    server's decision (``head.keep_alive`` and its own limits).

    Args:
        max_request_line, max_header_bytes, max_header_count, max_body: as
            for :func:`parse_request_head`; ``max_body`` also limits the
            total size of chunked bodies, and the header limits also apply
            to the trailer section.
        max_chunk_line: longest chunk-size line, as for ChunkedDecoder.
    """

    def __init__(
        self,
        *,
        max_request_line: int = 8190,
        max_header_bytes: int = 65536,
        max_header_count: int = 100,
        max_body: int | None = None,
        max_chunk_line: int = 4096,
    ) -> None:
        self.max_request_line = max_request_line
        self.max_header_bytes = max_header_bytes
        self.max_header_count = max_header_count
        self.max_body = max_body
        self.max_chunk_line = max_chunk_line
        self._buf = bytearray()
        self._scanned = 0
        self._state = _HEAD
        self._body: RequestBody | None = None
        self._is_eof = False
        self._error: RemoteProtocolError | None = None

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Append received bytes; ``b""`` means the peer closed its side (EOF).

        Raises:
            LocalProtocolError: data fed after EOF.
        """
        if self._is_eof:
            if data:
                raise LocalProtocolError("feed() after EOF")
            return
        if data:
            self._buf += data
        else:
            self._is_eof = True

    def next_event(self) -> Event:
        """Return the next event, or NEED_DATA, or CONNECTION_CLOSED.

        CONNECTION_CLOSED comes only at EOF between requests (nothing but
        empty lines buffered); after it every call returns it again.

        Raises:
            RemoteProtocolError: the bytes are not valid HTTP/1.1, or EOF
                came in the middle of a request. The parser stays broken:
                every later call raises the same error.
        """
        if self._error is not None:
            raise self._error
        try:
            if self._state == _HEAD:
                return self._next_head()
            if self._state == _BODY:
                return self._next_body_data()
            return CONNECTION_CLOSED
        except RemoteProtocolError as exc:
            self._error = exc
            raise

    def _next_head(self) -> Event:
        head = parse_request_head(
            self._buf,
            max_request_line=self.max_request_line,
            max_header_bytes=self.max_header_bytes,
            max_header_count=self.max_header_count,
            max_body=self.max_body,
            scan_from=self._scanned,
        )
        if head is None:
            if self._is_eof:
                if self._buf.strip(b"\r\n"):
                    raise RemoteProtocolError(
                        "connection closed in the middle of a request head"
                    )
                self._state = _CLOSED
                return CONNECTION_CLOSED
            self._scanned = len(self._buf)
            return NEED_DATA
        del self._buf[: head.head_size]
        self._scanned = 0
        # the server's own body framing (cogen/web/body.py decodes with it too)
        self._body = RequestBody(
            head,
            max_body=self.max_body,
            max_chunk_line=self.max_chunk_line,
            max_trailer_bytes=self.max_header_bytes,
            max_trailer_count=self.max_header_count,
        )
        self._state = _BODY
        return head

    def _next_body_data(self) -> Event:
        body = self._body
        assert body is not None
        data, used = body.decode(self._buf)
        del self._buf[:used]
        if data:
            return Data(data)
        if body.done:
            self._state = _HEAD
            self._body = None
            return EndOfMessage(body.trailers)
        if self._is_eof:
            raise RemoteProtocolError(body.eof_error())
        return NEED_DATA
