"""The code in README.rst and docs/tutorial.rst runs as the text says.

Each test takes a literal block (``::``) out of the .rst file, picked by what
it contains, writes it to a file in ``tmp_path`` and runs it as the reader
would: with ``python``, or with ``cogen-web``. Only a fixed port is replaced
by 0 (the program's own output gives the real one). The echo server of the
README is ``examples/echoserver.py`` itself (tests/test_examples_echo.py).
"""
from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.web._process import REPO, WAIT, ServerProcess, cogen_web, get, subprocess_env

pytestmark = pytest.mark.timeout(60)

README = REPO / "README.rst"
TUTORIAL = REPO / "docs" / "tutorial.rst"


def literal_blocks(path: Path) -> list[str]:
    """The literal blocks (after a paragraph ending in ``::``) of an .rst file, dedented."""
    blocks: list[str] = []
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        if lines[i].rstrip().endswith("::") and not lines[i].lstrip().startswith(".."):
            j = i + 1
            while j < len(lines) and not lines[j].strip():
                j += 1
            indent = len(lines[j]) - len(lines[j].lstrip()) if j < len(lines) else 0
            body: list[str] = []
            while j < len(lines) and (not lines[j].strip() or
                                      len(lines[j]) - len(lines[j].lstrip()) >= indent > 0):
                body.append(lines[j][indent:])
                j += 1
            blocks.append("\n".join(body).strip() + "\n")
            i = j
        else:
            i += 1
    return blocks


def block(path: Path, marker: str) -> str:
    """The one literal block of ``path`` that contains ``marker``."""
    found = [b for b in literal_blocks(path) if marker in b]
    assert len(found) == 1, f"{path.name}: {len(found)} literal blocks contain {marker!r}"
    return found[0]


def replace_once(code: str, old: str, new: str) -> str:
    assert code.count(old) == 1, f"the snippet should hold {old!r} once:\n{code}"
    return code.replace(old, new)


def in_thread(func: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(func()), daemon=True)
    thread.start()
    return thread, out


def signal_until_woken(port: int, path: str, woke: bytes) -> None:
    """Send ``path`` until its answer says the waiter was woken.

    The waiter's request is in flight in another thread; nothing outside the
    server tells when it is parked, so a send that came first (and woke
    nobody) is repeated, within a deadline.
    """
    deadline = time.monotonic() + WAIT
    while True:
        status, body = get(port, path)
        assert status == 200, body
        if body == woke:
            return
        assert time.monotonic() < deadline, f"{path} never woke the waiter: {body!r}"


def start_printing(args: list[str], cwd: Path,
                   pattern: str) -> tuple[subprocess.Popen[str], re.Match[str]]:
    """Start a program that prints its address first; returns it and the match of that line."""
    proc = subprocess.Popen(args, cwd=cwd, env=subprocess_env(), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    first = proc.stdout.readline()  # bounded by the test's timeout
    match = re.fullmatch(pattern, first)
    if match is None:
        proc.kill()
        raise AssertionError(f"{args} said {first!r}; stderr: {proc.communicate()[1]!r}")
    return proc, match


# -- README.rst -----------------------------------------------------------------------------
def test_readme_server_snippet_waits_for_the_signaller(tmp_path: Path) -> None:
    (tmp_path / "mymodule.py").write_text(block(README, "def app(environ, start_response):"))
    proc = ServerProcess(cogen_web("mymodule:app", "--port", "0"), cwd=tmp_path,
                         env=subprocess_env(tmp_path))
    try:
        port = proc.port()
        waiter, out = in_thread(lambda: get(port, "/"))
        signal_until_woken(port, "/send", b"1")
        waiter.join(WAIT)
        assert out == [(200, b"'hello'")]
    finally:
        proc.close()


def test_readme_embedded_snippet_serves_the_app(tmp_path: Path) -> None:
    app = block(README, "def app(environ, start_response):")
    embedded = replace_once(block(README, "WSGIServer(('127.0.0.1', 8080)"), "8080", "0")
    (tmp_path / "embedded.py").write_text(app + "\n" + embedded)
    proc, match = start_printing([sys.executable, "-u", "embedded.py"], tmp_path,
                                 r"serving on \('127\.0\.0\.1', (\d+)\)\n")
    try:
        port = int(match.group(1))
        assert get(port, "/send") == (200, b"0")  # nobody waits yet
        waiter, out = in_thread(lambda: get(port, "/"))
        signal_until_woken(port, "/send", b"1")
        waiter.join(WAIT)
        assert out == [(200, b"'hello'")]
    finally:
        proc.kill()
        proc.communicate(timeout=WAIT)


# -- docs/tutorial.rst ----------------------------------------------------------------------
def test_tutorial_countdown_prints_what_the_text_shows(tmp_path: Path) -> None:
    code = block(TUTORIAL, "def countdown(name, n):")
    assert code.startswith("from cogen.common import *\n")
    expected = block(TUTORIAL, "a is done")
    (tmp_path / "countdown.py").write_text(code)
    done = subprocess.run([sys.executable, "countdown.py"], cwd=tmp_path, env=subprocess_env(),
                          capture_output=True, text=True, timeout=WAIT, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout == expected


def test_tutorial_echo_server_pieces_run_as_one_file(tmp_path: Path) -> None:
    server = block(TUTORIAL, "def server(port):")
    handler = block(TUTORIAL, "def handler(conn, addr):")
    for piece in (server, handler):
        assert piece.startswith("from cogen.common import *\n")
    handler = replace_once(handler, "sched.add(server, 1200)", "sched.add(server, 0)")
    (tmp_path / "echo.py").write_text(server + "\n" + handler)
    proc, match = start_printing([sys.executable, "-u", "echo.py"], tmp_path,
                                 r"listening on \('127\.0\.0\.1', (\d+)\)\n")
    try:
        with socket.create_connection(("127.0.0.1", int(match.group(1))), timeout=WAIT) as sock:
            reader = sock.makefile("rb")
            assert reader.readline() == b"WELCOME TO ECHO SERVER !\r\n"
            sock.sendall(b"hello\n")
            assert reader.readline() == b"hello\n"
            sock.sendall(b"exit\n")
            assert reader.read() == b"GOOD BYE"
    finally:
        proc.kill()
        proc.communicate(timeout=WAIT)


def test_tutorial_clock_parks_requests_without_threads(tmp_path: Path) -> None:
    (tmp_path / "clock.py").write_text(block(TUTORIAL, "two seconds later"))
    proc = ServerProcess(cogen_web("clock:application", "--port", "0"), cwd=tmp_path,
                         env=subprocess_env(tmp_path))
    try:
        port = proc.port()
        started = time.monotonic()
        clients = [in_thread(lambda: get(port, "/")) for _ in range(3)]
        for thread, out in clients:
            thread.join(WAIT)
            assert out == [(200, b"two seconds later\n")]
        # three at once, not one after the other
        assert time.monotonic() - started < 5.5
    finally:
        proc.close()


def test_tutorial_one_room_chat(tmp_path: Path) -> None:
    (tmp_path / "onechat.py").write_text(block(TUTORIAL, "room = PublishSubscribeQueue()"))
    proc = ServerProcess(cogen_web("onechat:application", "--port", "0"), cwd=tmp_path,
                         env=subprocess_env(tmp_path))
    try:
        port = proc.port()
        status, client = get(port, "/join")
        assert status == 200
        client_id = client.decode().strip()
        poll, out = in_thread(lambda: get(port, f"/poll?client={client_id}"))
        status, said = get(port, "/say?text=hello")
        assert status == 200 and re.fullmatch(rb"woke [01] poll\(s\)\n", said)
        poll.join(WAIT)
        # parked or not yet, the poll gets the message: it waited in the queue
        assert [(s, json.loads(b)) for s, b in out] == [(200, ["hello"])]
        assert get(port, "/poll?client=nobody")[0] == 410
    finally:
        proc.close()
