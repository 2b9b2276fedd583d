"""The Redis client: commands as coroutines, a pipeline, retries with backoff.

::

    r = Redis.from_url("redis://localhost:6379/0")
    yield r.set("greeting", "hello")         # in a generator coroutine
    value = await r.get("greeting")         # or in an async def one
    n = yield r.execute("HINCRBY", "h", "f", 1)   # any command

A command takes a connection from the client's pool, sends, reads the reply
and gives the connection back. If the connection breaks (the server
restarted, the network failed) or cannot be opened, the command is retried
on a fresh connection up to ``retries`` times, waiting ``retry_backoff``
seconds, doubled each time up to ``max_backoff``, all within the command's
timeout. A command whose connection broke after it was sent may thus run
twice; Redis cannot tell us whether it ran.
"""
from __future__ import annotations

import logging
from collections.abc import Generator
from typing import Any

from cogen.core.coroutines import Coroutine, coroutine
from cogen.core.events import Sleep
from cogen.core.util import USE_DEFAULT
from cogen.redis.commands import Callback, Commands
from cogen.redis.connection import (
    ConnectionParams,
    ConnectionPool,
    Deadline,
    classify_error,
    command_name,
    make_params,
    parse_url,
)
from cogen.redis.errors import AuthenticationError, ConnectionError, ResponseError

__all__ = ["Pipeline", "Redis"]

log = logging.getLogger(__name__)


class Redis(Commands):
    """A Redis client whose commands are coroutines (``yield`` or ``await`` them).

    Args:
        host, port: the server (``localhost:6379``); ``path``: a Unix socket
            instead.
        db: the database to ``SELECT``.
        username, password: credentials (``AUTH``; a password alone is the
            ``default`` user's).
        ssl: connect with TLS; ``ssl_context`` (or ``ssl_cert_reqs``,
            ``ssl_ca_certs``, ``ssl_check_hostname``) configures it.
        protocol: 2 (RESP2) or 3 (RESP3, with ``HELLO 3``).
        decode_responses: give replies as ``str`` decoded with ``encoding``
            (UTF-8) instead of ``bytes``.
        socket_timeout: the default timeout of a command, in seconds (None:
            none); ``socket_connect_timeout``: the longest connecting may take.
        max_connections: the size of the connection pool.
        retries, retry_backoff, max_backoff: retrying after a broken or
            refused connection (see the module docstring).
        client_name: ``CLIENT SETNAME``.
        use_hiredis: force (True) or refuse (False) the hiredis parser;
            None uses it when installed.
        connection_pool: share an existing :class:`ConnectionPool` (the
            connection arguments are then ignored).

    Results are the raw replies (see :mod:`cogen.redis.resp`) unless a
    helper says otherwise. A client (and its pool) belongs to the scheduler
    whose coroutines use it: it is not thread-safe. Errors: :class:`~cogen.redis.errors.ResponseError`
    for error replies, :class:`~cogen.redis.errors.ConnectionError`,
    :class:`~cogen.redis.errors.TimeoutError`.
    """

    def __init__(self, host: str = "localhost", port: int = 6379, db: int = 0, *,
                 connection_pool: ConnectionPool | None = None, max_connections: int = 64,
                 retries: int = 3, retry_backoff: float = 0.05, max_backoff: float = 1.0,
                 **kwargs: Any) -> None:
        if connection_pool is None:
            params, rest = make_params(host=host, port=port, db=db, **kwargs)
            if rest:
                raise TypeError(f"Redis() got unexpected arguments: {', '.join(sorted(rest))}")
            connection_pool = ConnectionPool(params, max_connections)
        if retries < 0 or retry_backoff < 0 or max_backoff < 0:
            raise ValueError("retries, retry_backoff and max_backoff must not be negative")
        self.connection_pool = connection_pool
        self.retries = retries
        self.retry_backoff = retry_backoff
        self.max_backoff = max_backoff

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> Redis:
        """A client for a ``redis://``, ``rediss://`` or ``unix://`` URL (see :func:`parse_url`).

        Keyword arguments override the URL's.
        """
        options = parse_url(url)
        options.update(kwargs)
        return cls(**options)

    @property
    def params(self) -> ConnectionParams:
        """The connection parameters."""
        return self.connection_pool.params

    def __repr__(self) -> str:
        return f"<cogen.redis.Redis {self.params.describe()}>"

    # -- running commands --------------------------------------------------------------
    def execute(self, *args: Any, timeout: Any = USE_DEFAULT) -> Coroutine:
        """Run one command; a coroutine whose result is the reply.

        ``timeout`` (seconds, None for none) bounds the whole command,
        connecting and retries included; left out, ``socket_timeout``
        applies. An error reply raises :class:`ResponseError`.
        """
        return self._run([args], [None], timeout, True)

    execute_command = execute

    def _command(self, callback: Callback | None, *args: Any) -> Coroutine:
        return self._run([args], [callback], USE_DEFAULT, True)

    def _deadline(self, commands: list[tuple[Any, ...]], timeout: Any) -> Deadline:
        if timeout is USE_DEFAULT:
            timeout = self.params.socket_timeout
        name = command_name(commands[0]) if len(commands) == 1 else f"pipeline of {len(commands)}"
        return Deadline(name, timeout)

    @coroutine
    def _run(self, commands: list[tuple[Any, ...]], callbacks: list[Callback | None], timeout: Any,
             single: bool) -> Generator[Any, Any, Any]:
        """Send ``commands`` on one connection, with retries; the replies (one if ``single``)."""
        deadline = self._deadline(commands, timeout)
        replies = yield self._request(commands, deadline)
        if single:
            reply = replies[0]
            if isinstance(reply, ResponseError):
                raise classify_error(reply)
            callback = callbacks[0]
            return reply if callback is None else callback(reply)
        return replies

    @coroutine
    def _request(self, commands: list[tuple[Any, ...]], deadline: Deadline) -> Generator[Any, Any, list[Any]]:
        pool = self.connection_pool
        attempt = 0
        while True:
            conn = yield pool.acquire(deadline)
            try:
                replies: list[Any] = yield conn.request(commands, deadline)
            except AuthenticationError:
                pool.release(conn)
                raise
            except ConnectionError as exc:
                pool.release(conn)
                if attempt >= self.retries:
                    raise
                delay = min(self.max_backoff, self.retry_backoff * (2 ** attempt))
                attempt += 1
                left = deadline.left()
                if left is not None and left <= delay:
                    raise
                log.debug("Redis %s: %s; retry %d in %.3fs", pool.params.describe(), exc, attempt, delay)
                if delay:
                    yield Sleep(delay)
                continue
            except BaseException:
                pool.release(conn)
                raise
            pool.release(conn)
            return replies

    # -- pipelines and pub/sub ---------------------------------------------------------
    def pipeline(self, transaction: bool = False) -> Pipeline:
        """A :class:`Pipeline`: queue commands, send them in one write with ``yield pipe.execute()``."""
        return Pipeline(self, transaction)

    def pubsub(self) -> Any:
        """A :class:`~cogen.redis.pubsub.PubSub` on its own connection to the same server."""
        from cogen.redis.pubsub import PubSub

        return PubSub(self.params)

    def close(self) -> None:
        """Close the pool's idle connections; the client is unusable afterwards."""
        self.connection_pool.close()


class Pipeline(Commands):
    """Commands queued to be sent together, in one write, on one connection.

    The helpers and :meth:`execute_command` queue a command and return the
    pipeline (so calls chain); ``yield pipe.execute()`` sends them and gives
    the list of results, in order. With ``transaction=True`` they are
    wrapped in ``MULTI``/``EXEC`` (all or nothing). The queue is emptied by
    :meth:`execute`, so a pipeline can be reused.
    """

    def __init__(self, client: Redis, transaction: bool = False) -> None:
        self.client = client
        self.transaction = transaction
        self._queue: list[tuple[tuple[Any, ...], Callback | None]] = []

    def __len__(self) -> int:
        return len(self._queue)

    def _command(self, callback: Callback | None, *args: Any) -> Pipeline:
        self._queue.append((args, callback))
        return self

    def execute_command(self, *args: Any) -> Pipeline:
        """Queue any command; its result will be the raw reply."""
        return self._command(None, *args)

    def reset(self) -> None:
        """Forget the queued commands."""
        self._queue.clear()

    @coroutine
    def execute(self, raise_on_error: bool = True,
                timeout: Any = USE_DEFAULT) -> Generator[Any, Any, list[Any]]:
        """Send the queued commands; result: their results in order.

        An error reply raises its :class:`ResponseError` (the first one) after
        all replies were read, unless ``raise_on_error`` is False: the
        exception instances are then in the list. ``timeout`` bounds the
        whole pipeline.
        """
        queue, self._queue = self._queue, []
        if not queue:
            return []
        commands = [args for args, _cb in queue]
        if self.transaction:
            commands = [("MULTI",), *commands, ("EXEC",)]
        replies = yield self.client._run(commands, [], timeout, False)
        if self.transaction:
            replies = self._exec_replies(replies)
        results = []
        for reply, (_args, callback) in zip(replies, queue, strict=True):
            if isinstance(reply, ResponseError):
                results.append(classify_error(reply))
            else:
                results.append(reply if callback is None else callback(reply))
        if raise_on_error:
            for result in results:
                if isinstance(result, ResponseError):
                    raise result
        return results

    @staticmethod
    def _exec_replies(replies: list[Any]) -> list[Any]:
        """The per-command replies out of MULTI ... EXEC's replies."""
        queued, final = replies[1:-1], replies[-1]
        if isinstance(final, ResponseError):
            # EXECABORT: a command was refused while queueing; raise its error
            for reply in queued:
                if isinstance(reply, ResponseError):
                    raise ResponseError(f"transaction aborted: {reply}") from classify_error(reply)
            raise final
        if final is None:
            raise ResponseError("transaction aborted (EXEC returned nil: a WATCHed key changed)")
        return list(final)
