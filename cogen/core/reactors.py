"""Reactors: wait for file descriptors with select, poll, epoll or kqueue.

Theory of operation
-------------------
A reactor keeps at most one waiting ``(operation, coroutine)`` pair per
direction (read, write) per descriptor. ``poll(timeout, ready)`` blocks in the
OS until a descriptor is ready, the timeout passes, or the scheduler's wake-up
descriptor is written to, and appends the pairs whose descriptor became ready
to ``ready`` (removing them from the reactor). The scheduler then calls each
operation's ``process`` again, which retries its non-blocking system call.

Operations always try their system call first and park only when it would
block. That is what lets the epoll reactor use edge-triggered mode and
register each descriptor once for both directions: an edge can only be
missed if data arrived before the ``EAGAIN`` that made us park, and then the
edge is already queued in the kernel. So the per-wait cost on epoll is a dict
store, and a descriptor costs one ``epoll_ctl`` in its whole life.

Descriptors are re-used by the OS after ``close``; the ``owner`` object given
with each wait (the socket wrapper) tells a reused number from the old one,
and ``forget(fd)`` drops what the reactor knew about a closing descriptor.
"""
from __future__ import annotations

import errno
import os
import select
from typing import Any

__all__ = [
    "DefaultReactor",
    "EpollReactor",
    "KQueueReactor",
    "PollReactor",
    "Reactor",
    "SelectReactor",
    "available",
    "get_reactor",
    "has_epoll",
    "has_iocp",
    "has_kqueue",
    "has_poll",
    "has_qt",
    "has_select",
]

_MISSING = object()
Waiter = tuple[Any, Any]


class Reactor:
    """The interface every backend implements."""

    name = "base"

    def __init__(self, resolution: float | None = None) -> None:
        self.readers: dict[int, Waiter] = {}
        self.writers: dict[int, Waiter] = {}
        self.resolution = resolution
        self._wakeup_fd = -1

    def __len__(self) -> int:
        """The number of operations waiting for a descriptor."""
        return len(self.readers) + len(self.writers)

    def __bool__(self) -> bool:
        return bool(self.readers or self.writers)

    def set_wakeup_fd(self, fd: int) -> None:
        """Always watch ``fd`` for reading; when it is readable, drain it."""
        self._wakeup_fd = fd

    def add_reader(self, fd: int, owner: Any, op: Any, coro: Any) -> bool | None:
        """Park ``(op, coro)`` until ``fd`` is readable.

        Returns True instead of parking when ``fd`` is already known to be
        readable (the caller retries at once), else a false value.
        """
        raise NotImplementedError

    def add_writer(self, fd: int, owner: Any, op: Any, coro: Any) -> None:
        """Park ``(op, coro)`` until ``fd`` is writable."""
        raise NotImplementedError

    def remove_reader(self, fd: int) -> Waiter | None:
        """Withdraw the read waiter of ``fd``; returns it, or None."""
        raise NotImplementedError

    def remove_writer(self, fd: int) -> Waiter | None:
        """Withdraw the write waiter of ``fd``; returns it, or None."""
        raise NotImplementedError

    def forget(self, fd: int, closing: bool = False) -> list[Waiter]:
        """Drop all interest in ``fd``; returns its waiters.

        ``closing`` promises that the caller closes ``fd`` right after and
        holds no duplicate of it, so a backend whose kernel drops closed
        descriptors by itself (epoll) can skip the system call.
        """
        out = []
        w = self.remove_reader(fd)
        if w is not None:
            out.append(w)
        w = self.remove_writer(fd)
        if w is not None:
            out.append(w)
        return out

    def poll(self, timeout: float | None, ready: list[Waiter]) -> None:
        """Wait up to ``timeout`` seconds (None: forever); append ready waiters."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the OS resources of the reactor."""

    def _drain_wakeup(self) -> None:
        try:
            while os.read(self._wakeup_fd, 4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass

    def __repr__(self) -> str:
        return f"<{type(self).__name__} readers={len(self.readers)} writers={len(self.writers)}>"


def _ms_timeout(timeout: float | None, resolution: float | None) -> float | None:
    if resolution is not None and (timeout is None or timeout > resolution):
        timeout = resolution
    if timeout is not None and timeout < 0:
        timeout = 0
    return timeout


class SelectReactor(Reactor):
    """``select.select``: everywhere, limited to FD_SETSIZE descriptors."""

    name = "select"

    def add_reader(self, fd: int, owner: Any, op: Any, coro: Any) -> None:
        self.readers[fd] = (op, coro)

    def add_writer(self, fd: int, owner: Any, op: Any, coro: Any) -> None:
        self.writers[fd] = (op, coro)

    def remove_reader(self, fd: int) -> Waiter | None:
        return self.readers.pop(fd, None)

    def remove_writer(self, fd: int) -> Waiter | None:
        return self.writers.pop(fd, None)

    def poll(self, timeout: float | None, ready: list[Waiter]) -> None:
        timeout = _ms_timeout(timeout, self.resolution)
        rlist = list(self.readers)
        if self._wakeup_fd >= 0:
            rlist.append(self._wakeup_fd)
        wlist = list(self.writers)
        try:
            r, w, x = select.select(rlist, wlist, wlist, timeout)
        except InterruptedError:
            return
        except (OSError, ValueError):
            # a descriptor was closed under us: find it and wake its waiter so
            # its system call reports the error
            self._wake_bad(ready)
            return
        for fd in r:
            if fd == self._wakeup_fd:
                self._drain_wakeup()
                continue
            waiter = self.readers.pop(fd, None)
            if waiter is not None:
                ready.append(waiter)
        for fd in set(w).union(x):
            waiter = self.writers.pop(fd, None)
            if waiter is not None:
                ready.append(waiter)

    def _wake_bad(self, ready: list[Waiter]) -> None:
        for table in (self.readers, self.writers):
            for fd in list(table):
                try:
                    os.fstat(fd)
                except OSError:
                    ready.append(table.pop(fd))


class PollReactor(Reactor):
    """``select.poll``: level-triggered, interest changed on every wait."""

    name = "poll"

    def __init__(self, resolution: float | None = None) -> None:
        super().__init__(resolution)
        self._poll = select.poll()
        self._masks: dict[int, int] = {}

    def set_wakeup_fd(self, fd: int) -> None:
        super().set_wakeup_fd(fd)
        self._poll.register(fd, select.POLLIN)

    def _update(self, fd: int) -> None:
        mask = (select.POLLIN if fd in self.readers else 0) | (select.POLLOUT if fd in self.writers else 0)
        old = self._masks.get(fd, 0)
        if mask == old:
            return
        if mask:
            self._poll.register(fd, mask)
            self._masks[fd] = mask
        else:
            del self._masks[fd]
            try:
                self._poll.unregister(fd)
            except (KeyError, OSError):
                pass

    def add_reader(self, fd: int, owner: Any, op: Any, coro: Any) -> None:
        self.readers[fd] = (op, coro)
        self._update(fd)

    def add_writer(self, fd: int, owner: Any, op: Any, coro: Any) -> None:
        self.writers[fd] = (op, coro)
        self._update(fd)

    def remove_reader(self, fd: int) -> Waiter | None:
        w = self.readers.pop(fd, None)
        if w is not None:
            self._update(fd)
        return w

    def remove_writer(self, fd: int) -> Waiter | None:
        w = self.writers.pop(fd, None)
        if w is not None:
            self._update(fd)
        return w

    def poll(self, timeout: float | None, ready: list[Waiter]) -> None:
        timeout = _ms_timeout(timeout, self.resolution)
        try:
            events = self._poll.poll(None if timeout is None else timeout * 1000.0)
        except InterruptedError:
            return
        rbits = select.POLLIN | select.POLLPRI | select.POLLHUP | select.POLLERR | select.POLLNVAL
        wbits = select.POLLOUT | select.POLLHUP | select.POLLERR | select.POLLNVAL
        for fd, ev in events:
            if fd == self._wakeup_fd:
                self._drain_wakeup()
                continue
            if ev & rbits:
                waiter = self.readers.pop(fd, None)
                if waiter is not None:
                    ready.append(waiter)
            if ev & wbits:
                waiter = self.writers.pop(fd, None)
                if waiter is not None:
                    ready.append(waiter)
            self._update(fd)

    def close(self) -> None:
        self._masks.clear()


#: epoll's event bits for readable, writable and hung up (or failed).
_EPOLL_BITS = ((select.EPOLLIN | select.EPOLLRDHUP | select.EPOLLHUP | select.EPOLLERR | select.EPOLLPRI,
                select.EPOLLOUT | select.EPOLLHUP | select.EPOLLERR,
                select.EPOLLRDHUP | select.EPOLLHUP | select.EPOLLERR)
               if hasattr(select, "epoll") else (0, 0, 0))


class EpollReactor(Reactor):
    """Linux epoll, edge-triggered, one registration per descriptor."""

    name = "epoll"

    def __init__(self, resolution: float | None = None) -> None:
        super().__init__(resolution)
        self._ep = select.epoll()
        self._owners: dict[int, Any] = {}
        # Read edges that came while nobody waited to read the descriptor:
        # the next reader is told at once instead of parking (an edge is
        # reported only once). A stale entry (the data was read since) only
        # costs that reader one retry that would block, and then it parks.
        self._unclaimed: set[int] = set()
        self._mask = select.EPOLLIN | select.EPOLLOUT | select.EPOLLRDHUP | select.EPOLLET
        self._maxevents = 1024

    def set_wakeup_fd(self, fd: int) -> None:
        super().set_wakeup_fd(fd)
        self._ep.register(fd, select.EPOLLIN)

    def _register(self, fd: int, owner: Any) -> None:
        try:
            self._ep.register(fd, self._mask)
        except FileExistsError:
            self._ep.modify(fd, self._mask)
        self._owners[fd] = owner

    def add_reader(self, fd: int, owner: Any, op: Any, coro: Any) -> bool | None:
        if self._owners.get(fd, _MISSING) is not owner:
            self._unclaimed.discard(fd)  # an edge of the descriptor's former owner
            self._register(fd, owner)
        elif fd in self._unclaimed:
            self._unclaimed.discard(fd)
            return True
        self.readers[fd] = (op, coro)
        return None

    def add_writer(self, fd: int, owner: Any, op: Any, coro: Any) -> None:
        self.writers[fd] = (op, coro)
        if self._owners.get(fd, _MISSING) is not owner:
            self._register(fd, owner)

    def remove_reader(self, fd: int) -> Waiter | None:
        return self.readers.pop(fd, None)

    def remove_writer(self, fd: int) -> Waiter | None:
        return self.writers.pop(fd, None)

    def forget(self, fd: int, closing: bool = False) -> list[Waiter]:
        out = super().forget(fd)
        self._unclaimed.discard(fd)
        if self._owners.pop(fd, _MISSING) is not _MISSING and not closing:
            try:
                self._ep.unregister(fd)
            except (OSError, ValueError):  # ValueError: the reactor was closed first
                pass
        return out

    def poll(self, timeout: float | None, ready: list[Waiter]) -> None:
        timeout = _ms_timeout(timeout, self.resolution)
        try:
            events = self._ep.poll(-1 if timeout is None else timeout, self._maxevents)
        except InterruptedError:
            return
        readers = self.readers
        writers = self.writers
        unclaimed = self._unclaimed
        rbits, wbits, hupbits = _EPOLL_BITS  # (one load: poll runs once per loop iteration)
        for fd, ev in events:
            if ev & rbits:
                waiter = readers.pop(fd, None)
                if waiter is not None:
                    ready.append(waiter)
                    if ev & hupbits:
                        # The peer's FIN (or an error) came with this edge and
                        # stays: a reader that parks after taking the data would
                        # get no other edge, so the next one is told at once.
                        unclaimed.add(fd)
                elif fd == self._wakeup_fd:
                    self._drain_wakeup()
                else:
                    unclaimed.add(fd)
            if ev & wbits:
                waiter = writers.pop(fd, None)
                if waiter is not None:
                    ready.append(waiter)
        if len(events) == self._maxevents and self._maxevents < 65536:
            self._maxevents *= 2

    def close(self) -> None:
        self._ep.close()


class KQueueReactor(Reactor):
    """BSD/macOS kqueue with one-shot filters."""

    name = "kqueue"

    def __init__(self, resolution: float | None = None) -> None:
        super().__init__(resolution)
        self._kq = select.kqueue()  # type: ignore[attr-defined]

    def set_wakeup_fd(self, fd: int) -> None:
        super().set_wakeup_fd(fd)
        self._control(fd, select.KQ_FILTER_READ, select.KQ_EV_ADD)  # type: ignore[attr-defined]

    def _control(self, fd: int, filt: int, flags: int) -> None:
        ev = select.kevent(fd, filt, flags)  # type: ignore[attr-defined]
        try:
            self._kq.control([ev], 0, 0)
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.EBADF):
                raise

    def add_reader(self, fd: int, owner: Any, op: Any, coro: Any) -> None:
        self.readers[fd] = (op, coro)
        self._control(fd, select.KQ_FILTER_READ, select.KQ_EV_ADD | select.KQ_EV_ONESHOT)  # type: ignore[attr-defined]

    def add_writer(self, fd: int, owner: Any, op: Any, coro: Any) -> None:
        self.writers[fd] = (op, coro)
        self._control(fd, select.KQ_FILTER_WRITE, select.KQ_EV_ADD | select.KQ_EV_ONESHOT)  # type: ignore[attr-defined]

    def remove_reader(self, fd: int) -> Waiter | None:
        w = self.readers.pop(fd, None)
        if w is not None:
            self._control(fd, select.KQ_FILTER_READ, select.KQ_EV_DELETE)  # type: ignore[attr-defined]
        return w

    def remove_writer(self, fd: int) -> Waiter | None:
        w = self.writers.pop(fd, None)
        if w is not None:
            self._control(fd, select.KQ_FILTER_WRITE, select.KQ_EV_DELETE)  # type: ignore[attr-defined]
        return w

    def poll(self, timeout: float | None, ready: list[Waiter]) -> None:
        timeout = _ms_timeout(timeout, self.resolution)
        try:
            events = self._kq.control(None, max(64, len(self) + 1), timeout)
        except InterruptedError:
            return
        for kev in events:
            fd = kev.ident
            if fd == self._wakeup_fd:
                self._drain_wakeup()
                continue
            table = self.readers if kev.filter == select.KQ_FILTER_READ else self.writers  # type: ignore[attr-defined]
            waiter = table.pop(fd, None)
            if waiter is not None:
                ready.append(waiter)

    def close(self) -> None:
        self._kq.close()


def has_select() -> type[Reactor] | None:
    """The select reactor class (select exists everywhere)."""
    return SelectReactor if hasattr(select, "select") else None


def has_poll() -> type[Reactor] | None:
    """The poll reactor class, or None where the OS has no poll."""
    return PollReactor if hasattr(select, "poll") else None


def has_epoll() -> type[Reactor] | None:
    """The epoll reactor class, or None off Linux."""
    return EpollReactor if hasattr(select, "epoll") else None


def has_kqueue() -> type[Reactor] | None:
    """The kqueue reactor class, or None where the OS has no kqueue."""
    return KQueueReactor if hasattr(select, "kqueue") else None


def has_iocp() -> None:
    """The original's Windows IOCP backend does not exist here; always None."""
    return


def has_qt() -> None:
    """The original's Qt backend does not exist here; always None."""
    return


def available() -> dict[str, type[Reactor]]:
    """The reactors this platform has, best first, by name."""
    out: dict[str, type[Reactor]] = {}
    for probe in (has_epoll, has_kqueue, has_poll, has_select):
        cls = probe()
        if cls is not None:
            out[cls.name] = cls
    return out


DefaultReactor: type[Reactor] = next(iter(available().values()))


def get_reactor(spec: Any = None, resolution: float | None = None) -> Reactor:
    """Build a reactor from a name ('epoll'), a class, an instance or None (the best)."""
    if spec is None:
        return DefaultReactor(resolution)
    if isinstance(spec, Reactor):
        return spec
    if isinstance(spec, str):
        table = available()
        cls = table.get(spec.lower().replace("reactor", "").replace("proactor", ""))
        if cls is None:
            raise ValueError(f"unknown or unavailable reactor {spec!r}; this platform has: "
                             f"{', '.join(table)}")
        return cls(resolution)
    if isinstance(spec, type) and issubclass(spec, Reactor):
        return spec(resolution)
    raise TypeError(f"reactor must be a name, a Reactor class or instance, not {spec!r}")
