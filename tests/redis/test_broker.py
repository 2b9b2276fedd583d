"""The Redis broker: Signal and PublishSubscribeQueue(name=...) across schedulers and processes."""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from cogen.core.events import AddCoro, OperationTimeout, Signal, Sleep, WaitForSignal
from cogen.core.pubsub import NotSubscribedError, PublishSubscribeQueue
from cogen.core.schedulers import Scheduler
from cogen.redis.broker import BrokerError, RedisBroker
from cogen.testing import SchedulerThread
from tests._waiting import wait_until as _wait_until
from tests.redis._server import RedisServer, free_port

pytestmark = pytest.mark.timeout(60)
ROOT = Path(__file__).resolve().parents[2]


def run_with_broker(broker: Any, fn: Callable[..., Any], *args: Any, timeout: float = 20) -> Any:
    """Run ``fn(*args)`` in a new scheduler with ``broker`` until it finishes; its result."""
    sched = Scheduler(broker=broker)
    try:
        coro = sched.add(fn, *args)
        deadline = time.monotonic() + timeout
        while coro.running:
            assert time.monotonic() < deadline, f"{fn} did not finish"
            sched.run_once(0.2)
        if coro.exception is not None:
            raise coro.exception
        return coro.result
    finally:
        sched.close()


def wait_until(predicate: Callable[[], bool], timeout: float = 15) -> None:
    """Wait for a state another thread or process reaches (bounded)."""
    _wait_until(predicate, timeout, poll=0.01)


@pytest.fixture
def broker_threads(redis_server: RedisServer) -> Iterator[Callable[[], SchedulerThread]]:
    made: list[SchedulerThread] = []

    def make(url: str | None = None) -> SchedulerThread:
        t = SchedulerThread(broker=RedisBroker(url or redis_server.url))
        made.append(t)
        wait_until(lambda: t.sched.broker.is_up is True)
        return t

    yield make
    for t in made:
        t.stop()


def test_signal_in_one_process_wakes_waiters_in_three_others(redis_server: RedisServer) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    children = [subprocess.Popen([sys.executable, "-m", "tests.redis._broker_child", redis_server.url,
                                  "news", "20"], stdout=subprocess.PIPE, cwd=ROOT, env=env)
                for _ in range(3)]
    try:
        for child in children:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == b"ready"

        broker = RedisBroker(redis_server.url)

        def main() -> Generator[Any, Any, Any]:
            while broker.is_up is not True:  # our own listener, so that it is not counted
                yield Sleep(0.01)
            return (yield Signal("news", {"headline": "hello", "n": [1, 2]}, timeout=5))

        result = run_with_broker(broker, main)
        outputs = [json.loads(child.communicate(timeout=20)[0]) for child in children]
    finally:
        for child in children:
            child.kill()
            child.wait()
    assert result == 3  # no waiter here, three other processes reached
    assert outputs == [{"headline": "hello", "n": [1, 2]}] * 3


@pytest.mark.parametrize("value", [b"\x00\xffbytes", "text é", None, 42, 1.5, [1, "a"], {"k": {"n": None}}])
def test_values_cross_as_bytes_str_or_json(broker_threads: Callable[[], SchedulerThread], value: Any) -> None:
    a, b = broker_threads(), broker_threads()
    got: list[Any] = []

    def waiter() -> Generator[Any, Any, None]:
        got.append((yield WaitForSignal("values", timeout=10)))

    def signal() -> Generator[Any, Any, Any]:
        return (yield Signal("values", value))

    a.spawn(waiter)
    wait_until(lambda: "values" in a.sched.sigwait)
    assert b.call(signal) == 1
    wait_until(lambda: bool(got))
    assert got == [value]


def test_local_and_remote_waiters_both_wake_and_the_result_counts_them(
        broker_threads: Callable[[], SchedulerThread]) -> None:
    a, b = broker_threads(), broker_threads()
    got: list[Any] = []

    def waiter(where: str) -> Generator[Any, Any, None]:
        got.append((where, (yield WaitForSignal(b"bytes-name", timeout=10))))

    a.spawn(waiter, "a")

    def main() -> Generator[Any, Any, Any]:
        yield AddCoro(waiter, args=("b1",))
        yield AddCoro(waiter, args=("b2",))
        wait_until(lambda: b"bytes-name" in a.sched.sigwait)
        return (yield Signal(b"bytes-name", "v"))

    assert b.call(main) == 3  # two woken here, plus one other process
    wait_until(lambda: len(got) == 3)
    assert sorted(got) == [("a", "v"), ("b1", "v"), ("b2", "v")]


def test_a_value_that_cannot_cross_raises_type_error_at_the_signal(
        broker_threads: Callable[[], SchedulerThread]) -> None:
    a = broker_threads()

    def main() -> Generator[Any, Any, Any]:
        try:
            yield Signal("bad", object())
        except TypeError as exc:
            return str(exc)
        return None

    message = a.call(main)
    assert message is not None and "cannot cross processes" in message and "object" in message


def test_signals_with_other_names_stay_in_the_process(broker_threads: Callable[[], SchedulerThread]) -> None:
    a, b = broker_threads(), broker_threads()
    key = ("internal", 1)

    def main() -> Generator[Any, Any, Any]:
        return (yield Signal(key, object()))  # not str/bytes: local, any value

    a.spawn(lambda: (yield WaitForSignal(key, timeout=10)))
    wait_until(lambda: key in a.sched.sigwait)
    assert b.call(main) == 0
    assert key in a.sched.sigwait


def test_signal_while_redis_is_down_raises_broker_error_within_its_timeout() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    woken: list[Any] = []

    def waiter() -> Generator[Any, Any, None]:
        woken.append((yield WaitForSignal("down", timeout=10)))

    def main() -> Generator[Any, Any, Any]:
        yield AddCoro(waiter)
        yield AddCoro(lambda: None)  # let the waiter park first
        started = time.monotonic()
        try:
            yield Signal("down", "v", timeout=0.5)
        except BrokerError as exc:
            return str(exc), time.monotonic() - started
        return None

    message, elapsed = run_with_broker(RedisBroker(url, reconnect_backoff=0.05), main)
    assert "reached this process only" in message
    assert elapsed < 2
    assert woken == ["v"]  # the local waiter was woken anyway


def test_listener_survives_a_redis_restart_and_logs_once_per_outage(
        own_redis_server: RedisServer, broker_threads: Callable[..., SchedulerThread],
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="cogen.broker")
    a, b = broker_threads(own_redis_server.url), broker_threads(own_redis_server.url)
    own_redis_server.kill()
    wait_until(lambda: a.sched.broker.is_up is False and b.sched.broker.is_up is False)
    own_redis_server.start()
    wait_until(lambda: a.sched.broker.is_up is True and b.sched.broker.is_up is True)
    got: list[Any] = []
    a.spawn(lambda: got.append((yield WaitForSignal("after", timeout=10))))
    wait_until(lambda: "after" in a.sched.sigwait)
    assert b.call(lambda: (yield Signal("after", "back"))) == 1
    wait_until(lambda: bool(got))
    assert got == ["back"]
    lost = [r for r in caplog.records if "lost Redis" in r.getMessage()]
    back = [r for r in caplog.records if "cross processes again" in r.getMessage()]
    assert len(lost) == 2 and len(back) == 2  # one of each per broker


def test_named_queue_is_shared_in_order_with_late_fetches_and_late_subscribers(
        broker_threads: Callable[[], SchedulerThread]) -> None:
    a, b = broker_threads(), broker_threads()
    qa, qb = PublishSubscribeQueue(name="room1"), PublishSubscribeQueue(name="room1")

    def subscribe(q: PublishSubscribeQueue, key: str) -> Generator[Any, Any, Any]:
        return (yield q.subscribe(key))

    def publish(q: PublishSubscribeQueue, *messages: Any) -> Generator[Any, Any, Any]:
        results = []
        for m in messages:
            results.append((yield q.publish(m)))
        return results

    def fetch(q: PublishSubscribeQueue, key: str, timeout: float = 5) -> Generator[Any, Any, Any]:
        return (yield q.fetch(key, timeout=timeout))

    assert a.call(subscribe, qa, "alice") is True
    assert b.call(subscribe, qb, "alice") is False
    assert b.call(publish, qb, "m1", {"n": 2}, b"m3") == [1, 1, 1]
    assert a.call(subscribe, qa, "bob") is True  # late: sees what comes next
    assert a.call(fetch, qa, "alice") == ["m1", {"n": 2}, b"m3"]
    b.call(publish, qb, "m4")
    assert b.call(fetch, qb, "alice") == ["m4"]  # the next poll, in another process
    assert b.call(fetch, qb, "bob") == ["m4"]
    with pytest.raises(OperationTimeout):
        a.call(fetch, qa, "alice", 0.2)
    assert a.call(lambda: (yield qa.unsubscribe("bob"))) is True
    with pytest.raises(NotSubscribedError):
        b.call(fetch, qb, "bob")


def test_parked_fetch_wakes_on_a_publish_from_another_process(
        broker_threads: Callable[[], SchedulerThread]) -> None:
    a, b = broker_threads(), broker_threads()
    qa, qb = PublishSubscribeQueue(name="room2"), PublishSubscribeQueue(name="room2")
    a.call(lambda: (yield qa.subscribe("c1")))
    got: list[Any] = []
    done = threading.Event()

    def poll() -> Generator[Any, Any, None]:
        got.append((yield qa.fetch("c1", timeout=10)))
        done.set()

    a.spawn(poll)
    wait_until(lambda: bool(a.sched.broker.queue("room2")._waiting))
    b.call(lambda: (yield qb.publish("wake")))
    assert done.wait(10)
    assert got == [["wake"]]


def test_named_queue_keeps_acknowledged_messages_across_a_redis_kill(tmp_path: Path) -> None:
    server = RedisServer(tmp_path, "--appendonly", "yes", "--appendfsync", "always").start()
    try:
        with SchedulerThread(broker=RedisBroker(server.url)) as a:
            q = PublishSubscribeQueue(name="durable")
            a.call(lambda: (yield q.subscribe("k")))
            def publish_five() -> Generator[Any, Any, None]:
                for i in range(5):
                    yield q.publish(i)

            a.call(publish_five)
            server.kill()
            with pytest.raises(BrokerError):
                a.call(lambda: (yield q.publish("while down")))
            server.start()
            a.call(lambda: (yield q.publish(5)))
            assert a.call(lambda: (yield q.fetch("k", timeout=5))) == [0, 1, 2, 3, 4, 5]
    finally:
        server.kill()


def test_scheduler_broker_argument_is_checked() -> None:
    with pytest.raises(ValueError, match="redis://"):
        Scheduler(broker="http://localhost")
    with pytest.raises(TypeError, match="not a broker"):
        Scheduler(broker=object())


def test_waiters_keep_their_own_timeout_while_redis_is_down() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"

    def main() -> Generator[Any, Any, Any]:
        started = time.monotonic()
        try:
            yield WaitForSignal("never", timeout=0.3)
        except OperationTimeout:
            return time.monotonic() - started
        return None

    elapsed = run_with_broker(RedisBroker(url, reconnect_backoff=0.05), main)
    assert elapsed is not None and 0.25 <= elapsed < 2
