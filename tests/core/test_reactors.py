"""Tests of cogen.core.reactors, driving each backend directly (no scheduler)."""
from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from cogen.core import reactors
from cogen.core.reactors import Reactor

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def reactor(reactor_name: str) -> Iterator[Reactor]:
    r = reactors.available()[reactor_name]()
    yield r
    r.close()


def poll_until(r: Reactor, want: int = 1, timeout: float = 5.0) -> list[Any]:
    """Poll until ``want`` waiters are ready (each poll blocking up to ``timeout``)."""
    ready: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(ready) < want and time.monotonic() < deadline:
        r.poll(timeout, ready)
    return ready


def test_a_reader_is_woken_when_data_arrives(
    reactor: Reactor, sockpair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = sockpair
    reactor.add_reader(a.fileno(), a, "op", "coro")
    ready: list[Any] = []
    reactor.poll(0, ready)
    assert ready == []
    assert len(reactor) == 1 and reactor
    b.send(b"x")
    assert poll_until(reactor) == [("op", "coro")]
    assert len(reactor) == 0 and not reactor


def test_a_writer_is_woken_when_the_socket_is_writable(
        reactor: Reactor, sockpair: tuple[socket.socket, socket.socket]) -> None:
    a, _b = sockpair
    reactor.add_writer(a.fileno(), a, "wop", "coro")
    assert poll_until(reactor) == [("wop", "coro")]
    assert not reactor.writers


def test_a_writer_on_a_full_socket_is_woken_when_the_peer_reads(
        reactor: Reactor, sockpair: tuple[socket.socket, socket.socket]) -> None:
    a, b = sockpair
    try:
        while True:
            a.send(b"x" * 65536)
    except BlockingIOError:
        pass
    reactor.add_writer(a.fileno(), a, "wop", "coro")
    ready: list[Any] = []
    reactor.poll(0, ready)
    assert ready == []
    try:
        while True:
            b.recv(1 << 20)
    except BlockingIOError:
        pass
    assert poll_until(reactor) == [("wop", "coro")]


def test_reader_and_writer_of_one_descriptor_are_woken_independently(
        reactor: Reactor, sockpair: tuple[socket.socket, socket.socket]) -> None:
    a, b = sockpair
    reactor.add_reader(a.fileno(), a, "rop", "reader")
    reactor.add_writer(a.fileno(), a, "wop", "writer")
    assert poll_until(reactor) == [("wop", "writer")]
    assert set(reactor.readers) == {a.fileno()}
    b.send(b"x")
    assert poll_until(reactor) == [("rop", "reader")]


def test_a_peer_hangup_wakes_the_reader(
    reactor: Reactor, sockpair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = sockpair
    reactor.add_reader(a.fileno(), a, "op", "coro")
    b.shutdown(socket.SHUT_WR)
    assert poll_until(reactor) == [("op", "coro")]
    assert a.recv(10) == b""


def test_remove_reader_and_writer_withdraw_the_waiters(
        reactor: Reactor, sockpair: tuple[socket.socket, socket.socket]) -> None:
    a, b = sockpair
    reactor.add_reader(a.fileno(), a, "rop", "coro")
    reactor.add_writer(b.fileno(), b, "wop", "coro")
    assert reactor.remove_reader(a.fileno()) == ("rop", "coro")
    assert reactor.remove_writer(b.fileno()) == ("wop", "coro")
    assert reactor.remove_reader(a.fileno()) is None
    b.send(b"x")
    ready: list[Any] = []
    reactor.poll(0.01, ready)
    assert ready == []
    assert len(reactor) == 0


def test_forget_returns_the_waiters_and_drops_all_interest(
        reactor: Reactor, sockpair: tuple[socket.socket, socket.socket]) -> None:
    a, b = sockpair
    reactor.add_reader(a.fileno(), a, "rop", "r")
    reactor.add_writer(a.fileno(), a, "wop", "w")
    assert sorted(reactor.forget(a.fileno())) == [("rop", "r"), ("wop", "w")]
    assert reactor.forget(a.fileno()) == []
    b.send(b"x")
    ready: list[Any] = []
    reactor.poll(0.01, ready)
    assert ready == []


@pytest.mark.parametrize("closing", [False, True])
def test_a_descriptor_number_reused_by_a_new_socket_is_watched(reactor: Reactor, closing: bool) -> None:
    a, b = socket.socketpair()
    a.setblocking(False)
    reactor.add_writer(a.fileno(), a, "old", "coro")
    assert poll_until(reactor) == [("old", "coro")]
    reactor.add_reader(a.fileno(), a, "old-read", "coro")
    assert reactor.forget(a.fileno(), closing) == [("old-read", "coro")]
    a.close()
    b.close()
    c, d = socket.socketpair()
    try:
        c.setblocking(False)
        reactor.add_reader(c.fileno(), c, "new", "coro")
        d.send(b"x")
        assert poll_until(reactor) == [("new", "coro")]
    finally:
        c.close()
        d.close()


def test_the_wakeup_fd_ends_a_blocking_poll_and_is_drained(reactor: Reactor) -> None:
    r, w = socket.socketpair()
    r.setblocking(False)
    try:
        reactor.set_wakeup_fd(r.fileno())
        thread = threading.Thread(target=w.send, args=(b"\0" * 3,))
        thread.start()
        ready: list[Any] = []
        t0 = time.monotonic()
        reactor.poll(30, ready)
        thread.join()
        while time.monotonic() - t0 < 10 and _readable(r):  # the byte may land after a spurious return
            reactor.poll(0, ready)
        assert time.monotonic() - t0 < 10
        assert ready == []
        with pytest.raises(BlockingIOError):
            r.recv(10)
    finally:
        r.close()
        w.close()


def _readable(sock: socket.socket) -> bool:
    return bool(select.select([sock], [], [], 0)[0])


def test_an_idle_poll_returns_after_about_its_timeout(reactor: Reactor) -> None:
    ready: list[Any] = []
    t0 = time.monotonic()
    reactor.poll(0.05, ready)
    elapsed = time.monotonic() - t0
    assert ready == []
    assert 0.045 <= elapsed < 0.1


def test_poll_with_zero_timeout_does_not_block(reactor: Reactor) -> None:
    ready: list[Any] = []
    t0 = time.monotonic()
    for _ in range(100):
        reactor.poll(0, ready)
    assert time.monotonic() - t0 < 1.0


def test_resolution_caps_how_long_a_poll_blocks(reactor_name: str) -> None:
    r = reactors.available()[reactor_name](0.01)
    try:
        ready: list[Any] = []
        t0 = time.monotonic()
        r.poll(None, ready)
        assert time.monotonic() - t0 < 5
    finally:
        r.close()


def test_many_ready_descriptors_are_all_reported(reactor: Reactor) -> None:
    pairs = [socket.socketpair() for _ in range(200)]
    try:
        for i, (a, b) in enumerate(pairs):
            a.setblocking(False)
            reactor.add_reader(a.fileno(), a, i, "coro")
            b.send(b"x")
        ready = poll_until(reactor, want=200)
        assert sorted(op for op, _coro in ready) == list(range(200))
    finally:
        for a, b in pairs:
            a.close()
            b.close()


def test_a_waiter_on_a_descriptor_closed_under_it_does_not_break_the_poll(reactor_name: str) -> None:
    r = reactors.available()[reactor_name]()
    a, b = socket.socketpair()
    other_a, other_b = socket.socketpair()
    try:
        other_a.setblocking(False)
        r.add_reader(a.fileno(), a, "closed", "coro")
        r.add_reader(other_a.fileno(), other_a, "live", "coro")
        a.close()
        other_b.send(b"x")
        ready = poll_until(r, want=2 if reactor_name in ("select", "poll") else 1, timeout=0.5)
        assert ("live", "coro") in ready
        if reactor_name in ("select", "poll"):
            assert ("closed", "coro") in ready
    finally:
        r.close()
        b.close()
        other_a.close()
        other_b.close()


# -- choosing a reactor ------------------------------------------------------------------


def test_available_lists_the_backends_best_first() -> None:
    table = reactors.available()
    assert list(table)[-1] == "select"
    assert reactors.DefaultReactor is next(iter(table.values()))
    for name, cls in table.items():
        assert cls.name == name and issubclass(cls, Reactor)
    assert ("epoll" in table) == hasattr(select, "epoll")
    assert ("kqueue" in table) == hasattr(select, "kqueue")
    assert ("poll" in table) == hasattr(select, "poll")


def test_get_reactor_takes_a_name_a_class_an_instance_or_none(reactor_name: str) -> None:
    cls = reactors.available()[reactor_name]
    built = [reactors.get_reactor(reactor_name), reactors.get_reactor(cls.__name__),
             reactors.get_reactor(cls, 0.5), reactors.get_reactor(None)]
    try:
        assert [type(r) for r in built[:3]] == [cls, cls, cls]
        assert built[2].resolution == 0.5
        assert type(built[3]) is reactors.DefaultReactor
        instance = built[0]
        assert reactors.get_reactor(instance) is instance
    finally:
        for r in built:
            r.close()


def test_get_reactor_refuses_other_things() -> None:
    with pytest.raises(TypeError, match="42"):
        reactors.get_reactor(42)
    with pytest.raises(ValueError, match="'iocp'"):
        reactors.get_reactor("iocp")


def test_the_original_backends_that_do_not_exist_here_report_none() -> None:
    assert reactors.has_iocp() is None  # type: ignore[func-returns-value]
    assert reactors.has_qt() is None  # type: ignore[func-returns-value]


def test_an_edge_that_came_while_nobody_waited_is_given_to_the_next_reader(
        reactor_name: str) -> None:
    """Edge-triggered backends must not lose readiness that came between two waits."""
    reactor = reactors.get_reactor(reactor_name)
    a, b = socket.socketpair()
    try:
        a.setblocking(False)
        reactor.add_reader(a.fileno(), a, "first", "coro")
        b.send(b"x")
        assert poll_until(reactor) == [("first", "coro")]
        assert a.recv(10) == b"x"
        b.send(b"y")  # arrives while nobody waits on a
        ready: list[Any] = []
        reactor.poll(0.05, ready)
        assert ready == []
        # the next reader is told at once (True), or parks and is woken by the
        # still-readable descriptor (level-triggered backends)
        if not reactor.add_reader(a.fileno(), a, "second", "coro"):
            assert poll_until(reactor) == [("second", "coro")]
        assert a.recv(10) == b"y"
    finally:
        a.close()
        b.close()
        reactor.close()


def test_a_reader_that_parks_after_taking_the_data_still_sees_the_peers_fin(sched: Any) -> None:
    """Data and the peer's FIN reported together: the next wait for the same descriptor ends at once."""
    import socket as _socket

    from cogen.core.coroutines import coroutine as _coroutine
    from cogen.core.events import Operation as _Operation
    from cogen.core.util import PENDING as _PENDING

    class Readable(_Operation):
        def __init__(self, sock: Any) -> None:
            self.prio = -1
            self.sock = sock
            self.armed = False

        def process(self, sched: Any, coro: Any) -> Any:
            if self.armed:
                return True
            self.armed = True
            sched.wait_readable(self.sock.fileno(), self.sock, self, coro)
            return _PENDING

    a, b = _socket.socketpair()
    a.setblocking(False)
    got: list[bytes] = []

    @_coroutine
    def reader() -> Any:
        yield Readable(a)
        got.append(a.recv(100))  # the data; the FIN is still there
        yield Readable(a)        # parks: must be told at once
        got.append(a.recv(100))

    sched.add(reader)
    sched.run_once(0)            # parked on the first wait
    b.sendall(b"x")
    b.shutdown(_socket.SHUT_WR)  # data and FIN before the next poll
    for _ in range(20):
        if len(got) == 2:
            break
        sched.run_once(0.05)
    a.close()
    b.close()
    assert got == [b"x", b""]
