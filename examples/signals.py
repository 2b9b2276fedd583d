"""One request waits for a signal that another request sends.

Run it from the repository root in the venv of the README's quick start::

    .venv/bin/cogen-web examples.signals:application --port 8080

then, in one terminal, wait (this request parks, holding no thread)::

    curl 'http://127.0.0.1:8080/wait/news?timeout=60'

and in another, wake it with a value::

    curl -d 'cogen 1.0 is out' http://127.0.0.1:8080/send/news

The first curl prints ``cogen 1.0 is out``; the second prints how many
waiters it woke. ``/send/NAME?recipients=N`` first waits (up to 30 s) until at
least N requests are waiting on NAME, then wakes them all, so a sender need
not race the waiters.

The app calls operations through the gate, ``environ['cogen']``: calling
``gate.core.events.WaitForSignal(...)`` records the operation and returns
``b''``; the app yields that, the server runs the operation before it asks
the app for the next item, and the outcome is then in ``gate.result`` (or,
if it raised, ``gate.exception`` is set and ``gate.result`` is the exception).
"""
import re
from urllib.parse import parse_qs

from cogen.core.events import OperationTimeout

MAX_VALUE = 64 * 1024
ROUTE = re.compile(r"/(?P<action>wait|send)/(?P<name>[A-Za-z0-9_.-]{1,64})\Z")


def text_response(start_response, status, text):
    body = text.encode("utf-8") + b"\n"
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"),
                            ("Content-Length", str(len(body)))])
    return body


def number(query, key, default, low, high):
    """``query[key]`` as a number clamped to [low, high]; ``default`` if absent or bad."""
    try:
        value = float(query.get(key, [default])[-1])
    except ValueError:
        return default
    return max(low, min(high, value))


def application(environ, start_response):
    """``GET /wait/NAME`` waits for ``POST /send/NAME``; everything else is 404."""
    match = ROUTE.match(environ.get("PATH_INFO", ""))
    method = environ["REQUEST_METHOD"]
    if match is None or (match["action"] == "wait") != (method == "GET") \
            or (match["action"] == "send") != (method == "POST"):
        yield text_response(start_response, "404 Not Found",
                            "GET /wait/NAME or POST /send/NAME")
        return
    name = match["name"]
    query = parse_qs(environ.get("QUERY_STRING", ""))
    gate = environ["cogen"]
    events = gate.core.events       # cogen.core.events, seen through the gate

    if match["action"] == "wait":
        timeout = number(query, "timeout", 30, 0, 300)
        yield events.WaitForSignal(f"signals-example:{name}", timeout=timeout)
        if gate.exception is None:
            yield text_response(start_response, "200 OK", gate.result)
        elif isinstance(gate.result, OperationTimeout):
            yield text_response(start_response, "504 Gateway Timeout",
                                f"nobody sent {name!r} within {timeout:g}s")
        else:
            raise gate.result
        return

    # POST /send/NAME: the body (already read by the server) is the value.
    length = int(environ.get("CONTENT_LENGTH") or 0)
    value = environ["wsgi.input"].read(min(length, MAX_VALUE)).decode("utf-8", "replace")
    recipients = int(number(query, "recipients", 0, 0, 1000))
    yield events.Signal(f"signals-example:{name}", value, recipients=recipients, timeout=30)
    if gate.exception is None:
        yield text_response(start_response, "200 OK", f"woke {gate.result}")
    elif isinstance(gate.result, OperationTimeout):
        yield text_response(start_response, "504 Gateway Timeout",
                            f"fewer than {recipients} waiters on {name!r} within 30s")
    else:
        raise gate.result
