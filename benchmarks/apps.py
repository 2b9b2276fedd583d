"""WSGI apps for the benchmarks, and launchers for servers that have no command.

Every server in ``benchmarks/wsgi.py`` serves one of these apps (run from the
repository root, which makes ``benchmarks`` importable)::

    python -m cogen.web benchmarks.apps:hello --port 8080 --no-access-log
    python -m benchmarks.apps gevent --app benchmarks.apps:hello --port 8080

The apps, one per workload of ``benchmarks/wsgi.py --workloads``:

``hello``
    ``Hello, World!``: 13 bytes with a Content-Length.
``big``
    1 MiB in sixteen 64 KiB chunks, with a Content-Length, from a generator
    (an app producing a large response piece by piece: each piece must go
    out before the next is asked for).
``big_list``
    the same 1 MiB as a list of the sixteen chunks (a body that exists whole
    when the app returns: a rendered page, Django's ``HttpResponse``).
``page``
    a page of fifty 840-byte pieces as a list, no Content-Length from the
    app (a template rendered piece by piece into a list); measured by
    ``benchmarks.instructions --app page``, no workload of its own.
``file``
    a 10 MiB file through ``wsgi.file_wrapper`` (a server may send it with
    ``sendfile()``); without a wrapper, the file read in 64 KiB blocks.
``echo``
    the request body (``POST``, read with its Content-Length) sent back.
``flask_app``
    a Flask app: ``/`` answers ``Hello, World!`` (the ``flask`` workload),
    ``/json`` a small JSON object through ``jsonify`` (``flask-json``). Flask
    is imported on the first request, so the other apps work without it.
``longpoll``
    ``GET /wait`` parks until ``POST /release`` wakes every parked request at
    once; ``GET /count`` says how many are parked. Under cogen-web it parks
    on a cogen operation (``WaitForSignal``, no thread held); elsewhere on a
    ``threading.Event``, which ``gevent.monkey.patch_all()`` turns into a
    gevent event, and for which a threaded server needs a thread per parked
    request.

gevent.pywsgi, meinheld and bjoern have no command of their own, so ``python
-m benchmarks.apps KIND`` starts them. pywsgi writes the response head and
body in two ``send()`` calls; without ``TCP_NODELAY`` the body waits for the
client's delayed ACK (about 40 ms per keep-alive request: Nagle's algorithm
meets delayed ACK), which would measure the pitfall rather than the server.
The gevent launcher therefore sets ``TCP_NODELAY`` on every accepted socket,
as cogen-web does on its own. meinheld switches keep-alive off unless told,
so its launcher switches it on.
"""
from __future__ import annotations

import argparse
import importlib
import os
import socket
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

__all__ = ["BIG_SIZE", "FILE_SIZE", "HELLO", "JSON_DOC", "application", "big", "big_list", "echo", "file",
           "flask_app", "hello", "load_app", "longpoll", "main", "page"]

HELLO = b"Hello, World!"
CHUNK = 64 * 1024
BIG_SIZE = 1024 * 1024
FILE_SIZE = 10 * 1024 * 1024
ECHO_MAX = 16 * 1024 * 1024  # a larger body is refused: the echo buffer stays bounded
JSON_DOC = {"message": "Hello, World!"}
OCTETS = "application/octet-stream"
LONGPOLL_TIMEOUT = 60.0  # a parked request gives up after this, so no run can hang on one
LONGPOLL_SIGNAL = "benchmarks.apps.longpoll"

_BIG_CHUNKS = [bytes([65 + i]) * CHUNK for i in range(BIG_SIZE // CHUNK)]


def hello(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    """Answer every request with the 13-byte ``Hello, World!`` and a Content-Length."""
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(HELLO)))])
    return [HELLO]


application = hello


_PAGE_PIECES = [b"<li>%04d " % i + b"x" * 830 + b"\n" for i in range(50)]


def page(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    """Answer fifty 840-byte pieces as a list, leaving the Content-Length to the server."""
    start_response("200 OK", [("Content-Type", "text/html")])
    return _PAGE_PIECES


def big(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    """Answer 1 MiB (``BIG_SIZE``) as sixteen 64 KiB chunks yielded one by one, with a Content-Length."""
    start_response("200 OK", [("Content-Type", OCTETS), ("Content-Length", str(BIG_SIZE))])
    yield from _BIG_CHUNKS


def big_list(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    """Answer the same 1 MiB as a list of the sixteen 64 KiB chunks, with a Content-Length."""
    start_response("200 OK", [("Content-Type", OCTETS), ("Content-Length", str(BIG_SIZE))])
    return _BIG_CHUNKS


def bench_file_path() -> str:
    """The 10 MiB file the ``file`` app serves, created (atomically) when missing or the wrong size."""
    path = os.path.join(tempfile.gettempdir(), f"cogen-bench-{FILE_SIZE}.bin")
    try:
        if os.path.getsize(path) == FILE_SIZE:
            return path
    except OSError:
        pass
    tmp = f"{path}.{os.getpid()}.tmp"
    block = bytes(range(256)) * (CHUNK // 256)
    with open(tmp, "wb") as f:
        for _ in range(FILE_SIZE // CHUNK):
            f.write(block)
    os.replace(tmp, path)  # prefork workers may race here: each writes its own copy, one wins
    return path


def _read_blocks(f: Any) -> Iterator[bytes]:
    with f:
        while block := f.read(CHUNK):
            yield block


def file(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    """Answer the 10 MiB file through ``wsgi.file_wrapper`` (plain 64 KiB reads without one)."""
    f = open(bench_file_path(), "rb")  # noqa: SIM115 - the server (or _read_blocks) closes it
    start_response("200 OK", [("Content-Type", OCTETS), ("Content-Length", str(FILE_SIZE))])
    wrapper = environ.get("wsgi.file_wrapper")
    if wrapper is not None:
        return wrapper(f, CHUNK)  # type: ignore[no-any-return]
    return _read_blocks(f)


def echo(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    """Send the request body back (at most 16 MiB: a larger one gets 413), with a Content-Length."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = -1
    if not 0 <= length <= ECHO_MAX:
        start_response("413 Content Too Large", [("Content-Length", "0"), ("Connection", "close")])
        return []
    body = environ["wsgi.input"].read(length) if length else b""
    start_response("200 OK", [("Content-Type", OCTETS), ("Content-Length", str(len(body)))])
    return [body]


# ---------------------------------------------------------------- Flask

_flask: list[Any] = []


def _make_flask_app() -> Any:
    """The Flask app of the ``flask`` and ``flask-json`` workloads (built once)."""
    if not _flask:
        from flask import Flask, jsonify

        app = Flask(__name__)

        @app.route("/")
        def index() -> Any:
            return HELLO.decode(), 200, {"Content-Type": "text/plain"}

        @app.route("/json")
        def json_route() -> Any:
            return jsonify(JSON_DOC)

        _flask.append(app)
    return _flask[0]


def flask_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    """The Flask app (``/``: text, ``/json``: JSON), built on the first request (the readiness check).

    A plain function rather than the Flask object itself, so that the other
    apps import without Flask and servers that look the callable up in the
    module's namespace (uWSGI) find it.
    """
    return _make_flask_app()(environ, start_response)  # type: ignore[no-any-return]


# ---------------------------------------------------------------- long polls

class _Parked:
    """The parked requests of the threading flavour of :func:`longpoll`."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.event = threading.Event()
        self.count = 0


_parked = _Parked()
_cogen_parked = [0]


def _text(start_response: Any, status: str, text: str) -> list[bytes]:
    body = text.encode()
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def longpoll(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    """``GET /wait`` parks until ``POST /release``; ``GET /count``: how many are parked.

    A parked request answers ``released`` (or ``timeout`` after 60 s); the
    release answers ``woke N``. Under cogen-web (``environ['cogen']``) the
    requests park on ``WaitForSignal`` and the release is one ``Signal``;
    elsewhere they park on a ``threading.Event`` swapped for a fresh one at
    each release.
    """
    gate = environ.get("cogen")
    if gate is not None:
        return _longpoll_cogen(environ, start_response, gate)
    path = environ.get("PATH_INFO", "")
    if path == "/wait":
        with _parked.lock:
            event = _parked.event
            _parked.count += 1
        try:
            woke = event.wait(LONGPOLL_TIMEOUT)
        finally:
            with _parked.lock:
                _parked.count -= 1
        return _text(start_response, "200 OK", "released" if woke else "timeout")
    if path == "/release":
        with _parked.lock:
            event, _parked.event = _parked.event, threading.Event()
            count = _parked.count
        event.set()
        return _text(start_response, "200 OK", f"woke {count}")
    if path == "/count":
        return _text(start_response, "200 OK", str(_parked.count))
    return _text(start_response, "404 Not Found", "GET /wait, POST /release or GET /count")


def _longpoll_cogen(environ: dict[str, Any], start_response: Any, gate: Any) -> Iterator[bytes]:
    """:func:`longpoll` on cogen operations: the request waits without holding a thread."""
    path = environ.get("PATH_INFO", "")
    events = gate.core.events
    if path == "/wait":
        _cogen_parked[0] += 1
        try:
            yield events.WaitForSignal(LONGPOLL_SIGNAL, timeout=LONGPOLL_TIMEOUT)
        finally:
            _cogen_parked[0] -= 1
        yield from _text(start_response, "200 OK", "released" if gate.exception is None else "timeout")
    elif path == "/release":
        yield events.Signal(LONGPOLL_SIGNAL, b"released")
        yield from _text(start_response, "200 OK", f"woke {gate.result}")
    elif path == "/count":
        yield from _text(start_response, "200 OK", str(_cogen_parked[0]))
    else:
        yield from _text(start_response, "404 Not Found", "GET /wait, POST /release or GET /count")


# ---------------------------------------------------------------- launchers

def load_app(spec: str) -> Callable[..., Any]:
    """Import ``module:attr`` (``attr`` defaults to ``application``) and return the WSGI callable."""
    module, _, attr = spec.partition(":")
    app: Callable[..., Any] = getattr(importlib.import_module(module), attr or "application")
    return app


def serve_gevent(app: Callable[..., Any], host: str, port: int) -> None:
    """Serve ``app`` with gevent.pywsgi (stdlib monkey-patched, no access log, TCP_NODELAY).

    Runs until the process is killed.
    """
    from gevent.pywsgi import WSGIServer  # type: ignore[import-untyped]

    class NoDelayWSGIServer(WSGIServer):  # type: ignore[misc]
        """pywsgi with TCP_NODELAY on every accepted socket."""

        def handle(self, sock: Any, address: Any) -> Any:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return super().handle(sock, address)

    NoDelayWSGIServer((host, port), app, log=None).serve_forever()


def serve_meinheld(app: Callable[..., Any], host: str, port: int, c10k: bool) -> None:
    """Serve ``app`` with meinheld: keep-alive on (10 s), no access log; ``c10k`` lifts its fd cap."""
    import meinheld.server as ms  # type: ignore[import-not-found]

    ms.set_access_logger(None)
    ms.set_keepalive(10)  # meinheld's default is 0: no keep-alive
    if c10k:
        ms.set_picoev_max_fd(200_000)
        ms.set_backlog(4096)
    ms.listen((host, port))
    ms.run(app)


def serve_bjoern(app: Callable[..., Any], host: str, port: int) -> None:
    """Serve ``app`` with bjoern (its defaults: keep-alive, no log)."""
    import bjoern  # type: ignore[import-not-found]

    bjoern.run(app, host, port)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m benchmarks.apps KIND --app SPEC --port P``; serves until killed; the exit status."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.apps",
                                     description="Serve an app on a server that has no command.")
    parser.add_argument("server", choices=["gevent", "meinheld", "bjoern"])
    parser.add_argument("--app", default="benchmarks.apps:hello", help="module:callable")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--c10k", action="store_true", help="lift the server's connection caps (idle test)")
    ns = parser.parse_args(argv)
    if ns.server == "gevent":
        # before the app is imported, so that its threading.Event is gevent's
        from gevent import monkey  # type: ignore[import-untyped]

        monkey.patch_all()
    app = load_app(ns.app)
    if ns.server == "gevent":
        serve_gevent(app, ns.host, ns.port)
    elif ns.server == "meinheld":
        serve_meinheld(app, ns.host, ns.port, ns.c10k)
    else:
        serve_bjoern(app, ns.host, ns.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
