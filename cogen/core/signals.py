"""Deliver POSIX signals to a scheduler, and watch a pipe for its writer's death.

Theory of operation
-------------------
A Python signal handler runs in the main thread between two bytecodes of
whatever the thread was doing, possibly inside the scheduler while it holds
its callback lock; taking that lock again from the handler would deadlock.
So the handlers installed here do nothing at all: ``signal.set_wakeup_fd``
makes the interpreter's C-level handler write the signal number to a socket
pair, and a coroutine parked on the read end (an ordinary reactor wait)
reads the numbers and runs the callbacks as normal loop code. No polling,
no locks in the handler.

:class:`ParentWatch` uses the same reactor wait on the read end of a pipe
whose only writer is the parent process: when the parent dies, the kernel
closes the write end and the read end reports EOF.
"""
from __future__ import annotations

import os
import signal
import socket
from collections.abc import Callable, Generator, Mapping
from typing import Any

from cogen.core.io import WaitIO
from cogen.core.schedulers import Scheduler
from cogen.errors import CogenError

__all__ = ["ParentWatch", "SignalPipe"]


class _Closed(CogenError):
    """Thrown into a watcher coroutine to end it."""


def _ignore(signum: int, frame: Any) -> None:
    """The Python-level handler: the wake-up fd does the real work."""


class _FdWatcher:
    """A coroutine that reads a non-blocking descriptor until it is closed.

    Subclasses give ``_read()`` (one non-blocking read: bytes, ``b""`` at
    EOF), ``_got(data)`` (what to do with them; True ends the watch) and
    ``_release()`` (what :meth:`close` frees besides the reactor's entry).
    """

    def __init__(self, sched: Scheduler, fd: int, owner: Any) -> None:
        self.sched = sched
        self._fd = fd
        self._closed = False
        self._waiter = WaitIO(fd, owner)
        sched.add(self._watch)

    def _read(self) -> bytes:
        raise NotImplementedError

    def _got(self, data: bytes) -> bool:
        raise NotImplementedError

    def _release(self) -> None:
        raise NotImplementedError

    def _watch(self) -> Generator[Any, Any, None]:
        try:
            while not self._closed:
                try:
                    data = self._read()
                except (BlockingIOError, InterruptedError):
                    yield self._waiter.wait(False, None)
                    continue
                if self._got(data):
                    return
        except _Closed:
            pass

    def close(self) -> None:
        """Stop watching and free what the watcher holds (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self.sched.forget_fd(self._fd, _Closed())
        self._release()


class SignalPipe(_FdWatcher):
    """Run ``handlers[signum](signum)`` from the scheduler's loop when a signal arrives.

    Args:
        sched: the scheduler the callbacks run on.
        handlers: signal number to callback. Each callback runs as loop code
            (it may call ``server.shutdown`` directly).

    Must be created in the main thread. :meth:`close` restores the previous
    handlers and wake-up fd and ends the watcher coroutine, so the scheduler
    can run out of work; it is safe to call from a callback.
    """

    def __init__(self, sched: Scheduler, handlers: Mapping[int, Callable[[int], Any]]) -> None:
        self.handlers = dict(handlers)
        self._r, self._w = socket.socketpair()
        self._r.setblocking(False)
        self._w.setblocking(False)
        self._old_fd = signal.set_wakeup_fd(self._w.fileno(), warn_on_full_buffer=False)
        self._old = {sig: signal.signal(sig, _ignore) for sig in self.handlers}
        super().__init__(sched, self._r.fileno(), self._r)

    def _read(self) -> bytes:
        return self._r.recv(64)

    def _got(self, data: bytes) -> bool:
        for signum in data:
            handler = self.handlers.get(signum)
            if handler is not None and not self._closed:
                handler(signum)
        return False

    def _release(self) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)
        signal.set_wakeup_fd(self._old_fd)
        self._r.close()
        self._w.close()


class ParentWatch(_FdWatcher):
    """Call ``on_exit()`` from the loop when the process holding a pipe's write end dies.

    Args:
        sched: the scheduler.
        fd: the read end of a pipe whose write end only the parent holds.
        on_exit: called once, as loop code, when the read end reports EOF.

    :meth:`close` stops watching (and closes ``fd``).
    """

    def __init__(self, sched: Scheduler, fd: int, on_exit: Callable[[], Any]) -> None:
        self.fd = fd
        self.on_exit = on_exit
        os.set_blocking(fd, False)
        super().__init__(sched, fd, self)

    def _read(self) -> bytes:
        return os.read(self.fd, 64)

    def _got(self, data: bytes) -> bool:
        if data:
            return False
        self.close()
        self.on_exit()
        return True

    def _release(self) -> None:
        os.close(self.fd)
