"""The ``cogen-web`` command: serve a WSGI application.

``cogen-web app:application --port 8080`` imports ``application`` from the
module ``app`` (the current directory is importable) and serves it. Every
server option of :mod:`cogen.web.options` that has a flag is available; bad
input gets one line on stderr and exit status 2, run-time failures status 1.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import cogen
from cogen.web.options import OPTIONS, as_seconds

__all__ = ["main", "load_app", "build_parser", "UsageError"]

log = logging.getLogger("cogen.web")


class UsageError(Exception):
    """Bad input from the command line: reported in one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, with one flag per server option."""
    parser = _Parser(
        prog="cogen-web",
        description="Serve a WSGI application with cogen's HTTP/1.1 server.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("app", metavar="MODULE:APP",
                        help="the WSGI application: a dotted module, a colon, an attribute path")
    parser.add_argument("--version", action="version", version=f"cogen {cogen.__version__}")
    parser.add_argument("--call", action="store_true",
                        help="APP is a factory: call it (no arguments) to get the application")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=_port, default=8080, help="TCP port to listen on; 0 picks one")
    parser.add_argument("--bind", action="append", default=[], metavar="ADDR",
                        help="HOST:PORT, [IPV6]:PORT or unix:PATH; repeatable; replaces --host/--port")
    parser.add_argument("--workers", type=_positive, default=1, metavar="N",
                        help="worker processes sharing the listening sockets")
    parser.add_argument("--log-level", default="info",
                        choices=["debug", "info", "warning", "error", "critical"],
                        help="level of the server's log on stderr")
    parser.add_argument("--access-log", dest="access_log", action="store_true", default=True,
                        help="log every request")
    parser.add_argument("--no-access-log", dest="access_log", action="store_false",
                        help="do not log requests")
    parser.add_argument("--graceful-timeout", type=_seconds, default=30.0, metavar="SECONDS",
                        help="on SIGTERM/SIGINT, how long requests in flight may take to finish")
    groups: dict[str, Any] = {}
    for opt in OPTIONS:
        if opt.cli is None:
            continue
        group = groups.get(opt.group)
        if group is None:
            group = groups[opt.group] = parser.add_argument_group(f"{opt.group} options")
        kwargs: dict[str, Any] = {"dest": opt.name, "metavar": opt.metavar,
                                  "help": opt.help, "default": argparse.SUPPRESS}
        if opt.name == "trusted_proxy":
            kwargs["action"] = "append"
        group.add_argument(opt.cli, **kwargs)
    return parser


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}: want a number 0-65535") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}: want a number 0-65535")
    return port


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}: want 1 or more")
    return value


def _seconds(text: str) -> float:
    try:
        value = as_seconds(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value if value is not None else 1e9


def load_app(spec: str, call: bool = False) -> Callable[..., Any]:
    """Import ``module:attribute`` (the current directory first on sys.path).

    Raises UsageError with a one-line reason when it cannot.
    """
    module_name, sep, attr_path = spec.partition(":")
    if not module_name or not attr_path and sep:
        raise UsageError(f"invalid application {spec!r}: want MODULE:APP, e.g. myapp:application")
    attr_path = attr_path or "application"
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(f"cannot import module {module_name!r}: {exc}") from None
    except Exception as exc:
        raise UsageError(f"importing module {module_name!r} failed: "
                         f"{type(exc).__name__}: {exc}") from None
    obj: Any = module
    for part in attr_path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise UsageError(f"module {module_name!r} has no attribute {attr_path!r}") from None
    if call:
        try:
            obj = obj()
        except Exception as exc:
            raise UsageError(f"calling {spec} failed: {type(exc).__name__}: {exc}") from None
    if not callable(obj):
        raise UsageError(f"{spec} is not callable (got {type(obj).__name__}); "
                         f"use --call if it is a factory")
    return obj


def _server_options(ns: argparse.Namespace) -> dict[str, Any]:
    from cogen.web.options import resolve_options
    given = {opt.name: getattr(ns, opt.name) for opt in OPTIONS
             if opt.cli is not None and hasattr(ns, opt.name)}
    given["access_log"] = ns.access_log
    try:
        resolve_options(given)
    except (TypeError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    return given


def _configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("cogen")
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level.upper()))
    root.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit status (0 ok, 1 run-time failure, 2 bad input)."""
    try:
        ns = build_parser().parse_args(argv)
        binds = ns.bind or [f"[{ns.host}]:{ns.port}" if ":" in ns.host else f"{ns.host}:{ns.port}"]
        options = _server_options(ns)
        _configure_logging(ns.log_level)
        app = load_app(ns.app, ns.call)
        if ns.workers > 1:
            from cogen.web import workers
            return workers.run_master(app_spec=ns.app, call=ns.call, binds=binds, options=options,
                                      workers=ns.workers, grace=ns.graceful_timeout)
        return serve(app, binds, options, grace=ns.graceful_timeout)
    except UsageError as exc:
        print(f"cogen-web: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0


def serve(app: Callable[..., Any], binds: Sequence[str], options: dict[str, Any],
          grace: float = 30.0, sockets: Sequence[Any] | None = None) -> int:
    """Serve ``app`` on every address in ``binds`` until SIGTERM/SIGINT; returns the exit status."""
    from cogen.core.schedulers import Scheduler
    from cogen.web.wsgi import WSGIServer
    sched = Scheduler()
    servers = []
    try:
        if sockets:
            for sock in sockets:
                servers.append(WSGIServer(sock, app, sched, **options))
        else:
            for bind in binds:
                servers.append(WSGIServer(bind, app, sched, **options))
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        for srv in servers:
            srv.socket.close()
        raise UsageError(f"cannot listen on {bind}: {exc.strerror or exc}") from None
    except ssl_errors() as exc:
        raise UsageError(f"cannot load the TLS certificate: {exc}") from None
    for srv in servers:
        log.info("listening on %s", describe(srv))
        srv.start()

    def stop(signum: int, frame: Any) -> None:
        log.info("received %s, shutting down gracefully", signal.Signals(signum).name)
        for srv in servers:
            sched.call_soon_threadsafe(srv.shutdown, grace)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        sched.run()
    except Exception:
        log.exception("the server failed")
        return 1
    log.info("stopped")
    return 0


def ssl_errors() -> type[Exception]:
    import ssl
    return ssl.SSLError


def describe(server: Any) -> str:
    """A server's address as a URL-ish string (with the real port)."""
    addr = server.address
    scheme = "https" if server.ssl_context else "http"
    if isinstance(addr, str):
        return f"unix:{addr}"
    host = f"[{addr[0]}]" if ":" in addr[0] else addr[0]
    return f"{scheme}://{host}:{addr[1]}"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
