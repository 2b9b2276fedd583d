"""``raw-epoll-wsgi``: the least a pure-Python WSGI server can do, as a ceiling for the benchmarks.

::

    python -m benchmarks.raw_wsgi --app benchmarks.apps:hello --port 8080

One thread, one level-triggered ``epoll``, non-blocking sockets with
``TCP_NODELAY``. Per request: split the head at the first blank line, the
request line at spaces and each header line at its colon; build a PEP 3333
environ; call the app; join what it returns; write the status line, the
headers (a Content-Length added when the app gave none) and the body in one
``send()``. Bodies with a Content-Length are read whole before the app is
called (``wsgi.input`` is a ``BytesIO``); ``wsgi.file_wrapper`` responses go
out with ``os.sendfile()``; what the socket does not take at once waits for
``EPOLLOUT``. Keep-alive unless the client asks to close (or speaks HTTP/1.0
without asking to keep it).

Nothing is validated: no chunked request bodies, no limits on the head, no
checks of the method, target, header names or values, no ``Date`` or
``Server`` header, no error pages beyond a bare 500 when the app raises, no
long polls (an app cannot wait without blocking the loop). It is not a
server to use: it measures what is left for a real one to spend on being
correct, which is why ``benchmarks/wsgi.py`` runs it beside cogen-web.
"""
from __future__ import annotations

import argparse
import io
import os
import select
import socket
import sys
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["FileWrapper", "RawWSGIServer", "main"]

RECV = 65536
FAILED = b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
ERRORS = sys.stderr


class FileWrapper:
    """``wsgi.file_wrapper``: a file the loop sends with ``os.sendfile()`` (iterable as a fallback)."""

    def __init__(self, filelike: Any, blksize: int = 65536) -> None:
        self.filelike = filelike
        self.blksize = blksize

    def __iter__(self) -> Any:
        return iter(lambda: self.filelike.read(self.blksize), b"")

    def close(self) -> None:
        """Close the file."""
        self.filelike.close()


class _Conn:
    __slots__ = ("file", "inbuf", "out", "close_after", "sock", "writing")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.inbuf = b""
        self.out = memoryview(b"")  # what is not sent yet (a view: slicing it copies nothing)
        self.file: Any = None     # (FileWrapper, offset, end) still to sendfile after ``out``
        self.close_after = False
        self.writing = False      # registered for EPOLLOUT


class RawWSGIServer:
    """A bare epoll loop serving one WSGI app on ``sock`` (see the module docstring)."""

    def __init__(self, sock: socket.socket, app: Callable[..., Any]) -> None:
        self.sock = sock
        self.app = app
        host, port = sock.getsockname()[:2]
        self.base = {
            "SCRIPT_NAME": "", "SERVER_NAME": host, "SERVER_PORT": str(port),
            "wsgi.version": (1, 0), "wsgi.url_scheme": "http", "wsgi.errors": ERRORS,
            "wsgi.multithread": False, "wsgi.multiprocess": False, "wsgi.run_once": False,
            "wsgi.file_wrapper": FileWrapper,
        }
        self.conns: dict[int, _Conn] = {}
        self.stopping = False
        self.ep = select.epoll()
        sock.setblocking(False)
        self.ep.register(sock.fileno(), select.EPOLLIN)

    def serve_forever(self, poll_interval: float = -1) -> None:
        """Run the loop until :meth:`shutdown` (noticed within ``poll_interval`` s; -1: never)."""
        lfd, conns, ep = self.sock.fileno(), self.conns, self.ep
        while not self.stopping:
            for fd, ev in ep.poll(poll_interval):
                if fd == lfd:
                    self.accept()
                    continue
                conn = conns.get(fd)
                if conn is None:
                    continue
                if ev & select.EPOLLOUT:
                    self.flush(fd, conn)
                elif ev & (select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR):
                    self.read(fd, conn)

    def shutdown(self) -> None:
        """Ask :meth:`serve_forever` to return (call it from another thread or a signal handler)."""
        self.stopping = True

    def close(self) -> None:
        """Close every connection, the epoll object and the listening socket (after serve_forever)."""
        for fd, conn in list(self.conns.items()):
            self.drop(fd, conn)
        self.ep.close()
        self.sock.close()

    def accept(self) -> None:
        """Accept every pending connection."""
        while True:
            try:
                sock, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # EMFILE and friends: leave it in the backlog
                return
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            fd = sock.fileno()
            self.conns[fd] = _Conn(sock)
            self.ep.register(fd, select.EPOLLIN)

    def drop(self, fd: int, conn: _Conn) -> None:
        """Forget and close a connection."""
        del self.conns[fd]
        try:
            self.ep.unregister(fd)
        except OSError:
            pass
        if conn.file is not None:
            conn.file[0].close()
        conn.sock.close()

    def read(self, fd: int, conn: _Conn) -> None:
        """Read what arrived and answer every complete request in it."""
        try:
            data = conn.sock.recv(RECV)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self.drop(fd, conn)
            return
        conn.inbuf += data
        self.process(fd, conn)

    def process(self, fd: int, conn: _Conn) -> None:
        """Answer the complete requests in the buffer, in order, until one must wait for the socket."""
        while not conn.writing:
            buf = conn.inbuf
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            lines = buf[:end].decode("latin-1").split("\r\n")
            method, target, proto = lines[0].split(" ", 2)
            environ = dict(self.base)
            for line in lines[1:]:
                name, _, value = line.partition(":")
                key = name.upper().replace("-", "_")
                if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                    key = "HTTP_" + key
                environ[key] = value.strip()
            length = int(environ.get("CONTENT_LENGTH") or 0)
            start = end + 4
            if len(buf) < start + length:
                return  # the body is not all here yet
            conn.inbuf = buf[start + length:]
            path, _, query = target.partition("?")
            environ["REQUEST_METHOD"] = method
            environ["PATH_INFO"] = path
            environ["QUERY_STRING"] = query
            environ["SERVER_PROTOCOL"] = proto
            environ["wsgi.input"] = io.BytesIO(buf[start:start + length])
            conn_hdr = environ.get("HTTP_CONNECTION", "").lower()
            conn.close_after = conn_hdr == "close" or (proto == "HTTP/1.0" and conn_hdr != "keep-alive")
            out, conn.file = self.respond(environ, conn.close_after)
            conn.out = memoryview(out)
            if not self.flush(fd, conn):
                return

    def respond(self, environ: dict[str, Any], close: bool) -> tuple[bytes, Any]:
        """Call the app; the bytes to send and the file still to send after them (or None)."""
        status_headers: list[Any] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            status_headers[:] = [status, headers]
            return status_headers.append  # write(): not used by the benchmark apps

        filed: Any = None
        try:
            result = self.app(environ, start_response)
            try:
                if isinstance(result, FileWrapper):
                    filed, body = result, b""
                else:
                    body = b"".join(result)
            finally:
                if filed is None and hasattr(result, "close"):
                    result.close()
            status, headers = status_headers[0], status_headers[1]
        except Exception:  # noqa: BLE001 - the app's failure is one bare 500
            if filed is not None:
                filed.close()
            return FAILED, None
        head = [f"HTTP/1.1 {status}"]
        length = None
        for name, value in headers:
            if name.lower() == "content-length":
                length = int(value)
            head.append(f"{name}: {value}")
        file_part = None
        if filed is not None:
            f = filed.filelike
            offset = f.tell()
            size = os.fstat(f.fileno()).st_size - offset if length is None else length
            file_part = (filed, offset, offset + size)
            length = size if length is None else length
        elif length is None:
            head.append(f"Content-Length: {len(body)}")
        if close:
            head.append("Connection: close")
        return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body, file_part

    def flush(self, fd: int, conn: _Conn) -> bool:
        """Send what is pending; True when all of it went (the next request may be answered)."""
        try:
            while conn.out:
                sent = conn.sock.send(conn.out)
                conn.out = conn.out[sent:]
            while conn.file is not None:
                wrapper, offset, end = conn.file
                if offset >= end:
                    wrapper.close()
                    conn.file = None
                    break
                sent = os.sendfile(fd, wrapper.filelike.fileno(), offset, end - offset)
                if sent == 0:  # the file is shorter than it said: nothing more to send
                    end = offset
                conn.file = (wrapper, offset + sent, end)
        except (BlockingIOError, InterruptedError):
            if not conn.writing:
                conn.writing = True
                self.ep.modify(fd, select.EPOLLOUT)
            return False
        except OSError:
            self.drop(fd, conn)
            return False
        if conn.close_after:
            self.drop(fd, conn)
            return False
        if conn.writing:
            conn.writing = False
            self.ep.modify(fd, select.EPOLLIN)
            self.process(fd, conn)  # requests that arrived (pipelined) while the response was going out
            return False
        return True


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m benchmarks.raw_wsgi --app SPEC --port P``; serves until killed; the exit status."""
    from benchmarks.apps import load_app

    parser = argparse.ArgumentParser(prog="python -m benchmarks.raw_wsgi",
                                     description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--app", default="benchmarks.apps:hello", help="module:callable")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    ns = parser.parse_args(argv)
    app = load_app(ns.app)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((ns.host, ns.port))
    sock.listen(4096)
    RawWSGIServer(sock, app).serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
