"""The cogen-web command, run as ``python -m cogen.web`` in a subprocess."""
from __future__ import annotations

import contextlib
import http.client
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import cogen
from tests.web._process import (
    WAIT,
    ServerProcess,
    StartServer,
    cogen_web,
    get,
    get_unix,
    subprocess_env,
    write_app,
)

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    write_app(tmp_path)
    (tmp_path / "broken.py").write_text("raise RuntimeError('boom at import')\n")
    return tmp_path


@pytest.fixture
def server(app_dir: Path) -> Iterator[StartServer]:
    started: list[ServerProcess] = []

    def start(*args: str) -> ServerProcess:
        proc = ServerProcess(cogen_web(*args), cwd=app_dir)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.close()


def run_cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cogen_web(*args), cwd=cwd, env=subprocess_env(), capture_output=True, check=False,
                          text=True, timeout=WAIT)


def test_serves_a_request_on_the_real_port_of_port_0(server: StartServer) -> None:
    proc = server("app:application", "--port", "0")
    port = proc.port()
    assert port != 0
    status, body = get(port)
    assert status == 200
    assert body.isdigit()
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0


def test_log_lines_carry_the_pid(server: StartServer) -> None:
    proc = server("app:application", "--port", "0")
    proc.port()
    assert f"[{proc.pid}]" in proc.wait_for("listening on").string


def test_access_log_is_off_by_default(server: StartServer) -> None:
    proc = server("app:application", "--port", "0")
    assert get(proc.port())[0] == 200
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0
    assert not [line for line in proc.lines if '"GET / HTTP/1.1"' in line], proc.lines


def test_access_log_lines_can_carry_the_worker_pid(server: StartServer) -> None:
    proc = server("app:application", "--port", "0", "--workers", "2", "--access-log",
                  "--access-log-format", '%(p)s "%(r)s" %(s)s')
    port = proc.port()
    assert get(port)[0] == 200
    line = proc.wait_for(r'^(\d+) "GET / HTTP/1.1" 200$')
    worker = int(line.group(1))
    assert worker != proc.pid  # the worker's, not the master's
    os.kill(worker, 0)  # a live process


def test_bare_module_uses_the_application_attribute(server: StartServer) -> None:
    proc = server("app", "--port", "0")
    assert get(proc.port())[0] == 200


def test_call_calls_a_factory(server: StartServer) -> None:
    proc = server("app:make_app", "--call", "--port", "0")
    assert get(proc.port()) == (200, b"made by the factory")


def test_parentheses_call_a_factory(server: StartServer) -> None:
    proc = server("app:make_app()", "--port", "0")
    assert get(proc.port()) == (200, b"made by the factory")


def test_several_binds_each_logged_and_served(server: StartServer) -> None:
    proc = server("app:application", "--bind", "127.0.0.1:0", "-b", "127.0.0.1:0")
    ports = [int(m.group(1)) for m in proc.wait_count(r"listening on http://127.0.0.1:(\d+)", 2)]
    assert ports[0] != ports[1]
    for port in ports:
        assert get(port)[0] == 200


def test_unix_socket_bind(server: StartServer, tmp_path: Path) -> None:
    path = str(tmp_path / "web.sock")
    proc = server("app:application", "--bind", f"unix:{path}")
    proc.wait_for(f"listening on unix:{path}")
    status, body = get_unix(path)
    assert status == 200 and body.isdigit()
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0
    assert not Path(path).exists()


def _another_group() -> Any:
    """A group this process may give a file to, other than its own: (name, gid)."""
    import grp
    if os.geteuid() == 0:
        candidates = [g.gr_gid for g in grp.getgrall()]
    else:
        candidates = os.getgroups()
    others = [gid for gid in candidates if gid != os.getegid()]
    if not others:
        pytest.skip("this user belongs to no second group to give the socket to")
    return grp.getgrgid(others[0]).gr_name, others[0]


@pytest.mark.parametrize("workers", ["1", "2"])
def test_unix_socket_mode_and_group(server: StartServer, tmp_path: Path, workers: str) -> None:
    """nginx running as another user connects through the group: the socket gets 660 and it."""
    name, gid = _another_group()
    path = str(tmp_path / "web.sock")
    proc = server("app:application", "--bind", f"unix:{path}", "--workers", workers,
                  "--unix-socket-mode", "660", "--unix-socket-group", name)
    proc.wait_for(f"listening on unix:{path}")
    info = os.stat(path)
    assert oct(info.st_mode & 0o7777) == oct(0o660)
    assert info.st_gid == gid
    assert get_unix(path)[0] == 200


def test_trusted_proxy_headers_flag(server: StartServer, app_dir: Path) -> None:
    (app_dir / "who.py").write_text(
        "def application(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    return [environ['REMOTE_ADDR'].encode(), b' ',\n"
        "            environ.get('HTTP_X_FORWARDED_FOR', '-').encode()]\n")
    proc = server("who:application", "--port", "0", "--trusted-proxy", "127.0.0.1",
                  "--trusted-proxy-headers", "forwarded")
    conn = http.client.HTTPConnection("127.0.0.1", proc.port(), timeout=WAIT)
    try:
        conn.request("GET", "/", headers={"Forwarded": "for=192.0.2.1",
                                          "X-Forwarded-For": "198.51.100.1"})
        resp = conn.getresponse()
        # Forwarded is trusted, X-Forwarded-For ignored and cleared
        assert (resp.status, resp.read()) == (200, b"192.0.2.1 -")
    finally:
        conn.close()


def test_unix_socket_mode_defaults_to_the_umask(server: StartServer, tmp_path: Path) -> None:
    path = str(tmp_path / "web.sock")
    umask = os.umask(0o022)
    os.umask(umask)
    server("app:application", "--bind", f"unix:{path}").wait_for(f"listening on unix:{path}")
    assert os.stat(path).st_mode & 0o777 == 0o777 & ~umask


@pytest.mark.parametrize(("signum", "says"), [
    (signal.SIGTERM, r"received SIGTERM"),
    # A single process has no master to replace it: SIGHUP's default action
    # killed it at once, with the requests in flight.
    (signal.SIGHUP, r"received SIGHUP .*--workers 2 or --reload"),
    # nginx's graceful stop; Python's default action dumped core
    (signal.SIGQUIT, r"received SIGQUIT"),
], ids=["SIGTERM", "SIGHUP", "SIGQUIT"])
def test_a_stop_signal_lets_a_slow_request_finish(server: StartServer, signum: int, says: str) -> None:
    proc = server("app:application", "--port", "0")
    port = proc.port()
    result: list[tuple[int, bytes]] = []
    client = threading.Thread(target=lambda: result.append(get(port, "/slow")))
    client.start()
    proc.wait_for("slow request started")
    proc.signal(signum)
    client.join(WAIT)
    assert result == [(200, b"slow done")]
    assert proc.wait() == 0
    proc.wait_for(says)
    proc.wait_for("stopped")


def test_sigint_stops_gracefully_too(server: StartServer) -> None:
    proc = server("app:application", "--port", "0")
    proc.port()
    proc.signal(signal.SIGINT)
    assert proc.wait() == 0
    proc.wait_for("received SIGINT")


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_serves_https_with_certfile_and_keyfile(server: StartServer, app_dir: Path) -> None:
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-keyout", str(app_dir / "key.pem"),
                    "-out", str(app_dir / "cert.pem")], check=True, capture_output=True,
                   timeout=WAIT)
    proc = server("app:application", "--port", "0", "--certfile", "cert.pem",
                  "--keyfile", "key.pem")
    port = int(proc.wait_for(r"listening on https://127.0.0.1:(\d+)").group(1))
    context = ssl.create_default_context(cafile=str(app_dir / "cert.pem"))
    context.check_hostname = False
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=WAIT)
    try:
        conn.request("GET", "/")
        resp = conn.getresponse()
        assert resp.status == 200 and resp.read().isdigit()
    finally:
        conn.close()


def test_version(app_dir: Path) -> None:
    done = run_cli(app_dir, "--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"cogen {cogen.__version__}"


def test_help_lists_the_flags(app_dir: Path) -> None:
    done = run_cli(app_dir, "-h")
    assert done.returncode == 0
    for flag in ("--port", "--bind", "--workers", "--threads", "--backlog", "--certfile",
                 "--url-prefix", "--trusted-proxy", "--no-access-log", "--log-level",
                 "--keepalive-timeout", "--max-body"):
        assert flag in done.stdout


@pytest.fixture
def busy_port() -> Iterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    yield sock.getsockname()[1]
    sock.close()


BAD_INPUTS = {
    "module does not import": (["nosuchmodule:application"], "cannot import module 'nosuchmodule'"),
    "package does not import": (["nosuchpackage.app:application"],
                                "cannot import module 'nosuchpackage.app'"),
    "missing attribute": (["app:nothing"], "has no attribute 'nothing'"),
    "not callable": (["app:not_callable"], "is not callable"),
    "unknown option": (["app:application", "--frobnicate"], "--frobnicate"),
    "bad port": (["app:application", "--port", "http"], "invalid port 'http'"),
    "bad bind": (["app:application", "--bind", "0.0.0.0:abc"], "'0.0.0.0:abc'"),
    "bad option value": (["app:application", "--backlog", "lots"], "--backlog"),
    "bad size": (["app:application", "--max-body", "huge"], "--max-body"),
    "bad workers": (["app:application", "--workers", "0"], "--workers"),
    "missing certificate": (["app:application", "--certfile", "/nonexistent/cert.pem"],
                            "cannot load the TLS certificate '/nonexistent/cert.pem'"),
    "keyfile alone": (["app:application", "--keyfile", "key.pem"], "--keyfile"),
    "bad proxy": (["app:application", "--trusted-proxy", "not-an-ip"], "not-an-ip"),
    "bad proxy header": (["app:application", "--trusted-proxy-headers", "x-real-ip"],
                         "--trusted-proxy-headers: unknown proxy header 'x-real-ip'"),
    "bad clear flag": (["app:application", "--clear-untrusted-proxy-headers", "maybe"],
                       "--clear-untrusted-proxy-headers"),
    "bad socket mode": (["app:application", "--unix-socket-mode", "rw-rw----"],
                        "argument --unix-socket-mode: expected octal permission bits"),
    "unknown group": (["app:application", "--unix-socket-group", "no-such-group-x"],
                      "no such group 'no-such-group-x'"),
    "bad log level": (["app:application", "--log-level", "loud"], "--log-level"),
}


@pytest.mark.parametrize("args, expected", list(BAD_INPUTS.values()), ids=list(BAD_INPUTS))
def test_bad_input_is_one_line_and_status_2(app_dir: Path, args: list[str],
                                            expected: str) -> None:
    done = run_cli(app_dir, "--port", "0", *args)
    assert_one_error_line(done, expected)


def test_unreadable_certificate(app_dir: Path) -> None:
    (app_dir / "cert.pem").write_text("this is not a certificate\n")
    done = run_cli(app_dir, "app:application", "--port", "0", "--certfile", "cert.pem")
    assert_one_error_line(done, "cannot load the TLS certificate 'cert.pem'")


def test_port_in_use(app_dir: Path, busy_port: int) -> None:
    done = run_cli(app_dir, "app:application", "--port", str(busy_port))
    assert_one_error_line(done, f"cannot listen on 127.0.0.1:{busy_port}")


def test_port_in_use_with_workers(app_dir: Path, busy_port: int) -> None:
    done = run_cli(app_dir, "app:application", "--port", str(busy_port), "--workers", "2")
    assert_one_error_line(done, f"cannot listen on 127.0.0.1:{busy_port}")


def test_bad_module_with_workers(app_dir: Path) -> None:
    done = run_cli(app_dir, "nosuchmodule:application", "--port", "0", "--workers", "2")
    assert_one_error_line(done, "cannot import module 'nosuchmodule'")


FAILING_APPS = {
    "key_error": ("CONFIG = {}\n\n\ndef lookup():\n    return CONFIG['missing']\n\n\nvalue = lookup()\n",
                  "importing module 'key_error' failed: KeyError: 'missing'",
                  ['key_error.py", line 8, in <module>', 'key_error.py", line 5, in lookup'],
                  "KeyError: 'missing'"),
    # an ImportError from the app's own code is the app's failure, not a missing module
    "needs_dep": ("import os\nimport nosuchdependency\n",
                  "importing module 'needs_dep' failed: ModuleNotFoundError: "
                  "No module named 'nosuchdependency'",
                  ['needs_dep.py", line 2, in <module>'],
                  "ModuleNotFoundError: No module named 'nosuchdependency'"),
    # the fixture's broken.py, imported through a module of the app
    "imports_broken": ("import broken\n",
                       "importing module 'imports_broken' failed: RuntimeError: boom at import",
                       ['imports_broken.py", line 1, in <module>', 'broken.py", line 1, in <module>'],
                       "RuntimeError: boom at import"),
}


@pytest.mark.parametrize("workers", ["1", "2"])
@pytest.mark.parametrize("module", list(FAILING_APPS))
def test_an_app_failing_at_import_shows_its_traceback(app_dir: Path, module: str, workers: str) -> None:
    source, error, frames, last = FAILING_APPS[module]
    (app_dir / f"{module}.py").write_text(source)
    done = run_cli(app_dir, f"{module}:application", "--port", "0", "--workers", workers)
    assert_error_with_traceback(done, error, frames, last)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_failing_factory_shows_its_traceback(app_dir: Path, workers: str) -> None:
    (app_dir / "factory.py").write_text("def make_app():\n    return {}['app']\n")
    done = run_cli(app_dir, "factory:make_app", "--call", "--port", "0", "--workers", workers)
    assert_error_with_traceback(done, "calling factory:make_app() failed: KeyError: 'app'",
                                ['factory.py", line 2, in make_app'], "KeyError: 'app'")


def assert_error_with_traceback(done: subprocess.CompletedProcess[str], error: str,
                                frames: list[str], last: str) -> None:
    """The one error line, then the app's traceback: its frames only, none of cogen's or importlib's."""
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2, done.stderr
    assert lines[0] == f"cogen-web: error: {error}", done.stderr
    assert lines[1] == "Traceback (most recent call last):", done.stderr
    assert lines[-1] == last, done.stderr
    file_lines = [line for line in lines if line.startswith("  File ")]
    assert len(file_lines) == len(frames), done.stderr
    for line, frame in zip(file_lines, frames, strict=True):
        assert line.endswith(frame), done.stderr
    assert done.stderr.count("Traceback (most recent call last):") == 1, done.stderr


def assert_one_error_line(done: subprocess.CompletedProcess[str], expected: str) -> None:
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("cogen-web: error:"), lines[0]
    assert expected in lines[0]
    assert done.returncode == 2


@contextlib.contextmanager
def one_liner(tmp_path: Any, source: str) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """Run the script ``source`` (logging to stderr, then ``serve(...)``); yields it and its port.

    The process is killed at the end if it is still running.
    """
    script = tmp_path / "one_liner.py"
    script.write_text("import logging, sys, threading\n"
                      "logging.basicConfig(level=logging.INFO, stream=sys.stderr)\n"
                      "from cogen.web import serve\n" + source)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    proc = subprocess.Popen([sys.executable, str(script)], env=env, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        match = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
        assert match, line
        yield proc, int(match.group(1))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        if proc.stderr is not None:
            proc.stderr.close()


def test_the_serve_one_liner_serves_until_sigterm(tmp_path: Any) -> None:
    """``cogen.web.serve(app, port=0)`` in a script: serves, then stops on SIGTERM."""
    with one_liner(tmp_path,
                   "def app(environ, start_response):\n"
                   "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
                   "    return [b'one-liner']\n"
                   "serve(app, host='127.0.0.1', port=0, grace=2)\n") as (proc, port):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as resp:
            assert resp.read() == b"one-liner"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0


def test_the_serve_one_liner_stops_gracefully_then_at_once_on_a_second_sigterm(
        tmp_path: Any) -> None:
    """The first SIGTERM waits for the request in flight (and says so); the second kills."""
    with one_liner(tmp_path,
                   "never = threading.Event()\n"
                   "def app(environ, start_response):\n"
                   "    print('in the app', file=sys.stderr, flush=True)\n"
                   "    never.wait(60)\n"
                   "    start_response('200 OK', [])\n"
                   "    return [b'']\n"
                   "serve(app, host='127.0.0.1', port=0, threads=2, grace=60)\n") as (proc, port):
        assert proc.stderr is not None
        with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
            client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert proc.stderr.readline() == "in the app\n"
            proc.send_signal(signal.SIGTERM)
            assert "received SIGTERM, shutting down gracefully" in proc.stderr.readline()
            assert proc.poll() is None  # the request in flight holds it
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(15) == -signal.SIGTERM


def test_the_command_raises_the_soft_open_file_limit(tmp_path: Any) -> None:
    """A low soft limit (1024 is common) would cap the connections the server holds."""
    resource = pytest.importorskip("resource")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard <= 256:
        pytest.skip("the hard limit is too low to tell")
    if not os.path.exists("/proc/self/limits"):
        pytest.skip("reads the server's limits from /proc (Linux)")

    def lower() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (128, hard))

    root = str(Path(__file__).resolve().parents[2])
    proc = subprocess.Popen(
        [sys.executable, "-m", "cogen.web", "examples.hello:application", "--port", "0"],
        cwd=root, env=dict(os.environ, PYTHONPATH=root), stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL, text=True, preexec_fn=lower)  # noqa: PLW1509
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert "listening on" in line, line
        with open(f"/proc/{proc.pid}/limits") as limits:
            row = next(r for r in limits if r.startswith("Max open files"))
        assert int(row.split()[3]) > 128
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
            if proc.stderr is not None:
                proc.stderr.close()


def test_ctrl_c_does_not_wait_for_a_connection_that_never_sent_a_byte(server: StartServer) -> None:
    # Issue 18 item 8: browsers open a spare connection and never send on it;
    # the stop waited for it until the header timeout (30 s).
    proc = server("app:application", "--port", "0")
    port = proc.port()
    spare = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
    with spare:
        # the accept loop took the spare connection before this later one
        assert get(port)[0] == 200
        started = time.monotonic()
        proc.signal(signal.SIGINT)
        assert proc.wait() == 0
        assert time.monotonic() - started < 5
        assert spare.recv(100) == b""
