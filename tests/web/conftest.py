"""Fixtures for the WSGI server tests: a live server and raw-socket clients.

- ``live_server``: a factory ``live_server(app, **options)`` that starts a
  :class:`~cogen.web.wsgi.WSGIServer` on 127.0.0.1, port 0 (or ``bind=``),
  on its own :class:`~cogen.core.schedulers.Scheduler` in a background
  thread. At teardown it is stopped with
  ``sched.call_soon_threadsafe(server.shutdown, 0)``, the thread joined and
  the scheduler closed; the teardown fails if the loop thread, a server
  thread or a socket outlived it.
- ``raw``: a factory of :class:`RawClient` (a blocking socket with a
  response reader) connected to a live server; all closed at teardown.
- ``app_dir``: a temporary directory holding the test app ``app.py``
  (:func:`tests.web._process.write_app`), for tests that start ``cogen-web``.
- ``started``: a list to put the :class:`~tests.web._process.ServerProcess`
  objects a test starts in; each is closed at teardown.

The helpers (:class:`RawClient`, :class:`Response`, :func:`recording_app`)
are imported by the test modules from here.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cogen.core.schedulers import Scheduler
from cogen.web.wsgi import WSGIServer
from tests.web._process import ServerProcess, write_app

#: Seconds any single blocking client operation may take before a test fails.
CLIENT_TIMEOUT = 10.0


def _socket_fds() -> set[int]:
    """The descriptors of this process that are sockets (Linux; empty elsewhere)."""
    found = set()
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return found
    for name in names:
        try:
            if os.readlink(f"/proc/self/fd/{name}").startswith("socket:"):
                found.add(int(name))
        except OSError:
            pass
    return found


class LiveServer:
    """A WSGIServer running on a scheduler in a background thread.

    Attributes:
        server, sched, thread: what runs.
        host, port, address: where it listens (``address`` as from getsockname).
        url: ``http://host:port`` (TCP only).
        loop_errors: exceptions that escaped ``sched.run()``.
    """

    def __init__(self, app: Callable[..., Any], bind: Any = ("127.0.0.1", 0),
                 **options: Any) -> None:
        options.setdefault("access_log", False)
        self.sched = Scheduler()
        try:
            self.server = WSGIServer(bind, app, self.sched, **options)
        except BaseException:
            self.sched.close()
            raise
        self.address = self.server.address
        if isinstance(self.address, tuple):
            self.host, self.port = self.address[0], self.address[1]
            host = f"[{self.host}]" if ":" in self.host else self.host
            self.url = f"http://{host}:{self.port}"
        else:
            self.host, self.port, self.url = "", 0, ""
        self.loop_errors: list[BaseException] = []
        self.server.start()
        self.thread = threading.Thread(target=self._run, name="cogen-test-loop", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.sched.run()
        except BaseException as exc:  # noqa: BLE001 - reported at teardown
            self.loop_errors.append(exc)

    def call(self, fn: Callable[..., Any], *args: Any, timeout: float = CLIENT_TIMEOUT) -> Any:
        """Run ``fn(*args)`` on the loop thread and return its result (or raise its error)."""
        done = threading.Event()
        box: dict[str, Any] = {}

        def run() -> None:
            try:
                box["value"] = fn(*args)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
                box["error"] = exc
            finally:
                done.set()

        self.sched.call_soon_threadsafe(run)
        assert done.wait(timeout), f"the loop did not run {fn!r} within {timeout}s"
        if "error" in box:
            raise box["error"]
        return box.get("value")

    def add(self, coro: Any, *args: Any) -> Any:
        """Add a coroutine to the server's scheduler from the test thread; returns it."""
        return self.call(lambda: self.sched.add(coro, *args))

    def shutdown(self, grace: float | None = 0, timeout: float = CLIENT_TIMEOUT) -> None:
        """Ask for a graceful shutdown and wait for ``sched.run()`` to return."""
        if self.thread.is_alive():
            self.sched.call_soon_threadsafe(self.server.shutdown, grace)
            self.thread.join(timeout)

    def close(self) -> None:
        """Stop everything; raise if the loop did not stop by itself."""
        self.shutdown(0)
        stuck = self.thread.is_alive()
        if stuck:  # pragma: no cover - a failure; still free the resources
            self.sched.stop()
            self.thread.join(CLIENT_TIMEOUT)
        self.sched.close()
        assert not stuck, "sched.run() did not return after server.shutdown(0)"
        assert not self.loop_errors, f"the loop raised: {self.loop_errors!r}"
        assert self.server.socket.fileno() == -1, "the listening socket was left open"
        assert self.server.connections == 0, "connections left open after shutdown"


class Response:
    """One HTTP response read by :meth:`RawClient.response`."""

    def __init__(self, version: str, status: int, reason: str, headers: list[tuple[str, str]],
                 body: bytes, raw_head: bytes) -> None:
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body
        self.raw_head = raw_head

    def header(self, name: str, default: str | None = None) -> str | None:
        """The value of the header ``name`` (case-insensitive), joined with ', ' if repeated."""
        values = [v for n, v in self.headers if n.lower() == name.lower()]
        return ", ".join(values) if values else default

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.headers!r} body={self.body[:80]!r}>"


class RawClient:
    """A blocking TCP (or Unix) client that speaks raw bytes and reads responses."""

    def __init__(self, address: Any, family: int = socket.AF_INET,
                 timeout: float = CLIENT_TIMEOUT, rcvbuf: int | None = None,
                 recv_size: int = 262144) -> None:
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        if rcvbuf is not None:  # (before connect: it sets the TCP window offered)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(address)
        self.buf = bytearray()
        self.recv_size = recv_size

    def send(self, data: bytes) -> RawClient:
        self.sock.sendall(data)
        return self

    def _fill(self) -> bool:
        """Receive more into buf; False at EOF (a reset counts as EOF)."""
        try:
            data = self.sock.recv(self.recv_size)
        except (ConnectionResetError, BrokenPipeError):
            return False
        if not data:
            return False
        self.buf += data
        return True

    def _take(self, n: int) -> bytes:
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def _read_line(self) -> bytes:
        while b"\r\n" not in self.buf:
            if not self._fill():
                raise EOFError(f"connection closed mid-line; got {self.buf[:200]!r}")
        line = self._take(self.buf.index(b"\r\n") + 2)
        return line[:-2]

    def _read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self._fill():
                raise EOFError(f"connection closed with {n - len(self.buf)} body bytes missing")
        return self._take(n)

    def response(self, method: str = "GET", interim: bool = False) -> Response:
        """Read one response; 1xx are skipped unless ``interim``.

        Raises EOFError if the connection closes before a complete response.
        """
        while True:
            while b"\r\n\r\n" not in self.buf:
                if not self._fill():
                    raise EOFError(f"connection closed before a response head; got {self.buf!r}")
            head = self._take(self.buf.index(b"\r\n\r\n") + 4)[:-4]
            lines = head.split(b"\r\n")
            version, _, rest = lines[0].decode("latin-1").partition(" ")
            code, _, reason = rest.partition(" ")
            assert version.startswith("HTTP/1."), f"bad status line {lines[0]!r}"
            assert code.isdigit() and len(code) == 3, f"bad status line {lines[0]!r}"
            headers = []
            for line in lines[1:]:
                name, colon, value = line.decode("latin-1").partition(":")
                assert colon and name and name == name.strip(), f"bad header line {line!r}"
                headers.append((name, value.strip()))
            status = int(code)
            if 100 <= status < 200 and not interim:
                continue
            resp = Response(version, status, reason, headers, b"", head + b"\r\n\r\n")
            break
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            return resp
        length = resp.header("content-length")
        if (resp.header("transfer-encoding") or "").lower() == "chunked":
            parts = []
            while True:
                size = int(self._read_line().split(b";")[0], 16)
                if not size:
                    while self._read_line():
                        pass
                    break
                parts.append(self._read_exact(size))
                assert self._read_exact(2) == b"\r\n", "chunk not followed by CRLF"
            resp.body = b"".join(parts)
        elif length is not None:
            resp.body = self._read_exact(int(length))
        else:
            while self._fill():
                pass
            resp.body = self._take(len(self.buf))
        return resp

    def request(self, data: bytes, method: str = "GET") -> Response:
        """Send ``data`` and read one response."""
        self.send(data)
        return self.response(method)

    def read_all(self) -> bytes:
        """Everything until the server closes (buffered bytes included)."""
        while self._fill():
            pass
        return self._take(len(self.buf))

    def is_closed(self, timeout: float = 5.0) -> bool:
        """True if the server closes within ``timeout`` without sending anything more."""
        self.sock.settimeout(timeout)
        try:
            if self.buf:
                return False
            try:
                data = self.sock.recv(1)
            except (ConnectionResetError, BrokenPipeError):
                return True
            except TimeoutError:
                return False
            if data:
                self.buf += data
                return False
            return True
        finally:
            self.sock.settimeout(CLIENT_TIMEOUT)

    def close(self) -> None:
        self.sock.close()


def get(path: str = "/", host: str = "x", version: str = "1.1", headers: str = "") -> bytes:
    """A GET request's bytes; ``headers`` is extra raw header lines, each ending in CRLF."""
    host_line = f"Host: {host}\r\n" if host is not None else ""
    return f"GET {path} HTTP/{version}\r\n{host_line}{headers}\r\n".encode("latin-1")


def recording_app(seen: list[dict[str, Any]], body: bytes = b"ok") -> Callable[..., Any]:
    """A plain app that records each environ it serves and answers ``body``.

    It reads the request body (``wsgi.input.read(n)``) and keeps it under
    ``environ['test.body']``.
    """
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        environ["test.body"] = environ["wsgi.input"].read(length) if length else b""
        seen.append(dict(environ))
        start_response("200 OK", [("Content-Type", "text/plain"),
                                  ("Content-Length", str(len(body)))])
        return [body]
    return app


@pytest.fixture
def live_server() -> Iterator[Callable[..., LiveServer]]:
    """Factory: ``live_server(app, bind=..., **options)`` → a running :class:`LiveServer`.

    Every server made is stopped at teardown; the teardown fails if a thread
    or a socket it created is left behind.
    """
    threads_before = set(threading.enumerate())
    fds_before = _socket_fds()
    made: list[LiveServer] = []

    def make(app: Callable[..., Any], **options: Any) -> LiveServer:
        live = LiveServer(app, **options)
        made.append(live)
        return live

    yield make
    errors = []
    for live in made:
        try:
            live.close()
        except AssertionError as exc:
            errors.append(str(exc))
    # worker threads of a thread pool finish shortly after the pool is shut down
    deadline = time.monotonic() + 5.0
    while True:
        leaked_threads = [t for t in threading.enumerate()
                          if t not in threads_before and t.is_alive()]
        if not leaked_threads or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    if leaked_threads:
        errors.append(f"threads left running: {leaked_threads!r}")
    leaked_fds = _socket_fds() - fds_before
    if leaked_fds:
        errors.append(f"sockets left open: {sorted(leaked_fds)}")
    assert not errors, "; ".join(errors)


@pytest.fixture
def raw(live_server: Callable[..., LiveServer]) -> Iterator[Callable[..., RawClient]]:
    """Factory: ``raw(live_server_or_address)`` → a connected :class:`RawClient`.

    Depends on ``live_server`` so that the clients are closed before its
    leak checks run.
    """
    made: list[RawClient] = []

    def make(target: Any, family: int | None = None) -> RawClient:
        address = target.address if isinstance(target, LiveServer) else target
        if family is None:
            if isinstance(address, str):
                family = socket.AF_UNIX
            elif ":" in address[0]:
                family = socket.AF_INET6
            else:
                family = socket.AF_INET
        client = RawClient(address[:2] if isinstance(address, tuple) else address, family)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    """A temporary directory with the test app (``app:application`` and friends) in it."""
    write_app(tmp_path)
    return tmp_path


@pytest.fixture
def started() -> Iterator[list[ServerProcess]]:
    """The server processes a test starts (it appends them); each is closed at teardown."""
    procs: list[ServerProcess] = []
    yield procs
    for proc in procs:
        proc.close()


@pytest.fixture
def tls_server_options(tmp_path: Any) -> dict[str, Any]:
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", str(tmp_path / "key.pem"),
                    "-out", str(tmp_path / "cert.pem")], check=True, capture_output=True,
                   timeout=CLIENT_TIMEOUT)
    return {"certfile": str(tmp_path / "cert.pem"), "keyfile": str(tmp_path / "key.pem")}


@pytest.fixture(scope="module")
def django_app(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A Django project's WSGI app (tests/web/django_isolation), with its table of five rows."""
    pytest.importorskip("django")
    import django
    from django.conf import settings

    db = Path(tmp_path_factory.mktemp("django")) / "db.sqlite3"
    if not settings.configured:
        settings.configure(
            DEBUG=False, SECRET_KEY="test", ALLOWED_HOSTS=["*"], USE_TZ=True,
            ROOT_URLCONF="tests.web.django_isolation.urls",
            INSTALLED_APPS=["tests.web.django_isolation.apps.IsolationConfig"],
            DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(db)}},
            MIDDLEWARE=[],
        )
        django.setup()
    from django.core.wsgi import get_wsgi_application
    from django.db import connection

    from tests.web.django_isolation.models import Row

    with connection.schema_editor() as editor:
        editor.create_model(Row)
    Row.objects.bulk_create([Row(n=k) for k in range(5)])
    connection.close()
    yield get_wsgi_application()
    with connection.schema_editor() as editor:
        editor.delete_model(Row)
    connection.close()
