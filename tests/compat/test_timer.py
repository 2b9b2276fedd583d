"""The original's tests/test_timer.py (Timer_MixIn), ported.

Every priority on every reactor. The original's seconds are scaled by
``SCALE`` and its ``assertAlmostEqual(x, y, 1)`` kept (within 0.05 s); its
fixed ports and ``time.sleep`` hand-offs between the test and the scheduler
thread are port 0 and ``threading.Event``.
"""
from __future__ import annotations

import socket
import threading
import time
import traceback
from typing import Any

from cogen.common import coroutine, events, sockets

from .conftest import SCALE, about


def test_sock_connect_timeout(compat_sched: Any, prio: int, run_thread: Any) -> None:
    m = compat_sched(proactor_resolution=0.05)
    local_sock = socket.socket()
    local_sock.bind(("127.0.0.1", 0))
    local_sock.listen(10)
    local_addr = local_sock.getsockname()
    ev = threading.Event()
    msgs: list[float] = []
    failures: list[str] = []
    second_addr: list[Any] = []
    opened: list[Any] = []  # closed at the end (the original left them open)

    @coroutine
    def sleeper(secs):
        now = time.time()
        yield events.Sleep(secs)
        msgs.append(time.time() - now)

    @coroutine
    def coro():
        try:
            now = time.time()
            yield events.Sleep(1 * SCALE)
            msgs.append(time.time() - now)
            cli = sockets.Socket()
            opened.append(cli)
            yield sockets.Connect(cli, local_addr, prio=prio, timeout=5)
            cli.settimeout(2 * SCALE)
            fh = cli.makefile()
            try:
                now = time.time()
                yield fh.read(4096, prio=prio)
            except events.OperationTimeout:
                msgs.append(time.time() - now)

            srv = sockets.Socket()
            opened.append(srv)
            srv.bind(("127.0.0.1", 0))
            srv.listen(10)
            second_addr.append(srv.getsockname())

            ev.set()
            opened.append((yield sockets.Accept(srv, prio=prio, timeout=5))[0])
            try:
                now = time.time()
                yield sockets.Accept(srv, timeout=3 * SCALE, prio=prio)
            except events.OperationTimeout:
                msgs.append(time.time() - now)
            yield events.AddCoro(sleeper, args=(5 * SCALE,))
            try:
                now = time.time()
                yield events.WaitForSignal("bla", timeout=4 * SCALE, prio=prio)
            except events.OperationTimeout:
                msgs.append(time.time() - now)
        except BaseException:
            failures.append(traceback.format_exc())
            ev.set()

    m.add(coro)
    thread = run_thread(m)
    conn, _ = local_sock.accept()
    local_sock.close()
    assert ev.wait(10)
    assert not failures, failures[0]
    local_sock = socket.socket()
    local_sock.settimeout(1)
    local_sock.connect(second_addr[0])
    local_sock.getpeername()
    thread.join_checked()
    local_sock.close()
    conn.close()
    for s in opened:
        s.close()
    assert not failures, failures[0]
    assert len(m.proactor) == 0
    assert len(m.active) == 0
    assert len(msgs) == 5, msgs
    assert about(msgs[0], 1 * SCALE), msgs
    assert about(msgs[1], 2 * SCALE), msgs
    assert about(msgs[2], 3 * SCALE), msgs
    assert about(msgs[3], 4 * SCALE), msgs
    assert about(msgs[4], 5 * SCALE), msgs


def test_sleep(compat_sched: Any, prio: int, run_thread: Any) -> None:
    m = compat_sched(proactor_resolution=0.05)
    result: dict[str, Any] = {"timo": False}

    @coroutine
    def sleepo():
        yield events.Sleep(2 * SCALE)

    @coroutine
    def timeouto():
        ts = time.time()
        s = sockets.Socket()
        s.bind(("127.0.0.1", 0))
        s.listen(10)
        s.settimeout(0.1)
        try:
            yield s.accept()
        except events.OperationTimeout:
            result["timo"] = True
        result["delta"] = time.time() - ts
        s.close()

    m.add(sleepo)
    m.add(timeouto)
    run_thread(m).join_checked()
    assert result["timo"]
    assert result["delta"] < 0.2
