"""The accept loop at the descriptor limit: one warning per episode, back-off, recovery.

The server runs as ``cogen-web`` in a subprocess whose RLIMIT_NOFILE (soft
and hard, so the CLI cannot raise it) is small; the test holds more idle
connections than that, so ``accept`` fails with EMFILE until it lets go.
"""
from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.web._process import WAIT, ServerProcess, get, subprocess_env, write_app

resource = pytest.importorskip("resource")

pytestmark = pytest.mark.timeout(60)

#: The server's descriptor limit, and how many connections the test opens.
FD_LIMIT = 48
CLIENTS = 80

_LIMITED = (
    "import os, resource, sys\n"
    "resource.setrlimit(resource.RLIMIT_NOFILE, ({limit}, {limit}))\n"
    "os.execv(sys.executable, [sys.executable, '-m', 'cogen.web'] + sys.argv[1:])\n"
)


@pytest.fixture
def limited_server(tmp_path: Path) -> Iterator[ServerProcess]:
    write_app(tmp_path)
    args = [sys.executable, "-c", _LIMITED.format(limit=FD_LIMIT), "app:application", "--port", "0",
            "--log-level", "debug"]
    proc = ServerProcess(args, cwd=tmp_path, env=subprocess_env())
    yield proc
    proc.close()


def test_emfile_is_logged_once_per_episode_with_back_off(limited_server: ServerProcess) -> None:
    proc = limited_server
    port = proc.port()
    clients = [socket.create_connection(("127.0.0.1", port), timeout=WAIT) for _ in range(CLIENTS)]
    try:
        proc.wait_for(r"WARNING cogen\.web: accept failed: \[Errno 24\]")
        # each retry is a debug line; the old loop warned every 100 ms instead
        proc.wait_count(r"DEBUG cogen\.web: accept still failing", 4)
        warnings = [line for line in proc.lines if "accept failed" in line]
        assert len(warnings) == 1, warnings
        delays = [float(line.rsplit(" ", 2)[-2]) for line in proc.lines if "accept still failing" in line]
        assert delays[:4] == sorted(delays[:4]) and delays[3] > delays[0], delays
    finally:
        for client in clients:
            client.close()
    proc.wait_for(r"INFO cogen\.web: accepting again after \d+ failed attempts")
    assert get(port) == (200, str(proc.pid).encode())
    assert len([line for line in proc.lines if "accept failed" in line]) == 1
