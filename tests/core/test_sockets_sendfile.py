"""sockets.SendFile: zero-copy os.sendfile and the read/write fallback."""
from __future__ import annotations

import hashlib
import io
import os
from typing import Any

import pytest

from cogen.common import coroutine, events, sockets
from cogen.core.events import OperationTimeout
from cogen.testing import reactor_names, run_in_scheduler, tcp_pair

pytestmark = pytest.mark.timeout(60)

SIZE = 10 * 1024 * 1024


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, bytes]:
    path = tmp_path_factory.mktemp("sendfile") / "ten-mib.bin"
    data = os.urandom(SIZE)
    path.write_bytes(data)
    return str(path), data


@pytest.fixture(params=reactor_names())
def reactor(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def send_and_receive(reactor: str, fileobj: Any, expected: int, **kwargs: Any) -> tuple[int, bytes]:
    """SendFile ``fileobj`` from one end of a TCP pair, ReadAll ``expected`` bytes at the other."""
    received: list[bytes] = []

    @coroutine
    def reader(conn):
        received.append((yield sockets.ReadAll(conn, expected, timeout=30)))

    @coroutine
    def main():
        cli, conn = tcp_pair()
        try:
            r = yield events.AddCoro(reader, (conn,))
            sent = yield sockets.SendFile(fileobj, cli, timeout=30, **kwargs)
            yield events.Join(r, timeout=30)
            return sent
        finally:
            cli.close()
            conn.close()

    sent = run_in_scheduler(main, reactor=reactor, timeout=50)
    return sent, received[0]


def test_sendfile_of_a_10_mib_file(reactor: str, big_file: tuple[str, bytes]) -> None:
    path, data = big_file
    with open(path, "rb") as f:
        sent, got = send_and_receive(reactor, f, SIZE)
        assert f.tell() == SIZE
    assert sent == SIZE
    assert sha(got) == sha(data)


def test_sendfile_with_offset_and_length(reactor: str, big_file: tuple[str, bytes]) -> None:
    path, data = big_file
    offset, length = 123_457, 3_000_001
    with open(path, "rb") as f:
        sent, got = send_and_receive(reactor, f, length, offset=offset, length=length)
        assert f.tell() == offset + length
    assert sent == length
    assert sha(got) == sha(data[offset:offset + length])


def test_sendfile_stops_at_the_end_of_the_file(reactor: str, big_file: tuple[str, bytes]) -> None:
    path, data = big_file
    offset = SIZE - 1000
    with open(path, "rb") as f:
        sent, got = send_and_receive(reactor, f, 1000, offset=offset, length=5000)
    assert sent == 1000 and got == data[offset:]


def test_sendfile_falls_back_to_read_and_write_for_file_likes(reactor: str,
                                                              big_file: tuple[str, bytes]) -> None:
    _, data = big_file
    buf = io.BytesIO(data)
    offset, length = 10, 4_000_000
    sent, got = send_and_receive(reactor, buf, length, offset=offset, length=length)
    assert sent == length
    assert sha(got) == sha(data[offset:offset + length])
    assert buf.tell() == offset + length
    sent, got = send_and_receive(reactor, io.BytesIO(data[:100_000]), 100_000)
    assert got == data[:100_000]


def test_sendfile_rejects_a_text_file(tmp_path: Any) -> None:
    path = tmp_path / "t.txt"
    path.write_text("text")
    with open(path) as f, sockets.Socket() as s, pytest.raises(ValueError, match="binary"):
        sockets.SendFile(f, s)


def test_sendfile_times_out_when_the_peer_does_not_read(reactor: str, big_file: tuple[str, bytes]) -> None:
    path, _ = big_file

    @coroutine
    def main():
        cli, conn = tcp_pair()
        try:
            with open(path, "rb") as f:
                yield sockets.SendFile(f, cli, timeout=0.2)
        except OperationTimeout as exc:
            return exc
        finally:
            cli.close()
            conn.close()

    exc = run_in_scheduler(main, reactor=reactor, timeout=30)
    assert isinstance(exc, OperationTimeout)
    assert 0 < exc.operation.sent < SIZE
