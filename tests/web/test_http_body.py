"""Unit tests of cogen.web.http body handling: ChunkedDecoder and the RequestParser event stream."""

from __future__ import annotations

import pytest

from cogen.web.http import (
    CONNECTION_CLOSED,
    NEED_DATA,
    ChunkedDecoder,
    Data,
    EndOfMessage,
    Event,
    LocalProtocolError,
    RemoteProtocolError,
    RequestHead,
    RequestParser,
)

pytestmark = pytest.mark.timeout(30)


def decode_all(
    data: bytes, step: int | None = None, **limits: int
) -> tuple[bytes, ChunkedDecoder, bytes]:
    """Decode ``data`` fed ``step`` bytes at a time; return (body, decoder, unconsumed bytes)."""
    decoder = ChunkedDecoder(**limits)
    buf = bytearray()
    body = bytearray()
    step = step or len(data) or 1
    for i in range(0, len(data), step):
        buf += data[i : i + step]
        piece, consumed = decoder.decode(buf)
        del buf[:consumed]  # must not raise BufferError: the decoder let go of buf
        body += piece
    if not decoder.done:
        piece, consumed = decoder.decode(buf)  # raises an error held back behind data
        del buf[:consumed]
        body += piece
    return bytes(body), decoder, bytes(buf)


# ChunkedDecoder.

VALID_CHUNKED = [
    (b"0\r\n\r\n", b""),
    (b"5\r\nhello\r\n0\r\n\r\n", b"hello"),
    (b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", b"hello world"),
    (b"a\r\n0123456789\r\nA\r\nabcdefghij\r\n0\r\n\r\n", b"0123456789abcdefghij"),
    (b"000005\r\nhello\r\n00\r\n\r\n", b"hello"),
    (b"5;a=b;c\r\nhello\r\n0;z\r\n\r\n", b"hello"),
    (b'5 ; a = "q;\\"uoted" ;b\r\nhello\r\n0\r\n\r\n', b"hello"),
    (b"5\t;x\r\nhello\r\n0\r\n\r\n", b"hello"),
    (b"2\r\n\r\n\r\n0\r\n\r\n", b"\r\n"),
    (b"3\r\n\x00\n\r\r\n0\r\n\r\n", b"\x00\n\r"),
]


@pytest.mark.parametrize(("data", "body"), VALID_CHUNKED)
def test_chunked_decodes_in_one_call(data: bytes, body: bytes) -> None:
    decoded, decoder, rest = decode_all(data)
    assert (decoded, decoder.done, rest, decoder.trailers) == (body, True, b"", [])


@pytest.mark.parametrize(("data", "body"), VALID_CHUNKED)
def test_chunked_decodes_byte_by_byte(data: bytes, body: bytes) -> None:
    decoded, decoder, rest = decode_all(data, step=1)
    assert (decoded, decoder.done, rest) == (body, True, b"")


def test_chunked_leaves_the_next_request_alone_and_then_returns_nothing() -> None:
    decoder = ChunkedDecoder()
    data = b"3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n"
    body, consumed = decoder.decode(data)
    assert (body, data[consumed:], decoder.done) == (
        b"abc",
        b"GET / HTTP/1.1\r\n",
        True,
    )
    assert decoder.decode(data[consumed:]) == (b"", 0)


def test_chunked_returns_partial_chunk_data_as_it_arrives() -> None:
    decoder = ChunkedDecoder()
    assert decoder.decode(b"a\r\n01234") == (b"01234", 8)
    assert decoder.decode(b"567") == (b"567", 3)
    assert decoder.decode(b"89\r") == (b"89", 2)
    assert decoder.decode(b"\r") == (b"", 0)
    assert decoder.decode(b"\r\n0\r") == (b"", 2)
    assert decoder.decode(b"0\r\n\r\n") == (b"", 5)
    assert decoder.done


def test_chunked_decodes_a_large_body_fed_in_big_reads() -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB
    data = (
        b"%x\r\n" % len(payload)
        + payload
        + b"\r\n"
        + b"1000\r\n"
        + payload[:4096]
        + b"\r\n0\r\n\r\n"
    )
    decoded, decoder, rest = decode_all(data, step=65536)
    assert decoded == payload + payload[:4096]
    assert decoder.done and decoder.received == len(decoded) and rest == b""


def test_chunked_trailers_are_parsed_like_headers_and_forbidden_ones_dropped() -> None:
    data = (
        b"0\r\nX-Checksum: \t abc \r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n"
        b"Host: evil\r\nX_Under: 1\r\nExpires: never\r\n\r\n"
    )
    _, decoder, rest = decode_all(data)
    assert decoder.trailers == [("x-checksum", "abc"), ("expires", "never")]
    assert rest == b""


def test_chunked_trailers_fed_byte_by_byte() -> None:
    _, decoder, _ = decode_all(b"1\r\nx\r\n0\r\nA: 1\r\nB: 2\r\n\r\n", step=1)
    assert decoder.done and decoder.trailers == [("a", "1"), ("b", "2")]


INVALID_CHUNKED = [
    ("0x prefix", b"0x5\r\nhello\r\n0\r\n\r\n", 400),
    ("sign", b"+5\r\nhello\r\n0\r\n\r\n", 400),
    ("minus", b"-5\r\nhello\r\n0\r\n\r\n", 400),
    ("leading space", b" 5\r\nhello\r\n0\r\n\r\n", 400),
    ("trailing space", b"5 \r\nhello\r\n0\r\n\r\n", 400),
    ("trailing tab", b"5\t\r\nhello\r\n0\r\n\r\n", 400),
    ("empty size", b"\r\nhello\r\n0\r\n\r\n", 400),
    ("not hex", b"g\r\nhello\r\n0\r\n\r\n", 400),
    ("NUL after size", b"5\x00\r\nhello\r\n0\r\n\r\n", 400),
    ("17 hex digits", b"1" + b"0" * 16 + b"\r\n", 400),
    ("bare LF after size", b"5\nhello\r\n0\r\n\r\n", 400),
    ("bare CR after size", b"5\rhello\r\n0\r\n\r\n", 400),
    ("semicolon without name", b"5;\r\nhello\r\n0\r\n\r\n", 400),
    ("extension name not a token", b"5;a@b\r\nhello\r\n0\r\n\r\n", 400),
    ("extension with empty value", b"5;a=\r\nhello\r\n0\r\n\r\n", 400),
    ("extension with space in value", b"5;a=b c\r\nhello\r\n0\r\n\r\n", 400),
    ("unterminated quoted value", b'5;a="b\r\nhello\r\n0\r\n\r\n', 400),
    ("whitespace after extension", b"5;a=b \r\nhello\r\n0\r\n\r\n", 400),
    ("missing CRLF after data", b"5\r\nhelloX\r\n0\r\n\r\n", 400),
    ("LF only after data", b"5\r\nhello\n0\r\n\r\n", 400),
    ("CR then junk after data", b"5\r\nhello\rX0\r\n\r\n", 400),
    ("trailer obs-fold", b"0\r\nA: 1\r\n 2\r\n\r\n", 400),
    ("trailer without colon", b"0\r\nA\r\n\r\n", 400),
    ("trailer space before colon", b"0\r\nA : 1\r\n\r\n", 400),
    ("trailer NUL", b"0\r\nA: \x00\r\n\r\n", 400),
    ("trailer bare LF", b"0\r\nA: 1\n\r\n", 400),
    ("bare LF as final line", b"0\r\n\n", 400),
    ("bare CR in trailers", b"0\r\nA: 1\rB: 2\r\n\r\n", 400),
]


@pytest.mark.parametrize(
    ("data", "status"),
    [c[1:] for c in INVALID_CHUNKED],
    ids=[c[0] for c in INVALID_CHUNKED],
)
def test_invalid_chunked(data: bytes, status: int) -> None:
    for step in (None, 1):
        with pytest.raises(RemoteProtocolError) as info:
            decode_all(data, step=step)
        assert info.value.status_code == status


def test_16_hex_digits_are_accepted() -> None:
    decoder = ChunkedDecoder()
    assert decoder.decode(b"000000000000000f\r\nabc") == (b"abc", 21)


def test_chunked_max_body_is_checked_at_the_size_line() -> None:
    assert (
        decode_all(b"5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n", max_body=10)[0]
        == b"helloworld"
    )
    decoder = ChunkedDecoder(max_body=10)
    assert decoder.decode(b"5\r\nhello\r\n") == (b"hello", 10)
    with pytest.raises(RemoteProtocolError) as info:
        decoder.decode(b"6\r\n")
    assert info.value.status_code == 413


def test_chunked_size_line_limit() -> None:
    line = b"5;" + b"x" * 18
    assert decode_all(line + b"\r\nhello\r\n0\r\n\r\n", max_line=20)[0] == b"hello"
    with pytest.raises(RemoteProtocolError):
        decode_all(line + b"x\r\nhello\r\n0\r\n\r\n", max_line=20)
    decoder = ChunkedDecoder(max_line=20)
    assert decoder.decode(line + b"x") == (b"", 0)
    with pytest.raises(RemoteProtocolError):
        decoder.decode(line + b"xx")  # over the limit without a CRLF: no need to wait


def test_chunked_trailer_limits() -> None:
    many = b"0\r\n" + b"".join(b"T%d: v\r\n" % i for i in range(5)) + b"\r\n"
    assert len(decode_all(many, max_trailer_count=5)[1].trailers) == 5
    with pytest.raises(RemoteProtocolError) as info:
        decode_all(many, max_trailer_count=4)
    assert info.value.status_code == 431
    big = b"0\r\nT: " + b"v" * 100 + b"\r\n\r\n"
    with pytest.raises(RemoteProtocolError) as info:
        decode_all(big, max_trailer_bytes=50)
    assert info.value.status_code == 431
    with pytest.raises(RemoteProtocolError) as info:
        decode_all(big[:80], max_trailer_bytes=50)  # incomplete, already too big
    assert info.value.status_code == 431


def test_chunked_error_after_data_returns_the_data_first_and_stays_broken() -> None:
    decoder = ChunkedDecoder()
    assert decoder.decode(b"3\r\nabc\r\nzz\r\n") == (b"abc", 8)
    with pytest.raises(RemoteProtocolError):
        decoder.decode(b"zz\r\n")
    with pytest.raises(RemoteProtocolError):
        decoder.decode(b"0\r\n\r\n")


# RequestParser.


def events(parser: RequestParser) -> list[Event]:
    """Drain events until NEED_DATA or CONNECTION_CLOSED (included)."""
    out: list[Event] = []
    while True:
        event = parser.next_event()
        out.append(event)
        if event is NEED_DATA or event is CONNECTION_CLOSED:
            return out


def test_parser_events_for_a_get() -> None:
    parser = RequestParser()
    parser.feed(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    got = events(parser)
    assert isinstance(got[0], RequestHead) and got[0].path == "/"
    assert got[1:] == [EndOfMessage([]), NEED_DATA]


def test_parser_events_for_a_content_length_body_in_pieces() -> None:
    parser = RequestParser()
    parser.feed(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nhel")
    got = events(parser)
    assert isinstance(got[0], RequestHead)
    assert got[1:] == [Data(b"hel"), NEED_DATA]
    parser.feed(b"lo worldGET")
    assert events(parser) == [Data(b"lo worl"), EndOfMessage(), NEED_DATA]
    parser.feed(b" / HTTP/1.0\r\n\r\n")
    got = events(parser)
    assert isinstance(got[0], RequestHead) and got[0].version == (1, 0)
    assert got[1:] == [EndOfMessage(), NEED_DATA]


def test_parser_events_for_a_chunked_body_with_trailers() -> None:
    parser = RequestParser()
    parser.feed(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nT: 1\r\n\r\n"
    )
    got = events(parser)
    assert isinstance(got[0], RequestHead) and got[0].chunked
    assert got[1:] == [Data(b"hello"), EndOfMessage([("t", "1")]), NEED_DATA]


def test_parser_pipelines_requests_from_one_buffer() -> None:
    parser = RequestParser()
    parser.feed(
        b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
        b"GET /2 HTTP/1.1\r\nHost: a\r\n\r\n"
        b"GET /3 HTTP/1.1\r\nHost: a\r\n\r\n"
    )
    parser.feed(b"")
    got = events(parser)
    assert [e.path for e in got if isinstance(e, RequestHead)] == ["/1", "/2", "/3"]
    assert got[-1] is CONNECTION_CLOSED


def test_parser_clean_eof_between_requests_is_connection_closed_forever() -> None:
    parser = RequestParser()
    parser.feed(b"\r\n")
    parser.feed(b"")
    assert parser.next_event() is CONNECTION_CLOSED
    assert parser.next_event() is CONNECTION_CLOSED
    parser.feed(b"")  # more EOFs are harmless


def test_parser_eof_inside_a_request_is_400() -> None:
    for data in (
        b"GET / HT",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nab",
    ):
        parser = RequestParser()
        parser.feed(data)
        parser.feed(b"")
        with pytest.raises(RemoteProtocolError) as info:
            events(parser)
        assert info.value.status_code == 400


def test_parser_errors_are_sticky() -> None:
    parser = RequestParser()
    parser.feed(b"GET / HTTP/2.0\r\n\r\n")
    for _ in range(2):
        with pytest.raises(RemoteProtocolError) as info:
            parser.next_event()
        assert info.value.status_code == 505


def test_parser_refuses_data_after_eof() -> None:
    parser = RequestParser()
    parser.feed(b"")
    with pytest.raises(LocalProtocolError):
        parser.feed(b"GET")


def test_parser_passes_its_limits_on() -> None:
    parser = RequestParser(max_body=4)
    parser.feed(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
    )
    parser.next_event()
    with pytest.raises(RemoteProtocolError) as info:
        parser.next_event()
    assert info.value.status_code == 413
    parser = RequestParser(max_request_line=10)
    parser.feed(b"GET /0123456789 HTTP/1.1\r\n")
    with pytest.raises(RemoteProtocolError) as info:
        parser.next_event()
    assert info.value.status_code == 414


def test_parser_needs_data_for_an_expect_continue_body() -> None:
    parser = RequestParser()
    parser.feed(
        b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n"
    )
    head = parser.next_event()
    assert isinstance(head, RequestHead) and head.expect_continue
    assert parser.next_event() is NEED_DATA
    parser.feed(b"ok")
    assert events(parser) == [Data(b"ok"), EndOfMessage(), NEED_DATA]


def test_parser_handles_a_large_head_dribbled_byte_by_byte() -> None:
    raw = (
        b"GET / HTTP/1.1\r\nHost: a\r\n"
        + b"".join(b"X-%d: %s\r\n" % (i, b"v" * 200) for i in range(90))
        + b"\r\n"
    )
    parser = RequestParser()
    for byte in raw[:-1]:
        parser.feed(bytes([byte]))
        assert parser.next_event() is NEED_DATA
    parser.feed(raw[-1:])
    head = parser.next_event()
    assert isinstance(head, RequestHead) and len(head.headers) == 91


def test_request_body_gives_a_counted_body_up_to_the_limit_and_leaves_what_follows() -> None:
    from cogen.web.http import RequestBody, parse_request_head

    head = parse_request_head(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n")
    assert head is not None
    body = RequestBody(head)
    assert body.decode(b"abc", limit=2) == (b"ab", 2)
    assert body.decode(b"cdeGET /next", limit=100) == (b"cde", 3)
    assert body.done and body.received == 5 and body.trailers == []
    assert body.decode(b"GET /next") == (b"", 0)


def test_request_body_decodes_chunked_with_its_trailers() -> None:
    from cogen.web.http import RequestBody, parse_request_head

    head = parse_request_head(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
    assert head is not None
    body = RequestBody(head)
    data, used = body.decode(bytearray(b"3\r\nabc\r\n0\r\nX-T: 1\r\n\r\nrest"))
    assert (data, used) == (b"abc", 21) and body.done
    assert body.trailers == [("x-t", "1")]
    assert "chunked" in RequestBody(head).eof_error()
