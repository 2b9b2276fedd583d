"""PasteDeploy: cogen/web/paste.py and examples/paste.ini."""
from __future__ import annotations

import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cogen.web.paste import PasteConfigError, PasteServer, server_factory
from tests.web._process import REPO, WAIT, ServerProcess, get, subprocess_env

pytestmark = pytest.mark.timeout(60)

loadwsgi = pytest.importorskip("paste.deploy")

EXAMPLE = REPO / "examples" / "paste.ini"
GROUPS = ("paste.server_runner", "paste.server_factory", "paste.app_factory",
          "paste.filter_app_factory")


@pytest.fixture(scope="module")
def cogen_dist(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A directory holding cogen's metadata with pyproject.toml's entry points.

    ``egg:cogen#http`` needs the distribution's entry points. They are taken
    from pyproject.toml itself (not from whatever version is installed), so
    the test checks what the project declares.
    """
    root = tmp_path_factory.mktemp("dist")
    try:
        import tomllib
    except ImportError:  # Python 3.10: use the installed metadata, if any
        from importlib import metadata
        try:
            metadata.distribution("cogen")
        except metadata.PackageNotFoundError:
            pytest.skip("needs Python 3.11 (tomllib) or cogen installed")
        yield root
        return
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    info = root / "cogen-0+test.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: cogen\nVersion: 0+test\n")
    lines = []
    for group in GROUPS:
        lines.append(f"[{group}]")
        lines += [f"{name} = {target}" for name, target in
                  project.get("entry-points", {}).get(group, {}).items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    sys.path.insert(0, str(root))
    try:
        yield root
    finally:
        sys.path.remove(str(root))


def copy_with_port_0(source: Path, directory: Path, **replace: str) -> Path:
    """A copy of an ini file (and hello.py, which it serves) with port 0 instead of 8080."""
    text = source.read_text().replace("port = 8080", "port = 0")
    for old, new in replace.items():
        text = text.replace(old, new)
    target = directory / source.name
    target.write_text(text)
    (directory / "hello.py").write_text((source.parent / "hello.py").read_text())
    return target


class Served:
    """A Paste-loaded server serving ``app`` in a thread."""

    def __init__(self, server: PasteServer, app: Any) -> None:
        self.server = server
        self.app = app
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert server.ready.wait(WAIT), "the server did not start"
        assert self.errors == []

    def _run(self) -> None:
        try:
            self.server(self.app)
        except BaseException as exc:  # noqa: BLE001  (the test reads it)
            self.errors.append(exc)
            self.server.ready.set()

    @property
    def port(self) -> int:
        return int(self.server.addresses[0][1])

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(WAIT)
        assert not self.thread.is_alive()
        assert self.errors == []


def test_example_ini_is_loaded_served_and_requested(cogen_dist: Path, tmp_path: Path) -> None:
    ini = copy_with_port_0(EXAMPLE, tmp_path)
    uri = f"config:{ini}"
    server = loadwsgi.loadserver(uri)
    app = loadwsgi.loadapp(uri)
    assert isinstance(server, PasteServer)
    assert server.options["keepalive_timeout"] == 30.0
    assert server.options["max_body"] == 10 * 1024**2
    assert server.grace == 10.0
    served = Served(server, app)
    try:
        assert get(served.port) == (200, b"Hello, world!\n")
        # off by default, as under cogen-web
        assert [srv.access_log_enabled for srv in server.servers] == [False]
    finally:
        served.stop()


ECHO_INI = """\
[server:main]
use = egg:cogen#{server}
host = 127.0.0.1
port = 0
stream_input = true
threads = 0

[pipeline:main]
pipeline = lazy sync echo

[filter:lazy]
use = egg:cogen#lazy_sr

[filter:sync]
use = egg:cogen#sync_input

[app:echo]
use = egg:cogen#app
app = echo:application
"""

ECHO_APP = """\
def application(environ, start_response):
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return [b"echo: ", body]
"""


@pytest.mark.parametrize("entry", ["http", "wsgi"])
def test_filters_and_app_factory(cogen_dist: Path, tmp_path: Path, entry: str) -> None:
    (tmp_path / "echo.py").write_text(ECHO_APP)
    ini = tmp_path / "echo.ini"
    ini.write_text(ECHO_INI.format(server=entry))
    server = loadwsgi.loadserver(f"config:{ini}")
    app = loadwsgi.loadapp(f"config:{ini}")
    served = Served(server, app)
    try:
        assert get(served.port, "/", method="POST", body=b"x" * 100_000) == (
            200, b"echo: " + b"x" * 100_000)
    finally:
        served.stop()


@pytest.mark.parametrize("key, value, message", [
    ("backlog", "lots", "invalid value 'lots' for option 'backlog'"),
    ("max_body", "huge", "option 'max_body'"),
    ("keepalive_timeout", "-1", "option 'keepalive_timeout'"),
    ("connection_limit", "x", "option 'connection_limit'"),
    ("port", "http", "invalid value 'http' for option 'port'"),
    ("bind", "0.0.0.0:abc", "option 'bind'"),
    ("graceful_timeout", "soon", "option 'graceful_timeout'"),
    ("frobnicate", "1", "unknown server option 'frobnicate'"),
    ("trusted_proxy_headers", "x-real-ip", "unknown proxy header 'x-real-ip'"),
    ("unix_socket_perms", "rw", "option 'unix_socket_perms'"),
])
def test_bad_ini_value_is_a_clear_error(cogen_dist: Path, tmp_path: Path, key: str, value: str,
                                        message: str) -> None:
    ini = tmp_path / "bad.ini"
    ini.write_text(f"[server:main]\nuse = egg:cogen#http\n{key} = {value}\n")
    with pytest.raises(PasteConfigError, match=message.replace("(", r"\(")):
        loadwsgi.loadserver(f"config:{ini}")


def test_server_factory_converts_strings() -> None:
    server = server_factory({}, host="::1", port="0", threads="4", trusted_proxy="10.0.0.1 10.0.0.2",
                            access_log="off", max_header_bytes="32k",
                            trusted_proxy_headers="X-Forwarded-For x-forwarded-proto",
                            clear_untrusted_proxy_headers="no", unix_socket_mode="0o600",
                            unix_socket_group="0")
    assert server.binds == ["[::1]:0"]
    assert server.options == {"threads": 4, "trusted_proxy": ["10.0.0.1", "10.0.0.2"],
                              "access_log": False, "max_header_bytes": 32 * 1024,
                              "trusted_proxy_headers": ["x-forwarded-for", "x-forwarded-proto"],
                              "clear_untrusted_proxy_headers": False, "unix_socket_mode": 0o600,
                              "unix_socket_group": 0}


def test_bind_replaces_host_and_port(tmp_path: Path) -> None:
    server = server_factory({}, bind=f"127.0.0.1:0 unix:{tmp_path}/s.sock")
    assert server.binds == ["127.0.0.1:0", f"unix:{tmp_path}/s.sock"]


def test_app_factory_reports_a_missing_module(cogen_dist: Path, tmp_path: Path) -> None:
    ini = tmp_path / "app.ini"
    ini.write_text("[app:main]\nuse = egg:cogen#app\napp = nosuchmodule:application\n")
    with pytest.raises(PasteConfigError, match="cannot import module 'nosuchmodule'"):
        loadwsgi.loadapp(f"config:{ini}")


BROKEN_APP = """\
import os
import nosuchdependency_of_the_app  # the app's own import that fails


def application(environ, start_response):
    start_response("200 OK", [])
    return [b""]
"""

BROKEN_INI = """\
[server:main]
use = egg:cogen#http
port = 0

[app:main]
use = egg:cogen#app
app = brokenapp:application
"""


def test_app_factory_keeps_the_traceback_of_a_broken_app(cogen_dist: Path, tmp_path: Path) -> None:
    import traceback

    (tmp_path / "brokenapp.py").write_text(BROKEN_APP)
    ini = tmp_path / "broken.ini"
    ini.write_text(BROKEN_INI)
    with pytest.raises(PasteConfigError, match="importing module 'brokenapp' failed") as info:
        loadwsgi.loadapp(f"config:{ini}")
    shown = "".join(traceback.format_exception(info.value))
    assert f'{tmp_path / "brokenapp.py"}", line 2' in shown, shown
    assert "ModuleNotFoundError: No module named 'nosuchdependency_of_the_app'" in shown, shown


def test_python_m_cogen_web_paste_shows_a_broken_apps_traceback(cogen_dist: Path,
                                                                tmp_path: Path) -> None:
    (tmp_path / "brokenapp.py").write_text(BROKEN_APP)
    ini = tmp_path / "broken.ini"
    ini.write_text(BROKEN_INI)
    done = subprocess.run([sys.executable, "-m", "cogen.web.paste", str(ini)], cwd=tmp_path,
                          env=subprocess_env(cogen_dist), capture_output=True, text=True, check=False,
                          timeout=WAIT)
    lines = done.stderr.splitlines()
    assert done.returncode == 2
    assert lines[0].startswith("cogen paste: error: option 'app': importing module 'brokenapp' "
                               "failed: ModuleNotFoundError"), done.stderr
    assert lines[1] == "Traceback (most recent call last):", done.stderr
    assert "    import nosuchdependency_of_the_app  # the app's own import that fails" in lines
    assert "cogen/web" not in done.stderr, done.stderr  # the app's frames only


def test_server_runner_serves_until_sigterm(cogen_dist: Path, tmp_path: Path) -> None:
    (tmp_path / "hello.py").write_text((REPO / "examples" / "hello.py").read_text())
    ini = tmp_path / "runner.ini"
    ini.write_text("[server:main]\npaste.server_runner = cogen.web.paste:server_runner\n"
                   "port = 0\n\n[app:main]\nuse = egg:cogen#app\napp = hello:application\n")
    script = ("import logging, sys; logging.basicConfig(level=logging.INFO);"
              "from paste.deploy import loadserver, loadapp;"
              f"uri = 'config:{ini}';"
              "loadserver(uri)(loadapp(uri))")
    proc = ServerProcess([sys.executable, "-c", script], cwd=tmp_path,
                         env=subprocess_env(cogen_dist))
    try:
        port = proc.port()
        assert get(port) == (200, b"Hello, world!\n")
        proc.signal(signal.SIGTERM)
        assert proc.wait() == 0
    finally:
        proc.close()


def test_python_m_cogen_web_paste_serves_the_example(cogen_dist: Path, tmp_path: Path) -> None:
    ini = copy_with_port_0(EXAMPLE, tmp_path)
    proc = ServerProcess([sys.executable, "-m", "cogen.web.paste", str(ini)], cwd=tmp_path,
                         env=subprocess_env(cogen_dist))
    try:
        port = proc.port()
        assert get(port) == (200, b"Hello, world!\n")
        proc.signal(signal.SIGTERM)
        assert proc.wait() == 0
    finally:
        proc.close()


def test_python_m_cogen_web_paste_bad_value_is_one_line(cogen_dist: Path, tmp_path: Path) -> None:
    ini = copy_with_port_0(EXAMPLE, tmp_path, **{"max_body = 10MB": "max_body = lots"})
    done = subprocess.run([sys.executable, "-m", "cogen.web.paste", str(ini)], cwd=tmp_path,
                          env=subprocess_env(cogen_dist), capture_output=True, text=True, check=False,
                          timeout=WAIT)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2
    assert len(lines) == 1 and "option 'max_body'" in lines[0], done.stderr


PYRAMID_INI = """\
[server:main]
use = egg:cogen#http
listen = 127.0.0.1:0 127.0.0.1:0
unix_socket_perms = 660

[app:main]
use = egg:cogen#app
app = hello:application
"""


def test_waitress_listen_serves_every_address(cogen_dist: Path, tmp_path: Path) -> None:
    """The Pyramid cookiecutter's ini names its addresses with waitress's listen."""
    (tmp_path / "hello.py").write_text((REPO / "examples" / "hello.py").read_text())
    ini = tmp_path / "pyramid.ini"
    ini.write_text(PYRAMID_INI)
    server = loadwsgi.loadserver(f"config:{ini}")
    assert server.binds == ["127.0.0.1:0", "127.0.0.1:0"]
    assert server.options["unix_socket_perms"] == 0o660
    served = Served(server, loadwsgi.loadapp(f"config:{ini}"))
    try:
        ports = [int(addr[1]) for addr in server.addresses]
        assert len(set(ports)) == 2
        for port in ports:
            assert get(port) == (200, b"Hello, world!\n")
    finally:
        served.stop()


def test_listen_star_means_every_interface() -> None:
    import socket
    binds = server_factory({}, listen="*:6543").binds
    assert "0.0.0.0:6543" in binds
    families = {info[0] for info in socket.getaddrinfo(None, 6543, socket.AF_UNSPEC,
                                                        socket.SOCK_STREAM, 0, socket.AI_PASSIVE)}
    assert ("[::]:6543" in binds) == (socket.AF_INET6 in families)


@pytest.mark.parametrize("conf, message", [
    ({"listen": "127.0.0.1:0", "port": "8080"}, "'listen' and option 'host/port'"),
    ({"listen": "127.0.0.1:0", "bind": "127.0.0.1:0"}, "'listen' and option 'bind'"),
    ({"listen": "127.0.0.1:http"}, "invalid value '127.0.0.1:http' for option 'listen'"),
    ({"listen": " "}, "invalid value '' for option 'listen'"),
])
def test_bad_listen_is_a_clear_error(conf: dict[str, str], message: str) -> None:
    with pytest.raises(PasteConfigError, match=message):
        server_factory({}, **conf)


def test_the_paste_extra_installs_pastedeploy_and_the_docs_say_so() -> None:
    tomllib = pytest.importorskip("tomllib")
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(req.lower().startswith("pastedeploy") for req in extras["paste"])
    assert "pip install -e '.[paste]'" in EXAMPLE.read_text()
    assert "pip install -e '.[paste]'" in (REPO / "docs" / "deployment.rst").read_text()


def test_python_m_cogen_web_paste_without_pastedeploy_is_one_line(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from cogen.web import paste
    monkeypatch.setitem(sys.modules, "paste.deploy", None)  # import paste.deploy fails
    assert paste.main([str(EXAMPLE)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "pip install -e '.[paste]'" in err
