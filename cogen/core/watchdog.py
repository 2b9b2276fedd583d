"""A blocked-loop watchdog: warn when one coroutine step holds the scheduler too long.

Theory of operation
-------------------
A coroutine that calls ``time.sleep``, a blocking database driver or a long
CPU loop freezes every other coroutine of its scheduler, silently. As
gevent's monitor thread does, :class:`Watchdog` watches from a thread of its
own, so the loop pays nothing per step: the scheduler only bumps
``Scheduler.iterations`` once per loop iteration, and sets
``cogen.core.coroutines.current`` to the coroutine it steps (which it does
anyway, for ``local``), back to None before it polls.

Every ``threshold / 4`` seconds the thread reads both. The loop is stuck in
one step when the same coroutine is current in the same iteration at two
samples ``threshold`` apart; idle in its poll, ``current`` is None. Then it
reads the loop thread's stack (``sys._current_frames``), asks the
describers who the coroutine works for (the web server answers with the
request's method, path and peer) and logs one warning with both, at most
once per *subject* (per request), and counts the event in :attr:`events`.
The warning comes while the loop is still blocked: the stack shows where.

The same samples tell whether the loop is healthy: :attr:`on_healthy`, if
set, is called from the thread at every sample that does not find the loop
stuck, and :attr:`on_blocked` once per stall with the description (the
prefork workers update their heartbeat file there, see
:mod:`cogen.web.workers`). Without a threshold, a stall is one that spans
two samples.

Detection is as precise as the sampling: a step is reported when it lasted
between ``threshold`` and ``1.25 * threshold``; shorter ones never are.
"""
from __future__ import annotations

import collections
import logging
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from cogen.core import coroutines as _coroutines
from cogen.core.schedulers import Scheduler

__all__ = ["Describer", "Watchdog"]

log = logging.getLogger("cogen.core.watchdog")

#: ``describer(coro)``: None if the coroutine is not its business, else
#: ``(subject, text)``: the subject (a request) is warned about once, the
#: text names it in the warning.
Describer = Callable[[Any], "tuple[object, str] | None"]

_REMEMBERED = 256  # subjects remembered as already reported (bounded)
_STACK_FRAMES = 30


class Watchdog:
    """Warn (once per request) when a coroutine step blocks ``sched``'s loop over ``threshold``.

    Args:
        sched: the scheduler to watch; its loop must run in one thread (the
            one that calls :meth:`Scheduler.run`).
        threshold: seconds a single step may take; 0 or None disables the
            warnings (the thread still runs if ``on_healthy`` is set).
        on_healthy: called from the watchdog thread at each sample that
            finds the loop not stuck (with the sampling period, below), or None.
        on_blocked: called from the watchdog thread once per stall with
            the description of what blocks (``'the request GET / from ...'``).
        interval: the sampling period; ``threshold / 4`` by default (at
            least 5 ms), and 1 s when only ``on_healthy`` needs samples.

    Attributes:
        events: how many blocked steps were detected (each counts, even
            when its request was already warned about).
        describers: callables mapping the blocked coroutine to what it works
            for (see :data:`Describer`); the first that answers is used.

    :meth:`start` starts the thread, :meth:`stop` ends it (both idempotent).
    """

    def __init__(self, sched: Scheduler, threshold: float | None,
                 on_healthy: Callable[[], Any] | None = None,
                 interval: float | None = None,
                 on_blocked: Callable[[str], Any] | None = None) -> None:
        self.sched = sched
        self.threshold = threshold or 0.0
        self.on_healthy = on_healthy
        self.on_blocked = on_blocked
        if interval is None:
            interval = max(self.threshold / 4, 0.005) if self.threshold else 1.0
        self.interval = interval
        self.events = 0
        self.describers: list[Describer] = []
        self._reported: collections.OrderedDict[int, object] = collections.OrderedDict()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop_thread = threading.get_ident()

    def start(self) -> None:
        """Start watching (from the thread that will run the loop, or set it later)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._watch, name="cogen-watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop watching and wait for the thread to end."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop.set()
        if thread is not threading.current_thread():
            thread.join()

    def _watch(self) -> None:
        sched = self.sched
        module_vars = _coroutines.__dict__
        last_iteration = -1
        last_coro: Any = None
        since = 0.0
        is_reported = False
        # without a threshold (only on_blocked wants stalls): one spanning two samples
        threshold = self.threshold or self.interval
        while not self._stop.wait(self.interval):
            coro = module_vars["current"]
            iteration = sched.iterations
            now = time.monotonic()
            if coro is None or coro is not last_coro or iteration != last_iteration:
                last_iteration, last_coro, since, is_reported = iteration, coro, now, False
                self._healthy()
                continue
            if not is_reported and now - since >= threshold:
                is_reported = True
                try:
                    self._stalled(coro, now - since)
                except Exception:  # a describer or a callback failed: keep watching
                    log.exception("the watchdog could not report a blocked loop")

    def _healthy(self) -> None:
        if self.on_healthy is not None:
            try:
                self.on_healthy()
            except Exception:
                log.exception("the watchdog's on_healthy callback failed")

    def _stalled(self, coro: Any, held: float) -> None:
        subject: object = coro
        text = repr(coro)
        for describe in self.describers:
            answer = describe(coro)
            if answer is not None:
                subject, text = answer
                break
        if self.on_blocked is not None:
            self.on_blocked(text)
        if not self.threshold:
            return
        self.events += 1
        if id(subject) in self._reported:
            return
        self._reported[id(subject)] = subject  # held, so that its id is not reused
        if len(self._reported) > _REMEMBERED:
            self._reported.popitem(last=False)
        thread_id = self.sched.thread_id or self._loop_thread
        frame = sys._current_frames().get(thread_id)
        stack = "".join(traceback.format_stack(frame, _STACK_FRAMES)) if frame else "(no stack)\n"
        log.warning("blocked loop: %s has held the event loop for over %.2f s (threshold %.2f s); "
                    "blocking calls belong in a thread (--threads, cogen.core.threads). "
                    "Stack (most recent call last):\n%s",
                    text, held, self.threshold, stack.rstrip("\n"))
