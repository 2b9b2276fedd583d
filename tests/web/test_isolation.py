"""Request isolation: nothing one request sets is seen by another.

Each app streams a body in which every chunk re-reads the request's own
state (a framework's request context, a thread-local, a ContextVar), so a
response that picked up another request's state, or lost its own, differs
from the bytes expected for its request id. Every app runs in both modes:
inline (``threads=0``, all requests on the loop thread, each in its own
context) and ``threads=4`` (each response on one pool thread from the app
call to ``close()``). 8 concurrent keep-alive clients make 50 requests each.
"""
from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from tests.web.conftest import CLIENT_TIMEOUT

CLIENTS = 8
REQUESTS = 50
MODES = [pytest.param(0, id="inline"), pytest.param(4, id="threads4")]

request_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_var", default=None)


def hammer(base: str, path: str, expected: Callable[[str], bytes]) -> list[str]:
    """CLIENTS clients x REQUESTS requests of ``path?id=...``; the mismatches found."""
    def client(c: int) -> list[str]:
        bad = []
        with requests.Session() as session:
            for i in range(REQUESTS):
                rid = f"c{c}r{i}"
                sep = "&" if "?" in path else "?"
                resp = session.get(f"{base}{path}{sep}id={rid}", timeout=CLIENT_TIMEOUT)
                want = expected(rid)
                if resp.status_code != 200 or resp.content != want:
                    bad.append(f"{rid}: {resp.status_code} {resp.content[:120]!r} != {want[:120]!r}")
        return bad

    with ThreadPoolExecutor(CLIENTS) as pool:
        return [line for found in pool.map(client, range(CLIENTS)) for line in found]


def lines(rid: str, n: int = 5) -> bytes:
    return b"".join(f"{rid}:{rid}:{k}\n".encode() for k in range(n))


# -- Flask ----------------------------------------------------------------------------
def flask_app() -> Any:
    flask = pytest.importorskip("flask")
    app = flask.Flask("isolation")

    @app.route("/stream")
    def stream() -> Any:
        flask.g.rid = flask.request.args["id"]
        use_op = "op" in flask.request.args

        def body() -> Iterator[Any]:
            for k in range(5):
                if use_op:
                    yield flask.request.environ["cogen"].core.events.Sleep(0)
                yield f"{flask.request.args['id']}:{flask.g.rid}:{k}\n"

        return flask.Response(flask.stream_with_context(body()), mimetype="text/plain")

    return app


@pytest.mark.parametrize("threads", MODES)
@pytest.mark.parametrize("path", ["/stream", "/stream?op=1"], ids=["no-op", "gate-op"])
def test_flask_stream_with_context(live_server: Any, threads: int, path: str) -> None:
    live = live_server(flask_app(), threads=threads)
    assert hammer(live.url, path, lines) == []


# -- Bottle ---------------------------------------------------------------------------
def bottle_app() -> Any:
    bottle = pytest.importorskip("bottle")
    app = bottle.Bottle()

    @app.route("/gen")
    def gen() -> Iterator[str]:
        rid = bottle.request.query["id"]
        bottle.response.content_type = "text/plain"
        for k in range(5):
            # bottle.request is a thread-local: it must still be this request's
            yield f"{bottle.request.query['id']}:{rid}:{k}\n"

    return app


@pytest.mark.parametrize("threads", MODES)
def test_bottle_generator_responses(live_server: Any, threads: int) -> None:
    live = live_server(bottle_app(), threads=threads)
    assert hammer(live.url, "/gen", lines) == []


# -- Django ---------------------------------------------------------------------------
# Django keeps database connections per thread (its connection handler is
# "thread critical", not per context): requests that interleave on the loop
# thread by yielding operations would share one, so that case is served with
# threads (docs/server.rst says so).
@pytest.mark.parametrize(("threads", "path"), [
    pytest.param(0, "/rows", id="no-op-inline"),
    pytest.param(4, "/rows", id="no-op-threads4"),
    pytest.param(4, "/rows?op=1", id="gate-op-threads4"),
])
def test_django_streaming_response_over_a_queryset_iterator(live_server: Any, django_app: Any,
                                                            threads: int, path: str) -> None:
    live = live_server(django_app, threads=threads)
    assert hammer(live.url, path, lines) == []


# -- a bare WSGI app ------------------------------------------------------------------
def bare_app(use_op: bool) -> Any:
    store = threading.local()

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        rid = environ["QUERY_STRING"].partition("id=")[2]
        request_var.set(rid)
        store.rid = rid
        start_response("200 OK", [("Content-Type", "text/plain")])
        return body(environ, rid)

    def body(environ: dict[str, Any], rid: str) -> Iterator[bytes]:
        try:
            for k in range(5):
                if use_op:
                    yield environ["cogen"].core.events.Sleep(0)
                    # across a yield to the loop only the context is the request's
                    # own (a thread-local is the loop thread's, see docs/server.rst)
                    yield f"{request_var.get()}:{rid}:{k}\n".encode()
                else:
                    yield f"{request_var.get()}:{store.rid}:{k}\n".encode()
        finally:
            # close() runs with the request's state too
            assert request_var.get() == rid

    return app


@pytest.mark.parametrize("threads", MODES)
@pytest.mark.parametrize("use_op", [False, True], ids=["no-op", "gate-op"])
def test_bare_app_reads_its_contextvar_and_thread_local(live_server: Any, threads: int,
                                                        use_op: bool) -> None:
    live = live_server(bare_app(use_op), threads=threads)
    assert hammer(live.url, "/", lines) == []


def test_threaded_response_keeps_its_thread_from_call_to_close(live_server: Any) -> None:
    seen: dict[str, set[int]] = {}
    lock = threading.Lock()

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        rid = environ["QUERY_STRING"].partition("id=")[2]

        def note() -> None:
            with lock:
                seen.setdefault(rid, set()).add(threading.get_ident())

        class Body:
            def __iter__(self) -> Iterator[bytes]:
                for k in range(5):
                    note()
                    if k == 2:
                        yield environ["cogen"].core.events.Sleep(0)
                    yield f"{rid}:{rid}:{k}\n".encode()

            def close(self) -> None:
                note()

        note()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Body()

    live = live_server(app, threads=4)
    assert hammer(live.url, "/", lines) == []
    assert len(seen) == CLIENTS * REQUESTS
    assert [rid for rid, idents in seen.items() if len(idents) != 1] == []


# -- keep-alive: the next request on a connection starts clean ------------------------
@pytest.mark.parametrize("threads", MODES)
@pytest.mark.parametrize("use_op", [False, True], ids=["no-op", "gate-op"])
def test_a_value_set_by_one_request_is_not_seen_by_the_next_on_the_connection(
        live_server: Any, raw: Any, threads: int, use_op: bool) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        before = request_var.get()
        request_var.set(environ["PATH_INFO"])
        start_response("200 OK", [("Content-Type", "text/plain")])
        if use_op:
            yield environ["cogen"].core.events.Sleep(0)
        yield f"{before}".encode()

    live = live_server(app, threads=threads)
    client = raw(live)
    # one after the other, then three pipelined in one write
    for n in range(3):
        client.send(f"GET /r{n} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert client.response().body == b"None"
    client.send(b"".join(f"GET /p{n} HTTP/1.1\r\nHost: x\r\n\r\n".encode() for n in range(3)))
    assert [client.response().body for _ in range(3)] == [b"None"] * 3


def test_responses_beyond_the_pool_size_wait_for_a_thread_and_all_complete(live_server: Any) -> None:
    held = 0
    most = 0
    lock = threading.Lock()

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        nonlocal held, most
        with lock:
            held += 1
            most = max(most, held)
        rid = environ["QUERY_STRING"].partition("id=")[2]
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            for k in range(5):
                yield environ["cogen"].core.events.Sleep(0.01)  # a slow stream
                yield f"{rid}:{rid}:{k}\n".encode()
        finally:
            with lock:
                held -= 1

    live = live_server(app, threads=2)
    with ThreadPoolExecutor(6) as pool:
        bodies = list(pool.map(
            lambda n: requests.get(f"{live.url}/?id=x{n}", timeout=CLIENT_TIMEOUT).content, range(6)))
    assert bodies == [lines(f"x{n}") for n in range(6)]
    assert most == 2  # queued for one of the two threads, none refused


# -- thread_affinity=False: any thread per step, the context still the response's own -----
@pytest.mark.parametrize("path", ["/stream", "/stream?op=1"], ids=["no-op", "gate-op"])
def test_without_thread_affinity_flask_keeps_its_context(live_server: Any, path: str) -> None:
    live = live_server(flask_app(), threads=4, thread_affinity=False)
    assert hammer(live.url, path, lines) == []


def test_without_thread_affinity_a_parked_request_holds_no_thread(live_server: Any) -> None:
    parked = threading.Semaphore(0)

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        request_var.set(environ["QUERY_STRING"])
        parked.release()
        yield environ["cogen"].core.events.WaitForSignal("go", timeout=CLIENT_TIMEOUT)
        yield f"{request_var.get()}".encode()

    live = live_server(app, threads=2, thread_affinity=False)
    with ThreadPoolExecutor(10) as pool:
        futures = [pool.submit(requests.get, f"{live.url}/?n{n}", timeout=CLIENT_TIMEOUT)
                   for n in range(10)]
        for _ in range(10):
            assert parked.acquire(timeout=CLIENT_TIMEOUT)
        # wakes them once all ten wait at once, on two threads
        live.call(lambda: live.sched.add(_go))
        assert sorted(f.result().text for f in futures) == sorted(f"n{n}" for n in range(10))


def _go() -> Iterator[Any]:
    from cogen.core.events import Signal
    yield Signal("go", recipients=10, timeout=CLIENT_TIMEOUT)
