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
import logging
import os
import signal
import ssl
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn

import cogen
from cogen.web.config import SETTABLE, CommandSettings, ConfigError, settle
from cogen.web.loader import UsageError, load_app
from cogen.web.options import (
    COMMAND_OPTIONS,
    OPTIONS,
    OPTIONS_BY_NAME,
    Option,
    as_bool,
    as_list,
    as_proxy_headers,
)
from cogen.web.runner import describe, reopen_logs  # noqa: F401  (describe: see __all__)

# UsageError, load_app (cogen.web.loader) and describe (cogen.web.runner)
# are still importable from here, where they used to live.
__all__ = [
    "build_parser",
    "check_tls",
    "configure_logging",
    "main",
    "serve",
    "settings_from",
]

log = logging.getLogger("cogen.web")


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

    Returns a dict with every option of :data:`cogen.web.config.SETTABLE`
    (the command's own: :meth:`CommandSettings.from_values
    <cogen.web.config.CommandSettings.from_values>`) and ``given``, the
    names some source set. Raises UsageError (one line, naming the source and the option).
    """
    cli = _from_command_line(build_parser().parse_args(argv))
    try:
        given = settle(cli, environ, cli.get("config"))
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    settings = {name: opt.default for name, opt in SETTABLE.items()}
    settings.update(given)
    settings["given"] = set(given)
    return settings


def _server_options(settings: dict[str, Any], command: CommandSettings) -> dict[str, Any]:
    """The WSGIServer keywords among ``settings``: those some source set, checked."""
    given = {name: settings[name] for name in settings["given"] if name in OPTIONS_BY_NAME}
    given["access_log"] = bool(settings["access_log"] or command.access_logfile)
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
        command = CommandSettings.from_values(settings)
        if command.app is None:
            raise UsageError("no application: give MODULE:APP (or COGEN_WEB_APP, or app in the "
                             "--config file)")
        host, port = command.host, command.port
        binds: list[Any] = list(command.bind) or [f"[{host}]:{port}" if ":" in host
                                                  else f"{host}:{port}"]
        options = _server_options(settings, command)
        check_tls(options)
        from cogen.web._procman import ProcessError, systemd_sockets
        try:
            activated = systemd_sockets()
        except ProcessError as exc:
            raise UsageError(str(exc)) from None
        if activated:
            binds = list(activated)  # socket activation: systemd bound them
        configure_logging(command.log_level, command.error_logfile, command.access_logfile,
                          command.log_config)
        raise_open_file_limit()
        count = command.workers
        grace = command.graceful_timeout if command.graceful_timeout is not None else 1e9
        # --reload: a master that replaces its worker(s), even just one
        if count > 1 or command.reload:
            if not hasattr(os, "fork"):
                what = f"--workers {count}" if count > 1 else "--reload"
                raise UsageError(f"{what} needs os.fork, which this platform lacks")
            from cogen.web import workers
            # The workers import the app themselves (so SIGHUP re-reads it).
            return workers.run_master(app_spec=command.app, call=command.call, binds=binds,
                                      options=options, workers=count, grace=grace,
                                      settings=command)
        app = load_app(command.app, command.call)
        return serve(app, binds, options, grace=grace, settings=command)
    except UsageError as exc:
        print(f"cogen-web: error: {exc}", file=sys.stderr)
        if exc.details:
            print(exc.details, end="", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0


def _listen_error(bind: Any, exc: BaseException) -> UsageError:
    """The one line for an address that cannot be used (see :data:`cogen.web.runner.ListenError`)."""
    if isinstance(exc, ssl.SSLError):
        return UsageError(f"cannot load the TLS certificate: {exc}")
    if isinstance(exc, OSError):
        return UsageError(f"cannot listen on {bind}: {exc.strerror or exc}")
    return UsageError(str(exc))


def serve(app: Callable[..., Any], binds: Sequence[str], options: dict[str, Any],
          grace: float = 30.0, sockets: Sequence[Any] | None = None,
          settings: CommandSettings | None = None) -> int:
    """Serve ``app`` on every address in ``binds`` until SIGTERM/SIGINT; returns the exit status.

    ``sockets``, if given, are already-listening sockets used instead of
    ``binds``. ``settings`` are the command's (their defaults if None): the
    watchdog's threshold, the stats path and the pid file are taken from them. The first
    SIGTERM/SIGINT/SIGQUIT stops accepting and lets requests in flight finish for
    ``grace`` seconds; a second one acts at once (the default handlers are
    back). SIGHUP stops gracefully too (only a master, ``--workers 2`` or
    ``--reload``, can load new code). SIGUSR1 reopens the log files.
    Raises UsageError if an address cannot be bound or the pid file cannot
    be written.
    """
    from cogen.web.runner import Runner
    settings = settings or CommandSettings.defaults()
    runner = Runner(app, list(sockets) if sockets else list(binds), options, grace=grace,
                    blocked_loop_warning=settings.blocked_loop_warning,
                    stats_path=settings.stats_path, listen_error=_listen_error)
    from cogen.web._procman import write_pid_file
    pidfile = write_pid_file(settings.pid, runner.close)
    try:
        runner.run(signals={signal.SIGTERM: runner.on_signal, signal.SIGINT: runner.on_signal,
                            # (nginx's graceful stop; Python's default dumps core)
                            signal.SIGQUIT: runner.on_signal,
                            signal.SIGUSR1: reopen_logs,
                            # no master to replace this process with new code: a
                            # graceful stop rather than the default's instant death
                            signal.SIGHUP: lambda signum: runner.stop(
                                "received SIGHUP (one process cannot reload: run "
                                "--workers 2 or --reload for that)")})
    except Exception:
        log.exception("the server failed")
        return 1
    finally:
        if pidfile is not None:
            pidfile.remove()
    log.info("stopped")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
