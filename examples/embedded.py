"""One scheduler runs a WSGI server *and* the program's own coroutines.

Run it from the repository root in the venv of the README's quick start::

    .venv/bin/python examples/embedded.py --port 8080

then ``curl http://127.0.0.1:8080/tick`` waits for the next tick of the
program's clock and prints it; ``curl http://127.0.0.1:8080/`` answers at
once. ``--port 0`` picks a free port; the address is printed as ``listening
on http://HOST:PORT/``. Ctrl-C (or SIGTERM) stops both cleanly.

This is the full form of embedding cogen's server (``cogen.web.serve`` and
``cogen-web`` are the short ones): the program makes the
:class:`~cogen.core.schedulers.Scheduler`, adds a
:class:`~cogen.web.wsgi.WSGIServer` to it, adds its own coroutines next to
it, and runs the scheduler. Here the program's coroutines are a ticker that
sends a :class:`~cogen.core.events.Signal` every ``--interval`` seconds (each
``/tick`` request parks on :class:`~cogen.core.events.WaitForSignal`, with no
thread and no polling, and is answered by the next tick), and a watcher that
turns SIGTERM/SIGINT into a graceful shutdown of both. The app and the
ticker share plain Python state without locks: they run in one thread, and
a coroutine is only ever interrupted where it yields.
"""
import argparse
import json
import signal
import socket
import sys
import time

from cogen.core import sockets
from cogen.core.coroutines import coroutine
from cogen.core.events import OperationTimeout, Signal, Sleep, WaitForSignal
from cogen.core.schedulers import Scheduler
from cogen.web.wsgi import WSGIServer

TICK = "embedded-example-tick"
state = {"ticks": 0, "running": True}


@coroutine
def ticker(interval):
    """The program's own work: count ticks and announce each one."""
    while state["running"]:
        yield Sleep(interval)
        state["ticks"] += 1
        # wakes every /tick request waiting right now; the result is how many
        woken = yield Signal(TICK, {"tick": state["ticks"], "time": time.time()})
        if woken:
            print(f"tick {state['ticks']}: woke {woken} request(s)", flush=True)


def application(environ, start_response):
    """``/tick`` long-polls the ticker; ``/`` reports the count at once."""
    path = environ.get("PATH_INFO", "/")
    if path == "/tick":
        yield WaitForSignal(TICK, timeout=30)   # the server runs it for this request
        gate = environ["cogen"]
        if gate.exception is not None and not isinstance(gate.result, OperationTimeout):
            raise gate.result
        data = {"timeout": True} if gate.exception is not None else gate.result
        status = "200 OK"
    elif path == "/":
        data, status = {"ticks": state["ticks"]}, "200 OK"
    else:
        data, status = {"error": "try / or /tick"}, "404 Not Found"
    body = json.dumps(data).encode() + b"\n"
    start_response(status, [("Content-Type", "application/json"),
                            ("Content-Length", str(len(body)))])
    yield body


@coroutine
def stop_on_signals(server, signums=(signal.SIGTERM, signal.SIGINT)):
    """Shut down gracefully on SIGTERM/SIGINT: the program's second coroutine.

    A Python signal handler runs between two bytecodes of whatever the main
    thread was doing, possibly inside the scheduler, so it must not touch the
    scheduler. The handlers installed here do nothing; ``set_wakeup_fd`` makes
    the interpreter write the signal number to a socket, and this coroutine
    reads it with an ordinary cogen ``Read`` and then stops things as normal
    loop code.
    """
    ours, theirs = socket.socketpair()
    theirs.setblocking(False)
    previous_fd = signal.set_wakeup_fd(theirs.fileno(), warn_on_full_buffer=False)
    previous = {signum: signal.signal(signum, lambda signum, frame: None) for signum in signums}
    reader = sockets.Socket.from_socket(ours)
    try:
        received = yield sockets.Read(reader, 16, timeout=None)
        print(f"received {signal.Signals(received[0]).name}, stopping", flush=True)
        state["running"] = False       # the ticker returns after its current sleep
        server.shutdown(grace=5.0)     # stop accepting; let requests in flight finish
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        signal.set_wakeup_fd(previous_fd)
        reader.close()
        theirs.close()


def main(argv=None):
    parser = argparse.ArgumentParser(description="A WSGI server next to a ticker coroutine.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between ticks")
    args = parser.parse_args(argv)

    sched = Scheduler()
    server = WSGIServer((args.host, args.port), application, sched)
    sched.add(server.serve)              # the accept loop: one coroutine per connection
    sched.add(ticker, args.interval)     # the program's own coroutines, on the same loop
    sched.add(stop_on_signals, server)
    host, port = server.address[:2]
    print(f"listening on http://{host}:{port}/", flush=True)
    sched.run()                          # returns when every coroutine has finished
    sched.close()
    print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
