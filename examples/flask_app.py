"""A normal, blocking Flask app served by cogen with a thread pool.

Run it from the repository root, in the venv of the README's quick start
(after ``.venv/bin/pip install -e . flask``)::

    .venv/bin/cogen-web examples.flask_app:app --threads 4 --port 8080

then try http://127.0.0.1:8080/ and http://127.0.0.1:8080/slow?seconds=2.

Nothing in the app knows about cogen. Flask views block (``time.sleep``, a
database driver, ``requests``...), which would stall every other connection
if they ran in the server's coroutines; ``--threads 4`` makes the server call
the app, and step through its response, in a pool of 4 threads, while the
sockets stay in the event loop. So four requests can block at once, and idle
keep-alive connections still cost no thread at all.

``GET /hold`` blocks its thread until a ``POST /release`` ends it, and
``/release`` blocks until a ``/hold`` is in progress, then ends it; each
gives up after ``?timeout=`` seconds (30 by default, at most 30). In two
threads at once they meet, and both answer ``{"released": true}`` at once.
With ``--threads 1`` (or 0, where the one thread is the whole server's)
they cannot: ``/release`` is not even started before ``/hold`` has given up
(``{"released": false}``), and it then waits its own timeout for a
``/hold`` in vain (``{"released": false}`` too).
"""
import threading
import time

from flask import Flask, jsonify, request

app = Flask(__name__)
_holding = threading.Event()
_released = threading.Event()


@app.get("/")
def index():
    return jsonify(hello="world", thread=threading.current_thread().name)


@app.get("/slow")
def slow():
    seconds = min(float(request.args.get("seconds", "1")), 10.0)
    time.sleep(seconds)  # blocks this pool thread only
    return jsonify(slept=seconds)


@app.post("/echo")
def echo():
    data = request.get_data()  # wsgi.input, read synchronously as usual
    return jsonify(bytes=len(data), text=data.decode("utf-8", "replace")[:100])


def _timeout() -> float:
    return max(0.0, min(float(request.args.get("timeout", "30")), 30.0))


@app.get("/hold")
def hold():
    _holding.set()
    try:
        released = _released.wait(timeout=_timeout())
    finally:
        _holding.clear()  # a /release that comes later must not see this one
    _released.clear()
    return jsonify(released=released)


@app.post("/release")
def release():
    holding = _holding.wait(timeout=_timeout())
    if holding:
        _released.set()
    return jsonify(released=holding)
