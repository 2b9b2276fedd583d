"""Unit tests of the response side of cogen.web.http: heads, framing, chunks, error answers, dates."""

from __future__ import annotations

import email.utils
import re

import pytest

from cogen.web.http import (
    CONTINUE_RESPONSE,
    LAST_CHUNK,
    ChunkedDecoder,
    LocalProtocolError,
    RequestHead,
    ResponseFraming,
    chunk,
    chunk_parts,
    format_response_head,
    http_date,
    simple_response,
)

pytestmark = pytest.mark.timeout(30)

IMF_FIXDATE = re.compile(
    r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d "
    r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d GMT"
)


def request(
    method: str = "GET", version: tuple[int, int] = (1, 1), keep_alive: bool = True
) -> RequestHead:
    return RequestHead(
        method, "/", "/", "", version, [], "a", None, False, keep_alive, False, 0
    )


def head_lines(head: bytes) -> list[str]:
    assert head.endswith(b"\r\n\r\n")
    return head[:-4].decode("latin-1").split("\r\n")


def test_hello_world_head_exactly() -> None:
    head, framing = format_response_head(
        "200 OK",
        [("Content-Type", "text/plain"), ("Content-Length", "13")],
        request=request(),
        server=None,
        date=False,
    )
    assert (
        head
        == b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\n"
    )
    assert framing == ResponseFraming(
        has_body=True, content_length=13, chunked=False, keep_alive=True
    )
    assert not framing.is_close_delimited


def test_date_and_server_are_added_unless_the_app_sent_them() -> None:
    head, _ = format_response_head(
        "200 OK", [("Content-Length", "0")], request=request()
    )
    lines = head_lines(head)
    assert "Server: cogen" in lines
    dates = [line for line in lines if line.startswith("Date: ")]
    assert len(dates) == 1 and IMF_FIXDATE.fullmatch(dates[0][6:])
    head, _ = format_response_head(
        "200 OK",
        [("date", "Sun, 06 Nov 1994 08:49:37 GMT"), ("SERVER", "app/1")],
        request=request(),
        server="x",
    )
    lines = head_lines(head)
    assert [
        line for line in lines if line.lower().startswith(("date:", "server:"))
    ] == [
        "date: Sun, 06 Nov 1994 08:49:37 GMT",
        "SERVER: app/1",
    ]


# (method, request version, request keep-alive, status, app headers)
#   -> (has_body, content_length, chunked, keep_alive, framing lines we add)
FRAMING = [
    (
        "GET 1.1 with CL",
        "GET",
        (1, 1),
        True,
        "200 OK",
        [("Content-Length", "5")],
        (True, 5, False, True),
        [],
    ),
    (
        "GET 1.1 no CL",
        "GET",
        (1, 1),
        True,
        "200 OK",
        [],
        (True, None, True, True),
        ["Transfer-Encoding: chunked"],
    ),
    (
        "GET 1.1 close asked",
        "GET",
        (1, 1),
        False,
        "200 OK",
        [],
        (True, None, True, False),
        ["Transfer-Encoding: chunked", "Connection: close"],
    ),
    (
        "GET 1.1 close, CL",
        "GET",
        (1, 1),
        False,
        "200 OK",
        [("Content-Length", "5")],
        (True, 5, False, False),
        ["Connection: close"],
    ),
    (
        "GET 1.0 no CL",
        "GET",
        (1, 0),
        False,
        "200 OK",
        [],
        (True, None, False, False),
        ["Connection: close"],
    ),
    (
        "GET 1.0 keep-alive no CL",
        "GET",
        (1, 0),
        True,
        "200 OK",
        [],
        (True, None, False, False),
        ["Connection: close"],
    ),
    (
        "GET 1.0 keep-alive with CL",
        "GET",
        (1, 0),
        True,
        "200 OK",
        [("Content-Length", "5")],
        (True, 5, False, True),
        ["Connection: keep-alive"],
    ),
    (
        "GET 1.0 with CL",
        "GET",
        (1, 0),
        False,
        "200 OK",
        [("Content-Length", "5")],
        (True, 5, False, False),
        ["Connection: close"],
    ),
    (
        "HEAD 1.1 with CL",
        "HEAD",
        (1, 1),
        True,
        "200 OK",
        [("Content-Length", "5")],
        (False, 5, False, True),
        [],
    ),
    (
        "HEAD 1.1 no CL",
        "HEAD",
        (1, 1),
        True,
        "200 OK",
        [],
        (False, None, False, True),
        [],
    ),
    (
        "HEAD 1.0 keep-alive",
        "HEAD",
        (1, 0),
        True,
        "200 OK",
        [],
        (False, None, False, True),
        ["Connection: keep-alive"],
    ),
    (
        "204 drops CL",
        "GET",
        (1, 1),
        True,
        "204 No Content",
        [("Content-Length", "0")],
        (False, None, False, True),
        [],
    ),
    (
        "204 no CL",
        "DELETE",
        (1, 1),
        True,
        "204 No Content",
        [],
        (False, None, False, True),
        [],
    ),
    (
        "304 keeps CL",
        "GET",
        (1, 1),
        True,
        "304 Not Modified",
        [("Content-Length", "5")],
        (False, 5, False, True),
        [],
    ),
    (
        "304 no CL",
        "GET",
        (1, 1),
        True,
        "304 Not Modified",
        [],
        (False, None, False, True),
        [],
    ),
    (
        "404 no CL",
        "POST",
        (1, 1),
        True,
        "404 Not Found",
        [],
        (True, None, True, True),
        ["Transfer-Encoding: chunked"],
    ),
    (
        "500 with CL",
        "GET",
        (1, 1),
        True,
        "500 Oops",
        [("Content-Length", "3")],
        (True, 3, False, True),
        [],
    ),
    (
        "app Connection: close",
        "GET",
        (1, 1),
        True,
        "200 OK",
        [("Connection", "Close"), ("Content-Length", "1")],
        (True, 1, False, False),
        ["Connection: close"],
    ),
]


@pytest.mark.parametrize(
    ("method", "version", "keep_alive", "status", "headers", "framing", "added"),
    [case[1:] for case in FRAMING],
    ids=[case[0] for case in FRAMING],
)
def test_framing(
    method: str,
    version: tuple[int, int],
    keep_alive: bool,
    status: str,
    headers: list[tuple[str, str]],
    framing: tuple[bool, int | None, bool, bool],
    added: list[str],
) -> None:
    head, got = format_response_head(
        status,
        headers,
        request=request(method, version, keep_alive),
        server=None,
        date=False,
    )
    assert (got.has_body, got.content_length, got.chunked, got.keep_alive) == framing
    lines = head_lines(head)
    assert lines[0] == "HTTP/1.1 " + status
    app_lines = [f"{n}: {v}" for n, v in headers if n.lower() != "connection"]
    if status.startswith("204"):
        app_lines = [
            line for line in app_lines if not line.startswith("Content-Length")
        ]
    assert lines[1:] == app_lines + added


def test_close_delimited_framing() -> None:
    _, framing = format_response_head(
        "200 OK", [], request=request(version=(1, 0), keep_alive=True)
    )
    assert framing.is_close_delimited and not framing.keep_alive


def test_server_can_force_close() -> None:
    head, framing = format_response_head(
        "200 OK",
        [("Content-Length", "2")],
        request=request(),
        keep_alive=False,
        server=None,
        date=False,
    )
    assert head_lines(head)[-1] == "Connection: close"
    assert not framing.keep_alive


def test_interim_response_to_http11() -> None:
    head, framing = format_response_head(
        "103 Early Hints", [("Link", "</a.css>; rel=preload")], request=request()
    )
    assert head == b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
    assert not framing.has_body and framing.keep_alive


def test_interim_response_to_http10_is_refused() -> None:
    with pytest.raises(LocalProtocolError):
        format_response_head("100 Continue", [], request=request(version=(1, 0)))


@pytest.mark.parametrize(
    "status",
    [
        "200",
        "200OK",
        " 200 OK",
        "2000 OK",
        "99 Low",
        "600 High",
        "099 X",
        "abc OK",
        "200 OK\r\nX: y",
        "200 A\x00B",
        "200 \x7f",
        "200 caf\u0113",
    ],
)
def test_invalid_status_is_refused(status: str) -> None:
    with pytest.raises(LocalProtocolError):
        format_response_head(status, [], request=request())


@pytest.mark.parametrize(
    "status",
    ["200 OK", "200 ", "599 Whatever you like", "418 I'm a teapot", "200 \tcaf\xe9"],
)
def test_valid_status_is_accepted(status: str) -> None:
    head, _ = format_response_head(status, [], request=request())
    assert head.startswith(b"HTTP/1.1 " + status.encode("latin-1") + b"\r\n")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("X-Split", "a\r\nSet-Cookie: evil=1"),
        ("X-Split", "a\nSet-Cookie: evil=1"),
        ("X-Split", "a\rSet-Cookie: evil=1"),
        ("X-Split", "a\r\n\r\n<html>"),
        ("X-Nul", "a\x00b"),
        ("X-Ctl", "a\x1bb"),
        ("X-Del", "a\x7f"),
        ("X-Uni", "\u2028"),
        ("X-Uni", "caf\u0113"),
        ("Set-Cookie\r\nX", "1"),
        ("X Y", "1"),
        ("X:Y", "1"),
        ("", "1"),
        ("X\x00", "1"),
        ("Caf\xe9", "1"),
    ],
)
def test_response_splitting_attempts_are_refused(name: str, value: str) -> None:
    with pytest.raises(LocalProtocolError) as info:
        format_response_head(
            "200 OK", [("Content-Length", "0"), (name, value)], request=request()
        )
    assert repr(name)[1:-1] in str(info.value)  # the message names the header


@pytest.mark.parametrize(
    ("name", "value"), [(b"X", "1"), ("X", b"1"), ("X", 1), (None, "1")]
)
def test_non_str_names_and_values_are_refused(name: object, value: object) -> None:
    with pytest.raises(LocalProtocolError):
        format_response_head("200 OK", [(name, value)], request=request())  # type: ignore[list-item]


def test_refused_value_is_named_in_the_message() -> None:
    with pytest.raises(LocalProtocolError, match="X-Split"):
        format_response_head("200 OK", [("X-Split", "a\r\nb")], request=request())


def test_tab_and_obs_text_values_are_allowed() -> None:
    head, _ = format_response_head(
        "200 OK", [("X-A", "a\tb \xe9\xff")], request=request()
    )
    assert b"X-A: a\tb \xe9\xff\r\n" in head


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("Transfer-Encoding", "chunked"),
        ("Upgrade", "websocket"),
        ("Keep-Alive", "timeout=5"),
        ("Connection", "keep-alive"),
        ("Connection", "close, upgrade"),
        ("TE", "trailers"),
        ("Trailers", "X"),
        ("Proxy-Authenticate", "Basic"),
        ("proxy-authorization", "x"),
    ],
)
def test_hop_by_hop_headers_from_the_app_are_refused(name: str, value: str) -> None:
    with pytest.raises(LocalProtocolError, match=name):
        format_response_head("200 OK", [(name, value)], request=request())


@pytest.mark.parametrize(
    "value", ["", "-1", "+5", "0x5", "5 ", " 5", "1.0", "\xb2", "5,5", "1" * 20]
)
def test_invalid_app_content_length_is_refused(value: str) -> None:
    with pytest.raises(LocalProtocolError):
        format_response_head("200 OK", [("Content-Length", value)], request=request())


def test_repeated_app_content_length_is_refused() -> None:
    with pytest.raises(LocalProtocolError):
        format_response_head(
            "200 OK",
            [("Content-Length", "5"), ("content-length", "5")],
            request=request(),
        )


def test_app_headers_keep_their_order_and_case_and_repeats() -> None:
    headers = [
        ("Set-Cookie", "a=1"),
        ("X-Thing", "x"),
        ("set-cookie", "b=2"),
        ("Content-Length", "0"),
    ]
    head, _ = format_response_head(
        "200 OK", headers, request=request(), server=None, date=False
    )
    assert head_lines(head)[1:] == [
        "Set-Cookie: a=1",
        "X-Thing: x",
        "set-cookie: b=2",
        "Content-Length: 0",
    ]


def test_chunk_encoding_round_trips_through_the_decoder() -> None:
    assert chunk(b"hello") == b"5\r\nhello\r\n"
    assert chunk(b"x" * 255) == b"ff\r\n" + b"x" * 255 + b"\r\n"
    assert chunk(b"") == b""
    assert chunk(bytearray(b"ab")) == b"2\r\nab\r\n"  # type: ignore[arg-type]
    assert chunk(memoryview(b"ab")) == b"2\r\nab\r\n"  # type: ignore[arg-type]
    assert LAST_CHUNK == b"0\r\n\r\n"
    assert b"".join(chunk_parts(b"hello")) == chunk(b"hello")
    assert chunk_parts(b"x" * 300, b"HEAD") == [b"HEAD12c\r\n", b"x" * 300, b"\r\n"]
    pieces = [b"a", b"", b"bc" * 1000, bytes(range(256))]
    decoder = ChunkedDecoder()
    body, _ = decoder.decode(b"".join(chunk(p) for p in pieces) + LAST_CHUNK)
    assert body == b"".join(pieces) and decoder.done


def test_continue_response() -> None:
    assert CONTINUE_RESPONSE == b"HTTP/1.1 100 Continue\r\n\r\n"


def test_simple_response_for_an_error() -> None:
    data = simple_response(400, "Bad Request")
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0] == "HTTP/1.1 400 Bad Request"
    assert body == b"400 Bad Request\n"
    assert f"Content-Length: {len(body)}" in lines
    assert "Connection: close" in lines
    assert "Content-Type: text/plain; charset=utf-8" in lines
    assert any(line.startswith("Date: ") for line in lines)


def test_simple_response_with_text_body_and_keep_alive() -> None:
    data = simple_response(
        413, "Content Too Large", "trop grand \u2014 désolé\n", close=False, server=None
    )
    head, _, body = data.partition(b"\r\n\r\n")
    assert body == "trop grand \u2014 désolé\n".encode()
    assert f"Content-Length: {len(body)}".encode() in head
    assert b"Connection" not in head and b"Server" not in head


@pytest.mark.parametrize(
    ("code", "reason"), [(99, "X"), (600, "X"), (400, "Bad\r\nX: y"), (400, "Bad\x00")]
)
def test_simple_response_refuses_bad_status(code: int, reason: str) -> None:
    with pytest.raises(LocalProtocolError):
        simple_response(code, reason)


def test_simple_response_refuses_a_server_value_with_crlf() -> None:
    with pytest.raises(LocalProtocolError):
        simple_response(400, "Bad Request", server="x\r\nSet-Cookie: a=1")


@pytest.mark.parametrize(
    "timestamp", [0, 784111777, 951782400, 1700000000.9, 4102444799]
)
def test_http_date_is_imf_fixdate(timestamp: float) -> None:
    value = http_date(timestamp)
    assert IMF_FIXDATE.fullmatch(value)
    assert value == email.utils.formatdate(int(timestamp), usegmt=True)


def test_http_date_examples_and_caching() -> None:
    assert http_date(784111777) == "Sun, 06 Nov 1994 08:49:37 GMT"  # RFC 9110 §5.6.7
    assert http_date(784111777.999) == "Sun, 06 Nov 1994 08:49:37 GMT"
    assert http_date(784111778) == "Sun, 06 Nov 1994 08:49:38 GMT"
    assert IMF_FIXDATE.fullmatch(http_date())
