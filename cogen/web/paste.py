"""PasteDeploy entry points: the server, an app loader, and the middleware filters.

An ini file serves an app with cogen like this (``egg:cogen#...`` needs cogen
installed with PasteDeploy, the ``paste`` extra: ``pip install -e '.[paste]'``
from a checkout)::

    [server:main]
    use = egg:cogen#http
    host = 127.0.0.1
    port = 8080
    threads = 4
    max_body = 10MB

``host`` and ``port`` (or ``bind``: one or more addresses separated by
spaces, ``HOST:PORT``, ``[::1]:PORT``, ``unix:/path``; or waitress's
``listen``: ``HOST:PORT`` or ``*:PORT`` items), ``graceful_timeout``
and every option of :mod:`cogen.web.options` (and its aliases, such as
waitress's ``connection_limit``) are accepted as ini strings; each is
converted and checked when the server is loaded, and a bad one raises
:class:`PasteConfigError` naming it. Several processes are not available
here; use ``cogen-web --workers`` or gunicorn.

Entry points (see pyproject.toml): ``paste.server_factory`` and
``paste.server_runner`` ``http`` and ``wsgi``; ``paste.app_factory`` ``app``
(serve any ``module:attribute``, the ini's directory importable);
``paste.filter_app_factory`` ``lazy_sr`` and ``sync_input``.

``python -m cogen.web.paste CONFIG.ini`` loads ``[server:main]`` and
``[app:main]`` (or a pipeline/composite named ``main``) and serves until
SIGTERM/SIGINT.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from cogen.errors import CogenError
from cogen.web.options import as_bool, as_seconds, resolve_options

__all__ = [
    "PasteConfigError",
    "PasteServer",
    "app_factory",
    "main",
    "server_factory",
    "server_runner",
]

log = logging.getLogger("cogen.web")

#: Keys of ``[server:...]`` that are not server options.
_SERVER_KEYS = ("host", "port", "bind", "listen", "graceful_timeout")


class PasteConfigError(CogenError, ValueError):
    """A bad key or value in an ini section; the message names it.

    ``details``, if not empty, is the traceback of an app that failed while
    being imported or made (that failure is also the exception's ``__cause__``).
    """

    def __init__(self, message: str, details: str = "") -> None:
        super().__init__(message)
        self.details = details


class PasteServer:
    """What :func:`server_factory` returns: call it with a WSGI app to serve it.

    Attributes:
        binds: the addresses to listen on.
        options: the converted server options.
        grace: seconds requests in flight may take to finish on a stop.
        servers: the :class:`~cogen.web.wsgi.WSGIServer` objects, once serving.
        sched: their :class:`~cogen.core.schedulers.Scheduler`, once serving (else None).
        ready: a ``threading.Event`` set once every address is listening
            (so a test can run the server in a thread and read
            :attr:`addresses`).
    """

    def __init__(self, binds: Sequence[str], options: Mapping[str, Any], grace: float) -> None:
        self.binds = list(binds)
        self.options = dict(options)
        self.grace = grace
        self.servers: list[Any] = []
        self.ready = threading.Event()
        self.sched: Any = None
        self._runner: Any = None
        self._stop_requested = False

    @property
    def addresses(self) -> list[Any]:
        """The addresses listened on (real ports), once :attr:`ready` is set."""
        return [srv.address for srv in self.servers]

    def __call__(self, app: Callable[..., Any]) -> None:
        """Serve ``app`` until SIGTERM/SIGINT (in the main thread) or :meth:`shutdown`.

        Raises OSError if an address cannot be bound (nothing is left open).
        """
        from cogen.web.runner import Runner
        runner = Runner(app, self.binds, self.options, grace=self.grace)
        self.servers = runner.servers

        def ready() -> None:
            self._runner = runner
            self.sched = runner.sched
            self.ready.set()
            if self._stop_requested:
                runner.sched.call_soon_threadsafe(runner.stop)

        runner.run(signals={signal.SIGTERM: runner.on_signal, signal.SIGINT: runner.on_signal},
                   on_ready=ready)
        log.info("stopped")

    def shutdown(self) -> None:
        """Stop gracefully, from any thread; the call serving the app then returns."""
        self._stop_requested = True
        if self._runner is not None:
            self._runner.sched.call_soon_threadsafe(self._runner.stop)


def _listen_binds(value: Any) -> list[str]:
    """waitress's ``listen``: ``HOST:PORT`` items separated by spaces, ``*:PORT`` for all interfaces.

    ``*`` stands for every address family the system can listen on (IPv4's
    0.0.0.0 and IPv6's ::, as getaddrinfo gives them for a passive socket).
    """
    binds: list[str] = []
    for item in str(value).split():
        host, sep, port = item.rpartition(":")
        if sep and host == "*":
            try:
                infos = socket.getaddrinfo(None, int(port), socket.AF_UNSPEC, socket.SOCK_STREAM,
                                           socket.IPPROTO_TCP, socket.AI_PASSIVE)
            except (ValueError, OSError) as exc:
                raise PasteConfigError(f"invalid value {item!r} for option 'listen': "
                                       f"{exc}") from None
            for family, _, _, _, sockaddr in infos:
                addr = str(sockaddr[0])
                bind = f"[{addr}]:{port}" if family == socket.AF_INET6 else f"{addr}:{port}"
                if bind not in binds:
                    binds.append(bind)
        else:
            binds.append(item)
    return binds


def server_factory(global_conf: Mapping[str, Any] | None = None, host: str | None = None,
                   port: Any = None, **local_conf: Any) -> PasteServer:
    """``paste.server_factory``: check the ini keys now; returns the server to call with the app.

    The addresses come from ``listen`` (waitress's: ``127.0.0.1:6543``,
    ``*:6543``, several separated by spaces), ``bind`` (cogen's, which takes
    ``unix:/path`` too) or ``host`` and ``port`` (127.0.0.1 and 8080 by
    default); only one of the three forms may be given. Raises
    PasteConfigError naming a bad or unknown key.
    """
    from cogen.web.wsgi import parse_bind
    given = [key for key in ("listen", "bind") if key in local_conf]
    if len(given) > 1 or given and (host is not None or port is not None):
        raise PasteConfigError(f"option {given[0]!r} and option "
                               f"{given[1] if len(given) > 1 else 'host/port'!r} both name the "
                               f"addresses: give one of them")
    if given:
        key = given[0]
        binds = (_listen_binds(local_conf[key]) if key == "listen"
                 else str(local_conf[key]).split())
        if not binds:
            raise PasteConfigError(f"invalid value '' for option {key!r}: want one or more "
                                   f"addresses")
    else:
        host = "127.0.0.1" if host is None else host
        port = 8080 if port is None else port
        try:
            number = int(str(port).strip())
            if not 0 <= number <= 65535:
                raise ValueError
        except ValueError:
            raise PasteConfigError(f"invalid value {port!r} for option 'port': "
                                   f"want a number 0-65535") from None
        host = str(host).strip()
        binds = [f"[{host}]:{number}" if ":" in host else f"{host}:{number}"]
    for bind in binds:
        try:
            parse_bind(bind)
        except ValueError as exc:
            raise PasteConfigError(f"invalid value {bind!r} for option "
                                   f"{given[0] if given else 'bind'!r}: {exc}") from None
    grace_text = local_conf.get("graceful_timeout", 30.0)
    try:
        grace = as_seconds(grace_text)
    except ValueError as exc:
        raise PasteConfigError(f"invalid value {grace_text!r} for option 'graceful_timeout': "
                               f"{exc}") from None
    try:
        resolve_options(local_conf, strings=True, ignore=_SERVER_KEYS)
    except (TypeError, ValueError) as exc:
        raise PasteConfigError(str(exc)) from None
    options = {key: value for key, value in local_conf.items() if key not in _SERVER_KEYS}
    # Convert once more per key, so the server gets typed values (aliases kept as given).
    options = {key: _convert(key, value) for key, value in options.items()}
    return PasteServer(binds, options, grace if grace is not None else 1e9)


def _convert(key: str, value: Any) -> Any:
    from cogen.web.options import ALIASES, OPTIONS_BY_NAME
    return OPTIONS_BY_NAME[ALIASES.get(key, key)].convert(value)


def server_runner(wsgi_app: Callable[..., Any], global_conf: Mapping[str, Any] | None = None,
                  **local_conf: Any) -> None:
    """``paste.server_runner``: serve ``wsgi_app`` with the ini's settings until stopped.

    Raises PasteConfigError for a bad key, OSError if an address cannot be bound.
    """
    server_factory(global_conf, **local_conf)(wsgi_app)


def app_factory(global_conf: Mapping[str, Any] | None = None, app: str | None = None,
                call: Any = "false") -> Callable[..., Any]:
    """``paste.app_factory``: the WSGI app at ``app = module:attribute``.

    The ini file's directory (``here``) is importable. ``call = true`` calls
    the attribute (a factory without arguments) to get the app. Raises
    PasteConfigError when the key is missing or the app does not load.
    """
    from cogen.web.loader import UsageError, load_app
    if not app:
        raise PasteConfigError("missing option 'app': want app = module:attribute")
    here = (global_conf or {}).get("here")
    if here and here not in sys.path:
        sys.path.insert(0, here)
    try:
        return load_app(app, as_bool(call))
    except UsageError as exc:
        # the app's own failure stays the cause: its traceback is the one that helps
        raise PasteConfigError(f"option 'app': {exc}", exc.details) from exc.__cause__
    except ValueError as exc:
        raise PasteConfigError(f"option 'app': {exc}") from None


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m cogen.web.paste CONFIG``: serve an ini file's app; returns the exit status.

    Bad input (a missing file, a bad key, an address in use) gets one line
    on stderr and exit status 2.
    """
    parser = argparse.ArgumentParser(prog="python -m cogen.web.paste",
                                     description="Serve a PasteDeploy ini file with cogen.")
    parser.add_argument("config", help="the ini file")
    parser.add_argument("--server", default="main", help="the [server:NAME] section")
    parser.add_argument("--app", default="main", help="the [app:NAME] (or pipeline) section")
    parser.add_argument("--log-level", default="info", type=str.lower,
                        choices=["debug", "info", "warning", "error", "critical"])
    ns = parser.parse_args(argv)
    try:
        from paste.deploy import loadapp, loadserver  # type: ignore[import-untyped]
    except ImportError:
        print("cogen paste: error: PasteDeploy is not installed: install cogen's paste extra "
              "(from a checkout: pip install -e '.[paste]')", file=sys.stderr)
        return 2

    from cogen.web.cli import configure_logging
    configure_logging(ns.log_level)
    uri = "config:" + os.path.abspath(ns.config)
    server: Any = None
    try:
        if not os.path.isfile(ns.config):
            raise PasteConfigError(f"no such file: {ns.config!r}")
        server = loadserver(uri, name=ns.server)
        app = loadapp(uri, name=ns.app)
        server(app)
    except (PasteConfigError, LookupError, ImportError) as exc:
        print(f"cogen paste: error: {exc}", file=sys.stderr)
        details = getattr(exc, "details", "")
        if details:
            print(details, end="", file=sys.stderr)
        return 2
    except OSError as exc:
        where = " ".join(getattr(server, "binds", []))
        print(f"cogen paste: error: cannot listen on {where}: {exc.strerror or exc}",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":  # pragma: no cover
    # Run the imported module's main, so the entry points and this share one
    # PasteConfigError class (not one in __main__ and one in cogen.web.paste).
    from cogen.web.paste import main as _main
    sys.exit(_main())
