"""Binding: IPv4 and IPv6 loopback, Unix sockets, a socket handed in, and the
bind address parser."""
from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from cogen.web.wsgi import parse_bind

from .conftest import get, recording_app

pytestmark = pytest.mark.timeout(60)


def _ipv6_loopback_works() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.fixture
def short_tmp() -> Iterator[str]:
    """A short temporary directory: Unix socket paths are limited to ~100 bytes."""
    path = tempfile.mkdtemp(prefix="cogen-", dir="/tmp" if os.path.isdir("/tmp") else None)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.mark.skipif(not _ipv6_loopback_works(), reason="no IPv6 loopback here")
@pytest.mark.parametrize("bind", [("::1", 0), "[::1]:0"], ids=["tuple", "string"])
def test_ipv6_loopback(live_server: Any, raw: Any, bind: Any) -> None:
    seen: list[dict[str, Any]] = []
    live = live_server(recording_app(seen), bind=bind)
    assert live.server.socket.family == socket.AF_INET6
    assert live.url.startswith("http://[::1]:")
    assert requests.get(live.url + "/six", timeout=10).status_code == 200
    resp = raw(live).request(get("/raw", host="[::1]"))
    assert resp.status == 200
    assert seen[0]["REMOTE_ADDR"] == "::1"
    assert seen[0]["SERVER_PORT"] == str(live.port)
    assert seen[1]["HTTP_HOST"] == "[::1]"


@pytest.mark.parametrize("form", ["unix:", ""], ids=["unix-prefix", "bare-path"])
def test_unix_socket(live_server: Any, raw: Any, short_tmp: str, form: str) -> None:
    path = os.path.join(short_tmp, "web.sock")
    seen: list[dict[str, Any]] = []
    live = live_server(recording_app(seen), bind=form + path)
    assert live.server.socket.family == socket.AF_UNIX
    client = raw(path)
    for i in range(2):
        assert client.request(get(f"/u{i}")).status == 200
    env = seen[0]
    assert env["PATH_INFO"] == "/u0"
    assert isinstance(env["SERVER_NAME"], str) and env["SERVER_NAME"]
    assert isinstance(env["SERVER_PORT"], str)
    assert isinstance(env["REMOTE_ADDR"], str)
    client.close()
    live.shutdown(1)
    assert not os.path.exists(path)


def test_unix_socket_replaces_a_stale_socket_file(live_server: Any, raw: Any,
                                                  short_tmp: str) -> None:
    path = os.path.join(short_tmp, "stale.sock")
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(path)
    stale.close()  # the file stays, nobody listens
    live = live_server(recording_app([]), bind=f"unix:{path}")
    assert raw(path).request(get("/")).status == 200
    live.shutdown(1)


def test_unix_socket_refuses_to_replace_a_regular_file(short_tmp: str) -> None:
    from cogen.core.schedulers import Scheduler
    from cogen.web.wsgi import WSGIServer
    path = os.path.join(short_tmp, "not-a-socket")
    with open(path, "w") as f:
        f.write("keep me")
    sched = Scheduler()
    try:
        with pytest.raises(OSError):
            WSGIServer(f"unix:{path}", recording_app([]), sched)
    finally:
        sched.close()
    with open(path) as f:
        assert f.read() == "keep me"


def test_trusted_proxy_over_a_unix_socket(live_server: Any, raw: Any, short_tmp: str) -> None:
    path = os.path.join(short_tmp, "proxy.sock")
    seen: list[dict[str, Any]] = []
    live_server(recording_app(seen), bind=f"unix:{path}", trusted_proxy=["unix"])
    headers = "X-Forwarded-For: 192.0.2.1\r\nX-Forwarded-Proto: https\r\n"
    assert raw(path).request(get("/", headers=headers)).status == 200
    assert seen[0]["REMOTE_ADDR"] == "192.0.2.1"
    assert seen[0]["wsgi.url_scheme"] == "https"


def test_a_listening_socket_handed_in(live_server: Any, raw: Any) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    port = sock.getsockname()[1]
    live = live_server(recording_app([]), bind=sock)
    assert live.port == port
    assert raw(live).request(get("/")).status == 200


@pytest.mark.parametrize("text,expected", [
    ("127.0.0.1:8080", (socket.AF_INET, ("127.0.0.1", 8080))),
    (":8080", (socket.AF_INET, ("0.0.0.0", 8080))),
    ("[::1]:80", (socket.AF_INET6, ("::1", 80))),
    (("::1", 0), (socket.AF_INET6, ("::1", 0))),
    ("unix:/tmp/x.sock", (socket.AF_UNIX, "/tmp/x.sock")),
    ("/tmp/y.sock", (socket.AF_UNIX, "/tmp/y.sock")),
])
def test_parse_bind(text: Any, expected: Any) -> None:
    assert parse_bind(text) == expected


@pytest.mark.parametrize("text", ["localhost", "host:abc", "host:70000", "[::1]80", "", 8080])
def test_parse_bind_rejects_nonsense_naming_it(text: Any) -> None:
    with pytest.raises(ValueError, match="bind|port"):
        parse_bind(text)
