"""Unit tests of cogen.web.http request-head parsing: parse_request_head and the errors it raises."""

from __future__ import annotations

from typing import Any

import pytest

from cogen.errors import CogenError
from cogen.web.http import (
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
    RequestHead,
    parse_request_head,
)

pytestmark = pytest.mark.timeout(30)

BROWSER_GET = (
    b"GET /path/to/page?x=1&y=2 HTTP/1.1\r\n"
    b"Host: localhost:8080\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0\r\n"
    b"Accept: text/html,*/*;q=0.8\r\n"
    b"Accept-Encoding: gzip, deflate\r\n"
    b"Connection: keep-alive\r\n"
    b"\r\n"
)


def status_of(raw: bytes, **limits: Any) -> int:
    with pytest.raises(RemoteProtocolError) as info:
        parse_request_head(raw, **limits)
    return info.value.status_code


def test_typical_get_gives_every_field_exactly() -> None:
    assert parse_request_head(BROWSER_GET) == RequestHead(
        method="GET",
        target="/path/to/page?x=1&y=2",
        path="/path/to/page",
        query="x=1&y=2",
        version=(1, 1),
        headers=[
            ("host", "localhost:8080"),
            ("user-agent", "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0"),
            ("accept", "text/html,*/*;q=0.8"),
            ("accept-encoding", "gzip, deflate"),
            ("connection", "keep-alive"),
        ],
        host="localhost:8080",
        content_length=None,
        chunked=False,
        keep_alive=True,
        expect_continue=False,
        head_size=len(BROWSER_GET),
    )


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_accepts_bytes_bytearray_and_memoryview(kind: type) -> None:
    head = parse_request_head(kind(BROWSER_GET))
    assert head is not None
    assert head.headers[0] == ("host", "localhost:8080")


def test_head_size_stops_before_the_body() -> None:
    raw = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET"
    head = parse_request_head(raw)
    assert head is not None
    assert raw[head.head_size :] == b"helloGET"
    assert head.content_length == 5


def test_returns_none_for_every_incomplete_prefix() -> None:
    for cut in range(len(BROWSER_GET)):
        assert parse_request_head(BROWSER_GET[:cut]) is None, cut


def test_scan_from_gives_the_same_result_when_fed_byte_by_byte() -> None:
    buf = bytearray()
    scanned = 0
    head = None
    for byte in BROWSER_GET:
        buf.append(byte)
        head = parse_request_head(buf, scan_from=scanned)
        if head is None:
            scanned = len(buf)
    assert head == parse_request_head(BROWSER_GET)


def test_scan_from_still_finds_a_bare_lf_split_from_its_cr() -> None:
    assert parse_request_head(b"GET / HTTP/1.1\r") is None
    assert status_of(b"GET / HTTP/1.1\r\r", scan_from=15) == 400


@pytest.mark.parametrize(
    ("raw", "version", "keep_alive"),
    [
        (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", (1, 1), True),
        (b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", (1, 1), False),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Keep-Alive, Close\r\n\r\n",
            (1, 1),
            False,
        ),
        (b"GET / HTTP/1.1\r\nHost: a\r\nConnection: te, upgrade\r\n\r\n", (1, 1), True),
        (b"GET / HTTP/1.0\r\n\r\n", (1, 0), False),
        (b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", (1, 0), True),
        (b"GET / HTTP/1.0\r\nConnection: KEEP-ALIVE\r\n\r\n", (1, 0), True),
        (b"GET / HTTP/1.0\r\nConnection: x,keep-alive\r\n\r\n", (1, 0), True),
        (
            b"GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n",
            (1, 0),
            False,
        ),
        (b"GET / HTTP/1.2\r\nHost: a\r\n\r\n", (1, 1), True),
        (b"GET / HTTP/1.9\r\nHost: a\r\n\r\n", (1, 1), True),
    ],
)
def test_version_and_keep_alive(
    raw: bytes, version: tuple[int, int], keep_alive: bool
) -> None:
    head = parse_request_head(raw)
    assert head is not None
    assert (head.version, head.keep_alive) == (version, keep_alive)


@pytest.mark.parametrize(
    ("line", "path", "query", "host"),
    [
        (b"GET / HTTP/1.1", "/", "", "h"),
        (b"GET /a/b?c=d&e HTTP/1.1", "/a/b", "c=d&e", "h"),
        (b"GET /a?b?c HTTP/1.1", "/a", "b?c", "h"),
        (b"GET /a%2Fb%20c HTTP/1.1", "/a%2Fb%20c", "", "h"),
        (b"GET //double HTTP/1.1", "//double", "", "h"),
        (b"GET http://example.com/x?y HTTP/1.1", "/x", "y", "example.com"),
        (b"GET https://example.com:8443 HTTP/1.1", "/", "", "example.com:8443"),
        (b"GET HtTp://[::1]:80/ HTTP/1.1", "/", "", "[::1]:80"),
        (b"OPTIONS * HTTP/1.1", "*", "", "h"),
        (b"OPTIONS http://example.com HTTP/1.1", "*", "", "example.com"),
        (b"OPTIONS http://example.com? HTTP/1.1", "/", "", "example.com"),
        (b"OPTIONS http://example.com/ HTTP/1.1", "/", "", "example.com"),
        (b"CONNECT example.com:443 HTTP/1.1", "", "", "example.com:443"),
        (b"CONNECT [2001:db8::1]:443 HTTP/1.1", "", "", "[2001:db8::1]:443"),
    ],
)
def test_request_target_forms(line: bytes, path: str, query: str, host: str) -> None:
    head = parse_request_head(line + b"\r\nHost: h\r\n\r\n")
    assert head is not None
    assert (head.path, head.query, head.host) == (path, query, host)
    assert head.target == line.split(b" ")[1].decode()


@pytest.mark.parametrize(
    "host",
    [
        "example.com",
        "example.com:8080",
        "example.com:",
        "127.0.0.1",
        "[::1]",
        "[2001:db8::1]:443",
        "[v1.fe80::a+en1]",
        "xn--bcher-kva.example",
        "a%41b",
        "!$&'()*+;=-._~",
        "",
    ],
)
def test_valid_host_values(host: str) -> None:
    head = parse_request_head(b"GET / HTTP/1.1\r\nHost: " + host.encode() + b"\r\n\r\n")
    assert head is not None
    assert head.host == host


@pytest.mark.parametrize(
    "host",
    [
        b"a b",
        b"a/b",
        b"a@b",
        b"a:b:c",
        b"a:-1",
        b"[::1",
        b"::1",
        b"[zz::1]",
        b"a%zz",
        b'"a"',
        b"a\\b",
        b"a,b",
    ],
)
def test_invalid_host_values_are_400(host: bytes) -> None:
    assert status_of(b"GET / HTTP/1.1\r\nHost: " + host + b"\r\n\r\n") == 400


def test_host_is_optional_in_http10_but_validated() -> None:
    head = parse_request_head(b"GET / HTTP/1.0\r\n\r\n")
    assert head is not None and head.host is None
    assert status_of(b"GET / HTTP/1.0\r\nHost: a b\r\n\r\n") == 400


def test_absolute_form_authority_replaces_the_host_field() -> None:
    head = parse_request_head(
        b"GET http://real.example/ HTTP/1.1\r\nHost: other\r\n\r\n"
    )
    assert head is not None
    assert head.host == "real.example"
    assert ("host", "other") in head.headers


def test_absolute_form_still_needs_a_host_field_in_http11() -> None:
    assert status_of(b"GET http://real.example/ HTTP/1.1\r\n\r\n") == 400


def test_values_are_stripped_of_ows_and_keep_inner_whitespace_and_obs_text() -> None:
    head = parse_request_head(
        b"GET / HTTP/1.1\r\nHost: a\r\nX: \t a \t b\xe9\xff \t\r\nY:\r\n\r\n"
    )
    assert head is not None
    assert head.headers[1:] == [("x", "a \t b\xe9\xff"), ("y", "")]


def test_header_names_with_underscore_are_dropped() -> None:
    head = parse_request_head(
        b"GET / HTTP/1.1\r\nHost: a\r\nX_User: evil\r\nX-User: good\r\n_: x\r\n\r\n"
    )
    assert head is not None
    assert head.headers == [("host", "a"), ("x-user", "good")]


def test_repeated_fields_are_kept_in_order() -> None:
    head = parse_request_head(
        b"GET / HTTP/1.1\r\nHost: a\r\nCookie: a=1\r\nAccept: x\r\nCookie: b=2\r\n\r\n"
    )
    assert head is not None
    assert head.headers == [
        ("host", "a"),
        ("cookie", "a=1"),
        ("accept", "x"),
        ("cookie", "b=2"),
    ]


@pytest.mark.parametrize(
    ("expect", "version", "wanted"),
    [
        (b"100-continue", b"1.1", True),
        (b"100-Continue", b"1.1", True),
        (b"foo, 100-continue", b"1.1", True),
        (b"100-continue", b"1.0", False),
        (b"200-ok", b"1.1", False),
    ],
)
def test_expect_continue(expect: bytes, version: bytes, wanted: bool) -> None:
    raw = (
        b"PUT / HTTP/"
        + version
        + b"\r\nHost: a\r\nExpect: "
        + expect
        + b"\r\nContent-Length: 1\r\n\r\n"
    )
    head = parse_request_head(raw)
    assert head is not None
    assert head.expect_continue is wanted


@pytest.mark.parametrize(
    ("fields", "content_length", "chunked"),
    [
        (b"", None, False),
        (b"Content-Length: 0\r\n", 0, False),
        (b"Content-Length: 42\r\n", 42, False),
        (b"Content-Length: 007\r\n", 7, False),
        (b"Content-Length: 999999999999999999\r\n", 999999999999999999, False),
        (b"Transfer-Encoding: chunked\r\n", None, True),
        (b"Transfer-Encoding: CHUNKED\r\n", None, True),
        (b"Transfer-Encoding:  chunked \t\r\n", None, True),
    ],
)
def test_body_framing(fields: bytes, content_length: int | None, chunked: bool) -> None:
    head = parse_request_head(b"POST / HTTP/1.1\r\nHost: a\r\n" + fields + b"\r\n")
    assert head is not None
    assert (head.content_length, head.chunked) == (content_length, chunked)


# Every rule, with the status it must produce (the fixture files test the
# same rules fed in pieces; this table is the quick reference).
H = b"Host: a\r\n"
INVALID: list[tuple[str, bytes, int]] = [
    ("two spaces", b"GET  / HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("trailing space", b"GET / HTTP/1.1 \r\n" + H + b"\r\n", 400),
    ("leading space", b" GET / HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("tab separator", b"GET\t/ HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("no version", b"GET /\r\n\r\n", 400),
    ("method not a token", b"G@T / HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("lower-case HTTP", b"GET / http/1.1\r\n" + H + b"\r\n", 400),
    ("two-digit minor", b"GET / HTTP/1.10\r\n" + H + b"\r\n", 400),
    ("version letters", b"GET / HTTP/a.b\r\n" + H + b"\r\n", 400),
    ("space in target", b"GET /a b HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("non-ASCII target", b"GET /\xc3\xa9 HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("fragment", b"GET /#x HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("relative target", b"GET x HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("asterisk with GET", b"GET * HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("authority-form with GET", b"GET a:80 HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("CONNECT origin-form", b"CONNECT / HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("CONNECT without port", b"CONNECT a HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("CONNECT absolute-form", b"CONNECT http://a/ HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("ftp scheme", b"GET ftp://a/ HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("userinfo", b"GET http://u@a/ HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("empty authority", b"GET http:///a HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("HTTP/2.0", b"GET / HTTP/2.0\r\n" + H + b"\r\n", 505),
    ("HTTP/0.9", b"GET / HTTP/0.9\r\n" + H + b"\r\n", 505),
    ("HTTP/9.9", b"GET / HTTP/9.9\r\n" + H + b"\r\n", 505),
    ("header without colon", b"GET / HTTP/1.1\r\n" + H + b"Foo\r\n\r\n", 400),
    ("cached name without colon", b"GET / HTTP/1.1\r\nHost\r\n\r\n", 400),
    ("space before colon", b"GET / HTTP/1.1\r\n" + H + b"Foo : bar\r\n\r\n", 400),
    ("empty name", b"GET / HTTP/1.1\r\n" + H + b":bar\r\n\r\n", 400),
    ("non-token name", b"GET / HTTP/1.1\r\n" + H + b"F{o}: bar\r\n\r\n", 400),
    ("obs-fold", b"GET / HTTP/1.1\r\n" + H + b"Foo: a\r\n b\r\n\r\n", 400),
    ("whitespace before first field", b"GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400),
    ("NUL in value", b"GET / HTTP/1.1\r\n" + H + b"Foo: a\x00\r\n\r\n", 400),
    ("CTL in value", b"GET / HTTP/1.1\r\n" + H + b"Foo: a\x1bb\r\n\r\n", 400),
    ("DEL in value", b"GET / HTTP/1.1\r\n" + H + b"Foo: \x7f\r\n\r\n", 400),
    ("bare LF line ends", b"GET / HTTP/1.1\nHost: a\n\n", 400),
    ("bare LF inside head", b"GET / HTTP/1.1\r\nHost: a\nFoo: b\r\n\r\n", 400),
    ("bare CR inside head", b"GET / HTTP/1.1\r\nHost: a\rFoo: b\r\n\r\n", 400),
    ("bare LF before request line", b"\nGET / HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("bare CR before request line", b"\rGET / HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("five empty lines first", b"\r\n" * 5 + b"GET / HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("no Host in 1.1", b"GET / HTTP/1.1\r\n\r\n", 400),
    ("two Hosts", b"GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n", 400),
    (
        "CL and TE",
        b"POST / HTTP/1.1\r\n"
        + H
        + b"Content-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        400,
    ),
    (
        "TE and CL",
        b"POST / HTTP/1.1\r\n"
        + H
        + b"Transfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n",
        400,
    ),
    ("TE in 1.0", b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    (
        "TE not ending in chunked",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked, gzip\r\n\r\n",
        400,
    ),
    (
        "TE xchunked",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: xchunked\r\n\r\n",
        400,
    ),
    (
        "TE chunked twice",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked,chunked\r\n\r\n",
        400,
    ),
    (
        "TE empty element",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked, , chunked\r\n\r\n",
        400,
    ),
    (
        "TE chunked with parameter",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked; a=b\r\n\r\n",
        400,
    ),
    (
        "TE gzip then chunked",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip, chunked\r\n\r\n",
        501,
    ),
    (
        "TE unknown then chunked",
        b"POST / HTTP/1.1\r\n" + H + b'Transfer-Encoding: foo;x="1,2", chunked\r\n\r\n',
        501,
    ),
    (
        "CL twice, same",
        b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 1\r\nContent-Length: 1\r\n\r\n",
        400,
    ),
    ("CL list", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 1,1\r\n\r\n", 400),
    ("CL sign", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: +1\r\n\r\n", 400),
    ("CL hex", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 0x1\r\n\r\n", 400),
    (
        "CL decimal point",
        b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 1.0\r\n\r\n",
        400,
    ),
    ("CL empty", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: \r\n\r\n", 400),
    (
        "CL absurd",
        b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 1" + b"0" * 30 + b"\r\n\r\n",
        413,
    ),
    (
        "CL many digits",
        b"POST / HTTP/1.1\r\n" + H + b"Content-Length: " + b"9" * 5000 + b"\r\n\r\n",
        413,
    ),
]


@pytest.mark.parametrize(
    ("raw", "status"), [case[1:] for case in INVALID], ids=[case[0] for case in INVALID]
)
def test_invalid_heads(raw: bytes, status: int) -> None:
    assert status_of(raw) == status


def test_errors_say_whose_fault_and_carry_status_and_reason() -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_request_head(b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n")
    error = info.value
    assert isinstance(error, ProtocolError) and isinstance(error, CogenError)
    assert not isinstance(error, LocalProtocolError)
    assert (error.status_code, error.reason) == (400, "Bad Request")
    assert "'+5'" in str(error)


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"GET / HTTP/1.1\r\nHost: a\r\nX-Bad\x01: v\r\n\r\n", "X-Bad\\x01"),
        (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", "'a b'"),
        (b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", "'gzip'"),
        (b"GET / HTTP/3.0\r\nHost: a\r\n\r\n", "HTTP/3.0"),
        (b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", "GET /a b HTTP/1.1"),
        (b"GET / HTTP/1.1\r\nHost: a\r\nFoo : x\r\n\r\n", "Foo : x"),
    ],
)
def test_error_messages_name_the_offending_value(raw: bytes, fragment: str) -> None:
    with pytest.raises(RemoteProtocolError, match=None) as info:
        parse_request_head(raw)
    assert fragment in str(info.value)


def test_status_reasons() -> None:
    assert RemoteProtocolError("x", 431).reason == "Request Header Fields Too Large"
    assert RemoteProtocolError("x", 414).reason == "URI Too Long"
    assert RemoteProtocolError("x", 505).reason == "HTTP Version Not Supported"
    assert RemoteProtocolError("x").status_code == 400


def test_up_to_four_empty_lines_before_the_request_line_are_ignored() -> None:
    raw = b"\r\n" * 4 + b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
    head = parse_request_head(raw)
    assert head is not None
    assert head.head_size == len(raw)
    assert parse_request_head(b"\r\n") is None
    assert parse_request_head(b"\r\n\r") is None


# Limits.


def test_request_line_at_the_limit_is_accepted_and_one_more_byte_is_414() -> None:
    line = b"GET /" + b"a" * 15 + b" HTTP/1.1"
    assert len(line) == 29
    assert (
        parse_request_head(line + b"\r\nHost: a\r\n\r\n", max_request_line=29)
        is not None
    )
    assert status_of(line + b"\r\nHost: a\r\n\r\n", max_request_line=28) == 414


def test_414_is_raised_before_the_request_line_is_complete() -> None:
    assert parse_request_head(b"GET /" + b"a" * 25, max_request_line=29) is None
    assert status_of(b"GET /" + b"a" * 26, max_request_line=29) == 414


def test_head_at_the_byte_limit_is_accepted_and_one_more_byte_is_431() -> None:
    raw = b"GET / HTTP/1.1\r\nHost: a\r\nX: 12345\r\n\r\n"
    assert parse_request_head(raw, max_header_bytes=len(raw)) is not None
    assert status_of(raw, max_header_bytes=len(raw) - 1) == 431


def test_431_is_raised_before_the_head_is_complete() -> None:
    raw = b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"x" * 100
    assert status_of(raw, max_header_bytes=100) == 431
    assert parse_request_head(raw[:100], max_header_bytes=100) is None


def test_header_count_limit() -> None:
    raw = b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n"
    assert parse_request_head(raw, max_header_count=3) is not None
    assert status_of(raw, max_header_count=2) == 431


def test_max_body_limits_content_length() -> None:
    raw = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n"
    assert parse_request_head(raw, max_body=10) is not None
    assert status_of(raw, max_body=9) == 413


def test_limits_do_not_count_leading_empty_lines() -> None:
    raw = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
    assert parse_request_head(b"\r\n\r\n" + raw, max_header_bytes=len(raw)) is not None


def test_an_earlier_bare_lf_wins_over_a_later_limit_and_vice_versa() -> None:
    early_lf = b"GET / HTTP/1.1\r\nA: 1\nHost: a\r\nX: " + b"x" * 100 + b"\r\n\r\n"
    late_lf = b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"x" * 100 + b"\nY: 1\r\n\r\n"
    assert status_of(early_lf, max_header_bytes=50) == 400
    assert status_of(late_lf, max_header_bytes=50) == 431


_HOSTILE = 1 << 20  # a quadratic (or worse) match would not end within the timeout


@pytest.mark.parametrize(
    "field",
    [
        b"Host: " + b"a" * _HOSTILE + b"@",
        b"Host: " + b"%41" * (_HOSTILE // 3) + b"%4",
        b"Host: " + b"a%" * (_HOSTILE // 2),
        b"Host: " + b"a" * _HOSTILE + b":" + b"1" * _HOSTILE + b"x",
        b"Host: " + b"a:" * (_HOSTILE // 2),
        b"Host: [" + b":" * _HOSTILE,
        b"Host: [v1." + b"a" * _HOSTILE,
        b"Host: [" + b"1:" * (_HOSTILE // 2) + b"]x",
        b"Transfer-Encoding: chunked" + b";a=b" * (_HOSTILE // 4) + b";a=\"" + b"\\\"" * 1000,
        b"Transfer-Encoding: chunked" + b" " * _HOSTILE + b"x",
        b"Transfer-Encoding: chunked;a=\"" + b"\\a" * (_HOSTILE // 2),
    ],
)
def test_hostile_field_values_are_rejected_in_linear_time(field: bytes) -> None:
    raw = b"GET / HTTP/1.1\r\nHost: a\r\n" if not field.startswith(b"Host") else b"GET / HTTP/1.1\r\n"
    assert status_of(raw + field + b"\r\n\r\n", max_header_bytes=4 * _HOSTILE) == 400


@pytest.mark.parametrize(
    "line",
    [
        b"GET http://" + b"a" * _HOSTILE + b"@b/ HTTP/1.1",
        b"GET http://" + b"%41" * (_HOSTILE // 3) + b"%4/ HTTP/1.1",
        b"CONNECT " + b"a" * _HOSTILE + b":" + b"1" * _HOSTILE + b"x HTTP/1.1",
        b"CONNECT " + b"a%" * (_HOSTILE // 2) + b":1 HTTP/1.1",
    ],
)
def test_hostile_request_targets_are_rejected_in_linear_time(line: bytes) -> None:
    raw = line + b"\r\nHost: a\r\n\r\n"
    assert status_of(raw, max_request_line=4 * _HOSTILE, max_header_bytes=8 * _HOSTILE) == 400
