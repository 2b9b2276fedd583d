"""One WSGI call: start_response, write(), iterating the app, sending the body."""
from __future__ import annotations

import logging
import os
import signal
import stat
import sys
import threading
from collections.abc import Generator, Iterable
from typing import Any

from cogen.core.coroutines import Coroutine
from cogen.core.events import Operation, OperationTimeout
from cogen.core.io import PARKED, ClientDisconnected, send_file
from cogen.web import http as _http
from cogen.web._watch import ServerClosing, start_watch, stop_watch
from cogen.web.body import Immediate

__all__ = ["GATHER_BYTES", "FileWrapper", "Response"]

error_log = logging.getLogger("cogen.web.error")
_format_head = _http.format_response_head
_chunk = _http.chunk
_chunk_parts = _http.chunk_parts
_LAST_CHUNK = _http.LAST_CHUNK
_NO_LENGTH_STATUS = ("1", "204", "304")
_http_date = _http.http_date
_SWITCHED_PROTOCOL = _http.SWITCHED_PROTOCOL
#: Iterators whose items all exist already: a list's and a tuple's.
_SEQUENCE_ITERATORS: tuple[Any, ...] = (type(iter([])), type(iter(())))
#: Pieces of at most this many bytes in all are joined into one send; above
#: it, copying them into one costs more than gathering them into one
#: ``sendmsg()`` (``Connection.send_parts``), and a larger body piece goes
#: out behind its head or chunk framing without being copied into it.
GATHER_BYTES = 64 << 10
_HEAD_CACHE: dict[tuple[Any, ...], tuple[bytes, Any]] = {}
_cache_state: list[Any] = [None]


#: What an app may raise that fails its own request only. SystemExit and
#: KeyboardInterrupt are included: a ``sys.exit()`` in one view must not stop
#: the server (the CLI stops it on SIGINT/SIGTERM through its handlers).
#: GeneratorExit is not: it closes the connection's coroutine.
_APP_ERRORS = (Exception, SystemExit, KeyboardInterrupt)


def _is_op(item: Any) -> bool:
    return isinstance(item, (Operation, Coroutine))


#: What write() queued is sent as one piece when it is at most this many
#: items and bytes (see _joined).
JOIN_ITEMS = 4096
JOIN_BYTES = 256 << 10


def _joined(items: list[Any]) -> bytes | None:
    """What write() queued, as one bytes object, if it is small enough; else None.

    Every piece of it exists already, so sending them together delays none
    of them (PEP 3333 forbids delaying one): one send, and with TCP_NODELAY
    one packet, instead of one per piece.
    """
    if not 1 < len(items) <= JOIN_ITEMS:
        return None
    try:
        if sum(map(len, items)) > JOIN_BYTES:
            return None
        for item in items:
            if item.__class__ is not bytes:
                return None
    except TypeError:  # an item without a length
        return None
    return b"".join(items)


def _is_real_interrupt(exc: BaseException) -> bool:
    """True if ``exc`` may be a Ctrl-C delivered by Python's default SIGINT handler.

    That handler raises KeyboardInterrupt in the main thread, in whatever
    code runs there, the app's included: that one must stop the server. With
    another handler installed (the CLI's), or off the main thread, it is the
    app's own.
    """
    return (isinstance(exc, KeyboardInterrupt)
            and threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is signal.default_int_handler)


class _Sender:
    """The sending half of a :class:`Response`: the head, the framing and the body bytes.

    Its state is set by ``Response.__init__`` (one call per request, not two).
    """

    __slots__ = ("body_sent", "chunked", "conn", "has_body", "head", "headers", "headers_sent",
                 "keep_alive", "left", "pending", "server", "status")

    server: Any
    conn: Any
    head: Any
    status: str | None
    headers: list[tuple[str, str]]
    headers_sent: bool
    keep_alive: bool
    body_sent: int
    pending: list[bytes] | None
    has_body: bool
    chunked: bool
    left: int | None

    # -- sending --------------------------------------------------------------------
    @staticmethod
    def _check_chunk(chunk: Any) -> bytes:
        if chunk.__class__ is bytes:
            return chunk
        if isinstance(chunk, (bytearray, memoryview)):
            return bytes(chunk)
        raise TypeError(f"the app yielded {type(chunk).__name__} {chunk!r:.60}; WSGI bodies are bytes")

    def _flush_pending(self) -> Generator[Any, Any, None]:
        pending = self.pending or []
        self.pending = None
        joined = _joined(pending)  # (what write() queued is all there: one send for it)
        if joined is not None:
            pending = [joined]
        for data in pending:
            if data:
                yield from self._send(data, None)
        if not self.headers_sent:
            yield from self._send(b"", None)

    def _head(self, total: int | None) -> bytes:
        """Serialise the head; ``total`` is the whole body's length when known.

        Heads are cached by everything they depend on, for the current
        second (the Date field): most responses of a server repeat a handful
        of header sets, and validating and joining them is a large part of
        the per-request cost.
        """
        status = self.status
        if status is None:
            raise AssertionError("the app returned without calling start_response")
        request = self.head
        server = self.server
        # the cache is shared by every server in the process: the key holds
        # everything of the server's that goes into a head (its Server field)
        key = (status, total, request.method == "HEAD", request.version, request.keep_alive,
               server.is_closing, server.options.ident, *self.headers)
        date = _http_date()
        if date is not _cache_state[0]:
            _HEAD_CACHE.clear()
            _cache_state[0] = date
        cached = _HEAD_CACHE.get(key)
        if cached is None:
            cached = self._format(status, total)
            if len(_HEAD_CACHE) >= 256:
                _HEAD_CACHE.clear()
            _HEAD_CACHE[key] = cached
        head_bytes, framing = cached
        self.headers_sent = True
        self.keep_alive = framing.keep_alive
        self.has_body = framing.has_body
        self.chunked = framing.chunked
        self.left = framing.content_length if framing.has_body else None
        return head_bytes

    def _format(self, status: str, total: int | None) -> tuple[bytes, Any]:
        if status[:1] == "1":
            # WSGI has no interim responses: sent as the final one, a 1xx
            # would leave the client waiting for a response that never comes
            raise _http.LocalProtocolError(f"interim status {status!r} as the final response")
        headers = self.headers
        if total is not None and not status.startswith(_NO_LENGTH_STATUS):
            for name, _ in headers:
                if len(name) == 14 and name.lower() == "content-length":
                    break
            else:
                headers = headers + [("Content-Length", str(total))]
        server = self.server
        return _format_head(status, headers, request=self.head, keep_alive=not server.is_closing,
                            server=server.options.ident)

    def _send(self, data: bytes, total: int | None, out: bytes = b"") -> Iterable[Any]:
        """Send a piece of body (the head first if not sent yet); ``yield from`` what it returns.

        ``out`` is the head if the caller just made it (:meth:`_head`).
        (Not a generator itself: a send the socket takes at once costs no
        generator at all; see :meth:`cogen.web.connection.Connection.send`.)
        """
        if not self.headers_sent:
            out = self._head(total)
        if self.has_body and data:
            left = self.left
            if left is not None:
                if len(data) > left:
                    error_log.warning("%s %s: the app yielded more than its Content-Length; "
                                      "the excess was not sent", self.head.method, self.head.target)
                    data = data[:left]
                    self.keep_alive = False
                self.left = left - len(data)
            self.body_sent += len(data)
            size = len(out) + len(data)
            if (out or self.chunked) and size > GATHER_BYTES:  # not copied into the framing
                if self.chunked:
                    parts = _chunk_parts(data, out)
                    size = len(parts[0]) + len(data) + 2
                else:
                    parts = [out, data]
                sending: Iterable[Any] = self.conn.send_parts(parts, size)
                return sending
            out = out + _chunk(data) if self.chunked else out + data if out else data
        return self.conn.send(out) if out else ()

    def _send_items(self, items: list[Any]) -> Generator[Any, Any, bool]:
        """Send the whole body when it is ``items``, all bytes, together; False if they are not.

        A body of its announced length (the one the head says, or a
        Content-Length made from them) goes out in as few sends as the socket
        takes (see ``Connection.send_parts``); anything else item by item,
        by the rules of :meth:`_send`.
        """
        if self.status is None or self.pending is not None:
            return False
        total = 0
        for item in items:
            if item.__class__ is not bytes:
                return False
            total += len(item)
        out = b"" if self.headers_sent else self._head(total)
        left = self.left
        if self.has_body and not self.chunked and (left is None or total <= left):
            if left is not None:
                self.left = left - total
            self.body_sent += total
            yield from self.conn.send_parts([out, *items] if out else items, len(out) + total)
            return True
        for item in items or (b"",):
            yield from self._send(item, None, out)
            out = b""
        return True

    def send_file(self, wrapper: Any) -> Generator[Any, Any, bool]:
        """Send a ``wsgi.file_wrapper`` with sendfile; False if it cannot be."""
        rng = wrapper.sendfile_range()
        if rng is None or not hasattr(self.conn.sock, "getpeername") \
                or self.conn.sock.__class__.__name__ == "SSLSocket":
            return False
        fd, offset, size = rng
        out = self._head(None) if not self.headers_sent else b""
        if not self.has_body:
            if out:
                yield from self.conn.send(out)
            return True
        if self.left is not None:
            size = min(size, self.left)
        if self.chunked:
            if size == 0:
                if out:
                    yield from self.conn.send(out)
                return True
            out += b"%x\r\n" % size
        if out:
            yield from self.conn.send(out)
        timeout = self.server.options.sendfile_timeout or self.conn.send_timeout
        sent = yield from send_file(self.conn.sock, self.conn.waiter, fd, offset, size, timeout)
        self.body_sent += sent
        if self.left is not None:
            self.left -= sent
        if sent < size:
            self.keep_alive = False
            raise ClientDisconnected("the file was shorter than announced")
        if self.chunked:
            yield from self.conn.send(b"\r\n")
        return True

    def _finish(self) -> Generator[Any, Any, None]:
        if not self.headers_sent:
            yield from self._send(b"", 0)
            return
        if self.chunked:
            yield from self.conn.send(_LAST_CHUNK)
        elif self.left:
            error_log.warning("%s %s: the app yielded %d bytes less than its Content-Length",
                              self.head.method, self.head.target, self.left)
            self.keep_alive = False

    def _app_failed(self, exc: BaseException, may_be_ctrl_c: bool = True) -> Generator[Any, Any, bool]:
        """The app failed with ``exc``: log it, answer 500 if no head went out; returns False.

        (False: the connection closes.) With ``may_be_ctrl_c``, a Ctrl-C
        delivered by Python's default SIGINT handler (see
        ``_is_real_interrupt``) is raised again instead: it stops the server.
        """
        if may_be_ctrl_c and _is_real_interrupt(exc):
            raise exc
        head = self.head
        error_log.error("error in the application serving %s %s", head.method, head.target,
                        exc_info=exc)
        self.keep_alive = False
        if not self.headers_sent:
            self.status = "500 Internal Server Error"
            self.headers_sent = True
            data = _http.simple_response(500, "Internal Server Error", b"Internal Server Error\n",
                                         server=self.server.options.ident)
            if head.method == "HEAD":
                data = data[:data.index(b"\r\n\r\n") + 4]
            yield from self.conn.send(data)
        return False


_DONE = object()


class Response(_Sender):
    """The state of one response while the app produces it: the WSGI call and its iteration."""

    __slots__ = ("environ", "switched")

    def __init__(self, server: Any, conn: Any, head: Any, environ: dict[str, Any]) -> None:
        self.server = server
        self.conn = conn
        self.head = head
        self.environ = environ
        self.status: str | None = None
        self.headers: list[tuple[str, str]] = []
        self.headers_sent = False
        self.keep_alive = head.keep_alive
        self.body_sent = 0
        self.pending: list[bytes] | None = None
        self.has_body = True
        self.chunked = False
        self.left: int | None = None
        #: the protocol the connection switched to (a WebSocket), if any
        self.switched: Any = None

    # -- the WSGI callables ---------------------------------------------------------
    def start_response(self, status: str, headers: list[tuple[str, str]],
                       exc_info: Any = None) -> Any:
        """PEP 3333 ``start_response``; returns the ``write`` callable."""
        if exc_info is not None:
            try:
                # PEP 3333: the headers count as sent from the first write()
                # call, even though write() only queues the data here.
                if self.headers_sent or self.pending is not None:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status is not None:
            raise AssertionError("start_response called a second time without exc_info")
        if status.__class__ is not str:
            raise TypeError(f"status must be a str, not {type(status).__name__}: {status!r}")
        if headers.__class__ is not list:
            raise TypeError(f"headers must be a list, not {type(headers).__name__}")
        for item in headers:
            if item.__class__ is not tuple or len(item) != 2 or item[0].__class__ is not str \
                    or item[1].__class__ is not str:
                raise TypeError(f"each header must be a (str, str) tuple, not {item!r}")
        self.status = status
        self.headers = headers
        return self.write

    def write(self, data: bytes) -> None:
        """PEP 3333 ``write``: the data is sent before the app's next item is taken."""
        if self.status is None:
            raise AssertionError("write() called before start_response")
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"write() needs bytes, not {type(data).__name__}")
        if self.pending is None:
            self.pending = []
        self.pending.append(bytes(data))

    # -- running the app on the connection's coroutine ------------------------------
    def run(self) -> Generator[Any, Any, bool]:
        """Call the app and send its response; returns False if the connection must close."""
        environ = self.environ
        try:
            result = self.server.app(environ, self.start_response)
        except _APP_ERRORS as exc:
            return (yield from self._app_failed(exc))
        try:
            if result.__class__ is list and len(result) == 1 and self.pending is None \
                    and self.status is not None and (body := result[0]).__class__ is bytes:
                size = len(body)
                out = self._head(size)
                if self.left == size and self.has_body and not self.chunked:
                    # _send inlined for the commonest response: the head and
                    # a body of its announced length in one send()
                    self.left = 0
                    self.body_sent = size
                    if len(out) + size > GATHER_BYTES:  # not copied behind the head
                        yield from self.conn.send_parts([out, body], len(out) + size)
                    else:
                        yield from self.conn.send(out + body if size else out)
                    return True
                yield from self._send(body, size, out)
                if self.left or self.chunked:
                    # shorter than the app's own Content-Length (or framed
                    # by the app's Transfer-Encoding): the same end as _pump's
                    yield from self._finish()
                return True
            if self.status is not None and self.pending is None \
                    and hasattr(result, "sendfile_range") and (yield from self.send_file(result)):
                yield from self._finish()
                return True
            yield from self._pump(iter(result), None)
            return True
        except (ClientDisconnected, OperationTimeout, ServerClosing):
            raise
        except _APP_ERRORS as exc:
            return (yield from self._app_failed(exc))
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                try:
                    close()
                except _APP_ERRORS:
                    error_log.exception("error closing the response iterable of %s %s",
                                        self.head.method, self.head.target)

    def _pump(self, iterator: Any, pool: Any) -> Generator[Any, Any, None]:
        """Send the items of the app's iterable, running the operations it yields.

        With a ``pool``, each ``next()`` runs in it (``threads=N``).
        """
        if iterator.__class__ in _SEQUENCE_ITERATORS:
            # a list's or tuple's (Django's HttpResponse iterates its list):
            # every item exists already, so taking them all delays none, and
            # runs no app code (so not in the pool either)
            items = list(iterator)
            if (yield from self._send_items(items)):
                yield from self._finish()
                return
            iterator = iter(items)
        gate = self.environ["cogen.wsgi"]
        while True:
            if self.pending is not None:
                # what write() was given goes before the next item is asked
                # for: a threaded app's next() may block for long
                yield from self._flush_pending()
            if pool is None:
                chunk = next(iterator, _DONE)
            else:
                from cogen.core import threads
                chunk = yield from self._wait(threads.Run(_threaded_next, (iterator,), pool=pool))
            if chunk is _DONE:
                break
            if self.pending is not None:
                yield from self._flush_pending()
            op = gate.operation
            if op is not None or chunk.__class__ is not bytes and _is_op(chunk):
                if op is None:
                    op = chunk
                    chunk = b""
                else:
                    gate.operation = None
                yield from self._run_op(gate, op)
            if chunk:
                yield from self._send(self._check_chunk(chunk), None)
        if self.pending is not None:
            yield from self._flush_pending()
        yield from self._finish()

    # -- operations the app yields -------------------------------------------------
    def _run_op(self, gate: Any, op: Any) -> Generator[Any, Any, None]:
        """Run an operation for the app; its outcome goes on the gate.

        Meanwhile the connection is watched for a disconnect (unless the app
        streams the request body, whose reads are its own): see
        :mod:`cogen.web._watch`.
        """
        source = gate.source
        # (a read of a buffered body completes at once: nothing to watch for;
        # once the protocol switched the socket is the new protocol's to read)
        watched = (source is None or source.done) and op.__class__ is not Immediate \
            and self.conn.state is not _SWITCHED_PROTOCOL
        if watched:
            start_watch(self.server.sched, self.conn)
        try:
            gate.result = yield from self._wait(op)
            gate.exception = None
        except (ClientDisconnected, ServerClosing):
            raise
        except Exception as exc:
            gate.result = exc
            gate.exception = sys.exc_info()
        finally:
            if watched:
                stop_watch(self.server.sched, self.conn)

    def _wait(self, op: Any) -> Generator[Any, Any, Any]:
        """Yield ``op``, a wait that ``WSGIServer._force_close`` can withdraw; its result.

        The connection's coroutine is then parked on something other than
        its socket, so closing the socket would not wake it: ``_force_close``
        withdraws ``op`` (``cleanup``) and throws ServerClosing in.
        """
        conn = self.conn
        conn.op = op
        try:
            result = yield op
        except ServerClosing:
            raise
        except Exception:
            if not conn.cancelled:
                raise
        else:
            if not conn.cancelled:
                return result
        finally:
            conn.op = None
        # ``op`` completed in the very loop iteration in which _force_close
        # withdrew it: the ServerClosing thrown in is still queued for this
        # coroutine. Take it parked on nothing, so it cannot land on a later wait.
        yield PARKED
        raise ServerClosing("the grace period is over")

    # -- running the app in a thread pool -------------------------------------------
    def run_threaded(self, pool: Any) -> Generator[Any, Any, bool]:
        """Like :meth:`run`, with the app call, each ``next()`` and ``close()`` in ``pool``.

        All of them run on one thread of the pool, held for the whole response
        (a :class:`~cogen.core.threads.ThreadLease`), and in one fresh context:
        thread-locals and context variables set by the app call are there on
        every later call, and nothing is left for the next response.
        """
        context = self.server.context.copy()
        lease = pool.lease(context) if self.server.thread_affinity else _InContext(pool, context)
        try:
            return (yield from self._run_leased(lease))
        finally:
            lease.release()

    def _run_leased(self, pool: Any) -> Generator[Any, Any, bool]:
        from cogen.core import threads
        environ = self.environ
        try:
            # Run takes the arguments as one tuple, not spread
            result = yield from self._wait(threads.Run(self.server.app,
                                                       (environ, self.start_response), pool=pool))
        except ServerClosing:
            raise
        except _APP_ERRORS as exc:
            # raised in a pool thread: never a signal's KeyboardInterrupt
            return (yield from self._app_failed(exc, may_be_ctrl_c=False))
        try:
            # a list or tuple is iterated here: no app code runs in its next()
            in_pool = None if result.__class__ is list or result.__class__ is tuple else pool
            if in_pool is None:
                # and none in a close() it does not have: the thread is free now,
                # not after the body has gone out (or a WebSocket has ended)
                pool.release()
            yield from self._pump(iter(result), in_pool)
            return True
        except (ClientDisconnected, OperationTimeout, ServerClosing):
            raise
        except _APP_ERRORS as exc:
            # a list's items are taken on this thread, the rest in the pool
            return (yield from self._app_failed(exc, may_be_ctrl_c=in_pool is None))
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                ending = sys.exc_info()[0]
                if ending is GeneratorExit or ending is ServerClosing:
                    # this coroutine is being closed (Scheduler.close, garbage
                    # collection) and must not yield again, or the grace period
                    # is over and the response's thread may still be stuck in
                    # the app: close() is handed to that thread, not waited for
                    self._close_later(pool, close)
                else:
                    try:
                        yield threads.Run(close, pool=pool)
                    except _APP_ERRORS:
                        error_log.exception("error closing the response iterable of %s %s",
                                            self.head.method, self.head.target)

    def _close_later(self, lease: Any, close: Any) -> None:
        head = self.head

        def closed(future: Any) -> None:
            if not future.cancelled() and future.exception() is not None:
                error_log.error("error closing the response iterable of %s %s", head.method,
                                head.target, exc_info=future.exception())

        try:
            lease.submit(close).add_done_callback(closed)
        except RuntimeError:  # the pool is shut down: close it here, as best we can
            try:
                close()
            except _APP_ERRORS:
                error_log.debug("could not close the response iterable of %s %s", head.method,
                                head.target, exc_info=True)


class _InContext:
    """Pool-like: each call on any free thread of ``pool``, in ``context`` (``thread_affinity`` off).

    The steps of one response never overlap, so one context serves them all.
    """

    __slots__ = ("context", "pool")

    def __init__(self, pool: Any, context: Any) -> None:
        self.pool = pool
        self.context = context

    def submit(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        """Run ``func`` on the pool, in the response's context; returns its future."""
        return self.pool.submit(self.context.run, func, *args, **kwargs)

    def release(self) -> None:
        """Nothing is held between calls."""


def _threaded_next(iterator: Any) -> Any:
    return next(iterator, _DONE)


class FileWrapper:
    """``wsgi.file_wrapper``: iterate a file in blocks, or let the server sendfile it.

    The server sends regular files with ``os.sendfile`` from their current
    position (up to the Content-Length, if the app set one); anything else is
    iterated in ``blksize`` blocks. ``close()`` closes the file.
    """

    def __init__(self, filelike: Any, blksize: int = 65536) -> None:
        self.filelike = filelike
        self.blksize = blksize
        if hasattr(filelike, "close"):
            self.close = filelike.close

    def __iter__(self) -> FileWrapper:
        return self

    def __next__(self) -> bytes:
        data: bytes = self.filelike.read(self.blksize)
        if data:
            return data
        raise StopIteration

    def sendfile_range(self) -> tuple[int, int, int] | None:
        """``(fd, offset, size_left)`` if the file can be sent with sendfile, else None."""
        try:
            fd = self.filelike.fileno()
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                return None
            offset = self.filelike.tell()
        except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both
            return None
        return fd, offset, max(0, st.st_size - offset)
