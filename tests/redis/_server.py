"""A real ``redis-server`` for tests: a free loopback port, no persistence, stopped at the end.

``RedisServer(tmp_dir, *extra_args).start()`` runs one and waits for its
"Ready to accept connections" log line (an event, not a sleep); ``stop()``
and ``kill()`` end it, ``start()`` again brings it back on the same port.
:func:`require_redis_server` skips the test when the program is missing,
or fails it when the environment variable ``CI`` is set (CI must have it:
``.ci/run`` installs Debian's ``redis-server``).
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

READY = b"Ready to accept connections"
START_TIMEOUT = 15.0


def require_redis_server() -> str:
    """The path of ``redis-server``; skips (outside CI) or fails (in CI) when it is missing."""
    path = shutil.which("redis-server")
    if path is None:
        message = ("redis-server is not installed (apt-get install redis-server); "
                   "the Redis tests need a real server")
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """One ``redis-server`` process on 127.0.0.1 (and a Unix socket), persistence off."""

    def __init__(self, directory: Path, *extra: str, tls: tuple[str, str] | None = None) -> None:
        self.program = require_redis_server()
        self.directory = directory
        self.extra = list(extra)
        self.tls = tls
        self.port = free_port()
        self.unix_path = str(directory / "redis.sock")
        self.proc: subprocess.Popen[bytes] | None = None
        self.log: list[bytes] = []

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0`` (``rediss://`` for a TLS server)."""
        return f"{'rediss' if self.tls else 'redis'}://127.0.0.1:{self.port}/0"

    def _args(self) -> list[str]:
        args = [self.program, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", str(self.directory), "--unixsocket", self.unix_path, "--unixsocketperm", "700",
                "--daemonize", "no", "--logfile", "", "--loglevel", "notice"]
        if self.tls:
            cert, key = self.tls
            args += ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file", cert,
                     "--tls-key-file", key, "--tls-ca-cert-file", cert, "--tls-auth-clients", "no"]
        else:
            args += ["--port", str(self.port)]
        return args + self.extra

    def start(self) -> RedisServer:
        """Start the server and wait until it accepts connections; returns self."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        proc = subprocess.Popen(self._args(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.proc = proc
        ready = threading.Event()

        def pump() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                self.log.append(line)
                if READY in line:
                    ready.set()
            ready.set()  # the process ended: wake the waiter to report it

        threading.Thread(target=pump, daemon=True).start()
        if not ready.wait(START_TIMEOUT) or proc.poll() is not None:
            self.kill()
            log = b"".join(self.log[-20:]).decode(errors="replace")
            raise RuntimeError("redis-server did not start:\n" + log)
        return self

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and wait for it."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    def kill(self) -> None:
        """Kill the server at once (SIGKILL), as a crash would."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)

    def cli(self, *args: str) -> Any:
        """Run one command with a blocking stdlib socket; returns the raw reply bytes (for setup)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            payload = b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a.encode()), a.encode())
                                                     for a in args)
            s.sendall(payload)
            return s.recv(65536)
