"""The broker option where users start the server: cogen-web, --workers, WSGIServer, PasteDeploy."""
from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cogen.core.broker import LocalOnlyWarning
from cogen.core.events import Signal
from cogen.core.schedulers import Scheduler
from cogen.redis.broker import RedisBroker
from cogen.testing import SchedulerThread
from cogen.web.wsgi import WSGIServer
from tests.redis._server import RedisServer
from tests.test_examples import Start, cogen_web, in_thread, result_of, start  # noqa: F401 (fixture)

pytestmark = pytest.mark.timeout(60)
ROOT = Path(__file__).resolve().parents[2]
WARNING = "reaches the coroutines of this worker only"


def app(environ: dict[str, object], start_response: object) -> list[bytes]:
    return [b""]


def test_signal_from_another_process_wakes_a_request_parked_in_a_worker(
        start: Start, redis_server: RedisServer) -> None:  # noqa: F811
    server = start(*cogen_web("examples.signals:application", "--workers", "3",
                              "--broker", redis_server.url))
    server.wait_for(re.compile(r"3 workers serving"))
    waiters = [in_thread(server.request, "GET", "/wait/crossing?timeout=30") for _ in range(4)]
    # The sender is this test process, not a worker: only the broker can carry
    # its signal. The waiters park at moments this process cannot see, so it
    # signals until every one has answered.
    with SchedulerThread(broker=RedisBroker(redis_server.url)) as sender:
        deadline = time.monotonic() + 20
        while any(t.is_alive() for t, _ in waiters) and time.monotonic() < deadline:
            reached = sender.call(lambda: (yield Signal("signals-example:crossing", "from outside")))
            assert reached >= 0
            waiters[0][0].join(0.05)
    for thread, out in waiters:
        got = result_of(thread, out)
        assert (got.status, got.body) == (200, b"from outside\n")
    assert WARNING not in "".join(server.output)
    started = time.monotonic()
    assert server.stop() == 0
    assert time.monotonic() - started < 5


def test_several_workers_without_a_broker_warn_once_per_worker(start: Start) -> None:  # noqa: F811
    server = start(*cogen_web("examples.signals:application", "--workers", "2"))
    server.wait_for(re.compile(r"2 workers serving"))
    for _ in range(6):
        assert server.request("POST", "/send/nobody", b"x").status == 200
    server.wait_for(re.compile(WARNING))
    server.stop()
    warnings = [line for line in server.output if WARNING in line]
    assert 1 <= len(warnings) <= 2, warnings
    assert "--broker redis://" in warnings[0]


def test_cli_rejects_a_bad_broker_url_with_one_line_and_status_2() -> None:
    proc = subprocess.run([sys.executable, "-m", "cogen.web", "examples.hello:application",
                           "--broker", "http://localhost:6379"], cwd=ROOT, capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "--broker" in lines[0] and "redis://" in lines[0], proc.stderr


def test_wsgiserver_broker_option_with_its_own_or_a_given_scheduler(redis_server: RedisServer) -> None:
    own = WSGIServer(("127.0.0.1", 0), app, broker=redis_server.url)
    try:
        assert isinstance(own.sched.broker, RedisBroker)
    finally:
        own.socket.close()
        own.sched.close()
    sched = Scheduler(broker=LocalOnlyWarning(2))
    first = WSGIServer(("127.0.0.1", 0), app, sched, broker=redis_server.url)
    second = WSGIServer(("127.0.0.1", 0), app, sched, broker=redis_server.url)
    try:
        assert isinstance(sched.broker, RedisBroker)  # the stand-in was replaced, once
        assert first.sched.broker is second.sched.broker
    finally:
        first.socket.close()
        second.socket.close()
        sched.close()
    plain = WSGIServer(("127.0.0.1", 0), app)
    try:
        assert plain.sched.broker is None
    finally:
        plain.socket.close()
        plain.sched.close()


def test_paste_server_factory_takes_the_broker_key(redis_server: RedisServer) -> None:
    from cogen.web import paste

    server = paste.server_factory({}, host="127.0.0.1", port="0", broker=redis_server.url)
    assert server.options["broker"] == redis_server.url
    with pytest.raises(ValueError, match="broker"):
        paste.server_factory({}, host="127.0.0.1", port="0", broker="nope://x")


def test_plain_requests_are_served_while_the_broker_is_down_and_the_outage_is_logged_once(
        start: Start) -> None:  # noqa: F811
    from tests.redis._server import free_port

    server = start(*cogen_web("examples.hello:application", "--broker",
                              f"redis://127.0.0.1:{free_port()}/0"))
    for _ in range(5):
        got = server.request("GET", "/")
        assert (got.status, got.body) == (200, b"Hello, world!\n")
    server.wait_for(re.compile("broker: lost Redis"))
    for _ in range(5):
        assert server.request("GET", "/").status == 200
    started = time.monotonic()
    assert server.stop() == 0  # a graceful stop: the broker does not keep the loop alive
    assert time.monotonic() - started < 5
    assert sum("lost Redis" in line for line in server.output) == 1


def test_paste_server_with_a_broker_returns_after_shutdown(redis_server: RedisServer) -> None:
    import threading

    from cogen.web import paste

    server = paste.server_factory({}, host="127.0.0.1", port="0", broker=redis_server.url,
                                  graceful_timeout="2")
    thread = threading.Thread(target=server, args=(app,), daemon=True)
    thread.start()
    assert server.ready.wait(10)
    assert server.sched is not None and isinstance(server.sched.broker, RedisBroker)
    server.shutdown()
    thread.join(10)
    assert not thread.is_alive()
