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
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn

import cogen
from cogen.web.config import SETTABLE, ConfigError, settle
from cogen.web.options import (
    COMMAND_OPTIONS,
    OPTIONS,
    OPTIONS_BY_NAME,
    Option,
    as_bool,
    as_list,
    as_proxy_headers,
)

__all__ = [
    "UsageError",
    "build_parser",
    "check_tls",
    "configure_logging",
    "describe",
    "load_app",
    "main",
    "serve",
    "settings_from",
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


def _shown_default(opt: Option) -> str:
    if opt.shown is not None:
        return opt.shown
    if opt.default in (None, []):
        return "none"
    if isinstance(opt.default, bool):
        return "yes" if opt.default else "no"
    return str(opt.default)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, with one flag per option (:mod:`cogen.web.options`).

    Every flag defaults to ``argparse.SUPPRESS``, so the namespace holds only
    what the command line gave: the environment and the config file fill in
    the rest (:func:`cogen.web.config.settle`). Values stay text here and are
    converted by the options' converters.
    """
    parser = _Parser(
        prog="cogen-web",
        description="Serve a WSGI application with cogen's HTTP/1.1 server. Every option can "
                    "also be set from the environment (COGEN_WEB_<NAME>, e.g. COGEN_WEB_WORKERS=4) "
                    "or a TOML file (--config); the command line wins, then the environment, "
                    "then the file.",
    )
    parser.add_argument("app", metavar="MODULE:APP", nargs="?", default=argparse.SUPPRESS,
                        help="the WSGI application: a dotted module, a colon, an attribute path "
                             "(default attribute 'application'; 'make_app()' calls a factory)")
    parser.add_argument("--version", action="version", version=f"cogen {cogen.__version__}")
    groups: dict[str, Any] = {}
    for opt in COMMAND_OPTIONS + OPTIONS:
        if opt.cli is None:
            continue
        group = groups.get(opt.group)
        if group is None:
            group = groups[opt.group] = parser.add_argument_group(f"{opt.group} options")
        kwargs: dict[str, Any] = {
            "dest": opt.name, "default": argparse.SUPPRESS,
            "help": f"{opt.help} (default: {_shown_default(opt)})".replace("%", "%%")}
        if opt.convert is as_bool and opt.metavar is None:
            kwargs.update(action="store_const", const=True)
        else:
            kwargs["metavar"] = opt.metavar
            if opt.convert in (as_list, as_proxy_headers):
                kwargs["action"] = "append"
        short = [a for a in opt.aliases if not a.startswith("--")]
        long = [a for a in opt.aliases if a.startswith("--")]
        group.add_argument(*short, opt.cli, *long, **kwargs)
        if opt.name == "log_level":
            # On or off, as in gunicorn: a log line per request costs more
            # than the rest of a small request's handling.
            group.add_argument("--access-log", dest="access_log", action="store_const",
                               const=True, default=argparse.SUPPRESS,
                               help="log every request on stderr (combined log format)")
            group.add_argument("--no-access-log", dest="access_log", action="store_const",
                               const=False, default=argparse.SUPPRESS,
                               help="do not log requests (the default)")
    return parser


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


def _from_command_line(ns: argparse.Namespace) -> dict[str, Any]:
    """The options the command line gave, converted; UsageError names the flag."""
    given: dict[str, Any] = {}
    for name, value in vars(ns).items():
        opt = SETTABLE[name]
        try:
            given[name] = opt.convert(value)
        except (TypeError, ValueError) as exc:
            raise UsageError(f"argument {opt.cli or opt.metavar}: {exc}") from None
    return given


def settings_from(argv: Sequence[str] | None = None,
                  environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Every option's value from the command line, the environment, the config file or its default.

    Returns a dict with every option of :data:`cogen.web.config.SETTABLE`.
    Raises UsageError (one line, naming the source and the option).
    """
    cli = _from_command_line(build_parser().parse_args(argv))
    try:
        given = settle(cli, environ, cli.get("config"))
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    settings = {name: opt.default for name, opt in SETTABLE.items()}
    settings.update(given)
    settings["given"] = set(given)
    if settings["app"] is None:
        raise UsageError("no application: give MODULE:APP (or COGEN_WEB_APP, or app in the "
                         "--config file)")
    if settings["graceful_timeout"] is None:
        settings["graceful_timeout"] = 1e9
    return settings


def _server_options(settings: dict[str, Any]) -> dict[str, Any]:
    """The WSGIServer keywords among ``settings``: those some source set, checked."""
    given = {name: settings[name] for name in settings["given"] if name in OPTIONS_BY_NAME}
    given["access_log"] = bool(settings["access_log"] or settings["access_logfile"])
    if given.get("keyfile") and not given.get("certfile"):
        raise UsageError("argument --keyfile: needs --certfile too")
    try:
        from cogen.web.environ import ProxyRules
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


def configure_logging(level: str, error_logfile: str | None = None,
                      access_logfile: str | None = None, log_config: str | None = None) -> None:
    """Set up the ``cogen`` loggers: to stderr (or files), each line with the process id.

    ``error_logfile``/``access_logfile``: files for the server's log and the
    access log (``-`` or None: stderr). ``log_config``: a logging
    configuration file applied instead (see
    :func:`cogen.web._procman.load_log_config`). Raises UsageError when a
    file cannot be opened or the configuration is bad.
    """
    from cogen.web._procman import ProcessError, load_log_config, log_handlers
    # Access lines carry their own timestamp; a plain formatter and no caller
    # or thread look-ups keep the per-request cost down (the logging HOWTO's
    # "Optimization" section).
    logging._srcfile = None
    logging.logThreads = False
    logging.logMultiprocessing = False
    try:
        if log_config:
            load_log_config(log_config)
            return
        handler, access_handler = log_handlers(error_logfile, access_logfile)
    except ProcessError as exc:
        raise UsageError(str(exc)) from None
    handler.setFormatter(logging.Formatter(
        "%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("cogen")
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level.upper()))
    root.propagate = False
    access_handler.setFormatter(logging.Formatter("%(message)s"))
    access = logging.getLogger("cogen.web.access")
    access.handlers[:] = [access_handler]
    access.propagate = False


def reopen_logs(signum: int = 0) -> None:
    """Reopen the log files (the SIGUSR1 handler, as loop code), and say so in the log."""
    from cogen.web._procman import reopen_log_files
    count = reopen_log_files()
    log.info("received SIGUSR1: reopened %d log file(s)", count)


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
        settings = settings_from(argv)
        host, port = settings["host"], settings["port"]
        binds: list[Any] = settings["bind"] or [f"[{host}]:{port}" if ":" in host
                                                else f"{host}:{port}"]
        options = _server_options(settings)
        check_tls(options)
        from cogen.web._procman import ProcessError, systemd_sockets
        try:
            activated = systemd_sockets()
        except ProcessError as exc:
            raise UsageError(str(exc)) from None
        if activated:
            binds = list(activated)  # socket activation: systemd bound them
        configure_logging(settings["log_level"], settings["error_logfile"],
                          settings["access_logfile"], settings["log_config"])
        raise_open_file_limit()
        count = settings["workers"]
        # --reload: a master that replaces its worker(s), even just one
        if count > 1 or settings["reload"]:
            if not hasattr(os, "fork"):
                what = f"--workers {count}" if count > 1 else "--reload"
                raise UsageError(f"{what} needs os.fork, which this platform lacks")
            from cogen.web import workers
            # The workers import the app themselves (so SIGHUP re-reads it).
            return workers.run_master(app_spec=settings["app"], call=settings["call"],
                                      binds=binds, options=options, workers=count,
                                      grace=settings["graceful_timeout"], settings=settings)
        app = load_app(settings["app"], settings["call"])
        return serve(app, binds, options, grace=settings["graceful_timeout"], settings=settings)
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
          grace: float = 30.0, sockets: Sequence[Any] | None = None,
          settings: Mapping[str, Any] | None = None) -> int:
    """Serve ``app`` on every address in ``binds`` until SIGTERM/SIGINT; returns the exit status.

    ``sockets``, if given, are already-listening sockets used instead of
    ``binds``. ``settings`` are the command's (:data:`COMMAND_OPTIONS`): the
    watchdog's threshold and the stats path are taken from them. The first
    SIGTERM/SIGINT stops accepting and lets requests in flight finish for
    ``grace`` seconds; a second one acts at once (the default handlers are
    back). Raises UsageError if an address cannot be bound.
    """
    from cogen.core.schedulers import Scheduler
    from cogen.core.signals import SignalPipe
    from cogen.web._broker import close_broker_after
    from cogen.web.health import ProcessHealth
    settings = settings or {}
    sched = Scheduler(broker=options.get("broker"))
    health = ProcessHealth(sched, (), settings.get("blocked_loop_warning", 0.1))
    app = with_stats(app, settings.get("stats_path"), lambda: stats_document([health.figures()]))
    servers = listen_all(list(sockets) if sockets else list(binds), app, sched, options)
    health.servers = servers
    pidfile = _write_pid(settings, servers)

    def stop(signum: int) -> None:
        log.info("received %s, shutting down gracefully", signal.Signals(signum).name)
        signals.close()
        for srv in servers:
            srv.shutdown(grace)
        close_broker_after(sched, servers)

    # Handlers first: whoever reads "listening on" may signal at once.
    signals = SignalPipe(sched, {signal.SIGTERM: stop, signal.SIGINT: stop,
                                 signal.SIGUSR1: reopen_logs})
    for srv in servers:
        log.info("listening on %s", describe(srv))
        srv.start()
    health.start()
    try:
        sched.run()
    except Exception:
        log.exception("the server failed")
        return 1
    finally:
        health.stop()
        signals.close()
        sched.close()
        if pidfile is not None:
            pidfile.remove()
    log.info("stopped")
    return 0


def _write_pid(settings: Mapping[str, Any], servers: Sequence[Any]) -> Any:
    """Write ``settings['pid']`` if set; returns the PidFile (None if not set).

    On failure closes ``servers``' sockets and raises UsageError.
    """
    path = settings.get("pid")
    if not path:
        return None
    from cogen.web._procman import PidFile, ProcessError
    pidfile = PidFile(path)
    try:
        pidfile.write()
    except ProcessError as exc:
        for srv in servers:
            srv.socket.close()
        raise UsageError(str(exc)) from None
    return pidfile


def with_stats(app: Callable[..., Any], path: str | None,
               figures: Callable[[], dict[str, Any]]) -> Callable[..., Any]:
    """``app`` behind a :class:`~cogen.web.health.StatsMiddleware` on ``path`` (if set)."""
    if not path:
        return app
    from cogen.web.health import StatsMiddleware
    return StatsMiddleware(app, path, figures)


def stats_document(workers: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The JSON of the stats route: each worker's figures and their totals."""
    keys = ("connections", "requests_active", "requests_parked", "requests_served",
            "blocked_loop_events")
    total = {key: sum(int(w.get(key, 0)) for w in workers) for key in keys}
    return {"workers": list(workers), "total": total}


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
