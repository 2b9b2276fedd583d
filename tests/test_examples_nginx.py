"""examples/nginx.conf, the configuration docs/deployment.rst shows, in front
of cogen-web, run against a real nginx.

Each test starts ``cogen-web --trusted-proxy 127.0.0.1`` (the documented
flags) on a free port, then nginx (``daemon off``, its prefix, pid file, temp
directories and error log in ``tmp_path``) with the example file included in
its http block. Only what cannot be the same on a test machine is replaced:
the upstream's port, the listening address (127.0.0.1 and a free port), the
certificate (a self-signed one made here) and the static root; each
replacement must match exactly once, so the test notices when the example
changes shape. Clients connect from 127.0.0.2, so that the client address
the app sees is told apart from nginx's 127.0.0.1.

nginx comes from Debian's package (``.ci/run`` installs it). Without it the
tests are skipped, except in CI (``CI=true``), where they fail.
"""
from __future__ import annotations

import datetime
import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.web._process import REPO, WAIT, ServerProcess, cogen_web, subprocess_env

pytestmark = pytest.mark.timeout(60)

EXAMPLE = REPO / "examples" / "nginx.conf"
CLIENT_ADDR = "127.0.0.2"

APP = '''
import json

SHOWN = ("REMOTE_ADDR", "wsgi.url_scheme", "HTTP_HOST", "SERVER_PORT", "PATH_INFO")


def application(environ, start_response):
    path = environ["PATH_INFO"]
    gate = environ["cogen"]
    events = gate.core.events
    if path == "/poll/wait":                 # a long poll
        yield events.WaitForSignal("news", timeout=20)
        body = gate.result if gate.exception is None else "timed out"
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield body.encode()
    elif path == "/poll/stream":             # a streamed response, in two parts
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"first\\n"
        yield events.WaitForSignal("go", timeout=20)
        yield b"second\\n"
    elif path.startswith("/send/"):          # wake the one waiter on a name, once it waits
        yield events.Signal(path[len("/send/"):], "hello", recipients=1, timeout=20)
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield f"woke {gate.result}".encode()
    else:
        seen = {key: environ.get(key) for key in SHOWN}
        seen.update({k: v for k, v in environ.items() if "FORWARDED" in k})
        start_response("200 OK", [("Content-Type", "application/json")])
        yield json.dumps(seen).encode()
'''


def nginx_binary() -> str:
    """The nginx executable; skips (fails in CI) when there is none."""
    found = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None)
    if found:
        return found
    message = ("nginx is not installed: the documented nginx configuration cannot be tested "
               "(Debian: apt-get install nginx-light; .ci/run installs it)")
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)


def replace_once(text: str, old: str, new: str) -> str:
    count = text.count(old)
    assert count == 1, f"examples/nginx.conf should hold {old!r} exactly once, found {count}"
    return text.replace(old, new)


def self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """A throw-away certificate and key for example.com (PEM files)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "example.com")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def main_config(nginx: str, prefix: Path) -> str:
    """An nginx.conf around the example: everything in ``prefix``, one worker, in the foreground."""
    built = subprocess.run([nginx, "-V"], capture_output=True, text=True, check=False).stderr
    temp = "".join(f"    {module}_temp_path {prefix}/{module}_temp;\n"
                   for module in ("fastcgi", "uwsgi", "scgi")
                   if f"--without-http_{module}_module" not in built)
    # a root master hands its workers to 'nobody', who cannot enter tmp_path
    user = "user root;\n" if os.geteuid() == 0 else ""
    return (f"{user}daemon off;\nworker_processes 1;\npid {prefix}/nginx.pid;\n"
            f"error_log {prefix}/error.log notice;\nerror_log stderr notice;\n"
            f"events {{ worker_connections 256; }}\n"
            f"http {{\n    access_log {prefix}/access.log;\n"
            f"    client_body_temp_path {prefix}/client_body_temp;\n"
            f"    proxy_temp_path {prefix}/proxy_temp;\n{temp}"
            f"    include {prefix}/site.conf;\n}}\n")


class Stack:
    """cogen-web behind nginx, as the docs set them up."""

    def __init__(self, tmp_path: Path) -> None:
        nginx = nginx_binary()
        (tmp_path / "proxied.py").write_text(APP)
        self.cogen = ServerProcess(cogen_web("proxied:application", "--bind", "127.0.0.1:0",
                                             "--trusted-proxy", "127.0.0.1"),
                                   cwd=tmp_path, env=subprocess_env(tmp_path))
        self.nginx: ServerProcess | None = None
        self.upstream_port = self.cogen.port()
        prefix = tmp_path / "nginx"
        prefix.mkdir()
        (tmp_path / "static").mkdir()
        (tmp_path / "static" / "hello.txt").write_text("from nginx\n")
        cert, key = self_signed_cert(prefix)
        self.port = free_port()
        site = EXAMPLE.read_text()
        site = replace_once(site, "server 127.0.0.1:8080;", f"server 127.0.0.1:{self.upstream_port};")
        site = replace_once(site, "listen 443 ssl;", f"listen 127.0.0.1:{self.port} ssl;")
        site = replace_once(site, "# ssl_certificate ...; ssl_certificate_key ...;",
                            f"ssl_certificate {cert}; ssl_certificate_key {key};")
        site = replace_once(site, "root /srv/myapp;", f"root {tmp_path};")
        (prefix / "site.conf").write_text(site)
        (prefix / "nginx.conf").write_text(main_config(nginx, prefix))
        self.error_log = prefix / "error.log"
        self.nginx = ServerProcess([nginx, "-p", f"{prefix}/", "-c", str(prefix / "nginx.conf"),
                                    "-e", "stderr"], cwd=prefix)
        # logged once the master has bound the listening socket and forked
        self.nginx.wait_for("start worker process")
        self.tls = ssl.create_default_context(cafile=str(cert))
        self.tls.check_hostname = False

    def connect(self, timeout: float = WAIT) -> http.client.HTTPSConnection:
        """A client connection to nginx, from 127.0.0.2."""
        return http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout,
                                           context=self.tls, source_address=(CLIENT_ADDR, 0))

    def request(self, path: str, headers: dict[str, str] | None = None,
                method: str = "GET") -> tuple[int, bytes]:
        conn = self.connect()
        try:
            conn.request(method, path, headers={"Host": "shop.example", **(headers or {})})
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def upstream_connections(self) -> set[frozenset[tuple[str, int]]]:
        """The TCP connections to cogen's port that exist now (or linger in TIME_WAIT)."""
        found: set[frozenset[tuple[str, int]]] = set()
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            fields = line.split()
            local, remote, state = fields[1], fields[2], fields[3]
            ends = [(addr, int(port, 16)) for addr, port in (e.split(":") for e in (local, remote))]
            if state != "0A" and self.upstream_port in (ends[0][1], ends[1][1]):
                found.add(frozenset(ends))
        return found

    def close(self) -> None:
        for proc in (self.nginx, self.cogen):
            if proc is not None:
                proc.close()


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    if not Path("/proc/net/tcp").exists():
        pytest.skip("counting upstream connections reads /proc/net/tcp (Linux)")
    started = Stack(tmp_path)
    try:
        yield started
    finally:
        started.close()


def test_the_deployment_docs_include_this_very_file() -> None:
    docs = (REPO / "docs" / "deployment.rst").read_text()
    assert ".. literalinclude:: ../examples/nginx.conf" in docs


SPOOFED = {
    "Forwarded": "for=6.6.6.6;proto=http;host=evil.example",
    "X-Forwarded-For": "6.6.6.6",
    "X-Forwarded-Proto": "http",
    "X-Forwarded-Host": "evil.example",
    "X-Forwarded-Port": "1",
}


@pytest.mark.parametrize("path", ["/echo", "/poll/echo"])
def test_forwarded_headers_reach_the_app_and_spoofed_ones_do_not(stack: Stack, path: str) -> None:
    """Through every proxied location: the client's own proxy headers change nothing."""
    for headers in ({}, SPOOFED):
        status, body = stack.request(path, headers)
        assert status == 200, body
        seen = json.loads(body)
        assert seen["REMOTE_ADDR"] == CLIENT_ADDR
        assert seen["wsgi.url_scheme"] == "https"
        assert seen["HTTP_HOST"] == "shop.example"
        assert seen["PATH_INFO"] == path
        assert seen["SERVER_PORT"] == str(stack.upstream_port)
        assert seen["HTTP_X_FORWARDED_FOR"] == CLIENT_ADDR
        assert seen["HTTP_X_FORWARDED_HOST"] == "shop.example"
        assert "HTTP_FORWARDED" not in seen and "HTTP_X_FORWARDED_PORT" not in seen


def test_upstream_connections_are_kept_alive_and_reused(stack: Stack) -> None:
    # (connections an earlier test left in TIME_WAIT may share the port number)
    before = stack.upstream_connections()
    conns = [stack.connect() for _ in range(3)]
    try:
        for _ in range(10):
            for conn in conns:
                conn.request("GET", "/echo", headers={"Host": "shop.example"})
                resp = conn.getresponse()
                assert resp.status == 200
                resp.read()
    finally:
        for conn in conns:
            conn.close()
    # 30 requests one after the other: one nginx worker, one upstream connection
    opened = stack.upstream_connections() - before
    assert len(opened) == 1, opened


def _in_thread(func: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(func()), daemon=True)
    thread.start()
    return thread, out


def test_a_long_poll_waits_and_gets_the_news(stack: Stack) -> None:
    thread, out = _in_thread(lambda: stack.request("/poll/wait"))
    # the sender waits (in the app) until the long poll is parked
    assert stack.request("/send/news", method="POST") == (200, b"woke 1")
    thread.join(WAIT)
    assert out == [(200, b"hello")]


def test_a_streamed_response_passes_each_part_at_once(stack: Stack) -> None:
    conn = stack.connect()
    try:
        conn.request("GET", "/poll/stream", headers={"Host": "shop.example"})
        resp = conn.getresponse()
        assert resp.status == 200
        # the second part only comes after /send/go: this line came on its own
        assert resp.readline() == b"first\n"
        assert stack.request("/send/go", method="POST") == (200, b"woke 1")
        assert resp.read() == b"second\n"
    finally:
        conn.close()


def test_static_files_come_from_nginx(stack: Stack) -> None:
    assert stack.request("/static/hello.txt") == (200, b"from nginx\n")
