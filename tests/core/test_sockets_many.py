"""Many concurrent connections through cogen.core.sockets in one scheduler."""
from __future__ import annotations

import pytest

from cogen.common import coroutine, events, sockets
from cogen.testing import (
    loopback_listener,
    raise_fd_limit,
    reactor_names,
    run_in_scheduler,
)

pytestmark = pytest.mark.timeout(60)

ROUND_TRIPS = 5


@coroutine
def echo_handler(conn):
    try:
        while True:
            line = yield sockets.ReadLine(conn, 1024, timeout=30)
            yield sockets.WriteAll(conn, line, timeout=30)
    except sockets.ConnectionClosed:
        pass
    finally:
        conn.close()


@coroutine
def echo_server(srv, n):
    for _ in range(n):
        conn, _ = yield sockets.Accept(srv, timeout=30)
        yield events.AddCoro(echo_handler, (conn,))


@coroutine
def echo_client(addr, i, done):
    sock = sockets.Socket()
    try:
        yield sockets.Connect(sock, addr, timeout=30)
        # wait until every client is connected: they are all open at once
        yield events.WaitForSignal("all-connected", timeout=30)
        for k in range(ROUND_TRIPS):
            msg = b"client %d message %d\n" % (i, k)
            yield sockets.WriteAll(sock, msg, timeout=30)
            echo = yield sockets.ReadLine(sock, 1024, timeout=30)
            assert echo == msg, (echo, msg)
        done.append(i)
    finally:
        sock.close()


@pytest.mark.parametrize("reactor", reactor_names())
def test_echo_round_trips_with_1000_concurrent_clients(reactor: str) -> None:
    # select() cannot watch descriptors at or above FD_SETSIZE (1024)
    n = 300 if reactor == "select" else 1000
    if not raise_fd_limit(2 * n + 200):
        pytest.skip(f"cannot open {2 * n + 200} descriptors (ulimit -n)")
    done: list[int] = []

    @coroutine
    def main():
        srv, addr = loopback_listener(backlog=n)
        try:
            yield events.AddCoro(echo_server, (srv, n))
            clients = []
            for i in range(n):
                clients.append((yield events.AddCoro(echo_client, (addr, i, done))))
            woken = yield events.Signal("all-connected", recipients=n, timeout=30)
            assert woken == n
            for c in clients:
                yield events.Join(c, timeout=30)
        finally:
            srv.close()

    run_in_scheduler(main, reactor=reactor, timeout=50)
    assert sorted(done) == list(range(n))
