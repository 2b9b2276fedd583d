"""The response side of HTTP/1.1: head bytes, body framing, chunks, error answers.

Private: import the public names from cogen.web.http.
"""

# Theory of operation
# ===================
#
# format_response_head() gets what a WSGI application gave start_response()
# (a status string and a header list) plus the parsed request, and returns
# the head bytes and a ResponseFraming that tells the server how to send the
# body. It makes one pass over the application's headers in Python (a dict
# lookup maps a name seen before to its validated lower-case form; new
# names are checked against the token grammar), picking out the few that
# matter for framing, then validates all values at once on the joined text:
# one encode('latin-1') and one bytes.translate() that must leave exactly our
# CRLFs, so no CR, LF, NUL or other CTL hides in a value: no response
# splitting.
#
# Framing rules (RFC 9110 §6.4.1, §8.6; RFC 9112 §6.1, §6.3, §9.3):
#   * no body for HEAD, 1xx, 204 and 304; Content-Length is dropped for 1xx
#     and 204 (never allowed there), kept for HEAD and 304 (it describes the
#     GET/200 representation);
#   * an application Content-Length is used as given (1*DIGIT checked);
#   * otherwise HTTP/1.1 gets Transfer-Encoding: chunked and HTTP/1.0 gets a
#     close-delimited body (the connection closes after it);
#   * "Connection: close" whenever the connection will close, and
#     "Connection: keep-alive" when an HTTP/1.0 connection stays open.
#
# Hop-by-hop headers are the server's business (PEP 3333): an application
# that sends one gets LocalProtocolError, except "Connection: close", which
# is honoured as a request to close the connection after this response.
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from cogen.web.http._common import (
    FIELD_BYTES_NO_CRLF,
    TOKEN_RE,
    LocalProtocolError,
    show,
)

if TYPE_CHECKING:
    from collections.abc import Iterable

    from cogen.web.http import RequestHead

__all__ = [
    "CONTINUE_RESPONSE",
    "LAST_CHUNK",
    "ResponseFraming",
    "chunk",
    "format_response_head",
    "http_date",
    "simple_response",
]

LAST_CHUNK: Final = b"0\r\n\r\n"
"""The last chunk and an empty trailer section: ends a chunked body."""

CONTINUE_RESPONSE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"
"""Interim response to send before reading a body sent with Expect: 100-continue."""

# status-code = 3DIGIT, reason-phrase = 1*( HTAB / SP / VCHAR / obs-text )
# (RFC 9112 §4); PEP 3333 wants "999 Reason". We allow 100..599 and an empty
# reason ("200 "), which RFC 9112 §4 permits.
_STATUS: Final = re.compile(r"([1-5][0-9][0-9]) [\t\x20-\x7e\x80-\xff]*")
# Statuses and header names already validated, as given -> status code /
# lower-case name: applications send the same few on every response.
# Bounded; past the limit new ones are validated on every use.
_STATUS_CACHE: Final[dict[str, int]] = {}
_NAME_CACHE: Final[dict[str, str]] = {}
_CACHE_LIMIT: Final = 1000
# wsgiref.util.is_hop_by_hop's list, which PEP 3333 refers to.
_HOP_BY_HOP: Final = frozenset(
    [
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailers",
        "transfer-encoding",
        "upgrade",
    ]
)
_INTERESTING: Final = _HOP_BY_HOP | {"content-length", "date", "server"}

_DAYS: Final = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS: Final = (
    "Jan",
    "Feb",
    "Mar",
    "Apr",
    "May",
    "Jun",
    "Jul",
    "Aug",
    "Sep",
    "Oct",
    "Nov",
    "Dec",
)
_cached_second = -1
_cached_date = ""


def http_date(timestamp: float | None = None) -> str:
    """Format a time as an IMF-fixdate (RFC 9110 §5.6.7).

    For example ``Sun, 06 Nov 1994 08:49:37 GMT``. Computed once per second
    and cached, since every response needs it. Locale-independent.

    Args:
        timestamp: seconds since the epoch; None for now (wall clock: the
            Date field is a wall-clock time, not a deadline).
    Returns:
        The formatted date.
    """
    global _cached_second, _cached_date
    second = int(time.time() if timestamp is None else timestamp)
    if second != _cached_second:
        t = time.gmtime(second)
        day = f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]}"
        clock = f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
        _cached_date = f"{day} {t.tm_year:04d} {clock} GMT"
        _cached_second = second
    return _cached_date


@dataclass(slots=True)
class ResponseFraming:
    """How the server must send the body of a response.

    Attributes:
        has_body: send the body at all. False for HEAD, 1xx, 204 and 304:
            whatever the application yields is discarded (after iterating it,
            and closing it, as PEP 3333 requires).
        content_length: the Content-Length sent, if any (also for HEAD and
            304, where no body follows). With a body, send exactly that many
            bytes: stop at it, and close the connection if the application
            yields fewer.
        chunked: wrap each piece of body with :func:`chunk` and end with
            :data:`LAST_CHUNK`.
        keep_alive: the connection stays open after this response. False
            for close-delimited bodies (has_body, no content_length, not
            chunked: send the body, then close).
    """

    has_body: bool
    content_length: int | None
    chunked: bool
    keep_alive: bool

    @property
    def is_close_delimited(self) -> bool:
        """The body ends when the connection closes (HTTP/1.0, no Content-Length)."""
        return self.has_body and self.content_length is None and not self.chunked


def format_response_head(
    status: str,
    headers: Iterable[tuple[str, str]],
    *,
    request: RequestHead,
    keep_alive: bool = True,
    server: str | None = "cogen",
    date: bool = True,
) -> tuple[bytes, ResponseFraming]:
    """Build the response head for an application's status and headers.

    The status line is always ``HTTP/1.1`` (RFC 9110 §2.5: we answer with the
    highest version we speak, also to HTTP/1.0 clients).

    Args:
        status: the WSGI status, ``"200 OK"``: three digits 100..599, a
            space, a reason phrase without CTLs (may be empty).
        headers: the WSGI header list, ``(name, value)`` latin-1 ``str``.
        request: the request being answered (method, version, keep_alive).
        keep_alive: False forces the connection to close after this
            response (server shutting down, body left unread, ...).
        server: the Server field value, None for none; not added when the
            application sent its own.
        date: add a Date field (RFC 9110 §6.6.1) unless the application
            sent its own.
    Returns:
        ``(head, framing)``: the bytes to send, up to and including the
        empty line, and how to send the body.
    Raises:
        LocalProtocolError: invalid status, header name or value (CR, LF,
            NUL, other CTLs, characters beyond latin-1), an invalid or
            repeated Content-Length, a hop-by-hop header other than
            ``Connection: close``, or a 1xx status for an HTTP/1.0 client.
    """
    code = _STATUS_CACHE.get(status) or _check_status(status)
    lines = ["HTTP/1.1 " + status]
    append = lines.append
    length: int | None = None
    has_date = has_server = close = False
    cached_name = _NAME_CACHE.get
    for name, value in headers:
        lname = cached_name(name) or _check_name(name)
        if not isinstance(value, str):
            kind = type(value).__name__
            raise LocalProtocolError(f"value of {name} is {kind}, not str (PEP 3333)")
        if lname in _INTERESTING:
            if lname == "content-length":
                if length is not None:
                    raise LocalProtocolError(
                        f"Content-Length sent twice: {show(value)}"
                    )
                length = _check_content_length(value)
                if code < 200 or code == 204:
                    continue  # RFC 9110 §8.6: never in 1xx or 204
            elif lname == "date":
                has_date = True
            elif lname == "server":
                has_server = True
            elif lname == "connection" and value.strip(" \t").lower() == "close":
                close = True
                continue  # we write our own below
            else:
                raise LocalProtocolError(
                    f"hop-by-hop header {show(name)}: {show(value)} from the "
                    "application (PEP 3333: the server's business)"
                )
        append(f"{name}: {value}")

    version = request.version
    if code < 200:
        if version < (1, 1):
            raise LocalProtocolError(
                f"{code} interim response to an HTTP/1.0 client (RFC 9110 §15.2)"
            )
        framing = ResponseFraming(False, None, False, True)
    else:
        if date and not has_date:
            append("Date: " + http_date())
        if server and not has_server:
            append("Server: " + server)
        has_body = code != 204 and code != 304 and request.method != "HEAD"
        is_chunked = False
        stays_open = keep_alive and request.keep_alive and not close
        if has_body and length is None:
            if version >= (1, 1):
                is_chunked = True
                append("Transfer-Encoding: chunked")
            else:
                stays_open = False
        if not stays_open:
            append("Connection: close")
        elif version < (1, 1):
            append("Connection: keep-alive")
        framing = ResponseFraming(
            has_body, None if code == 204 else length, is_chunked, stays_open
        )
    append("\r\n")
    text = "\r\n".join(lines)
    try:
        head = text.encode("latin-1")
    except UnicodeEncodeError as exc:
        around = show(exc.object[max(0, exc.start - 20) : exc.end + 20])
        message = f"non-latin-1 character in response head: {around}"
        raise LocalProtocolError(message) from exc
    if head.translate(None, FIELD_BYTES_NO_CRLF) != b"\r\n" * len(lines):
        raise _explain_bad_value(status, lines)
    return head, framing


def _check_status(status: str) -> int:
    """Validate a WSGI status string not seen before; return its code."""
    match = _STATUS.fullmatch(status) if isinstance(status, str) else None
    if match is None:
        raise LocalProtocolError(
            f"invalid status {show(status)}: want '100'..'599', a space and a reason"
        )
    code = int(match.group(1))
    if len(status) <= 100 and len(_STATUS_CACHE) < _CACHE_LIMIT:
        _STATUS_CACHE[status] = code
    return code


def _check_name(name: str) -> str:
    """Validate a new header name (a token, RFC 9110 §5.1); return it lower-cased."""
    if not isinstance(name, str) or TOKEN_RE.fullmatch(name) is None:
        raise LocalProtocolError(f"invalid header name {show(name)}")
    lname = name.lower()
    if len(name) <= 100 and len(_NAME_CACHE) < _CACHE_LIMIT:
        _NAME_CACHE[name] = lname
    return lname


def _check_content_length(value: str) -> int:
    """Parse an application's Content-Length: 1*DIGIT (RFC 9110 §8.6)."""
    if not (value.isascii() and value.isdigit()) or len(value) > 19:
        raise LocalProtocolError(f"invalid Content-Length {show(value)}")
    return int(value)


def _explain_bad_value(status: str, lines: list[str]) -> LocalProtocolError:
    """Name the header whose value failed the bulk check (slow path)."""
    for line in lines[1:-1]:
        name, _, value = line.partition(": ")
        if value.encode("latin-1").translate(None, FIELD_BYTES_NO_CRLF):
            return LocalProtocolError(
                f"CR, LF, NUL or other control character in {name}: {show(value)}"
            )
    return LocalProtocolError(f"invalid response head for status {show(status)}")


def chunk(data: bytes) -> bytes:
    """Encode one piece of body in the chunked transfer coding (RFC 9112 §7.1).

    Args:
        data: body bytes (a bytearray or memoryview works too).
    Returns:
        ``b"<hex size>\\r\\n" + data + b"\\r\\n"``; ``b""`` for empty data,
        because a zero-size chunk would end the body (send LAST_CHUNK for that).
    """
    if not data:
        return b""
    return b"%x\r\n%b\r\n" % (len(data), data)


def chunk_parts(data: bytes, before: bytes = b"") -> list[bytes]:
    """The pieces of one chunk (RFC 9112 §7.1) for a gathered send, ``data`` not copied.

    Returns ``[before + b"<hex size>\\r\\n", data, b"\\r\\n"]``: what
    :func:`chunk` makes, in three pieces, with ``before`` (a head, say) in
    front. ``data`` must not be empty.
    """
    return [before + b"%x\r\n" % len(data), data, b"\r\n"]


def simple_response(
    status_code: int,
    reason: str,
    body: bytes | str | None = None,
    *,
    close: bool = True,
    server: str | None = "cogen",
) -> bytes:
    """Build a complete small text/plain response, for errors the server answers.

    Args:
        status_code: 100..599 (e.g. ``RemoteProtocolError.status_code``).
        reason: the reason phrase (e.g. ``RemoteProtocolError.reason``).
        body: the text; str is UTF-8 encoded; None for ``"<code> <reason>\\n"``.
        close: add ``Connection: close`` (the usual case after an error).
        server: the Server field value, None for none.
    Returns:
        Head and body bytes, with Date and Content-Length.
    Raises:
        LocalProtocolError: a status code out of range or a reason phrase
            with control characters.
    """
    status = f"{status_code} {reason}"
    if not 100 <= status_code <= 599 or _STATUS.fullmatch(status) is None:
        raise LocalProtocolError(f"invalid status {show(status)}")
    if body is None:
        body = f"{status}\n"
    payload = body.encode("utf-8") if isinstance(body, str) else body
    lines = [
        f"HTTP/1.1 {status}",
        "Content-Type: text/plain; charset=utf-8",
        f"Content-Length: {len(payload)}",
        "Date: " + http_date(),
    ]
    if server:
        lines.append("Server: " + server)
    if close:
        lines.append("Connection: close")
    lines.append("\r\n")
    try:
        head = "\r\n".join(lines).encode("latin-1")
    except UnicodeEncodeError as exc:
        raise LocalProtocolError(
            f"non-latin-1 character in {show(status)} or server {show(server or '')}"
        ) from exc
    if head.translate(None, FIELD_BYTES_NO_CRLF) != b"\r\n" * len(lines):
        raise LocalProtocolError(f"control character in server {show(server or '')}")
    return head + payload
