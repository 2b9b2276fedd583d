"""A normal, blocking Flask app served by cogen with a thread pool.

Run it from the repository root (after ``pip install -e . flask``)::

    cogen-web examples.flask_app:app --threads 4 --port 8080

then try http://127.0.0.1:8080/ and http://127.0.0.1:8080/slow?seconds=2.

Nothing in the app knows about cogen. Flask views block (``time.sleep``, a
database driver, ``requests``...), which would stall every other connection
if they ran in the server's coroutines; ``--threads 4`` makes the server call
the app, and step through its response, in a pool of 4 threads, while the
sockets stay in the event loop. So four requests can block at once, and idle
keep-alive connections still cost no thread at all.

``/hold`` blocks its thread until ``/release`` is requested, and
``/release`` waits until a ``/hold`` is in progress: the two meet only if they
run at the same time. With ``--threads 0`` (or 1) they cannot, and both give up
after 30 seconds; with a pool they answer at once.
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


@app.get("/hold")
def hold():
    _holding.set()
    released = _released.wait(timeout=30)
    _released.clear()
    return jsonify(released=released)


@app.post("/release")
def release():
    holding = _holding.wait(timeout=30)
    _holding.clear()
    _released.set()
    return jsonify(released=holding)
