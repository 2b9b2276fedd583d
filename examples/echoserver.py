"""The echo server of the README ("A taste of the core").

Run it from a checkout (after ``pip install -e .``)::

    python examples/echoserver.py          # listens on 0.0.0.0:1200
    python examples/echoserver.py 0        # or another port; 0 picks a free one

then try it with ``nc localhost 1200`` (type lines; ``exit`` says good bye
and closes the connection), or with ``python examples/echoclient.py``.
"""
import sys

from cogen.common import *

port = int(sys.argv[1]) if sys.argv[1:] else 1200

@coroutine
def server():
    srv = sockets.Socket()
    srv.setsockopt(sockets.SOL_SOCKET, sockets.SO_REUSEADDR, 1)
    addr = ('0.0.0.0', port)
    srv.bind(addr)
    srv.listen(64)
    print("Listening on", srv.getsockname())
    while 1:
        conn, addr = yield sockets.Accept(srv)
        m.add(handler, conn, addr)

@coroutine
def handler(sock, addr):
    yield sockets.Write(sock, b"WELCOME TO ECHO SERVER !\r\n")
    while 1:
        line = yield sockets.ReadLine(sock, 8192)
        if line.strip() == b'exit':
            yield sockets.Write(sock, b"GOOD BYE")
            sock.close()
            return
        yield sockets.Write(sock, line)

m = Scheduler()
m.add(server)
m.run()
