"""Serve the files of a directory, with ``wsgi.file_wrapper`` (sendfile).

Run it from the repository root in the venv of the README's quick start, with the
directory to serve in ``STATIC_ROOT`` (default: the current directory)::

    STATIC_ROOT=docs .venv/bin/cogen-web examples.static:application --port 8000

then open http://127.0.0.1:8000/ (a directory shows its ``index.html``, or a
listing). To embed it, ``make_app(directory)`` returns the WSGI app.

The app hands the open file to the server through ``wsgi.file_wrapper``;
cogen's server then sends it with ``os.sendfile`` (zero-copy), in the
connection's coroutine, without a thread. Only regular files inside the root
are served: a request path is rejected (404) if it has ``..`` or ``.``
segments, backslashes or NUL bytes once percent-decoded, and a path whose real
location (symbolic links resolved) falls outside the root is refused too.
Dot files are not served. ``If-Modified-Since`` gets a 304.
"""
import email.utils
import html
import mimetypes
import os
import stat
from urllib.parse import quote


def make_app(root):
    """A WSGI app serving the files under ``root``."""
    root = os.path.realpath(root)
    if not os.path.isdir(root):
        raise ValueError(f"not a directory: {root!r}")

    def application(environ, start_response):
        method = environ["REQUEST_METHOD"]
        if method not in ("GET", "HEAD"):
            return error(start_response, "405 Method Not Allowed", [("Allow", "GET, HEAD")])
        path_info = environ.get("PATH_INFO") or "/"
        target = resolve(root, path_info)
        if target is None:
            return error(start_response, "404 Not Found")
        if os.path.isdir(target):
            if not path_info.endswith("/"):  # so that relative links work
                location = quote(environ.get("SCRIPT_NAME", "") + path_info + "/",
                                 encoding="latin-1")
                return error(start_response, "301 Moved Permanently", [("Location", location)])
            index = os.path.join(target, "index.html")
            if os.path.isfile(index):
                target = index
            else:
                return listing(start_response, target, path_info)
        return send_file(environ, start_response, target)

    return application


def resolve(root, path_info):
    """The real path of the file ``path_info`` names under ``root``, or None.

    PATH_INFO is already percent-decoded (PEP 3333: a latin-1 native string),
    so ``%2e%2e`` arrives here as ``..`` and ``%2f`` as ``/``.
    """
    try:
        raw = path_info.encode("latin-1")
        path = raw.decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return None
    parts = [p for p in path.split("/") if p]
    for part in parts:
        if part in (".", "..") or part.startswith(".") or "\\" in part or "\0" in part:
            return None
    candidate = os.path.realpath(os.path.join(root, *parts))
    if candidate != root and os.path.commonpath([root, candidate]) != root:
        return None  # a symbolic link that leads out of the root
    if not os.path.exists(candidate):
        return None
    return candidate


def send_file(environ, start_response, path):
    try:
        f = open(path, "rb")  # noqa: SIM115 (the server closes it, through the file wrapper)
    except OSError:
        return error(start_response, "404 Not Found")
    try:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            f.close()
            return error(start_response, "404 Not Found")
        last_modified = email.utils.formatdate(st.st_mtime, usegmt=True)
        since = environ.get("HTTP_IF_MODIFIED_SINCE")
        if since and not_modified(since, st.st_mtime):
            f.close()
            start_response("304 Not Modified", [("Last-Modified", last_modified)])
            return []
        ctype, encoding = mimetypes.guess_type(path)
        if ctype is None or encoding is not None:
            ctype = "application/octet-stream"  # never let the browser decompress .gz files
        if ctype.startswith("text/"):
            ctype += "; charset=utf-8"
        start_response("200 OK", [("Content-Type", ctype),
                                  ("Content-Length", str(st.st_size)),
                                  ("Last-Modified", last_modified),
                                  ("X-Content-Type-Options", "nosniff")])
        if environ["REQUEST_METHOD"] == "HEAD":
            f.close()
            return []
        wrapper = environ.get("wsgi.file_wrapper")
        if wrapper is None:  # another server: iterate the file ourselves
            return iter(lambda: f.read(65536), b"")
        return wrapper(f, 65536)
    except BaseException:
        f.close()
        raise


def not_modified(since, mtime):
    try:
        when = email.utils.parsedate_to_datetime(since).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return False
    return int(mtime) <= when


def listing(start_response, directory, path_info):
    names = sorted(n for n in os.listdir(directory) if not n.startswith("."))
    title = html.escape(path_info.encode("latin-1").decode("utf-8", "replace"))
    items = []
    for name in names:
        slash = "/" if os.path.isdir(os.path.join(directory, name)) else ""
        items.append(f'<li><a href="{quote(name)}{slash}">{html.escape(name)}{slash}</a></li>')
    body = (f"<!DOCTYPE html><meta charset=utf-8><title>{title}</title>"
            f"<h1>{title}</h1><ul>{''.join(items)}</ul>\n").encode()
    start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"),
                              ("Content-Length", str(len(body)))])
    return [body]


def error(start_response, status, headers=()):
    body = status.encode("ascii") + b"\n"
    start_response(status, [("Content-Type", "text/plain"),
                            ("Content-Length", str(len(body)))] + list(headers))
    return [body]


#: What ``cogen-web examples.static:application`` serves.
application = make_app(os.environ.get("STATIC_ROOT", "."))
