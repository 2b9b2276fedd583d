"""Random and mutated requests thrown at a live server over raw sockets.

Whatever arrives, the server answers only with well-formed responses (or
just closes), never with a 500, and keeps serving good requests afterwards.
"""
from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import LiveServer, RawClient, get, recording_app

pytestmark = pytest.mark.timeout(120)

REQUESTS = Path(__file__).parent / "requests"
SEEDS = [p.read_bytes() for p in sorted(REQUESTS.glob("*/*.http")) if p.stat().st_size < 2000] + [
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /a%20b?c=d HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    b"POST /x?y HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;e=1\r\nabc\r\n0\r\nT: 1\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi",
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n",
]
INTERESTING = b'\r\n \t\x00:;,="\\0123456789abcdefxX+-_/?#*@[]\x7f\x80\xff'
# no HEAD seed: the response reader could not tell where a HEAD response ends
ALLOWED = {100, 200, 400, 404, 408, 413, 414, 431, 501, 505}
LIMITS = {"max_request_line": 200, "max_header_bytes": 2048, "max_header_count": 20,
          "max_body": 1000, "header_timeout": 2, "body_timeout": 2, "keepalive_timeout": 2}


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A seed request with a few byte-level mutations aimed at the grammar's delimiters."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 4))):
        pos = draw(st.integers(0, len(data)))
        byte = draw(st.sampled_from(INTERESTING) | st.integers(0, 255))
        action = draw(st.sampled_from(["replace", "insert", "delete", "crlf_to_lf",
                                       "duplicate_line", "truncate"]))
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
            if end > start:
                data[start:start] = data[start:end + 1]
        elif action == "truncate":
            del data[pos:]
    return bytes(data)


REQUEST_BYTES = st.one_of(mutated(), st.binary(max_size=300),
                          st.lists(mutated(), min_size=2, max_size=3).map(b"".join))


def _check_exchange(live: LiveServer, data: bytes) -> None:
    client = RawClient(live.address)
    try:
        try:
            client.send(data)
            client.sock.shutdown(socket.SHUT_WR)  # the server sees the end of what we send
        except OSError:
            pass  # the server already answered and closed
        while True:
            try:
                resp = client.response(interim=True)
            except EOFError as exc:
                # closing without a (complete) response is allowed; half a head is not
                assert client.buf == b"" or b"\r\n\r\n" not in client.buf, exc
                break
            assert resp.status in ALLOWED, (data, resp)
            assert resp.version == "HTTP/1.1"
    finally:
        client.close()
    good = RawClient(live.address)
    try:
        assert good.request(get("/good")).status == 200
    finally:
        good.close()


def test_random_requests_get_valid_answers_and_the_server_goes_on(live_server: Any) -> None:
    live = live_server(recording_app([]), **LIMITS)

    @settings(max_examples=150, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(data=REQUEST_BYTES)
    def check(data: bytes) -> None:
        _check_exchange(live, data)

    check()


def test_seed_requests_are_answered(live_server: Any) -> None:
    live = live_server(recording_app([]), **LIMITS)
    for seed in SEEDS:
        _check_exchange(live, seed)
