"""The chat example across worker processes through the broker: every client sees every message, in order."""
from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

import pytest

from tests.redis._server import RedisServer
from tests.test_examples import Example, Start, cogen_web, start  # noqa: F401 (the fixture)

pytestmark = pytest.mark.timeout(60)

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
CLIENTS = 20
MESSAGES = 100


def _chat_everyone_sees_everything(chat: Example, room: str) -> None:
    joined = [chat.request("POST", f"/rooms/{room}/join", urlencode({"name": f"c{i}"}), FORM).json()
              for i in range(CLIENTS)]
    seen: list[list[str]] = [[] for _ in range(CLIENTS)]
    errors: list[str] = []
    done = threading.Event()

    def poller(i: int) -> None:
        client = joined[i]["client"]
        deadline = time.monotonic() + 45
        while len(seen[i]) < MESSAGES and time.monotonic() < deadline:
            resp = chat.request("GET", f"/rooms/{room}/poll?client={client}")  # a new connection each
            if resp.status != 200:
                errors.append(f"client {i}: {resp.status} {resp.body[:100]!r}")
                return
            seen[i] += [m["text"] for m in resp.json()["messages"] if m["kind"] == "said"]

    threads = [threading.Thread(target=poller, args=(i,), daemon=True) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    sender = joined[0]["client"]
    for n in range(MESSAGES):
        resp = chat.request("POST", f"/rooms/{room}/say", urlencode({"client": sender, "text": f"m{n}"}),
                            FORM)
        assert resp.status == 200, resp.body
    for t in threads:
        t.join(50)
    done.set()
    assert errors == []
    expected = [f"m{n}" for n in range(MESSAGES)]
    for i in range(CLIENTS):
        assert seen[i] == expected, f"client {i} saw {len(seen[i])} messages: {seen[i][:5]}..."


def test_chat_with_three_workers_and_a_broker_delivers_every_message_to_every_client_in_order(
        start: Start, redis_server: RedisServer) -> None:  # noqa: F811
    chat = start(*cogen_web("examples.chat.app:application", "--workers", "3", "--broker", redis_server.url),
                 env={"CHAT_POLL_TIMEOUT": "2"})
    chat.wait_for(re.compile(r"3 workers serving"))
    _chat_everyone_sees_everything(chat, f"workers3-{time.monotonic_ns()}")


class Gunicorn(Example):
    """The example under gunicorn, whose master says "Listening at: http://HOST:PORT"."""

    def _wait_listening(self) -> tuple[str, int]:
        try:
            match = self.wait_for(re.compile(r"Listening at: http://(?P<host>[^\s/]+):(?P<port>\d+)"))
        except BaseException:
            self.proc.kill()  # the constructor fails: nobody else can stop it
            self.proc.wait(10)
            raise
        return match["host"], int(match["port"])


def test_chat_under_gunicorn_with_two_workers_and_cogen_broker(redis_server: RedisServer) -> None:
    gunicorn_config = pytest.importorskip("gunicorn.config")
    # gunicorn 24+ opens a control socket under ~/.gunicorn by default: not in tests
    quiet = ["--no-control-socket"] if any(
        s.name == "control_socket_disable" for s in gunicorn_config.KNOWN_SETTINGS) else []
    chat = Gunicorn(["-m", "gunicorn", "-k", "cogen.web.gunicorn.CogenWorker", "-w", "2",
                     "-b", "127.0.0.1:0", "--graceful-timeout", "2", *quiet,
                     "--env", f"COGEN_BROKER={redis_server.url}", "--env", "CHAT_POLL_TIMEOUT=2",
                     "examples.chat.app:application"])
    try:
        for _ in range(2):
            chat.wait_for(re.compile(r"Booting worker with pid"))
        _chat_everyone_sees_everything(chat, f"gunicorn-{time.monotonic_ns()}")
    finally:
        chat.stop()


def test_chat_survives_redis_killed_and_restarted_without_losing_an_acknowledged_message(
        tmp_path: Path) -> None:
    redis = RedisServer(tmp_path, "--appendonly", "yes", "--appendfsync", "always").start()
    chat = Example(cogen_web("examples.chat.app:application", "--workers", "2", "--broker", redis.url),
                   {"CHAT_POLL_TIMEOUT": "1"})
    try:
        chat.wait_for(re.compile(r"2 workers serving"))
        room, clients, total = f"kill-{time.monotonic_ns()}", 5, 40
        joined = [chat.request("POST", f"/rooms/{room}/join", urlencode({"name": f"k{i}"}), FORM).json()
                  for i in range(clients)]
        seen: list[list[str]] = [[] for _ in range(clients)]
        gone: list[str] = []

        def poller(i: int) -> None:
            deadline = time.monotonic() + 45
            while f"m{total - 1}" not in seen[i] and time.monotonic() < deadline:
                resp = chat.request("GET", f"/rooms/{room}/poll?client={joined[i]['client']}")
                if resp.status == 410:
                    gone.append(f"client {i} lost its subscription")
                    return
                if resp.status == 200:  # 503 while Redis is down: poll again
                    seen[i] += [m["text"] for m in resp.json()["messages"] if m["kind"] == "said"]

        threads = [threading.Thread(target=poller, args=(i,), daemon=True) for i in range(clients)]
        for t in threads:
            t.start()
        refused = 0
        for n in range(total):
            if n == total // 2:
                redis.kill()
            while True:  # say until acknowledged (200); 503 while Redis is down
                resp = chat.request("POST", f"/rooms/{room}/say",
                                    urlencode({"client": joined[0]["client"], "text": f"m{n}"}), FORM)
                if resp.status == 200:
                    break
                assert resp.status == 503, resp.body
                refused += 1
                if refused == 3:
                    redis.start()
        for t in threads:
            t.join(50)
        assert refused >= 3 and gone == []
        expected = [f"m{n}" for n in range(total)]
        for i in range(clients):
            # a say whose reply was lost with the kill may have been stored twice: keep first sightings
            firsts = list(dict.fromkeys(seen[i]))
            assert firsts == expected, f"client {i}: {seen[i]}"
        assert chat.proc.poll() is None, "the server died"
        assert sum("lost Redis" in line for line in chat.output) <= 2  # once per worker
    finally:
        chat.stop()
        redis.kill()


def test_chat_websockets_in_every_worker_get_a_message_published_in_one(
        start: Start, redis_server: RedisServer) -> None:  # noqa: F811
    import json

    from websockets.sync.client import connect

    chat = start(*cogen_web("examples.chat.app:application", "--workers", "3", "--broker", redis_server.url),
                 env={"CHAT_POLL_TIMEOUT": "2"})
    chat.wait_for(re.compile(r"3 workers serving"))
    room = f"ws-{time.monotonic_ns()}"
    clients = [
        chat.request("POST", f"/rooms/{room}/join", urlencode({"name": f"w{i}"}), FORM).json()["client"]
        for i in range(9)
    ]
    url = f"ws://{chat.host}:{chat.port}/rooms/{room}/ws?client="
    # each WebSocket lives in the worker that accepted it; the say comes by POST
    # on a connection of its own, so most sockets are in other workers than it
    from contextlib import ExitStack
    with ExitStack() as stack:
        sockets = [stack.enter_context(connect(url + client, open_timeout=10)) for client in clients]
        said = chat.request("POST", f"/rooms/{room}/say",
                            urlencode({"client": clients[0], "text": "to every worker"}), FORM)
        assert said.status == 200, said.body
        for ws in sockets:
            deadline = time.monotonic() + 20
            texts: list[str] = []
            while not texts and time.monotonic() < deadline:
                messages = json.loads(ws.recv(20))["messages"]
                texts = [m["text"] for m in messages if m["kind"] == "said"]
            assert texts == ["to every worker"]
