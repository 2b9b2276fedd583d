"""The benchmark code itself: the raw-epoll-wsgi ceiling, the apps, the long-poll round, the chart.

No figure is asserted (timing is the benchmark's business, not the suite's):
these tests check that every piece answers correctly over real sockets, so a
benchmark run measures what it says it measures.
"""
from __future__ import annotations

import http.client
import json
import os
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

import pytest

from benchmarks import apps, discard, wsgi
from benchmarks.raw_wsgi import RawWSGIServer
from tests.web._process import ServerProcess, cogen_web

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def raw_server() -> Iterator[Any]:
    """Start a raw-epoll-wsgi loop serving a given app on 127.0.0.1:0; yields ``start(app) -> port``."""
    servers: list[tuple[RawWSGIServer, threading.Thread]] = []

    def start(app: Any) -> int:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        srv = RawWSGIServer(sock, app)
        thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        servers.append((srv, thread))
        return int(sock.getsockname()[1])

    yield start
    for srv, thread in servers:
        srv.shutdown()
        thread.join(10)
        srv.close()


def test_raw_wsgi_serves_every_workload_on_one_keepalive_connection(raw_server: Any) -> None:
    body = os.urandom(apps.CHUNK)
    port = raw_server(lambda environ, start_response: {
        "/hello": apps.hello, "/big": apps.big, "/file": apps.file, "/echo": apps.echo,
    }[environ["PATH_INFO"]](environ, start_response))
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        for _ in range(2):  # twice: the connection is kept alive and reused
            conn.request("GET", "/hello")
            resp = conn.getresponse()
            assert (resp.status, resp.read()) == (200, apps.HELLO)
            assert resp.getheader("Connection") is None
        conn.request("GET", "/big")
        assert conn.getresponse().read() == b"".join(apps._BIG_CHUNKS)
        conn.request("GET", "/file")  # through wsgi.file_wrapper: sendfile
        with open(apps.bench_file_path(), "rb") as f:
            assert conn.getresponse().read() == f.read()
        conn.request("POST", "/echo", body=body)
        assert conn.getresponse().read() == body
    finally:
        conn.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="MSG_TRUNC on TCP is Linux's")
@pytest.mark.parametrize("close", [False, True], ids=["keep-alive", "close"])
def test_the_discard_client_reads_whole_responses_and_counts_bad_ones(raw_server: Any, close: bool) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Any:
        if environ["PATH_INFO"] == "/missing":
            start_response("404 Not Found", [("Content-Length", "3")])
            return [b"no!"]
        return apps.file(environ, start_response)  # 10 MiB through sendfile

    port = raw_server(app)
    res = discard.run("127.0.0.1", port, "/", 2, 0.5, close, 5.0)
    assert res["requests"] > 0
    assert {k: res[k] for k in ("connect", "read", "write", "status", "timeout")} == dict.fromkeys(
        ("connect", "read", "write", "status", "timeout"), 0)
    assert 0 < res["p50_us"] <= res["p99_us"] <= res["max_us"]
    # a whole 10 MiB body was discarded per request: the next response
    # would not parse otherwise, and would count as a read error
    bad = discard.run("127.0.0.1", port, "/missing", 1, 0.2, close, 5.0)
    assert bad["requests"] > 0 and bad["status"] == bad["requests"]


def test_raw_wsgi_answers_pipelined_requests_in_order_and_closes_when_asked(raw_server: Any) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])  # no Content-Length: the loop adds it
        return [environ["PATH_INFO"].encode(), b"?", environ["QUERY_STRING"].encode()]

    port = raw_server(app)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET /a?x=1 HTTP/1.1\r\nHost: h\r\n\r\n"
                     b"GET /b HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):  # ends: the server closes after the second response
            data += chunk
    first = wsgi.parse_response(data)
    assert first is not None and first[:2] == (200, b"/a?x=1")
    second = wsgi.parse_response(data[first[2]:])
    assert second is not None and second[:2] == (200, b"/b?")
    assert b"Connection: close" in data[first[2]:]


@pytest.mark.parametrize("app", ["hello", "page", "big", "big_list", "echo"])
def test_the_instruction_count_serves_each_of_its_apps(app: str) -> None:
    # the server half of benchmarks.instructions, without valgrind: it serves
    # the client half's requests for the app and shuts down (status 0)
    from benchmarks import instructions

    assert app in instructions.APPS
    assert instructions.main(["server", app, "--requests", "5"]) == 0


@pytest.mark.parametrize("kind", ["cogen", "raw-epoll-wsgi"])
def test_the_instruction_count_spreads_its_requests_over_the_connections_asked_for(
        kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # --connections 3: the client keeps one request in flight on each of
    # three connections, and the server (cogen-web, or with --server the
    # bare loop, which stops after the poll that served the last request)
    # answers exactly the count asked for
    from benchmarks import apps, instructions

    ports: list[str | None] = []
    measured = apps.hello

    def hello(environ: dict[str, Any], start_response: Any) -> Any:
        ports.append(environ.get("REMOTE_PORT"))
        return measured(environ, start_response)

    monkeypatch.setattr(apps, "hello", hello)
    assert instructions.main(["server", "hello", "--requests", "7", "--connections", "3",
                              "--server", kind]) == 0
    assert len(ports) == 7
    if kind == "cogen":  # (the bare loop's environ has no REMOTE_PORT)
        assert len(set(ports)) == 3


def test_the_instruction_client_is_not_failed_by_an_idle_connection_closed_first() -> None:
    # The server closes its connections once it has answered the last
    # request: an idle one's end of file may reach the client before that
    # answer does, on another connection, and is no failure.
    from benchmarks import instructions

    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)

    def serve() -> None:
        busy, _ = listener.accept()
        idle, _ = listener.accept()
        with busy, idle:
            busy.settimeout(10)
            request = b""
            while b"\r\n\r\n" not in request:
                request += busy.recv(4096)
            idle.close()  # first: the client sees this end of file before the answer
            # the answer after the end of file has been seen: the client gives no
            # sign of having read it, so there is no event to await, only time
            time.sleep(0.2)
            busy.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        instructions.client(listener.getsockname()[1], 1, "hello", connections=2)
    finally:
        thread.join(10)
        listener.close()


@pytest.mark.parametrize("program", ["cogen_pingpong", "cogen_spawn", "asyncio_pingpong_future",
                                     "asyncio_spawn", "asyncio_sleep0"])
def test_the_instruction_count_runs_each_core_program_and_its_asyncio_counterpart(program: str) -> None:
    # the half of --core that runs under valgrind, without valgrind
    from benchmarks import instructions

    assert instructions.main(["core", program, "--requests", "50"]) == 0


def test_the_instruction_count_refuses_an_unknown_core_program(capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks import instructions

    with pytest.raises(SystemExit) as stop:
        instructions.main(["core", "asyncio_nothing", "--requests", "5"])
    assert stop.value.code == 2
    assert "unknown core program 'asyncio_nothing'" in capsys.readouterr().err


def test_parse_response_reads_a_chunked_body() -> None:
    # granian answers a generator's body chunked: the readiness check read it as empty
    data = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"4\r\nAAAA\r\n2;x=y\r\nBB\r\n0\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n")
    for cut in range(len(data) - 30):  # incomplete: not a response yet
        assert wsgi.parse_response(data[:cut]) is None
    first = wsgi.parse_response(data)
    assert first is not None and first[:2] == (200, b"AAAABB")
    assert wsgi.parse_response(data[first[2]:]) == (204, b"", 27)


def test_raw_wsgi_answers_500_when_the_app_raises(raw_server: Any) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        raise RuntimeError("boom")

    port = raw_server(app)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/")
    assert conn.getresponse().status == 500
    conn.close()


def test_flask_app_serves_text_and_json() -> None:
    pytest.importorskip("flask")
    from werkzeug.test import Client

    client = Client(apps.flask_app)
    assert client.get("/").data == apps.HELLO
    assert client.get("/json").get_json() == apps.JSON_DOC


def test_echo_refuses_a_body_over_its_bound() -> None:
    seen: list[str] = []
    out = apps.echo({"CONTENT_LENGTH": str(apps.ECHO_MAX + 1)}, lambda status, headers: seen.append(status))
    assert seen == ["413 Content Too Large"] and list(out) == []


class _ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    request_queue_size = 128  # not 5: the round connects 30 clients at once


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


def test_longpoll_round_releases_every_parked_request_on_threads() -> None:
    """The threading.Event flavour, as waitress or granian run it: one thread per parked request."""
    srv = _ThreadingWSGIServer(("127.0.0.1", 0), _Quiet)
    srv.set_app(apps.longpoll)
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        res = wsgi.longpoll_round(srv.server_address[1], 30, time.monotonic() + 30)
    finally:
        srv.shutdown()
        thread.join(10)
        srv.server_close()
    assert "failed" not in res, res
    assert (res["parked"], res["ok"], res["release_answer"]) == (30, 30, "woke 30")
    assert res["ms"] is not None and res["ms"] >= 0


def test_longpoll_round_on_cogen_web_parks_on_cogen_operations() -> None:
    proc = ServerProcess(cogen_web("benchmarks.apps:longpoll", "--host", "127.0.0.1", "--port", "0",
                                   "--no-access-log"), cwd=REPO)
    try:
        port = proc.port()
        first = wsgi.longpoll_round(port, 50, time.monotonic() + 30)
        second = wsgi.longpoll_round(port, 50, time.monotonic() + 30)  # the counter went back to 0
    finally:
        proc.close()
    for res in (first, second):
        assert "failed" not in res, res
        # "woke 50": one Signal woke all 50 WaitForSignal operations
        assert (res["parked"], res["ok"], res["release_answer"]) == (50, 50, "woke 50")


def _rows() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for rep, (cog, peer) in enumerate([(100.0, 50.0), (300.0, 100.0), (200.0, 80.0)], 1):
        for name, rps in (("cogen", cog), ("granian", peer)):
            for sc in ("c10", "c100"):
                rows.append({"kind": "throughput", "server": name, "workload": "big", "repeat": rep,
                             "scenario": sc, "rps": rps, "p99_us": 2000, "server_cpu_pct": 90.0,
                             "errors": 0, "other_cpu_pct": [1.0, 2.0]})
    rows.append({"kind": "longpoll", "server": "cogen", "ms": 40.0, "ok": 1000, "count": 1000})
    rows.append({"kind": "longpoll", "server": "waitress", "ms": 800.0, "ok": 1000, "count": 1000})
    rows.append({"kind": "idle", "server": "cogen", "idle": 10000, "held": 10000, "kib_per_conn": 2.0,
                 "without": {"rps": 100.0, "p99_us": 1}, "with": {"rps": 95.0, "p99_us": 3000}, "pct": 95.0,
                 "dropped": 0, "probe_ok": 10000})
    return rows


def test_summary_has_medians_and_the_ratio_table_divides_cogen_by_each_peer(
        capsys: pytest.CaptureFixture[str]) -> None:
    summary = wsgi.summarize(_rows(), ["cogen", "granian", "waitress"])
    assert summary["throughput"]["big"]["cogen"]["c100"] == 200.0
    assert summary["throughput"]["big"]["granian"]["c100"] == 80.0
    assert summary["throughput"]["big"]["granian"]["n"] == 3
    assert summary["longpoll"]["waitress"]["ms"] == 800.0
    assert summary["idle"]["cogen"]["kib_per_conn"] == 2.0
    wsgi.print_ratios(summary)
    lines = {ln.split()[0]: ln.split()[1:] for ln in capsys.readouterr().out.splitlines()[2:] if ln.strip()}
    assert lines["granian"] == ["2.50", "-"]       # big/c100: 200 / 80; no long-poll figure for granian
    assert lines["waitress"] == ["-", "20.00"]     # long polls: 800 ms / 40 ms


def test_chart_renders_a_summary_from_a_results_file(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from benchmarks import chart

    summary = wsgi.summarize(_rows(), ["cogen", "granian", "waitress"])
    results = tmp_path / "results.jsonl"
    meta = {"machine": "test box", "versions": {"cogen": "x"}, "command": "benchmarks/wsgi.py", "workers": 1}
    row = {"run": "r1", "kind": "summary", **summary, "meta": meta}
    results.write_text('{"run": "r1", "kind": "meta"}\n' + json.dumps(row) + "\n")
    out = tmp_path / "chart.png"
    assert chart.main(["--from", str(results), str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
    assert chart.main(["--from", str(results), "--run", "nope", str(out)]) == 2


@pytest.mark.parametrize("argv, says", [
    (["--workloads", "hello,nope"], "unknown workload(s) nope"),
    (["--servers", "cogen,nginx"], "unknown server(s) nginx"),
    (["--workers", "0"], "--workers 0"),
])
def test_driver_refuses_bad_arguments_with_one_line_and_status_2(argv: list[str], says: str) -> None:
    res = subprocess.run([sys.executable, str(REPO / "benchmarks" / "wsgi.py"), *argv], capture_output=True,
                         text=True, timeout=30, check=False)
    assert res.returncode == 2
    assert says in res.stderr.strip().splitlines()[-1]
