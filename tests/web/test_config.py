"""Settings from the environment and a config file, through the cogen-web command."""
from __future__ import annotations

import http.client
import signal
import subprocess
import sys
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


def start(started: list[ServerProcess], cwd: Path, *args: str, **env: str) -> ServerProcess:
    proc = ServerProcess(cogen_web(*args), cwd=cwd, env={**subprocess_env(), **env})
    started.append(proc)
    return proc


def request(port: int, path: str, body: bytes | None = None) -> tuple[int, str | None]:
    """(status, Server header) of one request."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT)
    try:
        conn.request("POST" if body else "GET", path, body=body,
                     headers={"Connection": "close"})
        resp = conn.getresponse()
        resp.read()
        return resp.status, resp.getheader("Server")
    finally:
        conn.close()


def test_options_from_the_environment(app_dir: Path, started: list[ServerProcess]) -> None:
    proc = start(started, app_dir, COGEN_WEB_APP="app:application", COGEN_WEB_PORT="0",
                 COGEN_WEB_ACCESS_LOG="yes", COGEN_WEB_MAX_BODY="1k")
    port = proc.port()
    assert request(port, "/")[0] == 200
    assert request(port, "/", b"x" * 2048)[0] == 413
    proc.wait_for(r'"GET / HTTP/1.1" 200')


def test_workers_from_the_environment(app_dir: Path, started: list[ServerProcess]) -> None:
    proc = start(started, app_dir, "app:application", COGEN_WEB_PORT="0", COGEN_WEB_WORKERS="2")
    proc.wait_for("2 workers serving")
    assert get(proc.port())[0] == 200


def test_command_line_beats_environment_beats_file_beats_default(
        app_dir: Path, started: list[ServerProcess]) -> None:
    (app_dir / "cogen.toml").write_text(
        'app = "app:application"\nport = 0\nident = "from-file"\nurl-prefix = "/file"\n'
        'max_body = "1k"\ntrusted_proxy = ["127.0.0.1"]\n')
    proc = start(started, app_dir, "--config", "cogen.toml", "--url-prefix", "/cli",
                 COGEN_WEB_IDENT="from-env", COGEN_WEB_URL_PREFIX="/env")
    port = proc.port()
    # url_prefix: the command line's; ident: the environment's (over the file's)
    assert request(port, "/cli/") == (200, "from-env")
    assert request(port, "/env/")[0] == 404
    assert request(port, "/file/")[0] == 404
    # max_body: only the file sets it (over the 1 GiB default)
    assert request(port, "/cli/", b"x" * 2048)[0] == 413
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0


def test_config_file_from_the_environment(app_dir: Path, started: list[ServerProcess]) -> None:
    (app_dir / "c.toml").write_text('app = "app:application"\nport = 0\nident = "file"\n')
    proc = start(started, app_dir, COGEN_WEB_CONFIG="c.toml")
    assert request(proc.port(), "/") == (200, "file")


def run(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cogen_web(*args), cwd=cwd, env={**subprocess_env(), **env},
                          capture_output=True, text=True, timeout=WAIT, check=False)


def assert_one_error_line(done: subprocess.CompletedProcess[str], *expected: str) -> None:
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("cogen-web: error:"), lines[0]
    for text in expected:
        assert text in lines[0]
    assert done.returncode == 2


BAD_ENVIRONMENTS = {
    "bad workers": ({"COGEN_WEB_WORKERS": "many"}, ["environment COGEN_WEB_WORKERS='many'",
                                                    "invalid number"]),
    "bad size": ({"COGEN_WEB_MAX_BODY": "huge"}, ["COGEN_WEB_MAX_BODY", "expected a size"]),
    "bad port": ({"COGEN_WEB_PORT": "http"}, ["COGEN_WEB_PORT", "invalid port 'http'"]),
    "unknown option": ({"COGEN_WEB_FROBNICATE": "1"}, ["COGEN_WEB_FROBNICATE", "no such option"]),
    "bad log level": ({"COGEN_WEB_LOG_LEVEL": "loud"}, ["COGEN_WEB_LOG_LEVEL", "'loud'"]),
}


@pytest.mark.parametrize("env, expected", list(BAD_ENVIRONMENTS.values()),
                         ids=list(BAD_ENVIRONMENTS))
def test_bad_environment_is_one_line_and_status_2(app_dir: Path, env: dict[str, str],
                                                  expected: list[str]) -> None:
    port = [] if "COGEN_WEB_PORT" in env else ["--port", "0"]  # the command line would win
    assert_one_error_line(run(app_dir, "app:application", *port, **env), *expected)


BAD_FILES = {
    "bad value": ('workers = "many"\n', ["config file 'c.toml': option 'workers'",
                                         "invalid number"]),
    "unknown key": ("frobnicate = 1\n", ["config file 'c.toml'", "no such option 'frobnicate'"]),
    "a list for one value": ("threads = [1, 2]\n", ["option 'threads'", "expected one value"]),
    "a table": ("[ident]\nname = \"x\"\n", ["option 'ident' is a table"]),
    "not TOML": ("port = = 1\n", ["config file 'c.toml' is not valid TOML"]),
    "the file naming a file": ('config = "other.toml"\n', ["no such option 'config'"]),
}


@pytest.mark.parametrize("text, expected", list(BAD_FILES.values()), ids=list(BAD_FILES))
def test_bad_config_file_is_one_line_and_status_2(app_dir: Path, text: str,
                                                  expected: list[str]) -> None:
    (app_dir / "c.toml").write_text(text)
    assert_one_error_line(run(app_dir, "app:application", "--port", "0", "--config", "c.toml"),
                          *expected)


def test_missing_config_file(app_dir: Path) -> None:
    assert_one_error_line(run(app_dir, "app:application", "--config", "nope.toml"),
                          "cannot read the config file 'nope.toml'")


def test_no_application_anywhere(app_dir: Path) -> None:
    assert_one_error_line(run(app_dir, "--port", "0"), "no application", "COGEN_WEB_APP")


def test_toml_on_python_3_10_without_tomli_is_a_clear_error(app_dir: Path) -> None:
    (app_dir / "c.toml").write_text("port = 0\n")
    # As on Python 3.10 without tomli installed: no tomllib, no tomli.
    code = ("import sys; sys.version_info = (3, 10, 0); sys.modules['tomli'] = None; "
            "from cogen.web.cli import main; "
            "sys.exit(main(['app:application', '--config', 'c.toml']))")
    done = subprocess.run([sys.executable, "-c", code], cwd=app_dir, env=subprocess_env(),
                          capture_output=True, text=True, timeout=WAIT, check=False)
    assert_one_error_line(done, "needs the tomli package")


def test_command_settings_have_one_typed_field_per_command_option() -> None:
    import dataclasses

    from cogen.web.config import CommandSettings
    from cogen.web.options import COMMAND_OPTIONS

    assert [field.name for field in dataclasses.fields(CommandSettings)] == [
        opt.name for opt in COMMAND_OPTIONS]
    defaults = CommandSettings.defaults()
    assert all(getattr(defaults, opt.name) == opt.default for opt in COMMAND_OPTIONS)
    with pytest.raises(dataclasses.FrozenInstanceError):
        defaults.workers = 2  # type: ignore[misc]


def test_command_settings_read_the_resolved_values_by_attribute() -> None:
    from cogen.web.cli import settings_from
    from cogen.web.config import CommandSettings

    settings = settings_from(["app:make()", "--workers", "3", "--max-requests", "7",
                              "--graceful-timeout", "off", "-b", "unix:/tmp/x", "-b", ":0"],
                             environ={"COGEN_WEB_STATS_PATH": "/_stats"})
    command = CommandSettings.from_values(settings)
    assert (command.app, command.workers, command.max_requests) == ("app:make()", 3, 7)
    assert command.graceful_timeout is None and command.stats_path == "/_stats"
    assert command.bind == ["unix:/tmp/x", ":0"] and command.blocked_loop_warning == 0.1
