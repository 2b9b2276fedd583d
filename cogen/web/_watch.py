"""Watching a connection while its request waits on an application's operation.

Theory of operation
-------------------
While the app waits on a cogen operation (a long poll on ``WaitForSignal``,
a ``Sleep``), the connection's coroutine is parked on that operation, not on
its socket, so a client that goes away would go unnoticed until the wait
ends: its descriptor and coroutine held, and a later ``Signal`` counting it
as woken (issue 18 item 6). :func:`start_watch` adds a small coroutine that
waits for the socket to become readable meanwhile:

- EOF or an error: the client is gone. The connection's coroutine is
  withdrawn from the operation (:meth:`Scheduler.cancel
  <cogen.core.schedulers.Scheduler.cancel>`) and gets
  :class:`~cogen.core.io.ClientDisconnected`; the response code then closes
  the app iterable and the connection.
- data (a pipelined request): appended to the connection's buffer, where the
  request loop finds it next; past a bound the watch ends (the client is
  alive, and the buffer must stay bounded).

:func:`stop_watch` ends the watch when the operation is over. The watch
begins only once the operation has lasted :data:`WATCH_DELAY`, so a short
one costs a timer, not a watch. Not used while
the app streams the request body: those reads are the app's own.
"""
from __future__ import annotations

import ssl
from collections.abc import Generator
from typing import Any

from cogen.core import coroutines as _coroutines
from cogen.core.coroutines import Coroutine
from cogen.core.io import WOULD_BLOCK, ClientDisconnected, WaitIO
from cogen.errors import CogenError

__all__ = ["ServerClosing", "start_watch", "stop_watch"]


class ServerClosing(CogenError):
    """Thrown into a connection's coroutine when the server shuts down and closes it.

    (Defined here, the lowest module whose coroutines it is thrown into.)
    """

#: The most bytes of pipelined requests buffered while the app waits.
WATCH_BUFFER = 1 << 16


class _StopWatching(CogenError):
    """Thrown into a watcher whose operation is over."""


#: Seconds an operation may take before its connection is watched: most
#: complete sooner (a Sleep(0), a sub-call, a quick query), and for those a
#: timer that is cancelled costs far less than a watch (a coroutine, a recv,
#: two epoll_ctl calls). A client that leaves is noticed this much later.
WATCH_DELAY = 0.05


def start_watch(sched: Any, conn: Any) -> None:
    """Watch ``conn`` for a disconnect while its coroutine waits on ``conn.op``.

    The watch begins after :data:`WATCH_DELAY`, if the operation still runs.
    """
    conn.watcher = sched.call_later(WATCH_DELAY, _begin_watch, sched, conn)


def _begin_watch(sched: Any, conn: Any) -> None:
    """The operation still runs: start the watching coroutine."""
    conn.watcher = sched.add(_watch, sched, conn)


def stop_watch(sched: Any, conn: Any) -> None:
    """End the watch of ``conn`` (the operation is over), if one runs."""
    watcher = conn.watcher
    if watcher is None:
        return
    conn.watcher = None
    if isinstance(watcher, list):  # not begun yet: its timer
        sched.cancel_call(watcher)
        return
    # The watcher may have consumed a read edge of the socket: the request
    # loop must try a recv before it parks on the socket again.
    conn.drained = False
    if watcher.state != Coroutine.STATE_NEED_INIT:
        sched.cancel(watcher, _StopWatching())


def _watch(sched: Any, conn: Any) -> Generator[Any, Any, None]:
    me = _coroutines.current
    sock = conn.sock
    waiter = WaitIO(conn.fd, sock)
    try:
        while conn.watcher is me:
            try:
                data = sock.recv(WATCH_BUFFER)
            except WOULD_BLOCK:
                yield waiter.wait(False, None)
                continue
            except ssl.SSLWantWriteError:
                return  # a TLS renegotiation: leave it to the request loop
            except OSError as exc:
                _gone(sched, conn, f"the client's connection failed while the app waited: {exc}")
                return
            if not data:
                _gone(sched, conn, "the client closed the connection while the app waited")
                return
            conn.buf = conn.buf + data if conn.buf else data
            if len(conn.buf) >= WATCH_BUFFER:
                conn.watcher = None
                return
    except (_StopWatching, ServerClosing):
        # (ServerClosing: the grace period ended; _force_close withdraws the
        # connection's coroutine itself)
        return


def _gone(sched: Any, conn: Any, reason: str) -> None:
    conn.watcher = None
    op, conn.op = conn.op, None
    if op is not None and conn.coro is not None:
        sched.cancel(conn.coro, ClientDisconnected(reason), op)
