"""One connection to a Redis server, a pool of them, and Redis URLs.

Theory of operation
-------------------
A :class:`Connection` owns a cogen :class:`~cogen.core.sockets.Socket` and a
reply reader (:func:`cogen.redis.resp.make_reader`). Its coroutines take a
:class:`Deadline`, the time left for the whole command, so that connecting,
sending and reading together stay within one timeout. Any failure other
than an error reply leaves the connection in an unknown state (a reply may
still be on its way), so the connection closes itself: a closed connection
reconnects the next time it is used, and a pool never hands out a broken
one for a second command.

Setting a connection up sends, pipelined, ``HELLO 3`` (for
``protocol=3``, with the credentials) or ``AUTH``, then ``CLIENT SETNAME``
and ``SELECT`` as configured, and reads their replies.
"""
from __future__ import annotations

import ipaddress
import logging
import socket as _std
import ssl as _ssl
import time
from collections import deque
from collections.abc import Generator
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlparse

from cogen.core.coroutines import coroutine
from cogen.core.events import OperationTimeout, TimedOperation
from cogen.core.sockets import Connect, Handshake, Read, Socket, SocketError, WriteAll
from cogen.core.threads import Run
from cogen.core.util import PENDING
from cogen.redis.errors import (
    AuthenticationError,
    ConnectionError,
    ProtocolError,
    ResponseError,
    TimeoutError,
)
from cogen.redis.resp import NOT_ENOUGH_DATA, encode_command, is_push, make_reader

if TYPE_CHECKING:
    from cogen.core.coroutines import Coroutine
    from cogen.core.schedulers import Scheduler

__all__ = ["Connection", "ConnectionParams", "ConnectionPool", "Deadline", "parse_url"]

log = logging.getLogger(__name__)

#: How many bytes one read asks the socket for.
READ_SIZE = 65536
_AUTH_CODES = ("WRONGPASS", "NOAUTH")


@dataclass(frozen=True)
class ConnectionParams:
    """Where and how to connect; built by :func:`parse_url` or the :class:`~cogen.redis.Redis` arguments.

    ``path`` (a Unix socket) wins over ``host``/``port``. ``ssl`` asks for TLS
    with ``ssl_context`` (None: the system's default verifying context, with
    ``ssl_cert_reqs``, ``ssl_ca_certs`` and ``ssl_check_hostname`` applied).
    ``protocol`` is 2 (RESP2) or 3 (RESP3, negotiated with ``HELLO 3``).
    ``encoding`` decodes replies to ``str`` (redis-py's ``decode_responses``);
    None gives ``bytes``. ``socket_timeout`` is the default timeout of a
    command, ``socket_connect_timeout`` the longest connecting may take
    (both None: wait forever).
    """

    host: str = "localhost"
    port: int = 6379
    path: str | None = None
    db: int = 0
    username: str | None = None
    password: str | None = None
    ssl: bool = False
    ssl_context: _ssl.SSLContext | None = None
    ssl_cert_reqs: str = "required"
    ssl_ca_certs: str | None = None
    ssl_check_hostname: bool = True
    protocol: int = 2
    client_name: str | None = None
    encoding: str | None = None
    encoding_errors: str = "strict"
    socket_timeout: float | None = None
    socket_connect_timeout: float | None = None
    use_hiredis: bool | None = None

    def __post_init__(self) -> None:
        if self.protocol not in (2, 3):
            raise ValueError(f"protocol must be 2 or 3, not {self.protocol!r}")
        if isinstance(self.db, bool) or not isinstance(self.db, int) or self.db < 0:
            raise ValueError(f"db must be a number >= 0, not {self.db!r}")
        if self.ssl_cert_reqs not in ("required", "optional", "none"):
            raise ValueError(f"ssl_cert_reqs must be 'required', 'optional' or 'none', "
                             f"not {self.ssl_cert_reqs!r}")

    def describe(self) -> str:
        """The server's address for messages (never the password)."""
        if self.path is not None:
            return f"unix://{self.path}?db={self.db}"
        scheme = "rediss" if self.ssl else "redis"
        return f"{scheme}://{self.host}:{self.port}/{self.db}"

    def make_ssl_context(self) -> _ssl.SSLContext:
        """The client TLS context for ``rediss://``."""
        if self.ssl_context is not None:
            return self.ssl_context
        ctx = _ssl.create_default_context(cafile=self.ssl_ca_certs)
        if self.ssl_cert_reqs == "none":
            ctx.check_hostname = False
            ctx.verify_mode = _ssl.CERT_NONE
        else:
            ctx.check_hostname = self.ssl_check_hostname
            ctx.verify_mode = _ssl.CERT_REQUIRED if self.ssl_cert_reqs == "required" else _ssl.CERT_OPTIONAL
        return ctx


def _to_bool(value: str) -> bool:
    return value.upper() not in ("0", "F", "FALSE", "N", "NO", "")


# The query arguments a URL may carry, as redis-py names them, and their converters.
_QUERY_ARGS: dict[str, Any] = {
    "db": int,
    "socket_timeout": float,
    "socket_connect_timeout": float,
    "timeout": float,
    "max_connections": int,
    "protocol": int,
    "client_name": str,
    "ssl_cert_reqs": str,
    "ssl_ca_certs": str,
    "ssl_check_hostname": _to_bool,
    "decode_responses": _to_bool,
    "encoding": str,
}


def parse_url(url: str) -> dict[str, Any]:
    """The connection keyword arguments a Redis URL stands for, with redis-py's rules.

    - ``redis://[[username]:[password]@]host[:port][/db]``, ``rediss://...`` (TLS,
      ``ssl=True`` in the result) or ``unix://[[username]:[password]@]/path``;
    - the user name and password come percent-decoded from the userinfo;
    - the database number comes from ``?db=`` or else from the path (a path
      that is not a number is ignored, as redis-py does);
    - query arguments (``?socket_timeout=2&protocol=3``) use redis-py's names:
      ``db``, ``socket_timeout``, ``socket_connect_timeout``, ``timeout`` (the
      same as ``socket_timeout``), ``max_connections``, ``protocol``,
      ``client_name``, ``ssl_cert_reqs``, ``ssl_ca_certs``,
      ``ssl_check_hostname``, ``decode_responses``, ``encoding``.

    Raises:
        ValueError: another scheme, an unknown query argument, or a value
            its converter refuses; the message names it.
    """
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(f"Redis URL must specify one of the following schemes "
                         f"(redis://, rediss://, unix://): {url!r}")
    parts = urlparse(url)
    kwargs: dict[str, Any] = {}
    for name, values in parse_qs(parts.query).items():
        converter = _QUERY_ARGS.get(name)
        if converter is None:
            raise ValueError(f"unknown argument {name!r} in Redis URL {url!r} "
                             f"(known: {', '.join(sorted(_QUERY_ARGS))})")
        try:
            kwargs[name] = converter(values[0])
        except (TypeError, ValueError):
            raise ValueError(f"Invalid value for {name!r} in connection URL: {values[0]!r}") from None
    if "timeout" in kwargs:
        kwargs.setdefault("socket_timeout", kwargs.pop("timeout"))
    if parts.username:
        kwargs["username"] = unquote(parts.username)
    if parts.password:
        kwargs["password"] = unquote(parts.password)
    if parts.scheme == "unix":
        if parts.path:
            kwargs["path"] = unquote(parts.path)
        return kwargs
    if parts.hostname:
        kwargs["host"] = unquote(parts.hostname)
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"invalid port in Redis URL {url!r}") from None
    if port:
        kwargs["port"] = port
    if parts.path and "db" not in kwargs:
        try:
            kwargs["db"] = int(unquote(parts.path).replace("/", ""))
        except ValueError:
            pass
    if parts.scheme == "rediss":
        kwargs["ssl"] = True
    return kwargs


_PARAM_NAMES = frozenset(f.name for f in fields(ConnectionParams))


def make_params(**kwargs: Any) -> tuple[ConnectionParams, dict[str, Any]]:
    """Split keyword arguments into :class:`ConnectionParams` and the rest (pool/client options)."""
    decode = kwargs.pop("decode_responses", False)
    encoding = kwargs.pop("encoding", None) or "utf-8"
    kwargs["encoding"] = encoding if decode else None
    own = {k: v for k, v in kwargs.items() if k in _PARAM_NAMES}
    rest = {k: v for k, v in kwargs.items() if k not in _PARAM_NAMES}
    return ConnectionParams(**own), rest


class Deadline:
    """The time left for one command: connecting, sending and reading share it.

    ``timeout`` None means no limit. :meth:`left` raises
    :class:`~cogen.redis.errors.TimeoutError` once the time is up.
    """

    __slots__ = ("at", "command", "timeout")

    def __init__(self, command: str, timeout: float | None) -> None:
        self.command = command
        self.timeout = timeout
        self.at = None if timeout is None else time.monotonic() + timeout

    def left(self) -> float | None:
        """Seconds left (None: no limit); raises TimeoutError when none are."""
        if self.at is None:
            return None
        left = self.at - time.monotonic()
        if left <= 0:
            raise TimeoutError(self.command, self.timeout)
        return left

    def expired(self) -> TimeoutError:
        """The exception for this deadline having passed."""
        return TimeoutError(self.command, self.timeout)


def command_name(args: tuple[Any, ...]) -> str:
    """The name of the command ``args`` (its first word) as text, for messages; ``"?"`` if empty."""
    name = args[0] if args else b"?"
    if isinstance(name, bytes):
        name = name.decode("ascii", "replace")
    return str(name).upper()


def classify_error(reply: ResponseError) -> ResponseError:
    """The error reply as the most specific exception (AuthenticationError for WRONGPASS, NOAUTH...)."""
    if reply.code in _AUTH_CODES or str(reply).startswith("ERR invalid password"):
        return AuthenticationError(str(reply))  # type: ignore[return-value]
    return reply


class Connection:
    """One connection to a Redis server; reconnects lazily after a failure.

    Args:
        params: the :class:`ConnectionParams`.

    Its coroutines (:meth:`connect`, :meth:`request`, :meth:`read_reply`)
    raise :class:`~cogen.redis.errors.ConnectionError` when the server is
    unreachable or the connection breaks and
    :class:`~cogen.redis.errors.TimeoutError` when the deadline passes; in
    both cases the connection is closed first. Error replies are *returned*
    as :class:`~cogen.redis.errors.ResponseError` instances.
    """

    def __init__(self, params: ConnectionParams) -> None:
        self.params = params
        self.sock: Socket | None = None
        self.reader: Any = None
        #: RESP3 pushes read while waiting for a reply (pub/sub reads them itself).
        self.pushes: deque[Any] = deque(maxlen=1024)

    @property
    def is_connected(self) -> bool:
        """True while the socket is open."""
        return self.sock is not None and not self.sock.is_closed

    def close(self) -> None:
        """Close the socket (idempotent); the next use reconnects."""
        sock, self.sock = self.sock, None
        self.reader = None
        if sock is not None:
            sock.close()

    def __repr__(self) -> str:
        state = "connected" if self.is_connected else "closed"
        return f"<cogen.redis.Connection {self.params.describe()} {state}>"

    # -- connecting ---------------------------------------------------------------
    @coroutine
    def connect(self, deadline: Deadline) -> Generator[Any, Any, None]:
        """Connect and set the connection up (HELLO/AUTH, CLIENT SETNAME, SELECT), unless connected."""
        if self.is_connected:
            return
        params = self.params
        connect_deadline = deadline
        if params.socket_connect_timeout is not None:
            connect_deadline = Deadline(deadline.command, params.socket_connect_timeout)
            at, connect_at = deadline.at, connect_deadline.at
            if at is not None and connect_at is not None and at < connect_at:
                connect_deadline = deadline
        try:
            yield self._open(connect_deadline)
            replies = yield self.request(self._setup_commands(), deadline)
        except BaseException:
            self.close()
            raise
        for reply in replies:
            if isinstance(reply, ResponseError):
                self.close()
                raise classify_error(reply)

    def _setup_commands(self) -> list[tuple[Any, ...]]:
        params = self.params
        cmds: list[tuple[Any, ...]] = []
        if params.protocol == 3:
            hello: tuple[Any, ...] = ("HELLO", 3)
            if params.password is not None:
                hello += ("AUTH", params.username or "default", params.password)
            if params.client_name:
                hello += ("SETNAME", params.client_name)
            cmds.append(hello)
        else:
            if params.password is not None:
                if params.username:
                    cmds.append(("AUTH", params.username, params.password))
                else:
                    cmds.append(("AUTH", params.password))
            if params.client_name:
                cmds.append(("CLIENT", "SETNAME", params.client_name))
        if params.db:
            cmds.append(("SELECT", params.db))
        return cmds or [("PING",)]

    @coroutine
    def _open(self, deadline: Deadline) -> Generator[Any, Any, None]:
        params = self.params
        if params.path is not None:
            targets: list[tuple[int, Any]] = [(_std.AF_UNIX, params.path)]
        else:
            targets = yield self._resolve(deadline)
        error: BaseException | None = None
        for family, addr in targets:
            sock = Socket(family, _std.SOCK_STREAM)
            try:
                yield Connect(sock, addr, timeout=deadline.left())
                if params.ssl:
                    sock.wrap(params.make_ssl_context(), server_hostname=params.host)
                    yield Handshake(sock, timeout=deadline.left())
            except OperationTimeout:
                sock.close()
                raise deadline.expired() from None
            except (SocketError, _ssl.SSLError, OSError) as exc:
                sock.close()
                error = exc
                continue
            except BaseException:
                sock.close()
                raise
            self.sock = sock
            self.reader = make_reader(params.encoding, params.encoding_errors, params.use_hiredis)
            return
        raise ConnectionError(f"cannot connect to Redis at {params.describe()}: {error}") from error

    @coroutine
    def _resolve(self, deadline: Deadline) -> Generator[Any, Any, list[tuple[int, Any]]]:
        host, port = self.params.host, self.params.port
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            pass
        else:
            return [(_std.AF_INET6 if ip.version == 6 else _std.AF_INET, (host, port))]
        try:
            infos = yield Run(_std.getaddrinfo, (host, port, 0, _std.SOCK_STREAM), timeout=deadline.left())
        except OperationTimeout:
            raise deadline.expired() from None
        except OSError as exc:
            raise ConnectionError(f"cannot resolve Redis host {host!r}: {exc}") from exc
        return [(info[0], info[4]) for info in infos]

    # -- talking ------------------------------------------------------------------
    @coroutine
    def request(self, commands: list[tuple[Any, ...]], deadline: Deadline) -> Generator[Any, Any, list[Any]]:
        """Send ``commands`` in one write and read one reply per command; returns the replies.

        Connects first if needed. Error replies are in the list as
        :class:`~cogen.redis.errors.ResponseError` instances.
        """
        payload = b"".join(encode_command(*cmd) for cmd in commands)
        if not self.is_connected:
            yield self.connect(deadline)
        yield self.send(payload, deadline)
        replies = []
        for _ in commands:
            replies.append((yield self.read_reply(deadline)))
        return replies

    @coroutine
    def send(self, payload: bytes, deadline: Deadline) -> Generator[Any, Any, None]:
        """Send encoded commands; closes the connection on failure."""
        sock = self.sock
        if sock is None:
            raise ConnectionError(f"not connected to Redis at {self.params.describe()}")
        try:
            yield WriteAll(sock, payload, timeout=deadline.left())
        except OperationTimeout:
            self.close()
            raise deadline.expired() from None
        except SocketError as exc:
            self.close()
            raise ConnectionError(f"connection to Redis at {self.params.describe()} broke: {exc}") from exc
        except BaseException:
            self.close()
            raise

    @coroutine
    def read_reply(self, deadline: Deadline | None, keep_pushes: bool = True,
                   timeout_closes: bool = True) -> Generator[Any, Any, Any]:
        """Read the next reply (RESP3 pushes are kept in ``.pushes`` unless ``keep_pushes`` is False).

        With ``timeout_closes`` False (pub/sub waiting for a message), a
        timeout leaves the connection open: nothing was asked, so nothing
        can arrive late.
        """
        while True:
            reader = self.reader
            sock = self.sock
            if reader is None or sock is None:
                raise ConnectionError(f"not connected to Redis at {self.params.describe()}")
            try:
                reply = reader.gets()
            except ProtocolError as exc:
                self.close()
                where = self.params.describe()
                raise ProtocolError(f"Redis at {where} sent an invalid reply: {exc}") from exc
            if reply is not NOT_ENOUGH_DATA:
                if keep_pushes and is_push(reply):
                    self.pushes.append(reply)
                    continue
                return reply
            try:
                data = yield Read(sock, READ_SIZE, timeout=None if deadline is None else deadline.left())
            except OperationTimeout:
                if timeout_closes:
                    self.close()
                assert deadline is not None
                raise deadline.expired() from None
            except TimeoutError:
                if timeout_closes:
                    self.close()
                raise
            except SocketError as exc:
                self.close()
                where = self.params.describe()
                raise ConnectionError(f"connection to Redis at {where} broke: {exc}") from exc
            except BaseException:
                self.close()
                raise
            reader.feed(data)


class _WaitForConnection(TimedOperation):
    """Park until the pool hands over a connection; result: the connection."""

    __slots__ = ("pool",)

    def __init__(self, pool: ConnectionPool, timeout: float | None) -> None:
        TimedOperation.__init__(self, timeout)
        self.pool = pool

    def process(self, sched: Scheduler, coro: Coroutine) -> Any:
        self.pool._waiters.append((sched, coro))
        return PENDING

    def cleanup(self, sched: Scheduler, coro: Coroutine) -> None:
        try:
            self.pool._waiters.remove((sched, coro))
        except ValueError:
            pass


class ConnectionPool:
    """A bounded pool of :class:`Connection` objects sharing one :class:`ConnectionParams`.

    Args:
        params: where and how to connect.
        max_connections: the most connections open at once; a command that
            finds them all busy waits (bounded by its timeout) for one to be
            released.

    Idle connections are reused most recently released first; a broken one
    is never reused (it reconnects when next taken).
    """

    def __init__(self, params: ConnectionParams, max_connections: int = 64) -> None:
        if isinstance(max_connections, bool) or not isinstance(max_connections, int) or max_connections < 1:
            raise ValueError(f"max_connections must be a number >= 1, not {max_connections!r}")
        self.params = params
        self.max_connections = max_connections
        self._idle: list[Connection] = []
        self._in_use = 0
        self._waiters: deque[tuple[Scheduler, Coroutine]] = deque()
        self._closed = False

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> ConnectionPool:
        """A pool for a Redis URL (see :func:`parse_url`); ``kwargs`` override the URL's."""
        options = parse_url(url)
        options.update(kwargs)
        params, rest = make_params(**options)
        rest.pop("connection_pool", None)
        unknown = set(rest) - {"max_connections"}
        if unknown:
            raise TypeError(f"unexpected pool arguments: {', '.join(sorted(unknown))}")
        return cls(params, **rest)

    @property
    def in_use(self) -> int:
        """How many connections are taken now."""
        return self._in_use

    @property
    def idle(self) -> int:
        """How many connections wait in the pool."""
        return len(self._idle)

    @coroutine
    def acquire(self, deadline: Deadline) -> Generator[Any, Any, Connection]:
        """Take a connection (maybe not connected yet); give it back with :meth:`release`."""
        if self._closed:
            raise ConnectionError("the connection pool is closed")
        if self._idle:
            self._in_use += 1
            return self._idle.pop()
        if self._in_use < self.max_connections:
            self._in_use += 1
            return Connection(self.params)
        try:
            conn: Connection = yield _WaitForConnection(self, deadline.left())
        except OperationTimeout:
            raise deadline.expired() from None
        return conn

    def release(self, conn: Connection) -> None:
        """Give back a connection taken with :meth:`acquire`."""
        if self._closed:
            conn.close()
            self._in_use -= 1
            return
        if self._waiters:
            sched, coro = self._waiters.popleft()
            sched.resume(coro, conn)  # stays in use: handed over
            return
        self._in_use -= 1
        self._idle.append(conn)

    def close(self) -> None:
        """Close the idle connections; the ones in use are closed when released."""
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
        waiters, self._waiters = self._waiters, deque()
        for sched, coro in waiters:
            sched.throw(coro, ConnectionError("the connection pool was closed"))

    def with_params(self, **changes: Any) -> ConnectionParams:
        """This pool's parameters with some changed (for a dedicated pub/sub connection)."""
        return replace(self.params, **changes)

    def __repr__(self) -> str:
        return (f"<cogen.redis.ConnectionPool {self.params.describe()} in use: {self._in_use} "
                f"idle: {len(self._idle)} max: {self.max_connections}>")

