"""The server's options, defined once.

Each :class:`Option` has a name, a converter (from a string, for the CLI and
PasteDeploy), a default and a help text. ``WSGIServer(**options)``, the
``cogen-web`` flags, the PasteDeploy ``[server:main]`` keys and the docs are
all generated from :data:`OPTIONS`, so they cannot drift apart.

:data:`COMMAND_OPTIONS` are the ``cogen-web`` command's own settings (where
to listen, how many workers, logging, the watchdog...), defined the same
way. Every option of both tables can also come from the environment
(``COGEN_WEB_<NAME>``) and from a TOML file
(``--config``): :mod:`cogen.web.config` reads them and applies the one
precedence rule: command line, then environment, then file, then default.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from cogen.web.environ import check_proxy_headers

__all__ = [
    "ALIASES",
    "COMMAND_OPTIONS",
    "ENV_PREFIX",
    "OPTIONS",
    "OPTIONS_BY_NAME",
    "Option",
    "ServerOptions",
    "as_auto_bool",
    "as_bool",
    "as_group",
    "as_int",
    "as_list",
    "as_mode",
    "as_proxy_headers",
    "as_seconds",
    "as_log_level",
    "as_port",
    "as_positive",
    "as_size",
    "as_str",
    "resolve_options",
    "resolve_server_options",
]


def as_bool(value: Any) -> bool:
    """``'true'/'yes'/'on'/'1'`` and their opposites, or a bool."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return bool(value)
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected a boolean (true/false), got {value!r}")


def as_int(value: Any) -> int:
    """A whole number >= 0."""
    if isinstance(value, bool):
        raise ValueError(f"expected a whole number, got {value!r}")
    try:
        number = int(str(value).strip()) if not isinstance(value, int) else value
    except ValueError:
        raise ValueError(f"expected a whole number, got {value!r}") from None
    if number < 0:
        raise ValueError(f"expected a number >= 0, got {value!r}")
    return number


def as_seconds(value: Any) -> float | None:
    """Seconds (a number >= 0); ``none``/``off``/``0`` where documented mean no limit."""
    if value is None:
        return None
    if isinstance(value, str) and value.strip().lower() in ("none", "off", "never"):
        return None
    if isinstance(value, bool):
        raise ValueError(f"expected a number of seconds, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"expected a number of seconds, got {value!r}") from None
    if number < 0 or number != number:
        raise ValueError(f"expected a number of seconds >= 0, got {value!r}")
    return number


_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "kib": 1024, "m": 1024**2, "mb": 1024**2,
          "mib": 1024**2, "g": 1024**3, "gb": 1024**3, "gib": 1024**3}


def as_size(value: Any) -> int | None:
    """A size in bytes, with an optional unit: ``65536``, ``64k``, ``10MB``; ``none`` for no limit."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"expected a size >= 0, got {value!r}")
        return value
    text = str(value).strip().lower()
    if text in ("none", "off", "unlimited"):
        return None
    digits = text.rstrip("kmgib ")
    unit = text[len(digits):].strip()
    if not digits.isdigit() or unit not in _UNITS:
        raise ValueError(f"expected a size such as 65536, 64k or 10MB, got {value!r}")
    return int(digits) * _UNITS[unit]


def as_list(value: Any) -> list[str]:
    """A list, or a comma/space separated string."""
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    # each item may itself be a list (a repeated CLI flag given "a,b")
    return [v for item in value for v in str(item).replace(",", " ").split()]


def as_str(value: Any) -> str | None:
    """A string; ``none`` or empty for None."""
    if value is None:
        return None
    text = str(value)
    return None if text.strip().lower() in ("", "none") else text


def as_proxy_headers(value: Any) -> list[str]:
    """Proxy header names (a list or a comma/space separated string), checked."""
    return list(check_proxy_headers(as_list(value)))


def as_mode(value: Any) -> int | None:
    """File permission bits: an octal string (``660``, ``0o660``) or an int; ``none`` for None."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        text = str(value).strip().lower()
        if text in ("", "none"):
            return None
        try:
            number = int(text.removeprefix("0o"), 8)
        except ValueError:
            raise ValueError(f"expected octal permission bits such as 660, got {value!r}") from None
    if not 0 <= number <= 0o7777:
        raise ValueError(f"expected octal permission bits such as 660, got {value!r}")
    return number


def as_group(value: Any) -> int | None:
    """A group, by name or number, as its id; ``none`` for None. Raises ValueError if unknown."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return as_int(value)
    text = str(value).strip()
    if text.lower() in ("", "none"):
        return None
    if text.isdigit():
        return int(text)
    try:
        import grp
    except ImportError:  # not on POSIX
        raise ValueError(f"cannot look up group {value!r} on this platform") from None
    try:
        return grp.getgrnam(text).gr_gid
    except KeyError:
        raise ValueError(f"no such group {value!r}") from None


def as_port(value: Any) -> int:
    """A TCP port, 0-65535 (0: the system picks a free one)."""
    try:
        port = as_int(value)
    except ValueError:
        raise ValueError(f"invalid port {value!r}: want a number 0-65535") from None
    if port > 65535:
        raise ValueError(f"invalid port {value!r}: want a number 0-65535")
    return port


def as_positive(value: Any) -> int:
    """A whole number >= 1."""
    try:
        number = as_int(value)
    except ValueError:
        raise ValueError(f"invalid number {value!r}: want 1 or more") from None
    if number < 1:
        raise ValueError(f"invalid number {value!r}: want 1 or more")
    return number


LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


def as_log_level(value: Any) -> str:
    """A logging level name, any case: debug, info, warning, error or critical."""
    text = str(value).strip().lower()
    if text not in LOG_LEVELS:
        raise ValueError(f"invalid log level {value!r}: want one of {', '.join(LOG_LEVELS)}")
    return text


def as_auto_bool(value: Any) -> bool | None:
    """A boolean, or None for ``auto`` (and None): the server decides."""
    if value is None or isinstance(value, str) and value.strip().lower() == "auto":
        return None
    return as_bool(value)


def as_broker_url(value: Any) -> str | None:
    """A Redis URL (``redis://``, ``rediss://``, ``unix://``) checked as redis-py reads it, or None."""
    text = as_str(value)
    if text is None:
        return None
    from cogen.redis.connection import parse_url

    parse_url(text)  # ValueError names the problem
    return text


@dataclasses.dataclass(frozen=True)
class Option:
    """One server option.

    ``cli`` is the long flag (None: not on the command line); ``metavar`` its
    argument name; ``group`` orders the help output; ``shown``, if set, is
    how the help and the docs spell the default.
    """

    name: str
    convert: Callable[[Any], Any]
    default: Any
    help: str
    cli: str | None = None
    metavar: str | None = None
    group: str = "server"
    shown: str | None = None
    aliases: tuple[str, ...] = ()

    @property
    def env(self) -> str:
        """The environment variable that sets this option (``COGEN_WEB_<NAME>``)."""
        return ENV_PREFIX + self.name.upper()


#: The prefix of the environment variables that set options.
ENV_PREFIX = "COGEN_WEB_"


OPTIONS: tuple[Option, ...] = (
    Option("backlog", as_int, 1024, "listen() backlog: connections the OS queues before accept",
           "--backlog", "N"),
    Option("threads", as_int, 0,
           "run the app (call and iteration) in a pool of N threads for blocking apps; "
           "0 runs it in the connection's coroutine", "--threads", "N"),
    Option("thread_affinity", as_bool, True,
           "with threads: serve each response on one thread from the app call to close() (off: "
           "each step on any free thread, in the response's own context; a parked request then "
           "holds no thread, but thread-locals do not carry between steps)",
           "--thread-affinity", "BOOL"),
    Option("header_timeout", as_seconds, 30.0,
           "seconds a client has to send a complete request head (slowloris guard)",
           "--header-timeout", "SECONDS", "limits"),
    Option("keepalive_timeout", as_seconds, 75.0,
           "seconds an idle keep-alive connection is kept open between requests",
           "--keepalive-timeout", "SECONDS", "limits"),
    Option("body_timeout", as_seconds, 60.0,
           "seconds allowed between two reads of a request body", "--body-timeout", "SECONDS",
           "limits"),
    Option("send_timeout", as_seconds, 60.0,
           "seconds a client may keep the server waiting to send it data", "--send-timeout",
           "SECONDS", "limits"),
    Option("max_request_line", as_int, 8190, "longest request line (414 beyond)",
           "--max-request-line", "BYTES", "limits"),
    Option("max_header_bytes", as_size, 65536, "largest request head or chunked trailer section (431 beyond)",
           "--max-header-bytes", "BYTES", "limits"),
    Option("max_header_count", as_int, 100, "most header (or trailer) fields in a request (431 beyond)",
           "--max-header-count", "N", "limits"),
    Option("max_body", as_size, 1024**3, "largest request body, 'none' for no limit (413 beyond)",
           "--max-body", "BYTES", "limits"),
    Option("body_buffer", as_size, 1024**2,
           "request bodies up to this size stay in memory; larger ones spool to a temporary file",
           "--body-buffer", "BYTES", "limits"),
    Option("max_connections", as_int, 0,
           "most simultaneous connections, 0 for no limit (beyond it, accepting pauses)",
           "--max-connections", "N", "limits"),
    Option("unix_socket_mode", as_mode, None,
           "permission bits of a unix: socket (octal, e.g. 660 so that the group's nginx can "
           "connect); none: what the process umask gives", "--unix-socket-mode", "MODE"),
    Option("unix_socket_group", as_group, None,
           "group (name or id) of a unix: socket; none: the process's group",
           "--unix-socket-group", "GROUP"),
    Option("url_prefix", as_str, None,
           "mount the app under this path: it becomes SCRIPT_NAME; other paths get 404",
           "--url-prefix", "PATH"),
    Option("trusted_proxy", as_list, [],
           "addresses of proxies whose X-Forwarded-*/Forwarded headers are trusted ('*' for any); "
           "repeatable", "--trusted-proxy", "ADDR"),
    Option("trusted_proxy_headers", as_proxy_headers, ["x-forwarded-for", "x-forwarded-host",
                                              "x-forwarded-proto"],
           "the headers a trusted proxy sets, which it overwrites whatever the client sent "
           "(x-forwarded-for, x-forwarded-host, x-forwarded-proto, x-forwarded-port, or "
           "forwarded alone); the others are ignored", "--trusted-proxy-headers", "NAMES",
           shown="x-forwarded-for,x-forwarded-host,x-forwarded-proto"),
    Option("clear_untrusted_proxy_headers", as_auto_bool, None,
           "delete the proxy headers that are not trusted (all of them from a peer that is not "
           "a trusted proxy) before the app sees them; 'auto': when trusted_proxy is set",
           "--clear-untrusted-proxy-headers", "yes|no|auto", shown="auto"),
    Option("server_name", as_str, None, "SERVER_NAME when the request has no Host",
           "--server-name", "NAME"),
    Option("ident", as_str, "cogen", "the Server response header, 'none' to leave it out",
           "--ident", "TEXT"),
    Option("access_log", as_bool, False,
           "log every request on the cogen.web.access logger (cogen-web: --access-log)",
           None, None, "logging"),
    Option("access_log_format", as_str,
           '%(h)s - - [%(t)s] "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"',
           "access log line format (keys: h t r s b f a D m U q H p)", "--access-log-format", "FORMAT",
           "logging"),
    Option("stream_input", as_bool, False,
           "do not buffer request bodies: the app reads them with environ['cogen.input'] operations",
           None, None),
    Option("sockoper_timeout", as_seconds, None,
           "the original cogen's name: when set, used for the header, body and send timeouts",
           None, None, "compat"),
    Option("sendfile_timeout", as_seconds, None,
           "the original cogen's name: the send timeout of wsgi.file_wrapper responses",
           None, None, "compat"),
    Option("certfile", as_str, None, "TLS certificate chain (PEM); serves https",
           "--certfile", "PATH", "tls"),
    Option("keyfile", as_str, None, "TLS private key (PEM), if not in the certfile",
           "--keyfile", "PATH", "tls"),
    Option("ssl_context", lambda v: v, None, "an ssl.SSLContext to serve https with", None, None,
           "tls"),
    Option("cogen_key", as_auto_bool,
           None,
           "also give the gate as environ['cogen'] (besides 'cogen.wsgi'); 'auto' leaves it out "
           "for apps wrapped in wsgiref.validate, which allows only str under undotted keys",
           None, None, "compat", shown="auto"),
    Option("reuse_port", as_bool, False, "set SO_REUSEPORT on the listening socket",
           None, None),
    Option("websocket_max_message", as_size, 1024**2,
           "largest WebSocket message accepted (closed with 1009 beyond)",
           "--websocket-max-message", "SIZE", "websocket"),
    Option("websocket_ping_interval", as_seconds, 20.0,
           "ping a WebSocket client idle this long while the app waits to receive, 0 for never",
           "--websocket-ping-interval", "SECONDS", "websocket"),
    Option("websocket_ping_timeout", as_seconds, 20.0,
           "close a WebSocket whose client has not answered a ping within this",
           "--websocket-ping-timeout", "SECONDS", "websocket"),
    Option("websocket_close_timeout", as_seconds, 5.0,
           "how long to wait for the client's answer to a WebSocket close",
           "--websocket-close-timeout", "SECONDS", "websocket"),
    Option("websocket_compression", as_bool, True,
           "agree to per-message deflate (RFC 7692) when a WebSocket client offers it",
           "--websocket-compression", "BOOL", "websocket"),
    Option("broker", as_broker_url, None,
           "a Redis URL (redis://host:6379/0) through which Signals and named "
           "PublishSubscribeQueues reach every worker and machine sharing it",
           "--broker", "URL"),
)

OPTIONS_BY_NAME: dict[str, Option] = {opt.name: opt for opt in OPTIONS}

#: Other spellings accepted as keywords and PasteDeploy keys.
ALIASES: dict[str, str] = {
    "request_queue_size": "backlog",
    "server_ident": "ident",
    "connection_limit": "max_connections",
    "channel_timeout": "keepalive_timeout",
    "url_scheme_trusted_proxy": "trusted_proxy",
    "max_request_body_size": "max_body",
    "max_request_header_size": "max_header_bytes",
    "unix_socket_perms": "unix_socket_mode",
}


def resolve_options(given: Mapping[str, Any], *, strings: bool = False,
                    ignore: Iterable[str] = ()) -> dict[str, Any]:
    """Validate and convert options; returns every option with its value.

    Args:
        given: option names (or aliases) to values.
        strings: the values come from text (PasteDeploy, environment):
            convert every one. Otherwise values already of a usable type are
            still checked by the converter.
        ignore: names to skip silently (e.g. PasteDeploy's ``host``/``port``).
    Raises:
        TypeError: an unknown option, naming it.
        ValueError: a bad value, naming the option and the value.
    """
    skip = set(ignore)
    out = {opt.name: opt.default for opt in OPTIONS}
    for key, value in given.items():
        if key in skip:
            continue
        name = ALIASES.get(key, key)
        opt = OPTIONS_BY_NAME.get(name)
        if opt is None:
            raise TypeError(f"unknown server option {key!r}")
        try:
            out[name] = opt.convert(value)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"invalid value {value!r} for option {key!r}: {exc}") from None
    if out["sockoper_timeout"] is not None:
        for name in ("header_timeout", "body_timeout", "send_timeout"):
            if name not in given:
                out[name] = out["sockoper_timeout"]
    return out


@dataclasses.dataclass(frozen=True, slots=True)
class ServerOptions:
    """The server's options, resolved: one attribute per entry of :data:`OPTIONS`, in its order.

    Made by :func:`resolve_server_options`; read by attribute
    (``opts.max_body``) by the server, its connections and responses, and
    never changed afterwards (``dataclasses.replace`` makes a changed
    copy). tests/web/test_options.py holds the fields equal to
    :data:`OPTIONS`, so a new option needs its field here too.
    """

    backlog: int
    threads: int
    thread_affinity: bool
    header_timeout: float | None
    keepalive_timeout: float | None
    body_timeout: float | None
    send_timeout: float | None
    max_request_line: int
    max_header_bytes: int | None
    max_header_count: int
    max_body: int | None
    body_buffer: int | None
    max_connections: int
    unix_socket_mode: int | None
    unix_socket_group: int | None
    url_prefix: str | None
    trusted_proxy: list[str]
    trusted_proxy_headers: list[str]
    clear_untrusted_proxy_headers: bool | None
    server_name: str | None
    ident: str | None
    access_log: bool
    access_log_format: str
    stream_input: bool
    sockoper_timeout: float | None
    sendfile_timeout: float | None
    certfile: str | None
    keyfile: str | None
    ssl_context: Any
    cogen_key: bool | None
    reuse_port: bool
    websocket_max_message: int | None
    websocket_ping_interval: float | None
    websocket_ping_timeout: float | None
    websocket_close_timeout: float | None
    websocket_compression: bool
    broker: str | None


def resolve_server_options(given: Mapping[str, Any], *,
                           ignore: Iterable[str] = ()) -> ServerOptions:
    """Validate and convert server options; returns them all as a :class:`ServerOptions`.

    As :func:`resolve_options` (the same checks, errors and defaults), typed.
    """
    return ServerOptions(**resolve_options(given, ignore=ignore))


#: The ``cogen-web`` command's own settings (not WSGIServer keywords). Each
#: also comes from ``COGEN_WEB_<NAME>`` and from the ``--config`` file, except
#: ``config`` itself, which a file cannot name.
COMMAND_OPTIONS: tuple[Option, ...] = (
    Option("app", as_str, None,
           "the WSGI application, MODULE:APP (the command's argument; 'make_app()' calls a "
           "factory)", None, "MODULE:APP", "command"),
    Option("call", as_bool, False,
           "APP is a factory: call it (no arguments) to get the application", "--call", None,
           "command"),
    Option("config", as_str, None,
           "a TOML file of settings (keys: the option names); the command line and the "
           "environment override it", "--config", "FILE", "command"),
    Option("host", as_str, "127.0.0.1", "address to listen on", "--host", "HOST", "command"),
    Option("port", as_port, 8080, "TCP port to listen on; 0 picks one", "--port", "PORT",
           "command"),
    Option("bind", as_list, [],
           "HOST:PORT, [IPV6]:PORT or unix:PATH; repeatable; replaces --host/--port",
           "--bind", "ADDR", "command", aliases=("-b", "--listen")),
    Option("workers", as_positive, 1, "worker processes sharing the listening sockets",
           "--workers", "N", "command", aliases=("-w",)),
    Option("graceful_timeout", as_seconds, 30.0,
           "on SIGTERM/SIGINT, how long requests in flight may take to finish",
           "--graceful-timeout", "SECONDS", "command"),
    Option("log_level", as_log_level, "info", "level of the server's log",
           "--log-level", "LEVEL", "command"),
    Option("pid", as_str, None, "write the (master) process id to this file while serving",
           "--pid", "FILE", "process"),
    Option("access_logfile", as_str, None,
           "log every request to this file ('-': stderr); turns the access log on; reopened "
           "on SIGUSR1", "--access-logfile", "FILE", "process"),
    Option("error_logfile", as_str, None,
           "the server's log to this file instead of stderr; reopened on SIGUSR1",
           "--error-logfile", "FILE", "process"),
    Option("log_config", as_str, None,
           "a logging configuration file (logging.config.dictConfig as JSON or TOML, or a "
           "fileConfig .ini) used instead of the --log-level/--*-logfile setup",
           "--log-config", "FILE", "process"),
    # 0.1 s: asyncio's slow_callback_duration and gevent's max_blocking_time
    # both default to it; a step that long is already a visible stall for
    # every other request of the process.
    Option("blocked_loop_warning", as_seconds, 0.1,
           "warn (once per request, with the stack) when one coroutine step holds the event "
           "loop longer than this; 0 or off: never", "--blocked-loop-warning", "SECONDS",
           "health"),
    Option("stats_path", as_str, None,
           "answer GET on this path (e.g. /_cogen/stats) with live figures as JSON, per "
           "worker; none: no such route", "--stats-path", "PATH", "health"),
    Option("timeout", as_seconds, 30.0,
           "with --workers: a worker whose event loop has not run for this long (stuck in one "
           "request) is killed and replaced; 0 or off: never", "--timeout", "SECONDS",
           "workers"),
    Option("max_requests", as_int, 0,
           "with --workers: a worker that has served this many requests stops "
           "gracefully and is replaced (recycling leaky apps); 0: never",
           "--max-requests", "N", "workers"),
    Option("max_requests_jitter", as_int, 0,
           "add a random 0..N to each worker's --max-requests, so they do not all restart "
           "at once", "--max-requests-jitter", "N", "workers"),
    Option("reload", as_bool, False,
           "development: when a Python file of the app changes, replace the workers (keeping "
           "the listening sockets); new code that fails to import leaves the old serving",
           "--reload", None, "workers"),
)

COMMAND_OPTIONS_BY_NAME: dict[str, Option] = {opt.name: opt for opt in COMMAND_OPTIONS}
