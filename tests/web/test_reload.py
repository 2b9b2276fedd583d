"""cogen-web --reload: edited app code is served, broken code is not (cogen/web/workers.py)."""
from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.web._process import ServerProcess, StartServer, cogen_web, get

pytestmark = pytest.mark.timeout(60)

APP = '''\
from pkg.message import MESSAGE


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [MESSAGE.encode()]
'''


def write(path: Path, text: str) -> None:
    """Replace the file, with an mtime surely different from the last one."""
    old = path.stat().st_mtime if path.exists() else 0.0
    path.write_text(text)
    os.utime(path, (old + 10, old + 10))


def wait_reloaded(proc: ServerProcess, mark: int, workers: str) -> None:
    """Wait until every old worker has exited (each stops accepting only on its SIGTERM)."""
    stopped = proc.wait_count(r"stopping worker (\d+) \(replaced by", int(workers), start=mark)
    for match in stopped:
        proc.wait_for(rf"worker {match.group(1)} exited", start=mark)


@pytest.fixture
def server(tmp_path: Path, started: list[ServerProcess]) -> StartServer:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    write(tmp_path / "pkg" / "message.py", 'MESSAGE = "one"\n')
    (tmp_path / "reloadapp.py").write_text(APP)

    def start(*args: str) -> ServerProcess:
        proc = ServerProcess(cogen_web("reloadapp:application", "--port", "0", *args),
                             cwd=tmp_path)
        started.append(proc)
        return proc

    return start


@pytest.mark.parametrize("workers", ["1", "2"])
def test_reload_serves_edited_code_and_survives_a_syntax_error(
        server: StartServer, tmp_path: Path, workers: str) -> None:
    proc = server("--reload", "--workers", workers)
    port = proc.port()
    proc.wait_for(f"{workers} workers serving")
    assert get(port) == (200, b"one")
    message = tmp_path / "pkg" / "message.py"

    mark = proc.mark()
    write(message, 'MESSAGE = "two"\n')
    proc.wait_for(r"reload: pkg/message.py changed", start=mark)
    wait_reloaded(proc, mark, workers)
    assert {get(port) for _ in range(4)} == {(200, b"two")}

    mark = proc.mark()
    write(message, 'MESSAGE = "three"\ndef broken(:\n')
    line = proc.wait_for(r"failed to start: .*SyntaxError", start=mark)
    assert "message.py" in line.string
    proc.wait_for("reload abandoned: the old workers keep serving", start=mark)
    assert {get(port) for _ in range(4)} == {(200, b"two")}

    mark = proc.mark()
    write(message, 'MESSAGE = "four"\n')
    wait_reloaded(proc, mark, workers)
    assert {get(port) for _ in range(4)} == {(200, b"four")}
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0


def test_without_reload_an_edit_is_not_served(server: StartServer, tmp_path: Path) -> None:
    proc = server("--workers", "2")
    port = proc.port()
    proc.wait_for("2 workers serving")
    write(tmp_path / "pkg" / "message.py", 'MESSAGE = "two"\n')
    assert {get(port) for _ in range(4)} == {(200, b"one")}
    assert not [line for line in proc.lines if "reload" in line]
