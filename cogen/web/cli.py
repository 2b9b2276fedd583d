"""The ``cogen-web`` command: serve a WSGI application.

``cogen-web app:application --port 8080`` imports ``application`` from the
module ``app`` (the current directory is importable) and serves it. Every
server option of :mod:`cogen.web.options` that has a flag is available; bad
input gets one line on stderr and exit status 2, run-time failures status 1.

With ``--workers N`` (N > 1) a master process binds the sockets and forks N
workers (:mod:`cogen.web.workers`); that needs ``os.fork``, so elsewhere
``--workers`` above 1 is refused with exit status 2.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import ssl
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import cogen
from cogen.web.options import OPTIONS, as_seconds

__all__ = [
    "UsageError",
    "build_parser",
    "check_tls",
    "configure_logging",
    "describe",
    "load_app",
    "main",
    "serve",
]

log = logging.getLogger("cogen.web")


class UsageError(Exception):
    """Bad input from the command line: reported in one line, exit status 2.

    ``details``, if not empty, is printed after that line: the traceback of
    an app that failed while being imported or made.
    """

    def __init__(self, message: str, details: str = "") -> None:
        super().__init__(message)
        self.details = details


def _is_missing(exc: ImportError, module_name: str) -> bool:
    """True if ``exc`` says ``module_name`` itself (or a package of its path) does not exist."""
    name = exc.name
    return isinstance(exc, ModuleNotFoundError) and name is not None and (
        name == module_name or module_name.startswith(name + "."))


def _app_traceback(exc: BaseException) -> str:
    """``exc``'s traceback without the frames of this module and of the import machinery."""
    info = traceback.TracebackException.from_exception(exc)
    importlib_init = os.path.join("importlib", "__init__.py")
    info.stack = traceback.StackSummary.from_list([
        frame for frame in info.stack
        if frame.filename != __file__ and not frame.filename.startswith("<frozen importlib")
        and not frame.filename.endswith(importlib_init)])
    return "".join(info.format())


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults, except empty ones and those of on/off flags."""

    def _get_help_string(self, action: argparse.Action) -> str:
        default = action.default
        if default is None or default == [] or isinstance(default, bool) or action.nargs == 0:
            return action.help or ""
        return super()._get_help_string(action) or ""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, with one flag per server option."""
    parser = _Parser(
        prog="cogen-web",
        description="Serve a WSGI application with cogen's HTTP/1.1 server.",
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("app", metavar="MODULE:APP",
                        help="the WSGI application: a dotted module, a colon, an attribute path "
                             "(default attribute 'application'; 'make_app()' calls a factory)")
    parser.add_argument("--version", action="version", version=f"cogen {cogen.__version__}")
    parser.add_argument("--call", action="store_true",
                        help="APP is a factory: call it (no arguments) to get the application")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=_port, default=8080, help="TCP port to listen on; 0 picks one")
    parser.add_argument("-b", "--bind", "--listen", action="append", default=[], metavar="ADDR",
                        help="HOST:PORT, [IPV6]:PORT or unix:PATH; repeatable; replaces --host/--port")
    parser.add_argument("-w", "--workers", type=_positive, default=1, metavar="N",
                        help="worker processes sharing the listening sockets")
    parser.add_argument("--log-level", default="info", type=str.lower,
                        choices=["debug", "info", "warning", "error", "critical"],
                        help="level of the server's log on stderr")
    # Off by default (the option's default, so under PasteDeploy too), as in
    # gunicorn: a log line per request costs more than the rest of a small
    # request's handling.
    parser.add_argument("--access-log", dest="access_log", action="store_true", default=False,
                        help="log every request on stderr (combined log format)")
    parser.add_argument("--no-access-log", dest="access_log", action="store_false",
                        help="do not log requests (the default)")
    parser.add_argument("--graceful-timeout", type=_seconds, default=30.0, metavar="SECONDS",
                        help="on SIGTERM/SIGINT, how long requests in flight may take to finish")
    groups: dict[str, Any] = {}
    for opt in OPTIONS:
        if opt.cli is None:
            continue
        group = groups.get(opt.group)
        if group is None:
            group = groups[opt.group] = parser.add_argument_group(f"{opt.group} options")
        shown = opt.shown or ("none" if opt.default in (None, []) else opt.default)
        kwargs: dict[str, Any] = {"dest": opt.name, "metavar": opt.metavar,
                                  "help": f"{opt.help} (default: {shown})".replace("%", "%%"),
                                  "default": argparse.SUPPRESS}
        if opt.name in ("trusted_proxy", "trusted_proxy_headers"):
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

    The attribute defaults to ``application``; a trailing ``()``
    (``app:make_app()``), like ``call=True``, calls it without arguments to
    get the application. Raises UsageError with a one-line reason when it
    cannot (and, when the app's own code failed, its traceback as ``details``).
    """
    module_name, sep, attr_path = spec.partition(":")
    if attr_path.endswith("()"):
        attr_path, call = attr_path[:-2], True
    if not module_name or not attr_path and sep:
        raise UsageError(f"invalid application {spec!r}: want MODULE:APP, e.g. myapp:application")
    attr_path = attr_path or "application"
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if not _is_missing(exc, module_name):
            raise UsageError(f"importing module {module_name!r} failed: "
                             f"{type(exc).__name__}: {exc}", _app_traceback(exc)) from None
        raise UsageError(f"cannot import module {module_name!r}: {exc}") from None
    except Exception as exc:  # noqa: BLE001  (any failure of the app's import is reported)
        raise UsageError(f"importing module {module_name!r} failed: "
                         f"{type(exc).__name__}: {exc}", _app_traceback(exc)) from None
    obj: Any = module
    for part in attr_path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise UsageError(f"module {module_name!r} has no attribute {attr_path!r}") from None
    if call:
        try:
            obj = obj()
        except Exception as exc:  # noqa: BLE001  (as for the import)
            raise UsageError(f"calling {module_name}:{attr_path}() failed: "
                             f"{type(exc).__name__}: {exc}", _app_traceback(exc)) from None
    if not callable(obj):
        raise UsageError(f"{spec} is not callable (got {type(obj).__name__}); "
                         f"use --call if it is a factory")
    app: Callable[..., Any] = obj
    return app


def _server_options(ns: argparse.Namespace) -> dict[str, Any]:
    """The server options given on the command line, converted; UsageError names the flag."""
    given: dict[str, Any] = {}
    for opt in OPTIONS:
        if opt.cli is None or not hasattr(ns, opt.name):
            continue
        value = getattr(ns, opt.name)
        try:
            given[opt.name] = opt.convert(value)
        except (TypeError, ValueError) as exc:
            raise UsageError(f"argument {opt.cli}: {exc}") from None
    given["access_log"] = ns.access_log
    if given.get("keyfile") and not given.get("certfile"):
        raise UsageError("argument --keyfile: needs --certfile too")
    try:
        from cogen.web._environ import ProxyRules
        ProxyRules(given.get("trusted_proxy") or [])
    except ValueError as exc:
        raise UsageError(f"argument --trusted-proxy: {exc}") from None
    return given


def check_tls(options: dict[str, Any]) -> None:
    """Load the certificate and key once, so a bad one is reported before serving.

    Raises UsageError naming the file and the reason.
    """
    certfile = options.get("certfile")
    if not certfile:
        return
    names = repr(certfile) + (f" / {options['keyfile']!r}" if options.get("keyfile") else "")
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(certfile, options.get("keyfile"))
    except ssl.SSLError as exc:
        raise UsageError(f"cannot load the TLS certificate {names}: "
                         f"{exc.reason or exc}") from None
    except OSError as exc:
        raise UsageError(f"cannot load the TLS certificate {names}: "
                         f"{exc.strerror or exc}") from None


def configure_logging(level: str) -> None:
    """Log the ``cogen`` loggers to stderr, each line with the process id."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(
        "%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("cogen")
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level.upper()))
    root.propagate = False
    # Access lines carry their own timestamp; a plain formatter and no caller
    # or thread look-ups keep the per-request cost down (the logging HOWTO's
    # "Optimization" section).
    logging._srcfile = None
    logging.logThreads = False
    logging.logMultiprocessing = False
    access_handler = logging.StreamHandler(sys.stderr)
    access_handler.setFormatter(logging.Formatter("%(message)s"))
    access = logging.getLogger("cogen.web.access")
    access.handlers[:] = [access_handler]
    access.propagate = False


def raise_open_file_limit() -> int | None:
    """Raise the soft limit of open files to the hard limit; returns the new soft limit.

    Every connection is a descriptor, and a soft limit of 1024 (a common
    default) would cap a server meant to hold thousands of idle keep-alive
    connections. None where the platform has no such limit.
    """
    try:
        import resource
    except ImportError:  # not on POSIX
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    except (ValueError, OSError) as exc:
        log.debug("could not raise the open file limit to %s: %s", wanted, exc)
        return soft
    return wanted


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit status (0 ok, 1 run-time failure, 2 bad input).

    ``--help`` and ``--version`` print and raise SystemExit(0), as argparse does.
    """
    try:
        ns = build_parser().parse_args(argv)
        binds = ns.bind or [f"[{ns.host}]:{ns.port}" if ":" in ns.host else f"{ns.host}:{ns.port}"]
        options = _server_options(ns)
        check_tls(options)
        configure_logging(ns.log_level)
        raise_open_file_limit()
        if ns.workers > 1:
            if not hasattr(os, "fork"):
                raise UsageError(f"--workers {ns.workers} needs os.fork, which this platform "
                                 f"lacks; use --workers 1")
            from cogen.web import workers
            # The workers import the app themselves (so SIGHUP re-reads it).
            return workers.run_master(app_spec=ns.app, call=ns.call, binds=binds,
                                      options=options, workers=ns.workers,
                                      grace=ns.graceful_timeout)
        app = load_app(ns.app, ns.call)
        return serve(app, binds, options, grace=ns.graceful_timeout)
    except UsageError as exc:
        print(f"cogen-web: error: {exc}", file=sys.stderr)
        if exc.details:
            print(exc.details, end="", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0


def listen_all(binds: Sequence[Any], app: Callable[..., Any], sched: Any,
               options: dict[str, Any]) -> list[Any]:
    """One WSGIServer per address (a bind string or a listening socket).

    Raises UsageError (closing what was opened) when an address is invalid
    or cannot be bound.
    """
    from cogen.web.wsgi import WSGIServer
    servers: list[Any] = []
    for bind in binds:
        try:
            servers.append(WSGIServer(bind, app, sched, **options))
        except (ValueError, TypeError, OSError) as exc:
            for srv in servers:
                srv.socket.close()
            if isinstance(exc, ssl.SSLError):
                raise UsageError(f"cannot load the TLS certificate: {exc}") from None
            if isinstance(exc, OSError):
                raise UsageError(f"cannot listen on {bind}: {exc.strerror or exc}") from None
            raise UsageError(str(exc)) from None
    return servers


def serve(app: Callable[..., Any], binds: Sequence[str], options: dict[str, Any],
          grace: float = 30.0, sockets: Sequence[Any] | None = None) -> int:
    """Serve ``app`` on every address in ``binds`` until SIGTERM/SIGINT; returns the exit status.

    ``sockets``, if given, are already-listening sockets used instead of
    ``binds``. The first SIGTERM/SIGINT stops accepting and lets requests in
    flight finish for ``grace`` seconds; a second one acts at once (the
    default handlers are back). Raises UsageError if an address cannot be
    bound.
    """
    from cogen.core.schedulers import Scheduler
    from cogen.core.signals import SignalPipe
    from cogen.web._broker import close_broker_after
    sched = Scheduler(broker=options.get("broker"))
    servers = listen_all(list(sockets) if sockets else list(binds), app, sched, options)

    def stop(signum: int) -> None:
        log.info("received %s, shutting down gracefully", signal.Signals(signum).name)
        signals.close()
        for srv in servers:
            srv.shutdown(grace)
        close_broker_after(sched, servers)

    # Handlers first: whoever reads "listening on" may signal at once.
    signals = SignalPipe(sched, {signal.SIGTERM: stop, signal.SIGINT: stop})
    for srv in servers:
        log.info("listening on %s", describe(srv))
        srv.start()
    try:
        sched.run()
    except Exception:
        log.exception("the server failed")
        return 1
    finally:
        signals.close()
        sched.close()
    log.info("stopped")
    return 0


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
