"""The echo server of the README ("A taste of the core").

Run it from a checkout, with the venv of the README's quick start::

    .venv/bin/python examples/echoserver.py      # listens on 127.0.0.1:1200
    .venv/bin/python examples/echoserver.py 0    # or another port; 0 picks a free one
    .venv/bin/python examples/echoserver.py 1200 --all-interfaces   # 0.0.0.0:1200

then try it with ``nc 127.0.0.1 1200`` (type lines; ``exit`` says good bye
and closes the connection), or with ``.venv/bin/python examples/echoclient.py``.
"""
import sys

from cogen.common import *

# [PORT] [--all-interfaces]: 127.0.0.1 only, unless asked for every interface
args = [arg for arg in sys.argv[1:] if arg != '--all-interfaces']
host = '0.0.0.0' if '--all-interfaces' in sys.argv[1:] else '127.0.0.1'
port = int(args[0]) if args else 1200

@coroutine
def server():
    srv = sockets.Socket()
    srv.setsockopt(sockets.SOL_SOCKET, sockets.SO_REUSEADDR, 1)
    addr = (host, port)
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
