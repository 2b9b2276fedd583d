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
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["Heartbeat", "ModuleFiles", "app_module_files", "make_directory", "read_heartbeats",
           "write_module_files"]

_PREFIX = "cogen-web-"


def make_directory() -> str:
    """A new private heartbeat directory, ``cogen-web-<master pid>-*`` in the temporary directory.

    Removes the ones left by masters that are gone (killed with SIGKILL,
    they could not remove theirs).
    """
    import shutil
    import tempfile
    parent = tempfile.gettempdir()
    try:
        names = os.listdir(parent)
    except OSError:
        names = []
    for name in names:
        pid_text = name[len(_PREFIX):].partition("-")[0]
        if not name.startswith(_PREFIX) or not pid_text.isdigit():
            continue
        try:
            os.kill(int(pid_text), 0)
        except ProcessLookupError:
            shutil.rmtree(os.path.join(parent, name), ignore_errors=True)
        except OSError:
            pass  # alive, another user's
    return tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-")


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


# -- --reload: the app's module files -----------------------------------------------

def app_module_files(roots: Iterable[str]) -> list[str]:
    """The ``.py`` files of the loaded modules under ``roots`` (not installed packages)."""
    prefixes = [os.path.join(os.path.abspath(root), "") for root in roots]
    files = set()
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if not path or not path.endswith(".py"):
            continue
        path = os.path.abspath(path)
        if "site-packages" in path or "dist-packages" in path:
            continue
        if any(path.startswith(prefix) for prefix in prefixes):
            files.add(path)
    return sorted(files)


def write_module_files(directory: str, files: list[str]) -> None:
    """Write ``files`` and their mtimes now to ``<directory>/<pid>.modules`` (atomically).

    The mtimes are the baseline: a change after the worker loaded the code
    is one even if the master looks only later.
    """
    mtimes: dict[str, float | None] = {}
    for name in files:
        try:
            mtimes[name] = os.stat(name).st_mtime
        except OSError:
            mtimes[name] = None
    path = os.path.join(directory, f"{os.getpid()}.modules")
    try:
        with open(path + ".tmp", "w") as file:
            json.dump(mtimes, file)
        os.replace(path + ".tmp", path)
    except OSError:
        pass


class ModuleFiles:
    """The master's side of ``--reload``: the files the workers loaded, and their mtimes.

    :meth:`changed` reads every ``*.modules`` file of ``directory`` and
    returns the files modified (or removed) since the previous call; a file
    seen for the first time is compared with the mtime the worker saw when
    it loaded it.
    """

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.mtimes: dict[str, float | None] = {}

    def changed(self) -> list[str]:
        """The watched files whose mtime changed since the last call."""
        try:
            names = os.listdir(self.directory)
        except OSError:
            names = []
        for name in names:
            if not name.endswith(".modules"):
                continue
            try:
                with open(os.path.join(self.directory, name)) as file:
                    loaded = json.load(file)
            except (OSError, ValueError):
                continue
            if isinstance(loaded, dict):
                for path, seen in loaded.items():
                    self.mtimes.setdefault(str(path), seen)
        changed = []
        mtime: float | None
        for path in sorted(self.mtimes):
            try:
                mtime = os.stat(path).st_mtime
            except OSError:
                mtime = None
            if self.mtimes[path] != mtime:
                changed.append(path)
            self.mtimes[path] = mtime
        return changed
