"""Stream a large upload through ``environ['cogen.input']`` and hash it in constant memory.

Run it from the repository root in the venv of the README's quick start::

    .venv/bin/cogen-web examples.upload:application --port 8080

then upload any file, of any size up to the server's ``--max-body`` (1 GiB by
default), and compare the digest with ``sha256sum FILE``::

    curl -T FILE http://127.0.0.1:8080/            # PUT, Content-Length
    curl -H 'Transfer-Encoding: chunked' --data-binary @FILE http://127.0.0.1:8080/

The app is marked with :func:`cogen.web.extensions.streaming_input`, so the
server calls it as soon as the request head is in, without buffering the
body. The app then yields ``environ['cogen.input'].read(CHUNK)`` operations;
each one parks the request's coroutine until body bytes arrive and its result
(a non-empty chunk, or ``b''`` at the end of the body) is on
``environ['cogen'].result``. Memory use is one chunk, whatever the size of the
upload, and no thread is tied up by a slow uploader.
"""
import hashlib
import json

from cogen.web.extensions import streaming_input

CHUNK = 256 * 1024

USAGE = b"""PUT or POST a body to this URL; the answer is its size and SHA-256:

    curl -T FILE http://HOST:PORT/
"""


@streaming_input
def application(environ, start_response):
    """Answer ``{"bytes": N, "sha256": HEX}`` for the uploaded body."""
    method = environ["REQUEST_METHOD"]
    if method in ("GET", "HEAD"):
        start_response("200 OK", [("Content-Type", "text/plain"),
                                  ("Content-Length", str(len(USAGE)))])
        yield USAGE
        return
    if method not in ("PUT", "POST"):
        start_response("405 Method Not Allowed", [("Content-Type", "text/plain"),
                                                  ("Allow", "GET, HEAD, PUT, POST"),
                                                  ("Content-Length", "0")])
        return
    gate = environ["cogen"]
    body = environ["cogen.input"]
    digest = hashlib.sha256()
    size = 0
    while True:
        yield body.read(CHUNK)          # parks until some of the body has arrived
        if gate.exception is not None:  # e.g. OperationTimeout: the client stalled
            raise gate.result
        chunk = gate.result
        if not chunk:                   # b'': the whole body was read
            break
        digest.update(chunk)
        size += len(chunk)
    answer = json.dumps({"bytes": size, "sha256": digest.hexdigest()}).encode() + b"\n"
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(answer)))])
    yield answer
