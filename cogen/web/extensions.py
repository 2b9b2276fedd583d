"""Coroutine extensions: how a WSGI app uses cogen operations.

Theory of operation
-------------------
Every request's environ has a gate, ``environ['cogen']`` (also under the
original's name ``environ['cogen.wsgi']``). An app's response iterable
yields an operation *through the gate*::

    def app(environ, start_response):
        start_response('200 OK', [('Content-Type', 'text/plain')])
        yield environ['cogen'].core.events.WaitForSignal('room', timeout=30)
        yield environ['cogen'].result          # the signalled value

``environ['cogen'].core`` mirrors the ``cogen.core`` package: calling
anything under it that makes an operation records that operation on the gate
and returns ``b''``, so the yield passes unchanged through well-behaved
middleware. Before pulling the next item the server runs the recorded
operation and stores its outcome: ``gate.result`` is the result (or the
exception instance if it raised), ``gate.exception`` is None (or the
``sys.exc_info()`` triple, as in the original). An app that is not wrapped in
middleware may also yield an operation object directly.

``environ['cogen.input']`` reads the request body with operations
(``yield environ['cogen.input'].read(65536)``), the result arriving the same
way. By default the server has already buffered the body, so these complete
at once; an app marked with :func:`streaming_input` (or a server started
with ``stream_input=True``) is called before the body is read and streams
it from the socket in constant memory.
"""
from __future__ import annotations

import types
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import cogen.core
from cogen.core.coroutines import Coroutine
from cogen.core.events import Operation
from cogen.web.body import AsyncInput
from cogen.web.websocket import NOT_REQUESTED

__all__ = [
    "CogenGate",
    "LazyStartResponseMiddleware",
    "OperationProxy",
    "SynchronousInputMiddleware",
    "is_streaming_input",
    "lazy_sr",
    "streaming_input",
    "sync_input",
]


class OperationProxy:
    """Mirrors a module or class; calls that make operations are recorded on the gate.

    ``environ['cogen.core']`` is one over :mod:`cogen.core`
    (``OperationProxy(gate, cogen.core)``, also :attr:`CogenGate.core`):
    attributes that are modules or callables come back wrapped, and a call
    whose result is an operation or a coroutine records it as
    ``gate.operation`` (the server runs it when the app yields) and returns
    ``b""``, for the app to yield; any other result is returned as it is.
    """

    __slots__ = ("_gate", "_target")

    def __init__(self, gate: CogenGate, target: Any) -> None:
        # (plain assignment: only __getattr__ is overridden, not __setattr__)
        self._gate = gate
        self._target = target

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if isinstance(value, types.ModuleType) or callable(value):
            return OperationProxy(self._gate, value)
        return value

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        value = self._target(*args, **kwargs)
        if isinstance(value, (Operation, Coroutine)):
            self._gate.operation = value
            return b""
        return value

    def __repr__(self) -> str:
        return f"<cogen proxy of {self._target!r}>"


class CogenGate(AsyncInput):
    """The per-request gate between a WSGI app and the scheduler.

    It is also the request's ``environ['cogen.input']``: its ``read(n)`` and
    ``readline(n)`` return operations that read the body (see
    :class:`~cogen.web.body.AsyncInput`).

    Attributes:
        core: a proxy of :mod:`cogen.core` (see the module docstring).
        operation: the operation recorded and not yet run, or None.
        result: the outcome of the last operation run (its exception
            instance if it failed).
        exception: None, or ``(type, value, traceback)`` if it failed.
        content_length: the request's body length (None if unknown).
        input: the request's :class:`AsyncInput` (``environ['cogen.input']``).
        sched: the scheduler serving the request.
        websocket: the request's :class:`~cogen.web.websocket.WebSocketUpgrade`
            (true if it asks for a WebSocket; see :doc:`/websocket`).
    """

    __slots__ = ("content_length", "exception", "operation", "result", "sched", "websocket")

    def __init__(self, sched: Any, environ: dict[str, Any], content_length: int | None,
                 stream: Any = None, source: Any = None) -> None:
        self.stream = stream
        self.source = source
        self.is_buffered = source is None
        self.operation: Any = None
        self.result: Any = None
        self.exception: Any = None
        self.sched = sched
        #: a :class:`~cogen.web.websocket.WebSocketUpgrade`, true for an upgrade request
        self.websocket: Any = NOT_REQUESTED
        # environ is not kept: environ -> gate -> environ would be a cycle
        # that only the cyclic garbage collector frees, on every request.
        self.content_length = content_length

    @property
    def input(self) -> CogenGate:
        """``environ['cogen.input']``: the gate itself."""
        return self

    @property
    def core(self) -> Any:
        """A proxy of :mod:`cogen.core` whose operation-making calls are recorded here."""
        return OperationProxy(self, cogen.core)

    def call(self, obj: Any) -> Any:
        """``environ['cogen.call'](f)(*args)``: record the operation or coroutine ``f(*args)`` makes."""
        return OperationProxy(self, obj)

    # the original's capitalised names on environ['cogen.input']
    def Read(self, size: int = -1, **_ignored: Any) -> Any:
        """The original's ``environ['cogen.input'].Read(n)``: :meth:`read`."""
        return self.read(size)

    def ReadLine(self, size: int = -1, **_ignored: Any) -> Any:
        """The original's ``environ['cogen.input'].ReadLine(n)``: :meth:`readline`."""
        return self.readline(size)

    def __repr__(self) -> str:
        return f"<CogenGate operation={self.operation!r} result={self.result!r}>"


def streaming_input(app: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a WSGI app as reading its body only through ``environ['cogen.input']``.

    The server then calls it before reading the body and does not buffer the
    body, so a 1 GiB upload is consumed in constant memory. ``wsgi.input`` of
    such a request raises if read. Returns ``app`` itself.
    """
    try:
        app.cogen_streaming_input = True  # type: ignore[attr-defined]
    except AttributeError:
        raise TypeError(f"cannot mark {app!r}: it takes no attributes; wrap it in a function") from None
    return app


def is_streaming_input(app: Any) -> bool:
    """True for apps marked with :func:`streaming_input`."""
    return bool(getattr(app, "cogen_streaming_input", False))


def _run_through_gate(environ: dict[str, Any], op: Any) -> Iterator[bytes]:
    """Yield ``op`` through the gate; afterwards the outcome is on the gate."""
    gate = environ["cogen.wsgi"]
    gate.operation = op
    yield b""


class LazyStartResponseMiddleware:
    """Delay ``start_response`` until the app yields its first non-empty chunk.

    Lets an app yield cogen operations before it decides on its status. The
    original's ``lazy_sr``.
    """

    def __init__(self, app: Callable[..., Any], global_conf: Any = None) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        return _LazyResponse(self.app, environ, start_response)


class _LazyResponse:
    def __init__(self, app: Callable[..., Any], environ: dict[str, Any],
                 start_response: Callable[..., Any]) -> None:
        self.pending: tuple[Any, ...] | None = None
        self.started = False
        self.start_response = start_response
        self.result = app(environ, self._start_response)
        self.iterator = iter(self.result)

    def _start_response(self, status: str, headers: list[tuple[str, str]],
                        exc_info: Any = None) -> Callable[[bytes], None]:
        if self.started:
            write: Callable[[bytes], None] = self.start_response(status, headers, exc_info)
            return write
        if self.pending is not None and exc_info is None:
            raise AssertionError("start_response called twice without exc_info")
        self.pending = (status, headers, exc_info)
        return self._write

    def _write(self, data: bytes) -> None:
        self._start()
        self.write(data)

    def _start(self) -> None:
        if not self.started:
            if self.pending is None:
                raise AssertionError("the app produced output before calling start_response")
            self.started = True
            self.write = self.start_response(*self.pending)

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        try:
            chunk = next(self.iterator)
        except StopIteration:
            self._start()
            raise
        if chunk and not isinstance(chunk, (Operation, Coroutine)):
            self._start()
        return chunk  # type: ignore[no-any-return]

    def close(self) -> None:
        close = getattr(self.result, "close", None)
        if close is not None:
            close()


class SynchronousInputMiddleware:
    """Read the whole request body with operations, then call a plain app.

    For apps served with ``stream_input=True`` (or behind a streaming app)
    that still read ``wsgi.input`` synchronously: the body is read through
    ``environ['cogen.input']`` into memory (a temporary file beyond
    ``buffer_size``) without blocking other connections, then ``wsgi.input``
    is replaced and the app called. The original's ``sync_input``. With the
    server's default buffering it only passes through.
    """

    def __init__(self, app: Callable[..., Any], global_conf: Any = None,
                 buffer_size: int = 1024 * 1024) -> None:
        self.app = app
        self.buffer_size = int(buffer_size)
        self.cogen_streaming_input = True

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        reader = environ.get("cogen.input")
        if reader is None or reader.is_buffered:
            result: Iterable[bytes] = self.app(environ, start_response)
            return result
        return self._read_then_call(environ, start_response, reader)

    def _read_then_call(self, environ: dict[str, Any], start_response: Callable[..., Any],
                        reader: Any) -> Iterator[Any]:
        import tempfile
        body = tempfile.SpooledTemporaryFile(max_size=self.buffer_size)
        gate = environ["cogen.wsgi"]
        while True:
            yield from _run_through_gate(environ, reader.read(65536))
            if gate.exception is not None:
                raise gate.result
            data = gate.result
            if not data:
                break
            body.write(data)
        body.seek(0)
        environ["wsgi.input"] = body
        try:
            result = self.app(environ, start_response)
            try:
                yield from result
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        finally:
            body.close()  # maybe a temporary file: do not leave it to the garbage collector


lazy_sr = LazyStartResponseMiddleware
sync_input = SynchronousInputMiddleware


def lazy_sr_filter(app: Callable[..., Any], global_conf: Any = None, **local_conf: Any) -> Any:
    """PasteDeploy ``filter_app_factory`` for :class:`LazyStartResponseMiddleware`."""
    return LazyStartResponseMiddleware(app)


def sync_input_filter(app: Callable[..., Any], global_conf: Any = None, **local_conf: Any) -> Any:
    """PasteDeploy ``filter_app_factory`` for :class:`SynchronousInputMiddleware`."""
    return SynchronousInputMiddleware(app, buffer_size=int(local_conf.get("buffer_size", 1024 * 1024)))


