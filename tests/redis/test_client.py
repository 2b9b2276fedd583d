"""cogen.redis against a real redis-server: commands, errors, pipelines, pub/sub, RESP3,
reconnects, timeouts, AUTH, SELECT, Unix sockets, TLS, the pool and URLs."""
from __future__ import annotations

import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from cogen.core.coroutines import coroutine
from cogen.core.events import AddCoro, Join, OperationTimeout, Sleep
from cogen.errors import CogenError
from cogen.redis import (
    AuthenticationError,
    ConnectionError,
    DataError,
    Redis,
    ResponseError,
    TimeoutError,
    parse_url,
)
from cogen.redis.resp import HAS_HIREDIS
from cogen.testing import run_in_scheduler
from tests.redis._server import RedisServer, free_port

pytestmark = pytest.mark.timeout(60)

PARSERS = [False] + ([True] if HAS_HIREDIS else [])


def run(gen_fn: Any, *args: Any) -> Any:
    return run_in_scheduler(coroutine(gen_fn), *args, timeout=20)


@pytest.fixture(params=[2, 3], ids=["resp2", "resp3"])
def protocol(request: pytest.FixtureRequest) -> int:
    return int(request.param)


@pytest.fixture(params=PARSERS, ids=["python-parser", "hiredis"][:len(PARSERS)])
def use_hiredis(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


@pytest.fixture
def client(redis_server: RedisServer, protocol: int, use_hiredis: bool,
           request: pytest.FixtureRequest) -> Generator[Redis, None, None]:
    r = Redis.from_url(redis_server.url, protocol=protocol, use_hiredis=use_hiredis, socket_timeout=10)
    yield r
    r.close()


def key(request: pytest.FixtureRequest, name: str) -> str:
    """A key of this test's own (no glob characters: pub/sub patterns are built from it)."""
    node = "".join(c if c.isalnum() else "_" for c in request.node.name)
    return f"{node}:{name}"


def test_strings(client: Redis, request: pytest.FixtureRequest) -> None:
    k = key(request, "s")

    def main() -> Generator[Any, Any, list[Any]]:
        out = [(yield client.delete(k))]
        out.append((yield client.get(k)))
        out.append((yield client.set(k, "v1")))
        out.append((yield client.set(k, "v2", nx=True)))
        out.append((yield client.set(k, "v3", get=True)))
        out.append((yield client.get(k)))
        out.append((yield client.exists(k, k + "missing")))
        out.append((yield client.delete(k)))
        out.append((yield client.incr(k)))
        out.append((yield client.incr(k, 10)))
        out.append((yield client.decr(k, 2)))
        out.append((yield client.execute("GET", k)))
        out.append((yield client.set(k, b"\x00\xff", ex=100)))
        out.append((yield client.get(k)))
        out.append((yield client.execute("TTL", k)))
        out.append((yield client.ping()))
        return out

    assert run(main) == [0, None, True, None, b"v1", b"v3", 1, 1, 1, 11, 9, b"9", True, b"\x00\xff", 100,
                         True]


def test_async_def_coroutines_await_commands(client: Redis, request: pytest.FixtureRequest) -> None:
    k = key(request, "a")

    async def main() -> Any:
        await client.set(k, 5)
        n = await client.incr(k)
        value = await client.execute("GET", k)
        return n, value

    assert run_in_scheduler(main, timeout=20) == (6, b"6")


def test_lists_and_hashes(client: Redis, request: pytest.FixtureRequest) -> None:
    lk, hk = key(request, "l"), key(request, "h")

    def main() -> Generator[Any, Any, list[Any]]:
        yield client.delete(lk, hk)
        out = [(yield client.rpush(lk, "a", "b", "c"))]
        out.append((yield client.lpush(lk, "z")))
        out.append((yield client.lrange(lk, 0, -1)))
        out.append((yield client.lpop(lk)))
        out.append((yield client.rpop(lk)))
        out.append((yield client.rpop(lk, 5)))
        out.append((yield client.llen(lk)))
        out.append((yield client.lpop(lk)))
        out.append((yield client.hset(hk, "f1", "1", mapping={"f2": "2"})))
        out.append((yield client.hget(hk, "f2")))
        out.append((yield client.hgetall(hk)))
        out.append((yield client.hgetall(hk + "missing")))
        return out

    assert run(main) == [3, 4, [b"z", b"a", b"b", b"c"], b"z", b"c", [b"b", b"a"], 0, None,
                         2, b"2", {b"f1": b"1", b"f2": b"2"}, {}]


def test_error_replies_raise_response_error_and_the_connection_stays_usable(
        client: Redis, request: pytest.FixtureRequest) -> None:
    k = key(request, "e")

    def main() -> Generator[Any, Any, list[Any]]:
        yield client.rpush(k, "x")
        errors = []
        for cmd in (("GET", k), ("NOSUCHCOMMAND", "x"), ("INCR", k + "x", "extra")):
            try:
                yield client.execute(*cmd)
            except ResponseError as exc:
                errors.append(exc.code)
        errors.append((yield client.llen(k)))
        errors.append(client.connection_pool.in_use)
        errors.append(client.connection_pool.idle)
        return errors

    assert run(main) == ["WRONGTYPE", "ERR", "ERR", 1, 0, 1]


def test_bad_argument_raises_data_error_before_anything_is_sent(client: Redis) -> None:
    def main() -> Generator[Any, Any, Any]:
        try:
            yield client.set("k", None)
        except DataError as exc:
            return str(exc), client.connection_pool.idle
        return None

    message, idle = run(main)
    assert "None" in message
    assert isinstance(DataError("x"), (CogenError, TypeError))


def test_pipeline_sends_commands_together_and_returns_results_in_order(
        client: Redis, request: pytest.FixtureRequest) -> None:
    k = key(request, "p")

    def main() -> Generator[Any, Any, Any]:
        yield client.delete(k, k + "l")
        pipe = client.pipeline()
        pipe.set(k, 1).incr(k).get(k).rpush(k + "l", "a", "b").execute_command("LRANGE", k + "l", 0, -1)
        assert len(pipe) == 5
        results = yield pipe.execute()
        pipe.incr(k).lpush(k, "x").get(k)
        with_errors = yield pipe.execute(raise_on_error=False)
        pipe.incr(k).lpush(k, "x")
        try:
            yield pipe.execute()
        except ResponseError as exc:
            raised = exc.code
        empty = yield pipe.execute()
        return results, with_errors, raised, empty

    results, with_errors, raised, empty = run(main)
    assert results == [True, 2, b"2", 2, [b"a", b"b"]]
    assert with_errors[0] == 3 and isinstance(with_errors[1], ResponseError) and with_errors[2] == b"3"
    assert raised == "WRONGTYPE"
    assert empty == []


def test_transaction_pipeline(client: Redis, request: pytest.FixtureRequest) -> None:
    k = key(request, "t")

    def main() -> Generator[Any, Any, Any]:
        yield client.delete(k)
        pipe = client.pipeline(transaction=True)
        results = yield pipe.incr(k).incr(k).get(k).execute()
        pipe.incr(k).execute_command("NOSUCHCOMMAND")
        try:
            yield pipe.execute()
        except ResponseError as exc:
            aborted = str(exc)
        after = yield client.get(k)
        return results, aborted, after

    results, aborted, after = run(main)
    assert results == [1, 2, b"2"]
    assert "aborted" in aborted and "unknown command" in aborted
    assert after == b"2"  # nothing of the aborted transaction ran


def test_pubsub_message_shapes(client: Redis, request: pytest.FixtureRequest) -> None:
    ch = key(request, "ch")

    def main() -> Generator[Any, Any, list[Any]]:
        p = client.pubsub()
        yield p.subscribe(ch)
        yield p.psubscribe(ch[:-2] + "*")
        got = [(yield p.get_message(timeout=5)), (yield p.get_message(timeout=5))]
        receivers = yield client.publish(ch, "hello")
        got.append((yield p.get_message(timeout=5)))
        got.append((yield p.get_message(timeout=5)))
        got.append((yield p.get_message(timeout=0.05)))  # nothing more: None after the timeout
        yield p.unsubscribe(ch)
        got.append((yield p.get_message(timeout=5)))
        yield client.publish(ch, b"\x00bin")
        got.append((yield p.get_message(timeout=5, ignore_subscribe_messages=True)))
        p.close()
        return [receivers, *got]

    chb, pat = ch.encode(), (ch[:-2] + "*").encode()
    assert run(main) == [
        2,
        {"type": "subscribe", "pattern": None, "channel": chb, "data": 1},
        {"type": "psubscribe", "pattern": pat, "channel": pat, "data": 2},
        {"type": "message", "pattern": None, "channel": chb, "data": b"hello"},
        {"type": "pmessage", "pattern": pat, "channel": chb, "data": b"hello"},
        None,
        {"type": "unsubscribe", "pattern": None, "channel": chb, "data": 1},
        {"type": "pmessage", "pattern": pat, "channel": chb, "data": b"\x00bin"},
    ]


def test_streams(client: Redis, request: pytest.FixtureRequest) -> None:
    k = key(request, "x")

    def main() -> Generator[Any, Any, Any]:
        yield client.delete(k)
        id1 = yield client.xadd(k, {"n": 1})
        id2 = yield client.xadd(k, {"n": 2, "who": "b"}, maxlen=1000)
        everything = yield client.xread({k: "0"})
        after_first = yield client.xread({k: id1}, count=10)
        none = yield client.xread({k: id2}, block=50)
        entries = yield client.xrange(k)
        return id1, id2, everything, after_first, none, entries, (yield client.xlen(k))

    id1, id2, everything, after_first, none, entries, n = run(main)
    assert everything == [[k.encode(), [(id1, {b"n": b"1"}), (id2, {b"n": b"2", b"who": b"b"})]]]
    assert after_first == [[k.encode(), [(id2, {b"n": b"2", b"who": b"b"})]]]
    assert none == []
    assert entries == everything[0][1]
    assert n == 2


def test_resp3_hello_gives_resp3_types(redis_server: RedisServer, use_hiredis: bool) -> None:
    r = Redis.from_url(redis_server.url + "?protocol=3", use_hiredis=use_hiredis)

    def main() -> Generator[Any, Any, Any]:
        hello = yield r.execute("HELLO")
        double = yield r.execute("INCRBYFLOAT", "resp3:f", "1.5")
        yield r.delete("resp3:f")
        return hello, double

    hello, double = run(main)
    r.close()
    assert isinstance(hello, dict) and hello[b"proto"] == 3
    assert double == b"1.5"  # a bulk string in both protocols


def test_decode_responses(redis_server: RedisServer, protocol: int) -> None:
    r = Redis.from_url(redis_server.url, decode_responses=True, protocol=protocol)

    def main() -> Generator[Any, Any, Any]:
        yield r.set("dec:k", "été")
        return (yield r.get("dec:k")), (yield r.hgetall("dec:none"))

    assert run(main) == ("été", {})
    r.close()


def test_select_database_from_url_path_and_query(redis_server: RedisServer) -> None:
    in3 = Redis.from_url(redis_server.url[:-1] + "3")
    in3q = Redis.from_url(redis_server.url + "?db=3")
    in0 = Redis.from_url(redis_server.url)

    def main() -> Generator[Any, Any, Any]:
        yield in3.set("select:k", "three")
        return (yield in3q.get("select:k")), (yield in0.get("select:k"))

    assert run(main) == (b"three", None)


def test_unix_socket_url(redis_server: RedisServer) -> None:
    r = Redis.from_url(f"unix://{redis_server.unix_path}?db=2")

    def main() -> Generator[Any, Any, Any]:
        yield r.set("unix:k", "u")
        return (yield r.get("unix:k")), (yield r.execute("CLIENT", "INFO"))

    value, info = run(main)
    assert value == b"u" and b"db=2" in info


def test_command_timeout_raises_timeout_error_and_the_client_recovers(redis_server: RedisServer) -> None:
    r = Redis.from_url(redis_server.url)

    def main() -> Generator[Any, Any, Any]:
        started = time.monotonic()
        try:
            yield r.execute("BLPOP", "timeout:empty", 0, timeout=0.2)
        except TimeoutError as exc:
            caught = exc
        elapsed = time.monotonic() - started
        after = yield r.ping()
        return caught, elapsed, after

    caught, elapsed, after = run(main)
    assert isinstance(caught, OperationTimeout) and isinstance(caught, CogenError)
    assert "BLPOP" in str(caught) and caught.timeout == 0.2
    assert 0.15 <= elapsed < 2
    assert after is True


def test_server_down_raises_connection_error_after_retries(tmp_path: Path) -> None:
    r = Redis(host="127.0.0.1", port=free_port(), retries=2, retry_backoff=0.01)

    def main() -> Generator[Any, Any, Any]:
        started = time.monotonic()
        try:
            yield r.get("k")
        except ConnectionError as exc:
            return exc, time.monotonic() - started
        return None

    exc, elapsed = run(main)
    assert "cannot connect" in str(exc) and isinstance(exc, CogenError)
    assert elapsed < 2


def test_reconnects_after_the_server_restarts(own_redis_server: RedisServer) -> None:
    server = own_redis_server
    r = Redis.from_url(server.url, retry_backoff=0.05, socket_timeout=10)

    def main() -> Generator[Any, Any, Any]:
        yield r.set("k", "before")
        p = r.pubsub()
        yield p.subscribe("ch")
        first = yield p.get_message(timeout=5)
        server.stop()
        server.start()
        value = yield r.get("k")  # the pooled connection is dead: retried on a new one
        yield r.set("k", "after")
        try:
            yield p.get_message(timeout=5)
            broke = False
        except ConnectionError:
            broke = True
        resubscribed = yield p.get_message(timeout=5)
        yield r.publish("ch", "again")
        message = yield p.get_message(timeout=5)
        return first["type"], value, broke, resubscribed["type"], message["data"], (yield r.get("k"))

    assert run(main) == ("subscribe", None, True, "subscribe", b"again", b"after")


def test_password_auth(tmp_path: Path) -> None:
    server = RedisServer(tmp_path, "--requirepass", "s3cret").start()
    try:
        good = Redis.from_url(f"redis://:s3cret@127.0.0.1:{server.port}/0")
        good3 = Redis.from_url(f"redis://:s3cret@127.0.0.1:{server.port}/0?protocol=3")
        wrong = Redis.from_url(f"redis://:nope@127.0.0.1:{server.port}/0")
        none = Redis.from_url(f"redis://127.0.0.1:{server.port}/0")

        def main() -> Generator[Any, Any, Any]:
            out = [(yield good.ping()), (yield good3.ping())]
            for r in (wrong, none):
                try:
                    yield r.ping()
                except AuthenticationError as exc:
                    out.append(str(exc).split()[0])
            return out

        assert run(main) == [True, True, "WRONGPASS", "NOAUTH"]
    finally:
        server.stop()


def test_acl_user_auth(tmp_path: Path, protocol: int) -> None:
    server = RedisServer(tmp_path, "--user", "alice", "on", ">w0nder", "~app:*", "+@all").start()
    try:
        alice = Redis.from_url(f"redis://alice:w0nder@127.0.0.1:{server.port}", protocol=protocol)
        bad = Redis.from_url(f"redis://alice:wrong@127.0.0.1:{server.port}", protocol=protocol)

        def main() -> Generator[Any, Any, Any]:
            yield alice.set("app:k", "v")
            who = yield alice.execute("ACL", "WHOAMI")
            try:
                yield alice.set("other:k", "v")
            except ResponseError as exc:
                denied = exc.code
            try:
                yield bad.ping()
            except AuthenticationError as exc:
                refused = str(exc).split()[0]
            return who, denied, refused

        assert run(main) == (b"alice", "NOPERM", "WRONGPASS")
    finally:
        server.stop()


def test_tls_rediss_url(tmp_path: Path) -> None:
    from tests.core.test_sockets_tls import _cert_with_cryptography

    cert, key_file = _cert_with_cryptography(tmp_path)
    server = RedisServer(tmp_path, tls=(cert, key_file)).start()
    try:
        r = Redis.from_url(f"rediss://127.0.0.1:{server.port}/0?ssl_ca_certs={cert}")
        untrusted = Redis.from_url(f"rediss://127.0.0.1:{server.port}/0", retries=0)

        def main() -> Generator[Any, Any, Any]:
            yield r.set("tls:k", "secret")
            value = yield r.get("tls:k")
            try:
                yield untrusted.ping()
            except ConnectionError as exc:
                return value, str(exc)
            return value, None

        value, error = run(main)
        assert value == b"secret"
        assert error is not None and "certificate" in error.lower()
    finally:
        server.stop()


def test_pool_bounds_connections_and_queues_commands(redis_server: RedisServer) -> None:
    r = Redis.from_url(redis_server.url, max_connections=2)
    peak = [0]

    @coroutine
    def worker(i: int) -> Generator[Any, Any, Any]:
        for _ in range(5):
            value = yield r.execute("ECHO", f"w{i}")
            peak[0] = max(peak[0], r.connection_pool.in_use)
        return value

    def main() -> Generator[Any, Any, Any]:
        coros = []
        for i in range(8):
            coros.append((yield AddCoro(worker, args=(i,))))
        results = []
        for c in coros:
            results.append((yield Join(c)))
        return results, r.connection_pool.in_use, r.connection_pool.idle

    results, in_use, idle = run(main)
    assert results == [f"w{i}".encode() for i in range(8)]
    assert peak[0] <= 2 and in_use == 0 and idle == 2


def test_pool_wait_is_bounded_by_the_command_timeout(redis_server: RedisServer) -> None:
    r = Redis.from_url(redis_server.url, max_connections=1)

    @coroutine
    def hog() -> Generator[Any, Any, Any]:
        try:
            yield r.execute("BLPOP", "pool:empty", 0, timeout=1)
        except TimeoutError:
            return "hog timed out"
        return None

    def main() -> Generator[Any, Any, Any]:
        h = yield AddCoro(hog)
        while r.connection_pool.in_use == 0:  # until the hog holds the only connection
            yield Sleep(0)
        try:
            yield r.execute("PING", timeout=0.1)
        except TimeoutError:
            waited = "timed out"
        return waited, (yield Join(h)), (yield r.ping())

    assert run(main) == ("timed out", "hog timed out", True)


@pytest.mark.parametrize("url", [
    "redis://localhost",
    "redis://localhost:6380/2",
    "redis://user:p%40ss@example.com:6379/5",
    "redis://:onlypass@host",
    "redis://host/notanumber",
    "redis://host/3?db=7",
    "rediss://secure.example:6390/1",
    "redis://[::1]:6379/0",
    "unix:///tmp/redis.sock",
    "unix://user:pw@/var/run/redis.sock?db=4",
    "redis://h?socket_timeout=2.5&socket_connect_timeout=1&max_connections=9&protocol=3",
])
def test_parse_url_agrees_with_redis_py(url: str) -> None:
    redis_connection = pytest.importorskip("redis.connection")
    theirs = redis_connection.parse_url(url)
    cls = theirs.pop("connection_class", None)
    ours = parse_url(url)
    is_ssl = ours.pop("ssl", False)
    assert ours == theirs
    assert is_ssl == (cls is redis_connection.SSLConnection)


@pytest.mark.parametrize(("url", "message"), [
    ("http://localhost", "must specify one of the following schemes"),
    ("redis://h?db=x", "Invalid value for 'db'"),
    ("redis://h?frobnicate=1", "unknown argument 'frobnicate'"),
    ("redis://h:99999", "invalid port"),
])
def test_parse_url_rejects_bad_urls_naming_the_problem(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_url(url)
