"""Request-head rules beyond the bulk checks. Private: use cogen.web.http.

parse_request_head() in cogen.web.http does the fast, whole-buffer checks
and calls into this module for everything rarer: leading empty lines, the
errors a prefix of an incomplete head proves (bare CR/LF, 414, 431), the
precise explanation of a head that failed a bulk check, request-target forms
other than plain origin-form, the Host field, and the fields that decide the
body's framing (Content-Length, Transfer-Encoding) and the connection's fate
(Connection, Expect).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Final

from cogen.web._http_common import (
    FIELD_BYTES_NO_CRLF,
    TOKEN_CHARS,
    TOKEN_RE,
    RemoteProtocolError,
    explain_field_lines,
    first_bare_cr_lf,
    show,
)

__all__ = [
    "MAX_EMPTY_LINES",
    "VALID_HOSTS",
    "check_framing_fields",
    "check_host",
    "head_error",
    "parse_version",
    "prefix_error",
    "request_line_error",
    "skip_empty_lines",
    "split_other_target",
]

# RFC 9112 §2.2: a server SHOULD ignore at least one empty line before the
# request-line. We ignore a few and reject a stream of them.
MAX_EMPTY_LINES: Final = 4

# RFC 9110 §4.2.3 / RFC 3986 §3.2.2: uri-host = IP-literal / IPv4address / reg-name
# (IPv4address is a subset of reg-name), port = *DIGIT.
_IP_LITERAL: Final = (
    r"\[(?:[0-9A-Fa-f:.]+|v[0-9A-Fa-f]+\.[A-Za-z0-9\-._~!$&'()*+,;=:]+)\]"
)
# reg-name = *( unreserved / pct-encoded / sub-delims ). One quantifier over
# alternatives that each match a fixed length and start with different
# characters ("%" is not in the class, nor is ":"), so a failed match backs off
# one step at a time: linear in the input, with no possessive quantifier (3.11+).
_REG_NAME_UNIT: Final = r"(?:[A-Za-z0-9\-._~!$&'()*+,;=]|%[0-9A-Fa-f][0-9A-Fa-f])"
# The Host field may have an empty host (RFC 9110 §7.2); a URI authority may not.
_HOST_FIELD: Final = re.compile(f"(?:{_IP_LITERAL}|{_REG_NAME_UNIT}*)(?::[0-9]*)?")
_URI_AUTHORITY: Final = re.compile(f"(?:{_IP_LITERAL}|{_REG_NAME_UNIT}+)(?::[0-9]*)?")
# RFC 9112 §3.2.3: authority-form = uri-host ":" port, for CONNECT only.
_CONNECT_AUTHORITY: Final = re.compile(f"(?:{_IP_LITERAL}|{_REG_NAME_UNIT}+):[0-9]+")
# Host values already validated: a server sees the same few on every
# request. Bounded in entries and length; past the limit new values are
# validated on every use.
VALID_HOSTS: Final[set[str]] = set()
_VALID_HOSTS_LIMIT: Final = 1000
# RFC 9112 §3.2.2: absolute-form; we serve http and https URIs only.
_ABSOLUTE_FORM: Final = re.compile(
    r"[Hh][Tt][Tt][Pp][Ss]?://([^/?]*)([^?]*)(?:\?(.*))?"
)

# transfer-coding = token *( OWS ";" OWS transfer-parameter ) (RFC 9110 §10.1.4),
# transfer-parameter = token BWS "=" BWS ( token / quoted-string ).
_QUOTED_STRING: Final = (
    r'"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*"'
)
_TRANSFER_CODING: Final = re.compile(
    f"[ \\t]*([{TOKEN_CHARS}]+)((?:[ \\t]*;[ \\t]*[{TOKEN_CHARS}]+[ \\t]*=[ \\t]*"
    f"(?:[{TOKEN_CHARS}]+|{_QUOTED_STRING}))*)[ \\t]*(,|$)"
)


def skip_empty_lines(buf: bytes | bytearray) -> int:
    """Return the index past the leading empty lines of ``buf``, -1 if nothing else."""
    pos = 0
    while buf.startswith(b"\r\n", pos):
        pos += 2
        if pos > 2 * MAX_EMPTY_LINES:
            raise RemoteProtocolError(
                f"more than {MAX_EMPTY_LINES} empty lines before the request line"
            )
    if buf.startswith(b"\n", pos):
        raise RemoteProtocolError(
            "bare LF before the request line (only CRLF ends a line)"
        )
    if buf.startswith(b"\r", pos):
        if pos + 1 == len(buf):
            return -1
        raise RemoteProtocolError(
            "bare CR before the request line (only CRLF ends a line)"
        )
    return -1 if pos == len(buf) else pos


def prefix_error(
    buf: bytes | bytearray,
    start: int,
    stop: int,
    scan_from: int,
    max_request_line: int,
    max_header_bytes: int,
) -> RemoteProtocolError | None:
    """Return the error that the shortest prefix of ``buf[start:stop]`` proves, if any.

    Only errors visible before the head is complete are considered: a bare
    CR or LF, a request line over the limit (414), a head over the limit
    (431). Bytes before ``scan_from`` were already searched for bare CR/LF.
    """
    found: list[tuple[int, RemoteProtocolError]] = []
    bare = first_bare_cr_lf(buf, max(start, scan_from - 1), stop)
    if bare >= 0:
        found.append(
            (
                bare,
                RemoteProtocolError(
                    "bare CR or LF in the request head (only CRLF ends a line)"
                ),
            )
        )
    line_stop = start + max_request_line + 2
    if scan_from < line_stop <= stop and buf.find(b"\r\n", start, line_stop) < 0:
        shown = show(buf[start : start + 40])
        message = f"request line longer than {max_request_line} bytes: {shown}"
        found.append((line_stop, RemoteProtocolError(message, 414)))
    if stop - start > max_header_bytes:
        message = f"request head longer than {max_header_bytes} bytes"
        found.append((start + max_header_bytes + 1, RemoteProtocolError(message, 431)))
    return min(found, key=lambda item: item[0])[1] if found else None


def head_error(
    buf: bytes | bytearray,
    start: int,
    end: int,
    lines: list[str],
    max_request_line: int,
    max_header_bytes: int,
) -> RemoteProtocolError:
    """Find the precise error of a complete head that failed the bulk checks."""
    error = prefix_error(buf, start, end + 4, 0, max_request_line, max_header_bytes)
    if error is not None:
        return error
    if lines[0].encode("latin-1").translate(None, FIELD_BYTES_NO_CRLF):
        return RemoteProtocolError(
            f"control character in the request line {show(lines[0])}"
        )
    return explain_field_lines(lines[1:], "header")


def request_line_error(line: str) -> RemoteProtocolError:
    """Explain why ``line`` is not ``method SP target SP HTTP/x.y`` (RFC 9112 §3)."""
    parts = line.split(" ")
    if len(parts) != 3 or not all(parts):
        return RemoteProtocolError(
            f"malformed request line {show(line)}: want 'method SP target SP HTTP/x.y'"
        )
    method, target, version = parts
    if TOKEN_RE.fullmatch(method) is None:
        return RemoteProtocolError(f"invalid method {show(method)}")
    if "#" in target:
        return RemoteProtocolError(f"fragment in request-target {show(target)}")
    if re.fullmatch(r"[\x21-\x7e]+", target) is None:
        return RemoteProtocolError(
            f"invalid character in request-target {show(target)}"
        )
    return RemoteProtocolError(f"invalid HTTP version {show(version)}")


def parse_version(text: str) -> tuple[int, int]:
    """Map ``"x.y"`` other than 1.0/1.1 to the version we speak, or raise 505.

    RFC 9110 §2.5: a 1.x message with x > 1 is understood as the highest 1.x
    we implement; another major version is not HTTP/1 at all.
    """
    if text[0] != "1":
        raise RemoteProtocolError(f"unsupported HTTP version 'HTTP/{text}'", 505)
    return (1, 1)


def split_other_target(method: str, target: str) -> tuple[str, str, str | None]:
    """Split a request-target that is not plain origin-form (RFC 9112 §3.2).

    Returns:
        (path, query, authority); authority is None for asterisk-form.
    """
    if target == "*":
        if method != "OPTIONS":
            raise RemoteProtocolError(
                f"asterisk-form request-target with method {show(method)}, not OPTIONS"
            )
        return "*", "", None
    if method == "CONNECT":
        if _CONNECT_AUTHORITY.fullmatch(target) is None or not _ip_literal_ok(target):
            raise RemoteProtocolError(
                "CONNECT needs an authority-form request-target host:port, "
                f"got {show(target)}"
            )
        return "", "", target
    match = _ABSOLUTE_FORM.fullmatch(target)
    if match is None:
        raise RemoteProtocolError(f"invalid request-target {show(target)}")
    authority, path, query = match.groups()
    if _URI_AUTHORITY.fullmatch(authority) is None or not _ip_literal_ok(authority):
        # RFC 9110 §4.2.1: an http(s) URI with an empty host is invalid; and
        # §4.2.4: userinfo is deprecated, a recipient SHOULD treat it as an error.
        raise RemoteProtocolError(
            f"invalid authority {show(authority)} in request-target {show(target)}"
        )
    if not path:
        # RFC 9112 §3.2.4: OPTIONS on an absolute URI with an empty path and
        # no query is about the server as a whole, like asterisk-form.
        path = "*" if method == "OPTIONS" and query is None else "/"
    return path, query or "", authority


def _ip_literal_ok(host: str) -> bool:
    """Check that an IPv6 literal in ``host`` (``[...]``, not ``[v...]``) is one."""
    if not host.startswith("[") or host.startswith("[v"):
        return True
    try:
        ipaddress.IPv6Address(host[1 : host.index("]")])
    except ValueError:
        return False
    return True


def check_host(
    headers: list[tuple[str, str]], host_count: int, version: tuple[int, int]
) -> None:
    """Validate the Host field of a request whose Host is not in VALID_HOSTS.

    RFC 9110 §7.2: 400 for an HTTP/1.1 request without Host, for more than
    one Host line, and for an invalid Host value (any version).
    """
    if host_count == 0:
        if version == (1, 1):
            raise RemoteProtocolError("HTTP/1.1 request without a Host header field")
        return
    hosts = [value for name, value in headers if name == "host"]
    if host_count > 1:
        raise RemoteProtocolError(
            f"{host_count} Host header fields: {show(', '.join(hosts))}"
        )
    # A comma is a sub-delim, valid in a reg-name, but no DNS name has one and
    # an intermediary may read "a,b" as two Host values: rejected too.
    if (
        _HOST_FIELD.fullmatch(hosts[0]) is None
        or "," in hosts[0]
        or not _ip_literal_ok(hosts[0])
    ):
        raise RemoteProtocolError(f"invalid Host {show(hosts[0])}")
    if len(hosts[0]) <= 300 and len(VALID_HOSTS) < _VALID_HOSTS_LIMIT:
        VALID_HOSTS.add(hosts[0])


def check_framing_fields(
    fields: list[tuple[str, str]],
    version: tuple[int, int],
    max_body: int | None,
) -> tuple[int | None, bool, bool, bool]:
    """Apply the Connection, Expect and body framing rules to the set-aside fields.

    Returns:
        (content_length, chunked, keep_alive, expect_continue).
    """
    lengths: list[str] = []
    codings: list[str] = []
    close = keep_alive_asked = expect_continue = False
    for name, value in fields:
        if name == "connection":
            # RFC 9110 §7.6.1: a comma-separated list of case-insensitive options.
            options = value.lower()
            if options == "keep-alive":
                keep_alive_asked = True
            elif options == "close":
                close = True
            else:
                for option in options.split(","):
                    option = option.strip(" \t")
                    close = close or option == "close"
                    keep_alive_asked = keep_alive_asked or option == "keep-alive"
        elif name == "content-length":
            lengths.append(value)
        elif name == "transfer-encoding":
            codings.append(value)
        elif version == (1, 1):
            # Expect. RFC 9110 §10.1.1: case-insensitive; ignored in HTTP/1.0.
            expect_continue = expect_continue or "100-continue" in [
                e.strip(" \t") for e in value.lower().split(",")
            ]

    content_length = None
    chunked = False
    if codings:
        # RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 means faulty framing,
        # and with Content-Length it is a smuggling attempt: we reject both
        # rather than choosing one reading.
        if version == (1, 0):
            raise RemoteProtocolError("Transfer-Encoding in an HTTP/1.0 request")
        if lengths:
            raise RemoteProtocolError("both Transfer-Encoding and Content-Length")
        _check_transfer_codings(codings)
        chunked = True
    elif lengths:
        content_length = _parse_content_length(lengths)
        if max_body is not None and content_length > max_body:
            raise RemoteProtocolError(
                f"Content-Length {content_length} over the limit of {max_body} bytes",
                413,
            )
    keep_alive = not close and (version == (1, 1) or keep_alive_asked)
    return content_length, chunked, keep_alive, expect_continue


def _check_transfer_codings(values: list[str]) -> None:
    """Accept exactly ``chunked`` as the only and final transfer coding.

    RFC 9112 §6.3: a request whose final coding is not chunked has no
    reliable length -> 400; §7: chunked MUST NOT be applied twice -> 400;
    §6.1: a coding we do not implement -> 501. We decode no other coding,
    so ``gzip, chunked`` is a 501.
    """
    joined = ", ".join(values)
    names: list[str] = []
    for value in values:
        pos = 0
        while True:
            match = _TRANSFER_CODING.match(value, pos)
            if match is None:
                # Also catches empty list elements: strictness, since
                # "chunked," is exactly what a smuggler would try.
                raise RemoteProtocolError(f"malformed Transfer-Encoding {show(joined)}")
            coding, parameters, comma = match.groups()
            names.append(coding.lower())
            if coding.lower() == "chunked" and parameters:
                raise RemoteProtocolError(
                    f"parameters on chunked in Transfer-Encoding {show(joined)}"
                )
            pos = match.end()
            if not comma:
                break
    if names[-1] != "chunked":
        raise RemoteProtocolError(
            f"Transfer-Encoding {show(joined)} does not end in chunked"
        )
    if names.count("chunked") > 1:
        raise RemoteProtocolError(
            f"chunked applied more than once in Transfer-Encoding {show(joined)}"
        )
    if len(names) > 1:
        raise RemoteProtocolError(
            f"unsupported transfer coding in Transfer-Encoding {show(joined)}", 501
        )


def _parse_content_length(values: list[str]) -> int:
    """Parse the one Content-Length field (RFC 9110 §8.6), strictly.

    Any repetition, even of the same value, and any list is a 400: two
    parties that resolve duplicates differently disagree on the body length.
    """
    if len(values) > 1:
        raise RemoteProtocolError(
            f"{len(values)} Content-Length header fields: {show(', '.join(values))}"
        )
    value = values[0]
    if not (value.isascii() and value.isdigit()):
        raise RemoteProtocolError(f"invalid Content-Length {show(value)}")
    if len(value.lstrip("0")) > 18:
        raise RemoteProtocolError(f"Content-Length {show(value)} too large", 413)
    return int(value)
