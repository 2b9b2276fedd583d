"""cogen.core.sockets over real loopback sockets, on every reactor this platform has."""
from __future__ import annotations

import errno
import os
import socket
from typing import Any

import pytest

from cogen.common import Scheduler, coroutine, events, sockets
from cogen.core.events import OperationTimeout
from cogen.errors import CogenError
from cogen.testing import (
    SchedulerThread,
    has_ipv6,
    loopback_listener,
    reactor_names,
    run_in_scheduler,
    tcp_pair,
)

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(params=reactor_names())
def reactor(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def run(reactor: str, fn: Any, *args: Any) -> Any:
    return run_in_scheduler(fn, *args, reactor=reactor, timeout=30)


# -- accept / connect -------------------------------------------------------------------

def test_accept_and_connect_give_connected_sockets_with_nodelay(reactor: str) -> None:
    @coroutine
    def main():
        srv, addr = loopback_listener()
        cli = sockets.Socket()
        result = yield sockets.Connect(cli, addr)
        assert result is cli
        conn, peer = yield sockets.Accept(srv)
        assert isinstance(conn, sockets.Socket)
        assert peer == cli.getsockname()
        assert conn.getpeername() == cli.getsockname()
        for s in (cli, conn):
            assert s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            assert not s.raw.getblocking()
        yield sockets.WriteAll(cli, b"ping")
        assert (yield sockets.ReadAll(conn, 4)) == b"ping"
        for s in (cli, conn, srv):
            s.close()
        return "ok"

    assert run(reactor, main) == "ok"


def test_accept_waits_for_a_client_that_connects_later(reactor: str) -> None:
    @coroutine
    def client(addr):
        yield events.Sleep(0)
        cli = sockets.Socket()
        yield cli.connect(addr)
        yield cli.sendall(b"late\n")
        cli.close()

    @coroutine
    def main():
        srv, addr = loopback_listener()
        yield events.AddCoro(client, (addr,))
        conn, _ = yield srv.accept(timeout=10)
        line = yield conn.readline(100)
        conn.close()
        srv.close()
        return line

    assert run(reactor, main) == b"late\n"


def test_connect_refused_raises_connection_refused_with_errno(reactor: str) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        addr = probe.getsockname()  # bound but not listening: connections are refused

        @coroutine
        def main():
            cli = sockets.Socket()
            try:
                yield sockets.Connect(cli, addr, timeout=10)
            except sockets.ConnectionRefused as exc:
                return exc
            finally:
                cli.close()

        exc = run(reactor, main)
    assert exc.errno == errno.ECONNREFUSED
    assert isinstance(exc, ConnectionRefusedError)
    assert isinstance(exc, sockets.SocketError) and isinstance(exc, CogenError)
    assert str(addr[1]) in str(exc)


# -- reading: the shared buffer ---------------------------------------------------------

def test_readline_across_packet_boundaries(reactor: str) -> None:
    @coroutine
    def writer(cli):
        for part in (b"hel", b"lo\nwor", b"ld\nthird", b" line\n"):
            yield sockets.WriteAll(cli, part)
            yield events.Sleep(0)

    @coroutine
    def main():
        cli, conn = tcp_pair()
        yield events.AddCoro(writer, (cli,))
        lines = []
        for _ in range(3):
            lines.append((yield sockets.ReadLine(conn, 100)))
        cli.close()
        conn.close()
        return lines

    assert run(reactor, main) == [b"hello\n", b"world\n", b"third line\n"]


def test_readline_with_a_line_split_byte_by_byte(reactor: str) -> None:
    payload = b"first line\nsecond\n\nlast\n"
    sizes = []

    @coroutine
    def writer(cli, conn):
        for i in range(len(payload)):
            yield sockets.WriteAll(cli, payload[i:i + 1])
            yield events.Sleep(0)
            sizes.append(conn.buffered)

    @coroutine
    def main():
        cli, conn = tcp_pair()
        yield events.AddCoro(writer, (cli, conn))
        lines = []
        for _ in range(4):
            lines.append((yield sockets.ReadLine(conn, 64)))
        cli.close()
        conn.close()
        return lines

    assert run(reactor, main) == [b"first line\n", b"second\n", b"\n", b"last\n"]
    assert max(sizes) < len(payload)  # the reader really saw the line grow


def test_readline_then_read_gets_exactly_the_remaining_bytes(reactor: str) -> None:
    @coroutine
    def main():
        cli, conn = tcp_pair()
        yield sockets.WriteAll(cli, b"HEAD\r\nbody-bytes-0123456789")
        line = yield sockets.ReadLine(conn, 1024)
        assert conn.buffered == 21
        rest = yield sockets.Read(conn, 1024)
        yield sockets.WriteAll(cli, b"line2\nabc")
        line2 = yield conn.readline(1024)
        three = yield conn.recv_all(3)
        cli.close()
        conn.close()
        return line, rest, line2, three

    assert run(reactor, main) == (b"HEAD\r\n", b"body-bytes-0123456789", b"line2\n", b"abc")


def test_read_takes_at_most_bufsize_from_the_buffer(reactor: str) -> None:
    @coroutine
    def main():
        cli, conn = tcp_pair()
        yield sockets.WriteAll(cli, b"x\n0123456789")
        yield sockets.ReadLine(conn)
        parts = []
        for _ in range(3):
            parts.append((yield sockets.Read(conn, 4)))
        cli.close()
        conn.close()
        return parts

    assert run(reactor, main) == [b"0123", b"4567", b"89"]


def test_readline_over_maxlen_raises_and_keeps_the_data(reactor: str) -> None:
    @coroutine
    def main():
        cli, conn = tcp_pair()
        yield sockets.WriteAll(cli, b"x" * 20 + b"\nnext\n")
        try:
            yield sockets.ReadLine(conn, 10)
        except sockets.LineTooLong as exc:
            err = exc
        else:
            raise AssertionError("no LineTooLong")
        long_line = yield sockets.ReadAll(conn, 21)
        nxt = yield sockets.ReadLine(conn, 10)
        cli.close()
        conn.close()
        return err, long_line, nxt

    err, long_line, nxt = run(reactor, main)
    assert "10" in str(err) and isinstance(err, OverflowError) and isinstance(err, sockets.SocketError)
    assert long_line == b"x" * 20 + b"\n"
    assert nxt == b"next\n"


def test_readline_over_maxlen_while_waiting_for_more(reactor: str) -> None:
    @coroutine
    def writer(cli):
        for _ in range(5):
            yield sockets.WriteAll(cli, b"y" * 5)
            yield events.Sleep(0)

    @coroutine
    def main():
        cli, conn = tcp_pair()
        yield events.AddCoro(writer, (cli,))
        try:
            yield sockets.ReadLine(conn, 12)
        except sockets.LineTooLong:
            pass
        got = conn.buffered
        rest = yield sockets.ReadAll(conn, 25)
        cli.close()
        conn.close()
        return got, rest

    got, rest = run(reactor, main)
    assert got >= 12
    assert rest == b"y" * 25


def test_readline_truncate_and_makefile_readline_return_maxlen_bytes_without_a_line_end(
        reactor: str) -> None:
    @coroutine
    def main():
        cli, conn = tcp_pair()
        yield sockets.WriteAll(cli, b"x" * 15 + b"\nabcdefgh")
        first = yield sockets.ReadLine(conn, 10, truncate=True)
        rest = yield conn.makefile().readline(10)
        partial = yield conn.makefile().readline(4)
        cli.close()
        tail = yield conn.makefile().readline(10)
        conn.close()
        return first, rest, partial, tail

    assert run(reactor, main) == (b"x" * 10, b"xxxxx\n", b"abcd", b"efgh")


def test_readline_of_exactly_maxlen_bytes_is_accepted(reactor: str) -> None:
    @coroutine
    def main():
        cli, conn = tcp_pair()
        yield sockets.WriteAll(cli, b"123456789\nabcdefghij\n")
        a = yield sockets.ReadLine(conn, 10)
        try:
            yield sockets.ReadLine(conn, 10)
        except sockets.LineTooLong:
            b = yield sockets.ReadLine(conn, 11)
        cli.close()
        conn.close()
        return a, b

    assert run(reactor, main) == (b"123456789\n", b"abcdefghij\n")


def test_readline_returns_partial_line_at_eof(reactor: str) -> None:
    @coroutine
    def main():
        cli, conn = tcp_pair()
        yield sockets.WriteAll(cli, b"full\npartial")
        cli.close()
        first = yield sockets.ReadLine(conn, 100)
        partial = yield sockets.ReadLine(conn, 100)
        try:
            yield sockets.ReadLine(conn, 100)
        except sockets.ConnectionClosed as exc:
            closed = exc
        conn.close()
        return first, partial, closed

    first, partial, closed = run(reactor, main)
    assert (first, partial) == (b"full\n", b"partial")
    assert type(closed) is sockets.ConnectionClosed


def test_read_at_end_of_stream_raises_instead_of_returning_empty(reactor: str) -> None:
    @coroutine
    def main():
        cli, conn = tcp_pair()
        yield sockets.WriteAll(cli, b"last words")
        cli.shutdown(socket.SHUT_WR)
        data = yield sockets.Read(conn, 100)
        outcomes = []
        for op in (sockets.Read(conn, 100), sockets.ReadLine(conn), sockets.ReadAll(conn, 1)):
            try:
                yield op
            except sockets.ConnectionClosed as exc:
                outcomes.append(type(exc))
        cli.close()
        conn.close()
        return data, outcomes

    data, outcomes = run(reactor, main)
    assert data == b"last words"
    assert outcomes == [sockets.ConnectionClosed] * 3


def test_readall_with_early_close_keeps_the_bytes_read(reactor: str) -> None:
    @coroutine
    def writer(cli):
        yield sockets.WriteAll(cli, b"12345")
        yield events.Sleep(0)
        yield sockets.WriteAll(cli, b"678")
        cli.close()

    @coroutine
    def main():
        cli, conn = tcp_pair()
        yield events.AddCoro(writer, (cli,))
        try:
            yield sockets.ReadAll(conn, 100)
        except sockets.ConnectionClosed as exc:
            err = exc
        kept = yield sockets.Read(conn, 100)
        try:
            yield sockets.Read(conn, 100)
        except sockets.ConnectionClosed:
            pass
        else:
            raise AssertionError("read after EOF did not raise")
        conn.close()
        return err, kept

    err, kept = run(reactor, main)
    assert kept == b"12345678"
    assert "8 of the 100" in str(err)


def test_readall_of_a_big_message_sent_in_pieces(reactor: str) -> None:
    data = os.urandom(3 * 1024 * 1024 + 7)

    @coroutine
    def writer(cli):
        view = memoryview(data)
        for i in range(0, len(data), 100_000):
            yield sockets.WriteAll(cli, view[i:i + 100_000])

    @coroutine
    def main():
        cli, conn = tcp_pair()
        yield events.AddCoro(writer, (cli,))
        head = yield sockets.ReadAll(conn, 10)
        body = yield sockets.ReadAll(conn, len(data) - 10)
        cli.close()
        conn.close()
        return head + body

    assert run(reactor, main) == data


def test_readall_of_zero_bytes_completes_at_once(reactor: str) -> None:
    @coroutine
    def main():
        cli, conn = tcp_pair()
        got = yield sockets.ReadAll(conn, 0)
        cli.close()
        conn.close()
        return got

    assert run(reactor, main) == b""


# -- writing ----------------------------------------------------------------------------

def test_writeall_sends_everything_and_write_sends_some(reactor: str) -> None:
    data = os.urandom(2 * 1024 * 1024)

    @coroutine
    def reader(conn, out):
        out.append((yield sockets.ReadAll(conn, len(data) + 5)))

    @coroutine
    def main():
        cli, conn = tcp_pair()
        out: list[bytes] = []
        waiter = yield events.AddCoro(reader, (conn, out))
        n = yield sockets.Write(cli, b"abcde")
        total = yield sockets.WriteAll(cli, bytearray(data))
        yield events.Join(waiter)
        cli.close()
        conn.close()
        return n, total, out[0]

    n, total, got = run(reactor, main)
    assert (n, total) == (5, len(data))
    assert got == b"abcde" + data


def test_write_accepts_bytes_like_objects(reactor: str) -> None:
    import array

    @coroutine
    def main():
        cli, conn = tcp_pair()
        yield sockets.WriteAll(cli, bytearray(b"ab"))
        yield sockets.WriteAll(cli, memoryview(b"xcdx")[1:3])
        yield sockets.Write(cli, memoryview(b"ef"))
        sent = yield sockets.WriteAll(cli, array.array("H", [0x4847]))
        got = yield sockets.ReadAll(conn, 8)
        cli.close()
        conn.close()
        return sent, got

    sent, got = run(reactor, main)
    assert sent == 2
    assert got[:6] == b"abcdef" and sorted(got[6:]) == sorted(b"GH")


@pytest.mark.parametrize("make", [
    lambda s: sockets.Write(s, "text"),
    lambda s: sockets.WriteAll(s, "text"),
    lambda s: s.send("text"),
    lambda s: s.sendall("text"),
    lambda s: s.makefile().write("text"),
])
def test_str_data_raises_type_error_saying_to_encode(make: Any) -> None:
    with sockets.Socket() as s, pytest.raises(TypeError, match="encode"):
        make(s)


def test_non_buffer_data_raises_type_error() -> None:
    with sockets.Socket() as s, pytest.raises(TypeError, match="bytes-like"):
        sockets.WriteAll(s, 42)


def test_writeall_of_empty_data_returns_zero(reactor: str) -> None:
    @coroutine
    def main():
        cli, conn = tcp_pair()
        n = yield sockets.WriteAll(cli, b"")
        cli.close()
        conn.close()
        return n

    assert run(reactor, main) == 0


def test_write_to_a_reset_connection_raises_connection_reset(reactor: str) -> None:
    @coroutine
    def main():
        cli, conn = tcp_pair()
        conn.raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        conn.close()  # linger 0: RST
        try:
            for _ in range(100):
                yield sockets.WriteAll(cli, b"x" * 65536)
        except sockets.ConnectionClosed as exc:
            return exc
        finally:
            cli.close()

    exc = run(reactor, main)
    assert isinstance(exc, sockets.ConnectionReset)
    assert exc.errno in (errno.ECONNRESET, errno.EPIPE)


# -- timeouts ---------------------------------------------------------------------------

def _timed_out(reactor: str, make_op: Any) -> tuple[OperationTimeout, Any]:
    @coroutine
    def main():
        cli, conn = tcp_pair()
        srv, _ = loopback_listener()
        ctx = {"cli": cli, "conn": conn, "srv": srv}
        op = make_op(ctx)
        try:
            yield op
        except OperationTimeout as exc:
            return exc, ctx
        finally:
            for s in (cli, conn, srv):
                s.close()
        raise AssertionError(f"{op!r} did not time out")

    return run(reactor, main)


def test_read_times_out(reactor: str) -> None:
    exc, _ = _timed_out(reactor, lambda c: sockets.Read(c["conn"], 10, timeout=0.05))
    assert isinstance(exc.operation, sockets.Read) and exc.timeout == 0.05


def test_accept_times_out(reactor: str) -> None:
    exc, _ = _timed_out(reactor, lambda c: sockets.Accept(c["srv"], timeout=0.05))
    assert isinstance(exc.operation, sockets.Accept)


def test_readline_times_out_and_keeps_the_partial_line(reactor: str) -> None:
    @coroutine
    def main():
        cli, conn = tcp_pair()
        yield sockets.WriteAll(cli, b"no newline ")
        try:
            yield sockets.ReadLine(conn, 100, timeout=0.05)
        except OperationTimeout as exc:
            err = exc
        kept = conn.buffered
        yield sockets.WriteAll(cli, b"yet\n")
        line = yield sockets.ReadLine(conn, 100, timeout=5)
        cli.close()
        conn.close()
        return err, kept, line

    err, kept, line = run(reactor, main)
    assert isinstance(err.operation, sockets.ReadLine)
    assert kept == len(b"no newline ")
    assert line == b"no newline yet\n"


def test_readall_times_out_and_keeps_what_arrived(reactor: str) -> None:
    @coroutine
    def main():
        cli, conn = tcp_pair()
        yield sockets.WriteAll(cli, b"12345")
        try:
            yield sockets.ReadAll(conn, 10, timeout=0.05)
        except OperationTimeout:
            pass
        yield sockets.WriteAll(cli, b"67890")
        got = yield sockets.ReadAll(conn, 10, timeout=5)
        cli.close()
        conn.close()
        return got

    assert run(reactor, main) == b"1234567890"


def test_writeall_times_out_when_the_peer_does_not_read(reactor: str) -> None:
    exc, _ = _timed_out(reactor, lambda c: sockets.WriteAll(c["cli"], b"z" * (64 << 20), timeout=0.2))
    assert isinstance(exc.operation, sockets.WriteAll)
    assert 0 < exc.operation.sent < 64 << 20


def test_connect_times_out_when_the_backlog_is_full(reactor: str) -> None:
    with socket.socket() as lsock:
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(0)
        addr = lsock.getsockname()
        fillers = []
        try:
            for _ in range(4):  # Linux queues backlog + 1; later SYNs are dropped
                s = socket.socket()
                s.setblocking(False)
                s.connect_ex(addr)
                fillers.append(s)

            @coroutine
            def main():
                cli = sockets.Socket()
                try:
                    yield sockets.Connect(cli, addr, timeout=0.3)
                except OperationTimeout as exc:
                    return exc
                finally:
                    cli.close()
                return None

            exc = run(reactor, main)
        finally:
            for s in fillers:
                s.close()
    if exc is None:
        pytest.skip("this kernel completed a connect beyond the listen backlog")
    assert isinstance(exc.operation, sockets.Connect)


def test_settimeout_is_the_default_of_the_sockets_operations(reactor: str) -> None:
    @coroutine
    def main():
        cli, conn = tcp_pair()
        conn.settimeout(0.05)
        assert conn.gettimeout() == 0.05
        try:
            yield conn.recv(10)
        except OperationTimeout as exc:
            err = exc
        op = conn.recv(10, timeout=None)
        cli.close()
        conn.close()
        return err, op.timeout

    err, explicit = run(reactor, main)
    assert err.timeout == 0.05
    assert explicit is None


def test_scheduler_default_timeout_applies_without_a_socket_timeout(reactor: str) -> None:
    sched = Scheduler(reactor=reactor, default_timeout=0.05)
    cli, conn = tcp_pair()
    caught = []

    @coroutine
    def main():
        try:
            yield sockets.Read(conn, 10)
        except OperationTimeout:
            caught.append(True)

    try:
        sched.add(main)
        sched.run()
    finally:
        sched.close()
        cli.close()
        conn.close()
    assert caught == [True]


# -- closing ----------------------------------------------------------------------------

def test_closing_a_socket_wakes_a_parked_reader_with_connection_closed(reactor: str) -> None:
    sched = Scheduler(reactor=reactor)
    cli, conn = tcp_pair()
    seen = []

    @coroutine
    def reader():
        try:
            yield sockets.ReadLine(conn, 100, timeout=10)
        except sockets.ConnectionClosed as exc:
            seen.append(exc)

    @coroutine
    def closer():
        yield events.Sleep(0)
        assert len(sched.reactor) == 1  # the reader is parked
        conn.close()

    try:
        sched.add(reader)
        sched.add(closer)
        sched.run()
        assert len(sched.reactor) == 0
    finally:
        sched.close()
        cli.close()
    assert len(seen) == 1
    assert isinstance(seen[0], sockets.SocketClosed)
    assert seen[0].errno == errno.EBADF


def test_operations_on_a_closed_socket_raise_socket_closed(reactor: str) -> None:
    @coroutine
    def main():
        cli, conn = tcp_pair()
        yield sockets.WriteAll(cli, b"buffered\nmore")
        yield sockets.ReadLine(conn)
        conn.close()
        conn.close()  # idempotent
        outcomes = []
        for op in (sockets.Read(conn), sockets.ReadLine(conn), sockets.WriteAll(conn, b"x"),
                   sockets.Write(conn, b"x")):
            try:
                yield op
            except sockets.SocketClosed:
                outcomes.append(True)
        cli.close()
        return outcomes, conn.fileno(), conn.is_closed

    outcomes, fd, closed = run(reactor, main)
    assert outcomes == [True] * 4
    assert fd == -1 and closed


def test_close_wakes_a_parked_writer(reactor: str) -> None:
    sched = Scheduler(reactor=reactor)
    cli, conn = tcp_pair()
    seen = []

    @coroutine
    def writer():
        try:
            yield sockets.WriteAll(cli, b"w" * (64 << 20), timeout=10)
        except sockets.ConnectionClosed as exc:
            seen.append(exc)

    @coroutine
    def closer():
        while not len(sched.reactor):
            yield events.Sleep(0)
        cli.close()

    try:
        sched.add(writer)
        sched.add(closer)
        sched.run()
    finally:
        sched.close()
        conn.close()
    assert [type(e) for e in seen] == [sockets.SocketClosed]


# -- other families ---------------------------------------------------------------------

def _echo_once(reactor: str, family: int) -> bytes:
    @coroutine
    def serve(srv):
        conn, _ = yield sockets.Accept(srv)
        line = yield sockets.ReadLine(conn, 100)
        yield sockets.WriteAll(conn, line.upper())
        conn.close()

    @coroutine
    def main():
        srv, addr = loopback_listener(family)
        yield events.AddCoro(serve, (srv,))
        cli = sockets.Socket(family)
        yield sockets.Connect(cli, addr, timeout=5)
        yield sockets.WriteAll(cli, b"hello there\n")
        got = yield sockets.ReadLine(cli, 100, timeout=5)
        cli.close()
        srv.close()
        if family == socket.AF_UNIX:
            os.unlink(addr)
            os.rmdir(os.path.dirname(addr))
        return got

    return run(reactor, main)


def test_ipv6_echo(reactor: str) -> None:
    if not has_ipv6():
        pytest.skip("this host has no ::1")
    assert _echo_once(reactor, socket.AF_INET6) == b"HELLO THERE\n"


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no Unix-domain sockets")
def test_unix_socket_echo(reactor: str) -> None:
    assert _echo_once(reactor, socket.AF_UNIX) == b"HELLO THERE\n"


# -- the listen helper ------------------------------------------------------------------

def test_listen_accepts_the_address_forms(tmp_path: Any) -> None:
    forms: list[Any] = [("127.0.0.1", 0), "127.0.0.1:0", ("", 0)]
    if has_ipv6():
        forms += ["[::1]:0", ("::1", 0)]
    for form in forms:
        with sockets.listen(form) as s:
            assert s.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR)
            assert s.getsockname()[1] > 0
    with sockets.listen(f"unix:{tmp_path}/a.sock") as s:
        assert s.family == socket.AF_UNIX and s.getsockname() == f"{tmp_path}/a.sock"
    with sockets.listen(str(tmp_path / "b.sock")) as s:
        assert s.family == socket.AF_UNIX


def test_listen_removes_a_stale_unix_socket_but_not_a_live_one(tmp_path: Any) -> None:
    path = str(tmp_path / "stale.sock")
    sockets.listen(path).close()  # leaves the file behind
    assert os.path.exists(path)
    with sockets.listen(path) as live:
        with pytest.raises(sockets.SocketError) as info:
            sockets.listen(path)
        assert info.value.errno == errno.EADDRINUSE
        assert live.getsockname() == path


def test_listen_rejects_a_bad_port() -> None:
    with pytest.raises(ValueError, match="'abc'"):
        sockets.listen("127.0.0.1:abc")


@pytest.mark.skipif(not sockets.HAS_REUSEPORT, reason="no SO_REUSEPORT")
def test_listen_with_reuse_port_lets_two_sockets_share_a_port() -> None:
    with sockets.listen(("127.0.0.1", 0), reuse_port=True) as a:
        port = a.getsockname()[1]
        with sockets.listen(("127.0.0.1", port), reuse_port=True) as b:
            assert b.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT)
            assert b.getsockname()[1] == port
        with pytest.raises(sockets.SocketError) as info:
            sockets.listen(("127.0.0.1", port))
        assert info.value.errno == errno.EADDRINUSE


# -- the Socket object ------------------------------------------------------------------

def test_socket_methods_return_the_operations() -> None:
    with sockets.Socket() as s, open(os.devnull, "rb") as f:
        assert isinstance(s.recv(5), sockets.Read) and isinstance(s.read(5), sockets.Read)
        assert isinstance(s.recv_all(5), sockets.ReadAll) and isinstance(s.readall(5), sockets.ReadAll)
        assert isinstance(s.readline(5), sockets.ReadLine)
        assert isinstance(s.send(b"x"), sockets.Write)
        assert isinstance(s.sendall(b"x"), sockets.WriteAll) and isinstance(s.write(b"x"), sockets.WriteAll)
        assert isinstance(s.accept(), sockets.Accept)
        assert isinstance(s.connect(("127.0.0.1", 1)), sockets.Connect)
        assert isinstance(s.sendfile(f), sockets.SendFile)
        assert isinstance(s.handshake(), sockets.Handshake)
        op = s.readline(7, timeout=3, prio=1)
        assert (op.maxlen, op.timeout, op.prio) == (7, 3, 1)
    assert sockets.Recv is sockets.Read and sockets.RecvAll is sockets.ReadAll
    assert sockets.Send is sockets.Write and sockets.SendAll is sockets.WriteAll


def test_socket_constants_are_reexported() -> None:
    for name in ("SOL_SOCKET", "SO_REUSEADDR", "AF_INET", "AF_INET6", "AF_UNIX", "SOCK_STREAM",
                 "IPPROTO_TCP", "TCP_NODELAY", "SHUT_RDWR"):
        assert getattr(sockets, name) == getattr(socket, name)


def test_from_socket_makes_it_non_blocking_and_setblocking_only_records() -> None:
    raw = socket.socket()
    s = sockets.Socket.from_socket(raw)
    assert s.raw is raw and not raw.getblocking()
    assert s.family == socket.AF_INET and s.type == socket.SOCK_STREAM
    s.setblocking(True)
    assert s.getblocking() and not raw.getblocking()
    assert s.gettimeout() is None
    with s:
        assert "fd=" in repr(s)
    assert s.is_closed and s.fileno() == -1 and raw.fileno() == -1
    assert "closed" in repr(s)


def test_socket_from_fileno_detects_the_family() -> None:
    raw = socket.socket(socket.AF_INET6 if has_ipv6() else socket.AF_INET)
    s = sockets.Socket(fileno=raw.detach())
    try:
        assert s.family == (socket.AF_INET6 if has_ipv6() else socket.AF_INET)
    finally:
        s.close()


def test_operations_reject_a_stdlib_socket() -> None:
    with socket.socket() as raw, pytest.raises(TypeError, match="from_socket"):
        sockets.Read(raw, 10)


def test_bad_sizes_are_rejected() -> None:
    with sockets.Socket() as s:
        for make in (lambda: sockets.Read(s, 0), lambda: sockets.ReadLine(s, 0),
                     lambda: sockets.ReadAll(s, -1)):
            with pytest.raises(ValueError):
                make()


def test_makefile_read_and_readline_return_operations(reactor: str) -> None:
    @coroutine
    def main():
        cli, conn = tcp_pair()
        out, inp = cli.makefile(), conn.makefile()
        yield out.write(b"one\ntwo three")
        out.flush()
        line = yield inp.readline(100)
        word = yield inp.readexactly(4)
        rest = yield inp.read(100)
        inp.close()
        assert not conn.is_closed
        cli.close()
        conn.close()
        return line, word, rest

    assert run(reactor, main) == (b"one\n", b"two ", b"three")


def test_exception_hierarchy() -> None:
    assert issubclass(sockets.SocketError, CogenError) and issubclass(sockets.SocketError, OSError)
    assert issubclass(sockets.ConnectionClosed, ConnectionError)
    assert issubclass(sockets.ConnectionReset, sockets.ConnectionClosed)
    assert issubclass(sockets.ConnectionReset, ConnectionResetError)
    assert issubclass(sockets.SocketClosed, sockets.ConnectionClosed)
    assert issubclass(sockets.ConnectionRefused, ConnectionRefusedError)
    assert issubclass(sockets.LineTooLong, sockets.SocketError)
    assert issubclass(sockets.TLSError, sockets.SocketError)
    assert sockets.SocketError(errno.EPIPE, "x").errno == errno.EPIPE


def test_priority_coro_resumes_the_caller_at_once(reactor: str) -> None:
    from cogen.core.util import priority
    order = []

    @coroutine
    def other():
        order.append("other")
        yield events.Sleep(0)

    @coroutine
    def main():
        cli, conn = tcp_pair()
        yield events.AddCoro(other, prio=priority.CORO)
        yield sockets.WriteAll(cli, b"abc", prio=priority.CORO)
        order.append("main")
        yield sockets.ReadAll(conn, 3, prio=priority.CORO)
        cli.close()
        conn.close()
        yield events.Sleep(0)

    run(reactor, main)
    assert order == ["main", "other"]


def test_a_server_in_a_scheduler_thread_serves_a_blocking_client(reactor: str) -> None:
    @coroutine
    def serve(srv):
        conn, _ = yield sockets.Accept(srv, timeout=10)
        try:
            while True:
                line = yield sockets.ReadLine(conn, 100, timeout=10)
                yield sockets.WriteAll(conn, line[::-1][1:] + b"\n")
        except sockets.ConnectionClosed:
            return "done"
        finally:
            conn.close()

    srv, addr = loopback_listener()
    with SchedulerThread(reactor=reactor) as bg:
        bg.spawn(serve, srv)
        with socket.create_connection(addr, timeout=10) as client:
            f = client.makefile("rwb")
            f.write(b"abc\n")
            f.flush()
            assert f.readline() == b"cba\n"
            f.close()

        @coroutine
        def close_listener():
            srv.close()
            return srv.is_closed

        assert bg.call(close_listener, timeout=10) is True


def test_handshake_times_out_when_the_server_says_nothing(reactor: str) -> None:
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)

    @coroutine
    def main():
        srv, addr = loopback_listener()  # plain TCP: it never answers the ClientHello
        cli = sockets.Socket()
        try:
            yield sockets.Connect(cli, addr, timeout=5)
            cli.wrap(ctx, server_hostname="localhost")
            yield sockets.Handshake(cli, timeout=0.05)
        except OperationTimeout as exc:
            return exc
        finally:
            cli.close()
            srv.close()

    exc = run(reactor, main)
    assert isinstance(exc.operation, sockets.Handshake)
