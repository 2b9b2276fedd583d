"""The programs in examples/ work as their docstrings say.

Each test starts an example as a subprocess on an ephemeral port (``--port
0``), reads the address from its "listening on" line, talks HTTP to it over
loopback, and stops it with SIGTERM (the graceful path) or, failing that,
SIGKILL. Readiness is the "listening on" line, printed after the socket is
bound and listening: no sleeps.
"""
from __future__ import annotations

import hashlib
import http.client
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parent.parent
LISTENING = re.compile(r"listening on https?://(?P<host>[^\s/]+):(?P<port>\d+)")


class Example:
    """An example program running as a subprocess, its output collected by a thread."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        full_env = dict(os.environ)
        full_env["PYTHONPATH"] = os.pathsep.join(
            [str(ROOT)] + ([full_env["PYTHONPATH"]] if full_env.get("PYTHONPATH") else []))
        full_env["PYTHONUNBUFFERED"] = "1"
        full_env.update(env or {})
        self.proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=full_env,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.output: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.host, self.port = self._wait_listening()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)
            self.lines.put(line)
        self.lines.put(None)

    def wait_for(self, pattern: re.Pattern[str], timeout: float = 20.0) -> re.Match[str]:
        """The first line of output (from now on) matching ``pattern``."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                line = self.lines.get(timeout=max(left, 0.01))
            except queue.Empty:
                line = ""
            if line is None:
                pytest.fail(f"the example exited ({self.proc.wait()}) before printing "
                            f"{pattern.pattern!r}:\n{''.join(self.output)}")
            match = pattern.search(line)
            if match:
                return match
            if time.monotonic() >= deadline:
                pytest.fail(f"no line matching {pattern.pattern!r} in {timeout}s:\n"
                            f"{''.join(self.output)}")

    def _wait_listening(self) -> tuple[str, int]:
        match = self.wait_for(LISTENING)
        host = match["host"].strip("[]")
        return ("127.0.0.1" if host in ("0.0.0.0", "") else host), int(match["port"])

    def connect(self, timeout: float = 30.0) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def request(self, method: str, path: str, body: Any = None,
                headers: dict[str, str] | None = None, timeout: float = 30.0) -> Response:
        """One request on a new connection; the whole response."""
        conn = self.connect(timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return Response(resp.status, dict(resp.getheaders()), resp.read())
        finally:
            conn.close()

    def stop(self) -> int:
        """SIGTERM (graceful), then SIGKILL if it does not exit; returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._reader.join(5)
        return self.proc.returncode


class Response:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = {k.lower(): v for k, v in headers.items()}
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)


Start = Callable[..., Example]


@pytest.fixture
def start() -> Iterator[Start]:
    """Start examples; every one started is stopped at teardown."""
    running: list[Example] = []

    def run(*args: str, env: dict[str, str] | None = None) -> Example:
        example = Example(list(args), env)
        running.append(example)
        return example

    yield run
    for example in running:
        example.stop()


def cogen_web(*args: str) -> list[str]:
    """The argument list of ``cogen-web ARGS --port 0`` (as ``python -m cogen.web``)."""
    return ["-m", "cogen.web", *args, "--port", "0", "--graceful-timeout", "2"]


def in_thread(fn: Any, *args: Any) -> tuple[threading.Thread, list[Any]]:
    """Run ``fn(*args)`` in a thread; the list gets its result (or exception)."""
    out: list[Any] = []

    def target() -> None:
        try:
            out.append(fn(*args))
        except Exception as exc:  # noqa: BLE001 (re-raised in the test's thread)
            out.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, out


def result_of(thread: threading.Thread, out: list[Any], timeout: float = 30.0) -> Any:
    thread.join(timeout)
    assert not thread.is_alive(), "the request did not complete"
    if isinstance(out[0], Exception):
        raise out[0]
    return out[0]


# -- chat/ --------------------------------------------------------------------------------
def test_chat_long_poll_delivers_a_message_to_the_other_client_in_the_room(start: Start) -> None:
    chat = start(*cogen_web("examples.chat.app:application"), env={"CHAT_POLL_TIMEOUT": "2"})
    form = {"Content-Type": "application/x-www-form-urlencoded"}

    page = chat.request("GET", "/")
    assert page.status == 200 and b"cogen chat" in page.body
    assert page.headers["content-type"].startswith("text/html")

    alice = chat.request("POST", "/rooms/lobby/join", urlencode({"name": "alice"}), form).json()
    bob = chat.request("POST", "/rooms/lobby/join", urlencode({"name": "bob"}), form).json()
    carol = chat.request("POST", "/rooms/other/join", urlencode({"name": "carol"}), form).json()
    assert [m["name"] for m in bob["history"]] == ["alice"]

    def poll(room: str, client: str) -> Response:
        return chat.request("GET", f"/rooms/{room}/poll?client={client}")

    # bob's own "joined" is waiting for him; after that his poll parks
    first = poll("lobby", bob["client"])
    assert first.status == 200
    assert [(m["kind"], m["name"]) for m in first.json()["messages"]] == [("joined", "bob")]

    def poll_until_said(room: str, client: str) -> list[dict[str, Any]]:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # a poll answers [] after CHAT_POLL_TIMEOUT
            resp = poll(room, client)
            assert resp.status == 200, resp.body
            said = [m for m in resp.json()["messages"] if m["kind"] == "said"]
            if said:
                return said
        raise AssertionError("no message arrived")

    thread, out = in_thread(poll_until_said, "lobby", bob["client"])
    said = chat.request("POST", "/rooms/lobby/say",
                        urlencode({"client": alice["client"], "text": "hello, bob"}), form)
    assert said.status == 200 and said.json()["woken"] in (0, 1)
    messages = result_of(thread, out)
    assert [(m["name"], m["text"]) for m in messages] == [("alice", "hello, bob")]

    # carol, in another room, got only her own "joined"; then her poll times out empty
    own = poll("other", carol["client"]).json()["messages"]
    assert [(m["kind"], m["name"]) for m in own] == [("joined", "carol")]
    quiet = poll("other", carol["client"])
    assert quiet.status == 200 and quiet.json() == {"messages": []}

    # bob leaves: his subscription is gone
    left = chat.request("POST", "/rooms/lobby/leave", urlencode({"client": bob["client"]}), form)
    assert left.status == 200
    assert poll("lobby", bob["client"]).status == 410
    assert chat.request("GET", "/rooms/lobby/say").status == 405
    assert chat.request("GET", "/rooms/no%20such/poll?client=x").status == 400


def test_chat_over_websocket_beside_long_polling(start: Start) -> None:
    from websockets.sync.client import connect
    chat = start(*cogen_web("examples.chat.app:application"), env={"CHAT_POLL_TIMEOUT": "2"})
    form = {"Content-Type": "application/x-www-form-urlencoded"}

    def join(name: str) -> str:
        return str(chat.request("POST", "/rooms/lobby/join", urlencode({"name": name}), form)
                   .json()["client"])

    alice, bob, carol = join("alice"), join("bob"), join("carol")
    url = f"ws://{chat.host}:{chat.port}/rooms/lobby/ws?client="

    def said(ws: Any) -> list[tuple[str, str]]:
        while True:  # skip the joined/left notices
            messages = json.loads(ws.recv(10))["messages"]
            found = [(m["name"], m["text"]) for m in messages if m["kind"] == "said"]
            if found:
                return found

    with connect(url + alice, open_timeout=10) as a, connect(url + bob, open_timeout=10) as b:
        a.send(json.dumps({"text": "hello over a socket"}))
        assert said(b) == [("alice", "hello over a socket")]
        assert said(a) == [("alice", "hello over a socket")]
        # carol long-polls the same room: the same message reaches her
        deadline = time.monotonic() + 20
        got: list[Any] = []
        while not got and time.monotonic() < deadline:
            resp = chat.request("GET", f"/rooms/lobby/poll?client={carol}")
            got = [m["text"] for m in resp.json()["messages"] if m["kind"] == "said"]
        assert got == ["hello over a socket"]
        # and what she says by POST reaches the sockets
        chat.request("POST", "/rooms/lobby/say", urlencode({"client": carol, "text": "hi"}), form)
        assert said(b) == [("carol", "hi")]
    # closing alice's socket made her leave the room
    assert chat.request("GET", f"/rooms/lobby/poll?client={alice}").status == 410
    assert chat.request("GET", "/rooms/lobby/ws?client=nobody").status == 400


# -- signals.py ---------------------------------------------------------------------------
def test_hello_the_readme_demo_says_hello(start: Start) -> None:
    app = start(*cogen_web("examples.hello:application"))
    got = app.request("GET", "/")
    assert (got.status, got.body) == (200, b"Hello, world!\n")
    assert got.headers["content-length"] == "14"


def test_signals_a_waiting_request_gets_the_value_another_request_sends(start: Start) -> None:
    app = start(*cogen_web("examples.signals:application"))
    waiter, out = in_thread(app.request, "GET", "/wait/news?timeout=30")
    # recipients=1: the sender waits until the waiter is parked, so no race
    sent = app.request("POST", "/send/news?recipients=1", b"cogen is out")
    assert (sent.status, sent.body) == (200, b"woke 1\n")
    got = result_of(waiter, out)
    assert (got.status, got.body) == (200, b"cogen is out\n")

    nobody = app.request("POST", "/send/nobody", b"x")
    assert nobody.body == b"woke 0\n"
    late = app.request("GET", "/wait/never?timeout=0.1")
    assert late.status == 504


# -- static.py ----------------------------------------------------------------------------
def test_static_serves_files_and_refuses_to_leave_the_root(start: Start, tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (tmp_path / "secret.txt").write_bytes(b"SECRET")
    (root / "hello.txt").write_bytes(b"hello, file\n")
    (root / ".hidden").write_bytes(b"SECRET")
    (root / "sub" / "index.html").write_bytes(b"<p>index</p>")
    big = os.urandom(3 * 1024 * 1024 + 17)
    (root / "big.bin").write_bytes(big)
    (root / "escape.txt").symlink_to(tmp_path / "secret.txt")

    app = start(*cogen_web("examples.static:application"), env={"STATIC_ROOT": str(root)})

    hello = app.request("GET", "/hello.txt")
    assert (hello.status, hello.body) == (200, b"hello, file\n")
    assert hello.headers["content-type"].startswith("text/plain")
    assert hello.headers["content-length"] == "12"

    whole = app.request("GET", "/big.bin")  # sent with sendfile by the server
    assert whole.status == 200 and whole.body == big

    head = app.request("HEAD", "/big.bin")
    assert head.status == 200 and head.body == b""
    assert head.headers["content-length"] == str(len(big))

    again = app.request("GET", "/hello.txt",
                        headers={"If-Modified-Since": hello.headers["last-modified"]})
    assert again.status == 304

    assert app.request("GET", "/sub/").body == b"<p>index</p>"
    assert app.request("GET", "/sub").status == 301
    listing = app.request("GET", "/")
    assert listing.status == 200 and b"hello.txt" in listing.body and b".hidden" not in listing.body

    for path in ["/../secret.txt", "/%2e%2e/secret.txt", "/sub/..%2f..%2fsecret.txt",
                 "/sub/%2E%2E/%2E%2E/secret.txt", "/..%5csecret.txt", "/escape.txt",
                 "/.hidden", "//etc/passwd", "/%2fetc/passwd", "/hello.txt%00"]:
        resp = app.request("GET", path)
        assert b"SECRET" not in resp.body, path
        assert resp.status in (400, 404), (path, resp.status)
    assert app.request("POST", "/hello.txt", b"x").status == 405


# -- upload.py ----------------------------------------------------------------------------
def test_upload_streams_and_hashes_a_large_body(start: Start) -> None:
    app = start(*cogen_web("examples.upload:application"))
    data = os.urandom(8 * 1024 * 1024 + 3)
    expected = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}

    put = app.request("PUT", "/", data)  # Content-Length
    assert put.status == 200 and put.json() == expected

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(data), 100_000):
            yield data[i:i + 100_000]

    conn = app.connect()
    try:
        conn.request("POST", "/", body=chunks(), encode_chunked=True)
        resp = conn.getresponse()
        assert resp.status == 200 and json.loads(resp.read()) == expected
        conn.request("POST", "/", body=b"")  # the same keep-alive connection
        resp = conn.getresponse()
        assert json.loads(resp.read())["bytes"] == 0
    finally:
        conn.close()
    assert app.request("GET", "/").status == 200


# -- flask_app.py -------------------------------------------------------------------------
def test_flask_app_runs_blocking_views_in_threads(start: Start) -> None:
    pytest.importorskip("flask")
    app = start(*cogen_web("examples.flask_app:app", "--threads", "4"))

    index = app.request("GET", "/")
    assert index.status == 200
    assert index.json()["hello"] == "world"
    assert index.json()["thread"] != "MainThread"

    echo = app.request("POST", "/echo", b"some body", {"Content-Type": "text/plain"})
    assert echo.json() == {"bytes": 9, "text": "some body"}

    # /hold and /release meet only if they run at the same time, in two threads
    holder, out = in_thread(app.request, "GET", "/hold")
    released = app.request("POST", "/release")
    assert released.json() == {"released": True}
    assert result_of(holder, out).json() == {"released": True}


def test_flask_app_hold_and_release_cannot_meet_in_one_thread(start: Start) -> None:
    """As its docstring says: /hold gives up first, then /release waits in vain."""
    pytest.importorskip("flask")
    app = start(*cogen_web("examples.flask_app:app", "--threads", "1"))
    holder, out = in_thread(app.request, "GET", "/hold?timeout=0.5")
    released = app.request("POST", "/release?timeout=0.5")
    assert result_of(holder, out).json() == {"released": False}
    assert released.json() == {"released": False}
    # nothing left over: the next pair, in a server with two threads, would meet
    assert app.request("POST", "/release?timeout=0").json() == {"released": False}


# -- embedded.py --------------------------------------------------------------------------
def test_embedded_ticker_wakes_long_polls_and_stops_cleanly(start: Start) -> None:
    app = start("examples/embedded.py", "--port", "0", "--interval", "0.1")
    first = app.request("GET", "/tick")
    second = app.request("GET", "/tick")
    assert first.status == second.status == 200
    assert second.json()["tick"] > first.json()["tick"] >= 1
    assert app.request("GET", "/").json()["ticks"] >= second.json()["tick"]
    assert app.stop() == 0
    assert "stopped\n" in app.output
