"""cogen/web/http/_state.py: the connection state, driven with parsed heads and no socket."""
from __future__ import annotations

import pytest

from cogen.web import http
from cogen.web.http import ConnectionState

pytestmark = pytest.mark.timeout(30)


def head(raw: bytes) -> http.RequestHead:
    parsed = http.parse_request_head(raw)
    assert parsed is not None
    return parsed


GET = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
POST = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n"
EXPECT = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n"


def test_a_keep_alive_request_without_body_goes_to_done() -> None:
    state = ConnectionState()
    assert state.state is http.IDLE and state.requests == 0
    state.start_request(head(GET))
    assert state.state is http.SEND_BODY and state.requests == 1
    assert state.end_response(True) is False
    assert state.state is http.DONE and not state.linger


@pytest.mark.parametrize("raw", [b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                                 b"GET / HTTP/1.0\r\n\r\n"], ids=["close", "http10"])
def test_a_request_that_asks_to_close_must_close(raw: bytes) -> None:
    state = ConnectionState()
    state.start_request(head(raw))
    state.end_response(True)
    assert state.state is http.MUST_CLOSE and not state.keep_alive


def test_a_response_that_cannot_keep_the_connection_must_close() -> None:
    state = ConnectionState()
    state.start_request(head(GET))
    state.end_response(False)
    assert state.state is http.MUST_CLOSE


def test_a_body_read_before_the_response_ends_in_done() -> None:
    state = ConnectionState()
    state.start_request(head(POST))
    assert state.state is http.RECV_BODY
    state.body_received()
    assert state.state is http.SEND_BODY
    assert state.end_response(True) is False
    assert state.state is http.DONE


def test_an_unread_body_may_be_drained_to_keep_the_connection() -> None:
    state = ConnectionState()
    state.start_request(head(POST))
    assert state.end_response(True) is True  # read the rest, then decide
    assert state.state is http.RECV_BODY
    state.body_drained(True)
    assert state.state is http.DONE
    other = ConnectionState()
    other.start_request(head(POST))
    assert other.end_response(True)
    other.body_drained(False)
    assert other.state is http.MUST_CLOSE and other.linger


def test_100_continue_goes_out_once_and_only_when_asked() -> None:
    state = ConnectionState()
    state.start_request(head(EXPECT))
    assert state.send_continue() is True
    assert state.send_continue() is False
    plain = ConnectionState()
    plain.start_request(head(POST))
    assert plain.send_continue() is False


def test_a_client_never_told_to_continue_gets_a_lingering_close() -> None:
    # it has not sent the body, and would if the connection were kept
    state = ConnectionState()
    state.start_request(head(EXPECT))
    assert state.end_response(True) is False
    assert state.state is http.MUST_CLOSE and state.linger


def test_a_switched_protocol_ends_http_on_the_connection() -> None:
    state = ConnectionState()
    state.start_request(head(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                            b"Connection: Upgrade\r\n\r\n"))
    state.switch_protocol()
    assert state.state is http.SWITCHED_PROTOCOL and not state.keep_alive


def test_must_close_lingers_only_when_asked() -> None:
    state = ConnectionState()
    state.must_close()
    assert state.state is http.MUST_CLOSE and not state.linger
    state.must_close(linger=True)
    assert state.linger
