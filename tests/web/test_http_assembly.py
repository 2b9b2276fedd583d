"""The server and RequestParser assemble the same requests from the same bytes.

The live server parses heads with ``parse_request_head`` and bodies with
:class:`~cogen.web.http.RequestBody` in its connection loop;
:class:`~cogen.web.http.RequestParser` drives the same two as a sans-IO event
stream, the one the parser tests and the fuzzer drive. What this adds: the
socket and the server around them (reads split anywhere, rejections
answered, the connection closed). Each raw request of tests/web/requests/ goes
through both here (to the server over a real socket, its write side shut
after the bytes, as the parser gets EOF after them): the app must see the
requests the parser produced, and a rejected request must get the status
the parser raised.
"""
from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest

from cogen.web import http

from .conftest import CLIENT_TIMEOUT, RawClient
from .test_http_fixtures import INVALID, VALID

pytestmark = pytest.mark.timeout(120)



def parse(data: bytes, limits: dict[str, int]) -> tuple[list[dict[str, Any]], int | None]:
    """RequestParser's whole requests (method, target, query, body) and its error status, if any.

    A request counts once its EndOfMessage came: the server reads the whole
    body before it calls the app, so a request whose body is bad never
    reaches the app.
    """
    parser = http.RequestParser(**limits)
    parser.feed(data)
    parser.feed(b"")
    requests: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    try:
        while True:
            event = parser.next_event()
            assert event is not http.NEED_DATA
            if event is http.CONNECTION_CLOSED:
                return requests, None
            if isinstance(event, http.RequestHead):
                current = {"method": event.method, "target": event.target,
                           "query": event.query, "body": b""}
            elif isinstance(event, http.Data):
                current["body"] += event.data
            else:
                assert isinstance(event, http.EndOfMessage)
                requests.append(current)
    except http.RemoteProtocolError as exc:
        return requests, exc.status_code


def body_reading_app(seen: list[dict[str, Any]]) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.append({"method": environ["REQUEST_METHOD"], "target": environ["REQUEST_URI"],
                     "query": environ["QUERY_STRING"], "body": environ["wsgi.input"].read()})
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [b"ok"]
    return app


def serve(live_server: Any, data: bytes, limits: dict[str, int], seen: list[dict[str, Any]],
          count: int) -> list[int]:
    """Send ``data`` then EOF to a live server; the statuses of up to ``count`` responses.

    Stops early when the server closes or says ``Connection: close``.
    """
    live = live_server(body_reading_app(seen), **limits)
    client = RawClient(live.address, timeout=CLIENT_TIMEOUT)
    try:
        client.send(data)
        client.sock.shutdown(socket.SHUT_WR)
        statuses: list[int] = []
        while len(statuses) < count:
            try:
                resp = client.response()
            except EOFError:
                break
            statuses.append(resp.status)
            if (resp.header("connection") or "").lower() == "close":
                break
        return statuses
    finally:
        client.close()


#: Where the server answers otherwise on purpose, and why.
SERVER_POLICY = {
    # a WSGI app cannot tunnel: the server answers CONNECT with 501 itself
    "connect_authority": ([], [501]),
    # end of stream in the middle of a request: the client is gone, the
    # server closes without an answer (the parser's error says why it stopped)
    "chunked_no_last_chunk": ([], []),
    "chunked_truncated": ([], []),
    "truncated_body": ([], []),
    "truncated_head": ([], []),
}


@pytest.mark.parametrize("path", VALID, ids=[p.stem for p in VALID])
def test_the_server_serves_what_the_parser_assembles(live_server: Any, path: Path) -> None:
    data = path.read_bytes()
    expected, error = parse(data, {})
    assert error is None
    seen: list[dict[str, Any]] = []
    statuses = serve(live_server, data, {}, seen, len(expected))
    if path.stem in SERVER_POLICY:
        assert (seen, statuses) == SERVER_POLICY[path.stem]
        return
    assert seen == expected
    assert statuses == [200] * len(expected)


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_the_server_rejects_with_the_status_the_parser_raises(live_server: Any, path: Path) -> None:
    data = path.read_bytes()
    limits = json.loads(path.with_suffix(".json").read_text()).get("limits", {})
    served, error = parse(data, limits)
    assert error is not None
    seen: list[dict[str, Any]] = []
    statuses = serve(live_server, data, limits, seen, len(served) + 1)
    if path.stem in SERVER_POLICY:
        assert (seen, statuses) == SERVER_POLICY[path.stem]
        return
    assert seen == served
    assert statuses == [200] * len(served) + [error]
