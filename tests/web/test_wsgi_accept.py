"""The accept loop at the descriptor limit: one warning per episode, back-off, recovery.

The server runs as ``cogen-web`` in a subprocess whose RLIMIT_NOFILE (soft
and hard, so the CLI cannot raise it) is small; the test holds more idle
connections than that, so ``accept`` fails with EMFILE until it lets go.
"""
from __future__ import annotations

import errno
import logging
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.web._process import WAIT, ServerProcess, get, subprocess_env, write_app

from .conftest import get as get_request
from .conftest import recording_app

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


class _AbortingListener(socket.socket):
    """A listening socket whose next accept() fails as for a client that reset before it."""

    aborts = 0

    def accept(self) -> tuple[socket.socket, object]:
        if self.aborts:
            self.aborts -= 1
            raise ConnectionAbortedError(errno.ECONNABORTED, "Software caused connection abort")
        return super().accept()


def test_a_connection_aborted_before_accept_is_skipped_without_a_warning(
        live_server: Any, raw: Any, caplog: pytest.LogCaptureFixture) -> None:
    # as core's Accept does: ECONNABORTED is the client's doing, not the
    # server's limit (no warning, no back-off before the next accept)
    sock = _AbortingListener(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.aborts = 1
    live = live_server(recording_app([]), bind=sock)
    caplog.set_level(logging.DEBUG, logger="cogen.web")
    assert raw(live).request(get_request("/")).status == 200
    assert sock.aborts == 0
    assert not [r for r in caplog.records if "accept" in r.getMessage()]
