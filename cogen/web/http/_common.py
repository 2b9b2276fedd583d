"""Errors, grammar tables and field-line checks shared by the HTTP/1.1 modules.

Private: import the public names from :mod:`cogen.web.http`. The classes
defined here report ``cogen.web.http`` as their module, so tracebacks, reprs
and pickles name the public home.

Everything here works on whole buffers at once (``bytes.translate``,
``bytes.count``, precompiled regular expressions): the callers are on the hot
path of the server and must not loop over characters in Python.
"""

from __future__ import annotations

import re
from http import HTTPStatus
from typing import Final

from cogen.errors import CogenError

__all__ = [
    "FIELD_BYTES_NO_CRLF",
    "NAME_CACHE",
    "TOKEN_CHARS",
    "TOKEN_RE",
    "LocalProtocolError",
    "ProtocolError",
    "RemoteProtocolError",
    "explain_field_lines",
    "field_bytes_ok",
    "field_name",
    "first_bare_cr_lf",
    "show",
]

# RFC 9110 §5.6.2: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-"
# / "." / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA. Escaped for use inside
# a regex character class.
TOKEN_CHARS: Final = r"!#$%&'*+\-.^_`|~0-9A-Za-z"
TOKEN_RE: Final = re.compile(f"[{TOKEN_CHARS}]+")

# Bytes allowed anywhere in a message head apart from the CR LF pairs that end
# lines: RFC 9110 §5.5 field-vchar = VCHAR / obs-text, plus SP and HTAB. NUL,
# the other CTLs and DEL never are. Used as the *delete* set of
# bytes.translate(): whatever survives is either a CR, a LF or a bad byte.
FIELD_BYTES_NO_CRLF: Final = (
    b"\t" + bytes(range(0x20, 0x7F)) + bytes(range(0x80, 0x100))
)

# Field names seen before and known valid, as sent -> lower-cased. Clients
# send the same dozen names on every request, so one dict lookup replaces
# validating and lower-casing each of them. Bounded in entries and in name
# length, so a client cannot make it big; past the limit, new names are
# validated on every use instead. Names with "_" are never cached.
NAME_CACHE: Final[dict[str, str]] = {}
NAME_CACHE_LIMIT: Final = 1000

# A CR not followed by LF, or a LF not preceded by CR (RFC 9112 §2.2: only
# CRLF ends a line here; we do not accept a bare LF or CR).
_BARE_CR_LF: Final = re.compile(rb"\r(?!\n)|(?<!\r)\n")

_REASONS: Final = {
    400: "Bad Request",
    408: "Request Timeout",
    413: "Content Too Large",
    414: "URI Too Long",
    417: "Expectation Failed",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    505: "HTTP Version Not Supported",
}


class ProtocolError(CogenError):
    """Base class of every HTTP/1.1 protocol violation cogen detects."""


class RemoteProtocolError(ProtocolError):
    """The peer sent bytes that are not valid HTTP/1.1 (or that we refuse).

    The server answers with :attr:`status_code` and :attr:`reason` (see
    ``simple_response``) and then closes the connection: after a framing
    error nothing later on the connection can be trusted.

    Args:
        message: what was wrong, naming the offending value.
        status_code: the 4xx/5xx status to answer with (default 400).

    Attributes:
        status_code: int in 400..599.
        reason: the standard reason phrase of ``status_code``.
    """

    def __init__(self, message: str, status_code: int = 400) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.reason = _REASONS.get(status_code) or _standard_reason(status_code)


class LocalProtocolError(ProtocolError):
    """We, or the application, tried to emit invalid HTTP/1.1.

    Raised for a malformed status line or header (CR, LF, NUL or another
    CTL in a value: response splitting), for forbidden hop-by-hop headers
    and for misuse of a parser object. A server turns it into a 500.
    """


def _standard_reason(status_code: int) -> str:
    try:
        return HTTPStatus(status_code).phrase
    except ValueError:
        return "Error"


for _cls in (ProtocolError, RemoteProtocolError, LocalProtocolError):
    _cls.__module__ = "cogen.web.http"


def show(value: object, limit: int = 60) -> str:
    """Return ``repr(value)`` cut to about ``limit`` characters, for error messages.

    Args:
        value: the offending bytes or text (or any object).
        limit: maximum length of the shown value before "...".
    Returns:
        A printable, quoted rendering.
    """
    if isinstance(value, (bytearray, memoryview)):
        value = bytes(value)
    if isinstance(value, (bytes, str)) and len(value) > limit:
        return repr(value[:limit]) + "..."
    return repr(value)


def field_bytes_ok(raw: bytes | bytearray, line_breaks: int) -> bool:
    """Tell whether ``raw`` holds only field bytes and exactly ``line_breaks`` CRLFs.

    Every CR and LF of ``raw`` must belong to one of the CRLF pairs that the
    caller split on: ``raw.split(b"\\r\\n")`` (or the decoded equivalent)
    produced ``line_breaks + 1`` pieces, so there are that many adjacent
    pairs; if the CR/LF bytes left after deleting the allowed ones are
    exactly that many "\\r\\n" then none is bare. One translate, no loop.

    Args:
        raw: a head or trailer block without its final empty line.
        line_breaks: number of CRLF pairs in ``raw``.
    Returns:
        True when the block is clean.
    """
    return raw.translate(None, FIELD_BYTES_NO_CRLF) == b"\r\n" * line_breaks


def first_bare_cr_lf(buf: bytes | bytearray, start: int, stop: int) -> int:
    """Return the index just past the first bare CR or LF in ``buf[start:stop]``.

    A CR at ``stop - 1`` is judged by the byte after it, if ``buf`` has one;
    if not, it is not reported: its LF may still be on the way.

    Args:
        buf: the receive buffer.
        start: first index to look at.
        stop: one past the last index to look at.
    Returns:
        The length of the shortest prefix of ``buf`` that proves the error,
        or -1 if there is no bare CR or LF.
    """
    match = _BARE_CR_LF.search(buf, start, stop)
    if match is None:
        return -1
    pos = match.start()
    if buf[pos] == 0x0A:
        return pos + 1
    if pos + 1 < stop or (pos + 1 < len(buf) and buf[pos + 1] != 0x0A):
        return pos + 2
    return -1


def field_name(name: str, colon: str, line: str, what: str) -> str:
    """Validate and lower-case a field name that is not in NAME_CACHE.

    Args:
        name: the part of ``line`` before the first colon.
        colon: ``":"``, or ``""`` if the line has none.
        line: the whole field line, for the error message.
        what: "header" or "trailer", for the error message.
    Returns:
        The lower-case name, or ``""`` when the field must be dropped
        because its name contains ``_`` (it would alias the ``-`` spelling in
        WSGI ``HTTP_*`` keys).
    Raises:
        RemoteProtocolError: 400, the name is not a token (this includes
            obs-fold and whitespace before the colon).
    """
    if not colon or TOKEN_RE.fullmatch(name) is None:
        raise explain_field_lines([line], what)
    lname = name.lower()
    if "_" in lname:
        return ""
    if len(name) <= 64 and len(NAME_CACHE) < NAME_CACHE_LIMIT:
        NAME_CACHE[name] = lname
    return lname


def explain_field_lines(lines: list[str], what: str) -> RemoteProtocolError:
    """Build the precise error for field lines that failed the bulk checks.

    Slow path only: called once the fast checks said something is wrong.

    Args:
        lines: the field lines, without line terminators.
        what: "header" or "trailer", for the message.
    Returns:
        A RemoteProtocolError with status 400 naming the bad line.
    """
    for line in lines:
        if line[:1] in (" ", "\t"):
            # RFC 9112 §5.2: obs-fold is rejected, never unfolded.
            return RemoteProtocolError(
                f"obsolete line folding in {what} line {show(line)}"
            )
        name, colon, _ = line.partition(":")
        if not colon:
            return RemoteProtocolError(f"{what} line without a colon: {show(line)}")
        if not name:
            return RemoteProtocolError(f"empty {what} name in {show(line)}")
        if name[-1:] in (" ", "\t"):
            # RFC 9112 §5.1: no whitespace between field name and colon.
            return RemoteProtocolError(
                f"whitespace before the colon in {what} line {show(line)}"
            )
        if TOKEN_RE.fullmatch(name) is None:
            return RemoteProtocolError(f"invalid {what} name {show(name)}")
        bad = line.encode("latin-1").translate(None, FIELD_BYTES_NO_CRLF)
        if bad:
            return RemoteProtocolError(
                f"invalid byte {show(bad[:1])} in {what} line {show(line)}"
            )
    return RemoteProtocolError(f"malformed {what} block")
