"""Hypothesis fuzzing of the sans-IO HTTP/1.1 parser.

Random and mutated request bytes thrown at RequestParser and ChunkedDecoder
must only ever produce events or a RemoteProtocolError with a 4xx/5xx status,
never another exception, never a hang, and the same outcome however the bytes
are split into reads.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cogen.web.http import (
    CONNECTION_CLOSED,
    NEED_DATA,
    ChunkedDecoder,
    Data,
    EndOfMessage,
    RemoteProtocolError,
    RequestHead,
    RequestParser,
    parse_request_head,
)

pytestmark = pytest.mark.timeout(300)

FUZZ = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

REQUESTS = Path(__file__).parent / "requests"
SEEDS = [
    p.read_bytes() for p in sorted(REQUESTS.glob("*/*.http")) if p.stat().st_size < 1000
] + [
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"POST /x?y HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;e=1\r\nabc\r\n0\r\nT: 1\r\n\r\n",
]
INTERESTING = b'\r\n \t\x00:;,="\\0123456789abcdefxX+-_/?#*@[]\x7f\x80\xff'
SMALL_LIMITS = {
    "max_request_line": 30,
    "max_header_bytes": 90,
    "max_header_count": 3,
    "max_body": 8,
    "max_chunk_line": 12,
}


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes] = SEEDS) -> bytes:
    """A seed request with a few byte-level mutations aimed at the grammar's delimiters."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(0, 4))):
        pos = draw(st.integers(0, len(data)))
        byte = draw(st.sampled_from(INTERESTING) | st.integers(0, 255))
        action = draw(
            st.sampled_from(
                [
                    "replace",
                    "insert",
                    "delete",
                    "crlf_to_lf",
                    "duplicate_line",
                    "truncate",
                ]
            )
        )
        if action == "replace" and pos < len(data):
            data[pos] = byte
        elif action == "insert":
            data.insert(pos, byte)
        elif action == "delete" and pos < len(data):
            del data[pos]
        elif action == "crlf_to_lf":
            at = data.find(b"\r\n", pos)
            if at >= 0:
                del data[at]
        elif action == "duplicate_line":
            start = data.rfind(b"\n", 0, pos) + 1
            end = data.find(b"\n", pos)
            if end >= 0:
                data[end + 1 : end + 1] = data[start : end + 1]
        elif action == "truncate":
            del data[pos:]
    return bytes(data)


requests_bytes = st.one_of(st.binary(max_size=300), mutated())


def outcome(
    pieces: list[bytes], limits: dict[str, int]
) -> tuple[list[Any], int | None]:
    """Run the parser over pieces then EOF: ([head, body, trailers] per request, error status)."""
    parser = RequestParser(**limits)
    seen: list[Any] = []
    budget = (
        3 * sum(len(p) for p in pieces) + 10
    )  # every event consumes bytes: no endless loop
    try:
        for piece in [*[p for p in pieces if p], b""]:
            parser.feed(piece)
            while True:
                budget -= 1
                assert budget > 0, "parser does not make progress"
                event = parser.next_event()
                if event is NEED_DATA:
                    assert piece, "NEED_DATA after EOF"
                    break
                if event is CONNECTION_CLOSED:
                    return seen, None
                if isinstance(event, RequestHead):
                    seen.append([event, b"", None])
                elif isinstance(event, Data):
                    assert isinstance(event.data, bytes) and event.data
                    seen[-1][1] += event.data
                else:
                    assert isinstance(event, EndOfMessage)
                    seen[-1][2] = event.trailers
    except RemoteProtocolError as exc:
        assert 400 <= exc.status_code <= 599
        assert isinstance(exc.reason, str) and exc.reason
        return seen, exc.status_code
    raise AssertionError("no CONNECTION_CLOSED after EOF")


@FUZZ
@given(data=requests_bytes, cut=st.integers(0, 300), small=st.booleans())
def test_parser_only_returns_events_or_protocol_errors_whatever_the_split(
    data: bytes, cut: int, small: bool
) -> None:
    limits = SMALL_LIMITS if small else {}
    whole = outcome([data], limits)
    assert outcome([data[:cut], data[cut:]], limits) == whole
    if len(data) <= 120:
        assert outcome([data[i : i + 1] for i in range(len(data))], limits) == whole


@FUZZ
@given(data=requests_bytes)
def test_parse_request_head_only_returns_a_head_none_or_a_protocol_error(
    data: bytes,
) -> None:
    try:
        head = parse_request_head(data, max_body=100)
    except RemoteProtocolError as exc:
        assert 400 <= exc.status_code <= 599
        return
    if head is not None:
        assert 0 < head.head_size <= len(data)
        assert data[head.head_size - 4 : head.head_size] == b"\r\n\r\n"
        assert head.version in ((1, 0), (1, 1))
        assert not (head.chunked and head.content_length is not None)
        assert all(name == name.lower() and "_" not in name for name, _ in head.headers)


CHUNKED_SEEDS = [
    b"5\r\nhello\r\n0\r\n\r\n",
    b'a;x=1;y="q"\r\n0123456789\r\n0\r\nT: v\r\nU: w\r\n\r\n',
    b"1\r\n\n\r\n2 ; z\r\n\r\n\r\n000\r\n\r\n",
]


@FUZZ
@given(
    data=st.one_of(st.binary(max_size=200), mutated(CHUNKED_SEEDS)),
    cuts=st.lists(st.integers(0, 200), max_size=4),
    max_body=st.none() | st.integers(0, 20),
)
def test_chunked_decoder_only_returns_data_or_protocol_errors(
    data: bytes, cuts: list[int], max_body: int | None
) -> None:
    def run(
        pieces: list[bytes],
    ) -> tuple[bytes, bool, list[tuple[str, str]], int | None]:
        decoder = ChunkedDecoder(
            max_body=max_body, max_line=16, max_trailer_bytes=60, max_trailer_count=2
        )
        buf = bytearray()
        body = b""
        try:
            for piece in [*pieces, b""]:
                buf += piece
                got, consumed = decoder.decode(buf)
                assert isinstance(got, bytes) and 0 <= consumed <= len(buf)
                assert len(got) <= consumed
                del buf[:consumed]
                body += got
        except RemoteProtocolError as exc:
            assert exc.status_code in (400, 413, 431)
            return body, decoder.done, decoder.trailers, exc.status_code
        if max_body is not None:
            assert len(body) <= max_body
        return body, decoder.done, decoder.trailers, None

    bounds = sorted({0, len(data), *[c for c in cuts if c < len(data)]})
    pieces = [data[a:b] for a, b in itertools.pairwise(bounds)]
    assert run(pieces) == run([data])


TOKEN = st.text(
    alphabet="!#$%&'*+-.^`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
    min_size=1,
    max_size=12,
)
VALUE = st.text(
    alphabet=[chr(c) for c in [9, *range(0x20, 0x7F), *range(0x80, 0x100)]], max_size=30
)
PATH = st.text(alphabet="abcXYZ019-._~!$&'()*+,;=:@/%", max_size=20)


@FUZZ
@given(
    method=TOKEN,
    path=PATH,
    query=st.none() | st.text(alphabet="abc=&/?%+", max_size=10),
    fields=st.lists(st.tuples(TOKEN, VALUE), max_size=8),
    minor=st.sampled_from([0, 1, 5]),
)
def test_generated_valid_requests_round_trip(
    method: str, path: str, query: str | None, fields: list[tuple[str, str]], minor: int
) -> None:
    reserved = {"host", "content-length", "transfer-encoding", "connection", "expect"}
    fields = [(n, v) for n, v in fields if n.lower() not in reserved]
    target = "/" + path + ("" if query is None else "?" + query)
    lines = [
        f"{method} {target} HTTP/1.{minor}",
        "Host: example.com",
        *[f"{n}: {v}" for n, v in fields],
    ]
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    if method == "CONNECT":
        return
    head = parse_request_head(raw + b"tail")
    assert head is not None
    assert (head.method, head.target, head.head_size) == (method, target, len(raw))
    assert head.path == "/" + path and head.query == (query or "")
    assert head.version == ((1, 0) if minor == 0 else (1, 1))
    expected = [("host", "example.com")] + [
        (n.lower(), v.strip(" \t")) for n, v in fields if "_" not in n
    ]
    assert head.headers == expected
