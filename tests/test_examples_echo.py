"""examples/echoserver.py and examples/echoclient.py, run as programs, and the README copy of the server."""
from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cogen.common import coroutine, sockets
from cogen.testing import run_in_scheduler

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parent.parent
SERVER = ROOT / "examples" / "echoserver.py"
CLIENT = ROOT / "examples" / "echoclient.py"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


@pytest.fixture
def echo_server() -> Iterator[int]:
    """examples/echoserver.py on a free port; yields the port."""
    proc = subprocess.Popen([sys.executable, "-u", str(SERVER), "0"], cwd=ROOT, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        match = re.fullmatch(r"Listening on \('127\.0\.0\.1', (\d+)\)\n", first)
        if match is None:
            proc.kill()
            raise AssertionError(f"echoserver said {first!r}; stderr: {proc.communicate()[1]!r}")
        yield int(match.group(1))
    finally:
        if proc.poll() is None:
            proc.terminate()
        proc.communicate(timeout=10)


def _code_of_readme_snippet() -> str:
    text = (ROOT / "README.rst").read_text()
    section = text.split("A taste of the core\n", 1)[1]
    intro, block = section.split("::\n", 1)  # the first literal block of the section
    assert "examples/echoserver.py" in intro
    lines = []
    for line in block.splitlines():
        if line and not line.startswith("    "):
            break
        lines.append(line[4:])
    return "\n".join(lines).strip() + "\n"


def test_readme_snippet_is_the_example_program() -> None:
    source = SERVER.read_text()
    module = ast.parse(source)
    docstring_end = module.body[0].end_lineno
    assert isinstance(module.body[0], ast.Expr)  # the how-to-run docstring
    code = "\n".join(source.splitlines()[docstring_end:]).strip() + "\n"
    assert code == _code_of_readme_snippet()


def test_echoserver_echoes_lines_until_exit(echo_server: int) -> None:
    lines = [b"hello\r\n", b"second line\n", b"  spaced  \n"]

    @coroutine
    def client():
        sock = sockets.Socket()
        try:
            yield sockets.Connect(sock, ("127.0.0.1", echo_server), timeout=10)
            welcome = yield sockets.ReadLine(sock, 8192, timeout=10)
            echoes = []
            for line in lines:
                yield sockets.WriteAll(sock, line, timeout=10)
                echoes.append((yield sockets.ReadLine(sock, 8192, timeout=10)))
            yield sockets.WriteAll(sock, b"exit\r\n", timeout=10)
            bye = yield sockets.ReadAll(sock, 8, timeout=10)
            try:
                yield sockets.Read(sock, 100, timeout=10)
                closed = False
            except sockets.ConnectionClosed:
                closed = True
            return welcome, echoes, bye, closed
        finally:
            sock.close()

    welcome, echoes, bye, closed = run_in_scheduler(client, timeout=30)
    assert welcome == b"WELCOME TO ECHO SERVER !\r\n"
    assert echoes == lines
    assert bye == b"GOOD BYE"
    assert closed


def test_echoclient_talks_to_echoserver(echo_server: int) -> None:
    out = subprocess.run([sys.executable, str(CLIENT), "127.0.0.1", str(echo_server), "one", "two words"],
                         cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=30, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["WELCOME TO ECHO SERVER !", "one", "two words", "GOOD BYE"]


NAMESPACE_DRIVER = """\
import subprocess, sys
ip, server_path, client_path = sys.argv[1:]
subprocess.run([ip, "link", "set", "lo", "up"], check=True)
server = subprocess.Popen([sys.executable, "-u", server_path, "--all-interfaces"],
                          stdout=subprocess.PIPE, text=True)
try:
    print(server.stdout.readline(), end="", flush=True)
    client = subprocess.run([sys.executable, client_path, "127.0.0.1", "1200", "hi"],
                            capture_output=True, text=True, timeout=20)
    print(client.stdout, end="", flush=True)
finally:
    server.kill()
    server.wait()
"""


def test_echoserver_all_interfaces_on_its_default_port() -> None:
    """``--all-interfaces`` listens on 0.0.0.0:1200, run in a private network
    namespace (its only interface a loopback), so nothing is exposed and the
    fixed port is free."""
    import shutil
    unshare, ip = shutil.which("unshare"), shutil.which("ip")
    if not unshare or not ip:
        pytest.skip("needs unshare(1) and ip(8) to make a private network namespace")
    done = subprocess.run([unshare, "--net", sys.executable, "-c", NAMESPACE_DRIVER, ip,
                           str(SERVER), str(CLIENT)], cwd=ROOT, env=_env(), capture_output=True,
                          text=True, timeout=30, check=False)
    if done.returncode != 0 and "unshare" in done.stderr:
        pytest.skip(f"cannot make a network namespace here: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["Listening on ('0.0.0.0', 1200)",
                                        "WELCOME TO ECHO SERVER !", "hi", "GOOD BYE"]
