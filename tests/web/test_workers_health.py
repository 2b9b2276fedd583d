"""Worker health under --workers: --timeout kills a stuck worker, --max-requests recycles,
the stats route gathers every worker (cogen/web/_heartbeat.py, cogen/web/workers.py)."""
from __future__ import annotations

import http.client
import json
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.web._process import WAIT, ServerProcess, StartServer, cogen_web, get, write_app

pytestmark = pytest.mark.timeout(60)

APP = '''\
import os
import sys


def application(environ, start_response):
    if environ["PATH_INFO"] == "/spin":
        print(f"spinning in {os.getpid()}", file=sys.stderr, flush=True)
        while True:  # a request stuck in a CPU loop
            pass
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
'''


@pytest.fixture
def server(tmp_path: Path) -> Iterator[StartServer]:
    write_app(tmp_path, "app", APP)
    started: list[ServerProcess] = []

    def start(*args: str) -> ServerProcess:
        proc = ServerProcess(cogen_web("app:application", "--port", "0", "--workers", "2",
                                       *args), cwd=tmp_path)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.close()


def test_a_worker_stuck_past_the_timeout_is_killed_and_replaced(server: StartServer) -> None:
    proc = server("--timeout", "2")
    port = proc.port()
    proc.wait_for("2 workers serving")
    stuck = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT)
    stuck.request("GET", "/spin")
    pid = int(proc.wait_for(r"spinning in (\d+)").group(1))
    # the other worker goes on serving meanwhile
    for _ in range(5):
        status, body = get(port)
        assert status == 200 and int(body) != pid
    line = proc.wait_for(rf"ERROR cogen.web.workers: worker {pid} timed out")
    assert "blocked in the request GET /spin from 127.0.0.1:" in line.string
    assert "--timeout 2" in line.string
    with pytest.raises((http.client.HTTPException, ConnectionError)):
        stuck.getresponse()
    stuck.close()
    proc.wait_for(r"worker \d+ serving", start=proc.lines.index(line.string))
    pids = {int(get(port)[1]) for _ in range(20)}
    assert pid not in pids
    errors = [text for text in proc.lines if " ERROR " in text]
    assert len(errors) == 1, errors  # one line, no "died" warning after it
    assert not [text for text in proc.lines if "died" in text]


def test_a_blocked_but_short_request_is_not_killed(server: StartServer) -> None:
    proc = server("--timeout", "5")
    port = proc.port()
    proc.wait_for("2 workers serving")
    for _ in range(3):
        assert get(port)[0] == 200
    assert not [text for text in proc.lines if "timed out" in text]


def test_max_requests_recycles_workers_without_losing_a_request(server: StartServer) -> None:
    proc = server("--max-requests", "50", "--max-requests-jitter", "10")
    port = proc.port()
    proc.wait_for("2 workers serving")
    errors: list[BaseException] = []
    pids: list[int] = []

    def client(count: int) -> None:
        for _ in range(count):
            try:
                status, body = get(port)
                assert status == 200
                pids.append(int(body))
            except BaseException as exc:  # noqa: BLE001  (every failure counts)
                errors.append(exc)

    threads = [threading.Thread(target=client, args=(200,)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(50)
    assert errors == []
    assert len(pids) == 400
    # 400 requests, at most 60 per worker: at least 7 workers served
    assert len(set(pids)) >= 7
    assert proc.wait_count(r"served \d+ requests \(--max-requests\): shutting down", 5)
    assert not [text for text in proc.lines if " ERROR " in text or "died" in text]


def test_stats_route_gathers_every_worker(server: StartServer) -> None:
    proc = server("--stats-path", "/_cogen/stats")
    port = proc.port()
    proc.wait_for("2 workers serving")
    worker_pids = {int(m.group(1)) for m in proc.wait_count(r"worker (\d+) serving", 2)}
    deadline = time.monotonic() + WAIT
    pause = threading.Event()
    while True:
        # each worker's figures reach the others with its heartbeat (within a second)
        stats = json.loads(get(port, "/_cogen/stats")[1])
        seen = {w["pid"] for w in stats["workers"]}
        if seen == worker_pids or time.monotonic() > deadline:
            break
        pause.wait(0.05)
    assert seen == worker_pids
    assert stats["total"]["requests_served"] == sum(w["requests_served"]
                                                    for w in stats["workers"])
    assert re.search(r"listening on", "\n".join(proc.lines))


def test_heartbeat_directories_of_killed_masters_are_removed(server: StartServer) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True, timeout=WAIT)
    stale = Path(tempfile.gettempdir()) / f"cogen-web-{int(dead.stdout)}-test"
    stale.mkdir()
    (stale / "123.json").write_text("{}")
    proc = server()
    proc.wait_for("2 workers serving")
    assert not stale.exists()
    mine = list(Path(tempfile.gettempdir()).glob(f"cogen-web-{proc.pid}-*"))
    assert len(mine) == 1
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0
    assert not mine[0].exists()
