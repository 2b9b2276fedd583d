"""A cogen client for examples/echoserver.py.

Start the server, then::

    .venv/bin/python examples/echoclient.py [HOST [PORT [LINE ...]]]

It connects (default ``localhost 1200``), prints the welcome line, sends each
LINE (default: three sample lines) and prints its echo, then sends ``exit``
and prints the good-bye.
"""
import sys

from cogen.common import *

host = sys.argv[1] if sys.argv[1:] else 'localhost'
port = int(sys.argv[2]) if sys.argv[2:] else 1200
lines = sys.argv[3:] or ["hello", "echo me", "one more line"]

@coroutine
def client():
    sock = sockets.Socket()
    yield sockets.Connect(sock, (host, port), timeout=10)
    welcome = yield sockets.ReadLine(sock, 8192, timeout=10)
    print(welcome.decode().rstrip())
    for line in lines:
        yield sockets.WriteAll(sock, line.encode() + b"\n")
        echo = yield sockets.ReadLine(sock, 8192, timeout=10)
        print(echo.decode().rstrip())
    yield sockets.WriteAll(sock, b"exit\n")
    bye = yield sockets.ReadAll(sock, len(b"GOOD BYE"), timeout=10)
    print(bye.decode())
    sock.close()

m = Scheduler()
m.add(client)
m.run()
