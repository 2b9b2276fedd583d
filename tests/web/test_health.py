"""The blocked-loop watchdog and the stats route, through the cogen-web command."""
from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.web._process import ServerProcess, StartServer, cogen_web, get, write_app

pytestmark = pytest.mark.timeout(60)

BLOCKING_APP = '''\
import sys
import time


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/block":
        time.sleep(0.5)  # blocks the event loop
    if path == "/block-twice":
        return twice(environ, start_response)
    if path == "/park":
        return park(environ, start_response)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [path.encode()]


def twice(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    time.sleep(0.3)
    yield environ["cogen"].core.events.Sleep(0)
    time.sleep(0.3)
    yield b"twice"


def park(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    print("parking", file=sys.stderr, flush=True)
    yield environ["cogen"].core.events.Sleep(float(environ["QUERY_STRING"] or 0.3))
    yield b"parked"
'''

WARNING = r"WARNING cogen.core.watchdog: blocked loop"


@pytest.fixture
def server(tmp_path: Path, started: list[ServerProcess]) -> StartServer:
    write_app(tmp_path, "blocking", BLOCKING_APP)

    def start(*args: str) -> ServerProcess:
        proc = ServerProcess(cogen_web("blocking:application", "--port", "0", *args),
                             cwd=tmp_path)
        started.append(proc)
        return proc

    return start


def stop(proc: ServerProcess) -> None:
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0


def test_a_blocking_request_gets_one_warning_with_its_path_and_stack(
        server: StartServer) -> None:
    proc = server()
    port = proc.port()
    assert get(port, "/block") == (200, b"/block")
    line = proc.wait_for(WARNING)
    assert "the request GET /block from 127.0.0.1:" in line.string
    start = proc.lines.index(line.string)
    stack = "\n".join(proc.lines[start:start + 80])
    assert "time.sleep(0.5)  # blocks the event loop" in stack
    assert get(port, "/") == (200, b"/")
    stop(proc)
    assert len([text for text in proc.lines if WARNING in text]) == 1


def test_a_request_blocking_twice_is_warned_about_once(server: StartServer) -> None:
    proc = server("--stats-path", "/_cogen/stats")
    port = proc.port()
    assert get(port, "/block-twice") == (200, b"twice")
    stats = json.loads(get(port, "/_cogen/stats")[1])
    assert stats["total"]["blocked_loop_events"] == 2
    stop(proc)
    assert len([text for text in proc.lines if WARNING in text]) == 1


def test_a_request_that_does_not_block_gets_no_warning(server: StartServer) -> None:
    proc = server()
    port = proc.port()
    for path in ("/", "/park", "/", "/park"):
        assert get(port, path)[0] == 200
    stop(proc)
    assert not [text for text in proc.lines if "blocked loop" in text]


def test_the_watchdog_can_be_turned_off(server: StartServer) -> None:
    proc = server("--blocked-loop-warning", "off")
    assert get(proc.port(), "/block") == (200, b"/block")
    stop(proc)
    assert not [text for text in proc.lines if "blocked loop" in text]


def test_stats_route_is_off_by_default(server: StartServer) -> None:
    proc = server()
    assert get(proc.port(), "/_cogen/stats") == (200, b"/_cogen/stats")  # the app's


def test_stats_route_gives_the_live_figures(server: StartServer) -> None:
    import http.client
    import threading
    proc = server("--stats-path", "/_cogen/stats")
    port = proc.port()
    assert get(port, "/")[0] == 200
    # one request parked in a cogen operation while the figures are read
    parked = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    mark = proc.mark()
    parked.request("GET", "/park?2")
    done = threading.Event()
    result: list[bytes] = []

    def finish() -> None:
        result.append(parked.getresponse().read())
        done.set()

    threading.Thread(target=finish, daemon=True).start()
    proc.wait_for("^parking$", start=mark)
    status, body = get(port, "/_cogen/stats")
    assert status == 200
    stats = json.loads(body)
    (worker,) = stats["workers"]
    assert worker["pid"] == proc.pid
    assert worker["requests_served"] == 1
    assert worker["connections"] == 2  # the parked one and this one
    assert worker["requests_active"] == 2
    assert worker["requests_parked"] == 1
    assert worker["blocked_loop_events"] == 0
    assert stats["total"]["requests_served"] == 1
    assert done.wait(10) and result == [b"parked"]
    parked.close()
    assert get(port, "/_cogen/stats", method="POST", body=b"x")[0] == 405


def test_workers_have_the_watchdog_too(server: StartServer) -> None:
    proc = server("--workers", "2", "--stats-path", "/_cogen/stats")
    port = proc.port()
    proc.wait_for("2 workers serving")
    assert get(port, "/block") == (200, b"/block")
    line = proc.wait_for(WARNING)
    assert "GET /block" in line.string
    assert f"[{proc.pid}]" not in line.string  # a worker's line, not the master's
    stats = json.loads(get(port, "/_cogen/stats")[1])
    assert proc.pid not in [w["pid"] for w in stats["workers"]]


@pytest.mark.parametrize("depth", [0, 1, 2], ids=["app", "sub-coroutine", "sub-sub-coroutine"])
def test_the_watchdog_names_the_request_of_a_step_blocked_in_a_sub_coroutine(live_server: Any,
                                                                             depth: int) -> None:
    """The blocked-loop warning names the request also when a coroutine the app called blocks."""
    import queue

    import requests

    from cogen.core import coroutines
    from cogen.core.coroutines import coroutine

    seen: queue.Queue[Any] = queue.Queue()
    holder: dict[str, Any] = {}

    @coroutine
    def nested(level: int) -> Any:
        if level:
            yield nested(level - 1)
        else:
            # what the watchdog does from its thread while this step blocks
            seen.put(holder["server"].describe_coroutine(coroutines.current))
        if False:
            yield

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [("Content-Type", "text/plain")])
        if depth:
            yield nested(depth - 1)
        else:
            seen.put(holder["server"].describe_coroutine(coroutines.current))
        yield b"ok"

    live = live_server(app)
    holder["server"] = live.server
    assert requests.get(f"{live.url}/blocked?x=1", timeout=10).text == "ok"
    described = seen.get(timeout=10)
    assert described is not None, "the request was not found from the blocked coroutine"
    assert "GET /blocked" in described[1]
