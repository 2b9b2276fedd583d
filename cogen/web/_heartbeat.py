"""Worker heartbeats: how the prefork master knows a worker's loop is alive.

Theory of operation
-------------------
The master makes a private directory; each worker writes ``<pid>.json``
there from its watchdog thread (:class:`cogen.core.watchdog.Watchdog`),
never from the loop, so the loop pays nothing. The watchdog calls
:meth:`Heartbeat.beat` at each sample that finds the loop not stuck in a
step (written at most every ``every`` seconds), and :meth:`Heartbeat.blocked`
once when it finds it stuck, with the request it serves. A stuck loop stops
the beats, whatever blocks it: a CPU loop, a blocking call, a C extension
holding the GIL (then the thread cannot run either).

The file holds ``beat`` (``time.monotonic()``: one clock for every process
of the machine on Linux and the BSDs), ``blocked`` (the description, or
None), ``retiring`` (the worker reached ``--max-requests`` and is stopping)
and ``figures`` (:meth:`cogen.web.health.ProcessHealth.figures`, which the
stats route of any worker gathers for all of them). Each write replaces the
file atomically (a temporary file renamed over it), so a reader never sees
half of one.
"""
from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["Heartbeat", "read_heartbeats"]


class Heartbeat:
    """A worker's heartbeat file ``<directory>/<pid>.json``.

    Args:
        directory: the master's heartbeat directory.
        figures: returns this worker's figures (called from the watchdog thread).
        every: write a healthy beat at most this often (seconds).
    """

    def __init__(self, directory: str, figures: Callable[[], dict[str, Any]],
                 every: float) -> None:
        self.path = os.path.join(directory, f"{os.getpid()}.json")
        self.figures = figures
        self.every = every
        self.is_retiring = False
        self._last = 0.0
        self._lock = threading.Lock()

    def beat(self) -> None:
        """The loop is healthy: write a beat if ``every`` seconds passed since the last."""
        now = time.monotonic()
        if now - self._last >= self.every:
            self._last = now
            self._write(now, None)

    def blocked(self, text: str) -> None:
        """The loop is stuck serving ``text``: say so, without a new beat."""
        self._write(self._last, text)

    def retire(self) -> None:
        """The worker is stopping on its own (``--max-requests``): say so now."""
        self.is_retiring = True
        self._write(time.monotonic(), None)

    def _write(self, beat: float, blocked: str | None) -> None:
        record = {"pid": os.getpid(), "beat": beat, "blocked": blocked,
                  "retiring": self.is_retiring, "figures": self.figures()}
        with self._lock:
            tmp = self.path + ".tmp"
            try:
                with open(tmp, "w") as file:
                    json.dump(record, file)
                os.replace(tmp, self.path)
            except OSError:
                pass  # the master removed the directory: it is stopping

    def remove(self) -> None:
        """Delete the file (the worker is exiting)."""
        for path in (self.path, self.path + ".tmp"):
            try:
                os.unlink(path)
            except OSError:
                pass


def read_heartbeats(directory: str) -> dict[int, dict[str, Any]]:
    """Every worker's last record in ``directory``, by pid (unreadable files skipped)."""
    records: dict[int, dict[str, Any]] = {}
    try:
        names = os.listdir(directory)
    except OSError:
        return records
    for name in names:
        stem, dot, ext = name.partition(".")
        if ext != "json" or not stem.isdigit():
            continue
        try:
            with open(os.path.join(directory, name)) as file:
                record = json.load(file)
        except (OSError, ValueError):
            continue
        if isinstance(record, dict):
            records[int(stem)] = record
    return records
