"""cogen-web in production: pid file, log files reopened on SIGUSR1, --log-config,
systemd socket activation (cogen/web/_procman.py), through the command."""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.web._process import (
    WAIT,
    ServerProcess,
    cogen_web,
    get,
    subprocess_env,
)

pytestmark = pytest.mark.timeout(60)


def start(started: list[ServerProcess], cwd: Path, *args: str,
          pass_fds: tuple[int, ...] = (), command: list[str] | None = None,
          env: dict[str, str] | None = None) -> ServerProcess:
    proc = ServerProcess(command or cogen_web(*args), cwd=cwd, env=env, pass_fds=pass_fds)
    started.append(proc)
    return proc


def wait_file(path: Path, pattern: str, count: int = 1, timeout: float = WAIT) -> list[str]:
    """Wait until ``path`` has ``count`` lines matching ``pattern``; returns them.

    A log file offers nothing to wait on (no inotify in the standard
    library): it is read again every 20 ms, for at most ``timeout``.
    """
    regex = re.compile(pattern)
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while True:
        text = path.read_text() if path.exists() else ""
        found = [line for line in text.splitlines() if regex.search(line)]
        if len(found) >= count:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"fewer than {count} lines matching {pattern!r} in {path}:\n"
                                 f"{text}")
        pause.wait(0.02)


# -- pid file -----------------------------------------------------------------------

@pytest.mark.parametrize("workers", ["1", "2"])
def test_pid_file_holds_the_serving_pid_and_goes_away(
        app_dir: Path, started: list[ServerProcess], workers: str) -> None:
    pidfile = app_dir / "run" / "cogen.pid"
    pidfile.parent.mkdir()
    proc = start(started, app_dir, "app:application", "--port", "0", "--workers", workers,
                 "--pid", str(pidfile))
    assert get(proc.port())[0] == 200
    assert pidfile.read_text() == f"{proc.pid}\n"  # the master's, with workers
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0
    assert not pidfile.exists()


@pytest.mark.parametrize("workers", ["1", "2"])
def test_unwritable_pid_file_is_one_line_and_status_2(app_dir: Path, workers: str) -> None:
    done = subprocess.run(cogen_web("app:application", "--port", "0", "--workers", workers,
                                    "--pid", "/nonexistent/dir/x.pid"), cwd=app_dir,
                          env=subprocess_env(), capture_output=True, text=True, timeout=WAIT,
                          check=False)
    assert done.stderr.strip().splitlines() == [
        "cogen-web: error: cannot write the pid file '/nonexistent/dir/x.pid': "
        "No such file or directory"]
    assert done.returncode == 2


# -- log files and SIGUSR1 ----------------------------------------------------------

def test_sigusr1_reopens_the_access_log(app_dir: Path, started: list[ServerProcess]) -> None:
    access = app_dir / "access.log"
    proc = start(started, app_dir, "app:application", "--port", "0",
                 "--access-logfile", str(access))
    port = proc.port()
    assert get(port, "/first")[0] == 200
    wait_file(access, r'"GET /first HTTP/1.1" 200')
    access.rename(app_dir / "access.log.1")  # what logrotate does
    mark = proc.mark()
    proc.signal(signal.SIGUSR1)
    proc.wait_for(r"received SIGUSR1: reopened 1 log file", start=mark)
    assert get(port, "/second")[0] == 200
    wait_file(access, r'"GET /second HTTP/1.1" 200')
    assert "/first" not in access.read_text()
    assert "/second" not in (app_dir / "access.log.1").read_text()
    assert proc.proc.poll() is None


def test_workers_reopen_their_logs_when_the_master_gets_sigusr1(
        app_dir: Path, started: list[ServerProcess]) -> None:
    access, error = app_dir / "access.log", app_dir / "error.log"
    proc = start(started, app_dir, "app:application", "--port", "0", "--workers", "2",
                 "--access-logfile", str(access), "--error-logfile", str(error))
    wait_file(error, "2 workers serving")
    port = int(re.search(r"listening on http://127.0.0.1:(\d+)", error.read_text())[1])
    assert proc.lines == []  # nothing on stderr: it all went to the file
    assert get(port, "/before")[0] == 200
    wait_file(access, "GET /before")
    access.rename(app_dir / "access.log.1")
    error.rename(app_dir / "error.log.1")
    proc.signal(signal.SIGUSR1)
    # the master and each worker reopen theirs, each logging it in the new file
    lines = wait_file(error, r"received SIGUSR1: reopened 2 log file", count=3)
    pids = {int(re.search(r"\[(\d+)\]", line)[1]) for line in lines}
    assert len(pids) == 3 and proc.pid in pids
    for _ in range(4):
        assert get(port, "/after")[0] == 200
    wait_file(access, "GET /after", count=4)
    assert "/after" not in (app_dir / "access.log.1").read_text()


def test_error_logfile_that_cannot_be_opened(app_dir: Path) -> None:
    done = subprocess.run(cogen_web("app:application", "--port", "0", "--error-logfile",
                                    "/nonexistent/dir/e.log"), cwd=app_dir,
                          env=subprocess_env(), capture_output=True, text=True, timeout=WAIT,
                          check=False)
    assert done.stderr.strip().splitlines() == [
        "cogen-web: error: cannot open the log file '/nonexistent/dir/e.log': "
        "No such file or directory"]
    assert done.returncode == 2


# -- --log-config -------------------------------------------------------------------

def _dict_config(path: Path) -> dict[str, object]:
    return {"version": 1,
            "formatters": {"custom": {"format": "CUSTOM %(levelname)s %(name)s %(message)s"}},
            "handlers": {"file": {"class": "logging.FileHandler", "filename": str(path),
                                  "formatter": "custom"}},
            "loggers": {"cogen": {"handlers": ["file"], "level": "INFO",
                                  "propagate": False}}}


def test_log_config_json(app_dir: Path, started: list[ServerProcess]) -> None:
    logfile = app_dir / "custom.log"
    (app_dir / "logging.json").write_text(json.dumps(_dict_config(logfile)))
    start(started, app_dir, "app:application", "--port", "0", "--log-config", "logging.json")
    line = wait_file(logfile, r"^CUSTOM INFO cogen.web listening on http://127.0.0.1:\d+$")[0]
    assert get(int(line.rsplit(":", 1)[1]))[0] == 200


def test_log_config_ini(app_dir: Path, started: list[ServerProcess]) -> None:
    logfile = app_dir / "custom.log"
    (app_dir / "logging.ini").write_text(f"""\
[loggers]
keys = root, cogen

[handlers]
keys = file

[formatters]
keys = custom

[logger_root]
handlers =

[logger_cogen]
qualname = cogen
level = INFO
handlers = file
propagate = 0

[handler_file]
class = FileHandler
args = ({str(logfile)!r},)
formatter = custom

[formatter_custom]
format = INI %(levelname)s %(message)s
""")
    start(started, app_dir, "app:application", "--port", "0", "--log-config", "logging.ini")
    wait_file(logfile, r"^INI INFO listening on http://127.0.0.1:\d+$")


@pytest.mark.parametrize("name, text, expected", [
    ("logging.json", "{not json", "bad logging configuration 'logging.json': JSONDecodeError"),
    ("logging.json", '{"handlers": {"h": {"class": "no.such.Handler"}}}',
     "bad logging configuration 'logging.json': ValueError"),
    ("missing.ini", None, "cannot read the logging configuration 'missing.ini'"),
])
def test_bad_log_config_is_one_line_and_status_2(app_dir: Path, name: str, text: str | None,
                                                 expected: str) -> None:
    if text is not None:
        (app_dir / name).write_text(text)
    done = subprocess.run(cogen_web("app:application", "--port", "0", "--log-config", name),
                          cwd=app_dir, env=subprocess_env(), capture_output=True, text=True,
                          timeout=WAIT, check=False)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cogen-web: error:"), done.stderr
    assert expected in lines[0]
    assert done.returncode == 2


# -- systemd socket activation ------------------------------------------------------

#: The launcher's part of sd_listen_fds(3): the socket as descriptor 3, and
#: LISTEN_PID set to the pid that exec()s the server (this one).
LAUNCHER = """\
import os, sys
fd = int(sys.argv[1])
os.dup2(fd, 3)
os.close(fd)
os.environ["LISTEN_FDS"] = "1"
os.environ["LISTEN_PID"] = str(os.getpid()) if sys.argv[2] == "mine" else "1"
os.execv(sys.executable, [sys.executable, "-m", "cogen.web", *sys.argv[3:]])
"""


@pytest.fixture
def activation_socket() -> Iterator[socket.socket]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield sock
    sock.close()


@pytest.mark.parametrize("workers", ["1", "2"])
def test_socket_activation_serves_on_the_passed_socket(
        app_dir: Path, started: list[ServerProcess], activation_socket: socket.socket,
        workers: str) -> None:
    port = activation_socket.getsockname()[1]
    fd = activation_socket.fileno()
    proc = start(started, app_dir, pass_fds=(fd,), command=[
        sys.executable, "-c", LAUNCHER, str(fd), "mine", "app:application",
        "--bind", "127.0.0.1:1", "--workers", workers])  # --bind is not used
    assert proc.port() == port
    activation_socket.close()  # the server's copy alone now
    status, body = get(port)
    assert status == 200
    if workers == "2":
        assert int(body) != proc.pid  # a worker's answer
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0


def test_socket_activation_variables_of_another_process_are_ignored(
        app_dir: Path, started: list[ServerProcess], activation_socket: socket.socket) -> None:
    fd = activation_socket.fileno()
    proc = start(started, app_dir, pass_fds=(fd,), command=[
        sys.executable, "-c", LAUNCHER, str(fd), "not mine", "app:application", "--port", "0"])
    port = proc.port()
    assert port != activation_socket.getsockname()[1]
    assert get(port)[0] == 200


def test_socket_activation_with_a_descriptor_that_is_not_listening(app_dir: Path) -> None:
    env = {**subprocess_env(), "LISTEN_FDS": "1"}
    code = ("import os, sys; os.environ['LISTEN_PID'] = str(os.getpid()); "
            "r, w = os.pipe(); os.dup2(r, 3); "
            "from cogen.web.cli import main; sys.exit(main(['app:application']))")
    done = subprocess.run([sys.executable, "-c", code], cwd=app_dir, env=env,
                          capture_output=True, text=True, timeout=WAIT, check=False)
    assert done.stderr.strip().splitlines() == [
        "cogen-web: error: socket activation: descriptor 3 is not a socket: "
        "Socket operation on non-socket"]
    assert done.returncode == 2


def test_pid_file_env(app_dir: Path, started: list[ServerProcess]) -> None:
    pidfile = app_dir / "env.pid"
    proc = start(started, app_dir, "app:application", "--port", "0",
                 env={**subprocess_env(), "COGEN_WEB_PID": str(pidfile)})
    proc.port()
    assert pidfile.read_text().strip() == str(proc.pid)
    os.kill(proc.pid, signal.SIGTERM)
    assert proc.wait() == 0
    assert not pidfile.exists()
