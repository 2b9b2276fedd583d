"""Helpers for tests that run a server as a subprocess and read its log.

:class:`ServerProcess` starts a command in its own session, collects its
stderr lines in a thread and lets the test wait for a line matching a
pattern (the "listening on" line gives the port and says it is ready), so no
test sleeps to synchronise.
"""
from __future__ import annotations

import http.client
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
#: What the server fixtures return: start a server process with these arguments.
StartServer = Callable[..., "ServerProcess"]
WAIT = 15.0


def subprocess_env(*paths: Any) -> dict[str, str]:
    """The environment for a child Python: the repo (and ``paths``) importable, no .pyc files."""
    env = dict(os.environ)
    parts = [str(p) for p in paths] + [str(REPO)]
    if env.get("PYTHONPATH"):
        parts.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(parts)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    return env


class ServerProcess:
    """A server subprocess whose stderr lines are collected as they come."""

    def __init__(self, args: Sequence[str], cwd: Any, env: dict[str, str] | None = None,
                 pass_fds: Sequence[int] = ()) -> None:
        self.args = list(args)
        self.proc = subprocess.Popen(self.args, cwd=str(cwd), env=env or subprocess_env(),
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True, start_new_session=True,
                                     pass_fds=tuple(pass_fds))
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._eof = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def wait_count(self, pattern: str, count: int, timeout: float = WAIT,
                   start: int = 0) -> list[re.Match[str]]:
        """The first ``count`` lines (from index ``start``) matching ``pattern``."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        found: list[re.Match[str]] = []
        with self._cond:
            index = start
            while True:
                while index < len(self.lines):
                    match = regex.search(self.lines[index])
                    index += 1
                    if match:
                        found.append(match)
                        if len(found) == count:
                            return found
                left = deadline - time.monotonic()
                if self._eof or left <= 0:
                    raise AssertionError(f"fewer than {count} lines matching {pattern!r} from "
                                         f"{self.args}; stderr so far:\n" + "\n".join(self.lines))
                self._cond.wait(left)

    def wait_for(self, pattern: str, timeout: float = WAIT, start: int = 0) -> re.Match[str]:
        """The first line (from index ``start``) matching ``pattern``; fails after ``timeout``."""
        return self.wait_count(pattern, 1, timeout, start)[0]

    def mark(self) -> int:
        """The index of the next line to come (for ``wait_for(start=...)``)."""
        with self._cond:
            return len(self.lines)

    def port(self) -> int:
        """The port of the first "listening on" line."""
        return int(self.wait_for(r"listening on https?://[^ ]*:(\d+)").group(1))

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float = WAIT) -> int:
        """Wait for the process to exit (and its stderr to end); returns its status."""
        code = self.proc.wait(timeout)
        self._reader.join(timeout)
        return code

    def close(self) -> None:
        """Kill the process group this process leads, if still there, and reap it."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        else:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)  # orphaned workers, if any
            except (ProcessLookupError, PermissionError):
                pass
        self.proc.wait(WAIT)
        self._reader.join(WAIT)
        if self.proc.stderr is not None:
            self.proc.stderr.close()


def cogen_web(*args: str) -> list[str]:
    """The command line of ``python -m cogen.web`` with ``args``."""
    return [sys.executable, "-m", "cogen.web", *args]


def pids_answering(port: int, want: int, within: float = 20.0) -> set[int]:
    """The pids (the bodies of ``GET /``) that answer on new connections, until ``want`` did.

    Asks 16 at a time on 8 threads, for at most ``within`` seconds: with
    one listening socket shared by the workers, an idle worker can win
    every accept of a sequential client.
    """
    from concurrent.futures import ThreadPoolExecutor
    seen: set[int] = set()
    deadline = time.monotonic() + within
    with ThreadPoolExecutor(8) as pool:
        while len(seen) < want and time.monotonic() < deadline:
            for status, body in pool.map(lambda _: get(port), range(16)):
                assert status == 200
                seen.add(int(body))
    return seen


def get(port: int, path: str = "/", host: str = "127.0.0.1", timeout: float = WAIT,
        method: str = "GET", body: bytes | None = None) -> tuple[int, bytes]:
    """One request on a new connection (closed afterwards); returns (status, body)."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers={"Connection": "close"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over a Unix socket."""

    def __init__(self, path: str, timeout: float = WAIT) -> None:
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.unix_path)
        self.sock = sock


def get_unix(path: str, url: str = "/") -> tuple[int, bytes]:
    conn = UnixHTTPConnection(path)
    try:
        conn.request("GET", url, headers={"Connection": "close"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def wait_exited(pid: int, timeout: float = WAIT) -> bool:
    """Wait (without polling) until process ``pid``, not our child, has exited."""
    if not hasattr(os, "pidfd_open"):
        import pytest
        pytest.skip("waiting for a process that is not our child needs os.pidfd_open (Linux)")
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        ready, _, _ = select.select([fd], [], [], timeout)
        return bool(ready)
    finally:
        os.close(fd)


APP_SOURCE = '''\
import os, sys


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/slow":
        print("slow request started", file=sys.stderr, flush=True)
        yield from _slow(environ, start_response)
        return
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    yield body


def _slow(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield environ["cogen"].core.events.Sleep(0.5)
    yield b"slow done"


def make_app():
    def made(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"made by the factory"]
    return made


not_callable = 42
'''


def write_app(directory: Path, name: str = "app", source: str = APP_SOURCE) -> Path:
    """Write the test app module into ``directory``; returns its path."""
    path = directory / f"{name}.py"
    path.write_text(source)
    return path
