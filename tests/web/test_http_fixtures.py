"""Raw requests from tests/web/requests/{valid,invalid}/ fed to RequestParser, split at every byte boundary.

Each NAME.http holds the exact bytes (CRLF line ends, kept by ``*.http -text``).
valid/NAME.json gives the expected requests; invalid/NAME.json gives the
expected status (and parser limits, if any). The outcome must be the same
however the bytes are split into reads.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cogen.web.http import (
    CONNECTION_CLOSED,
    NEED_DATA,
    Data,
    EndOfMessage,
    RemoteProtocolError,
    RequestHead,
    RequestParser,
)

pytestmark = pytest.mark.timeout(120)

REQUESTS = Path(__file__).parent / "requests"
VALID = sorted((REQUESTS / "valid").glob("*.http"))
INVALID = sorted((REQUESTS / "invalid").glob("*.http"))


def run(
    pieces: list[bytes], limits: dict[str, int]
) -> tuple[list[dict[str, Any]], int | None]:
    """Feed the pieces then EOF; return (requests seen, error status or None)."""
    parser = RequestParser(**limits)
    requests: list[dict[str, Any]] = []
    body: list[bytes] = []
    try:
        for piece in [*[p for p in pieces if p], b""]:
            parser.feed(piece)  # b"" (only last) is EOF
            while True:
                event = parser.next_event()
                if event is NEED_DATA:
                    assert piece, "NEED_DATA after EOF"
                    break
                if event is CONNECTION_CLOSED:
                    assert not piece
                    return requests, None
                if isinstance(event, RequestHead):
                    requests.append(head_to_dict(event))
                    body = []
                elif isinstance(event, Data):
                    assert event.data, "empty Data event"
                    body.append(event.data)
                else:
                    assert isinstance(event, EndOfMessage)
                    requests[-1]["body"] = b"".join(body).decode("latin-1")
                    requests[-1]["trailers"] = [list(t) for t in event.trailers]
    except RemoteProtocolError as exc:
        return requests, exc.status_code
    raise AssertionError("no CONNECTION_CLOSED after EOF")


def head_to_dict(head: RequestHead) -> dict[str, Any]:
    return {
        "method": head.method,
        "target": head.target,
        "path": head.path,
        "query": head.query,
        "version": list(head.version),
        "headers": [list(h) for h in head.headers],
        "host": head.host,
        "content_length": head.content_length,
        "chunked": head.chunked,
        "keep_alive": head.keep_alive,
        "expect_continue": head.expect_continue,
    }


def load(path: Path) -> tuple[bytes, dict[str, Any]]:
    return path.read_bytes(), json.loads(path.with_suffix(".json").read_text())


def test_fixture_sets_are_not_empty() -> None:
    assert len(VALID) >= 30
    assert len(INVALID) >= 100
    for path in VALID + INVALID:
        assert path.with_suffix(".json").exists(), path


@pytest.mark.parametrize("path", VALID, ids=[p.stem for p in VALID])
def test_valid_request_parses_the_same_at_every_split(path: Path) -> None:
    data, expected = load(path)
    assert b"\r\n" in data, "fixture lost its CRLF line ends"
    for cut in range(len(data) + 1):
        requests, status = run([data[:cut], data[cut:]], {})
        assert status is None, f"split at {cut}: error {status}"
        assert requests == expected["requests"], f"split at {cut}"


@pytest.mark.parametrize("path", VALID, ids=[p.stem for p in VALID])
def test_valid_request_parses_fed_byte_by_byte(path: Path) -> None:
    data, expected = load(path)
    requests, status = run([data[i : i + 1] for i in range(len(data))], {})
    assert status is None
    assert requests == expected["requests"]


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_invalid_request_fails_the_same_at_every_split(path: Path) -> None:
    data, expected = load(path)
    limits = expected.get("limits", {})
    for cut in range(len(data) + 1):
        _, status = run([data[:cut], data[cut:]], limits)
        assert status == expected["status"], f"split at {cut}"


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_invalid_request_fails_fed_byte_by_byte(path: Path) -> None:
    data, expected = load(path)
    _, status = run(
        [data[i : i + 1] for i in range(len(data))], expected.get("limits", {})
    )
    assert status == expected["status"]
