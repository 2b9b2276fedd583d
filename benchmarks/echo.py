"""Echo benchmark: cogen sockets against asyncio streams and a raw selectors loop.

Run from the repository root::

    python benchmarks/echo.py [--secs 5] [--conns 100] [--repeats 3] [--client auto|c|py]

Each server runs in its own process pinned to ``--cpu`` (0); the load client
runs pinned to ``--client-cpu`` (1). The client opens ``--conns`` loopback
connections; each sends a 100-byte message and waits for its 100-byte echo
before sending the next. After a 1 s warm-up it counts echoed messages for
``--secs`` seconds. The client is a small C epoll program compiled to /tmp
when a C compiler exists (``--client c``), else a Python epoll loop
(``--client py``, which may itself be the bottleneck: watch its CPU column).

Printed: messages/s and MB/s (payload echoed, one direction) per server, the
server's and the client's CPU use, the server's CPU time per message, and
each server's ratios to asyncio streams. On a shared machine the CPU time
per message is the steadier figure: messages/s also measures the neighbours.
Servers are measured round-robin, ``--repeats`` times; medians are shown.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HOST = "127.0.0.1"
MSG = 100
ROOT = Path(__file__).resolve().parent.parent
SERVERS = ("cogen", "asyncio-streams", "raw-selectors")

C_CLIENT = r"""
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#define MSG 100
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9; }
static double cpu(void) { struct rusage r; getrusage(RUSAGE_SELF, &r);
  return r.ru_utime.tv_sec + r.ru_utime.tv_usec / 1e6 + r.ru_stime.tv_sec + r.ru_stime.tv_usec / 1e6; }
int main(int argc, char **argv) {
  int port = atoi(argv[1]), n = atoi(argv[2]); double secs = atof(argv[3]), warm = atof(argv[4]);
  int ep = epoll_create1(0), *got = calloc(1 << 16, sizeof(int)); char msg[MSG], buf[1 << 16];
  memset(msg, 'x', MSG);
  struct sockaddr_in a = {0}; a.sin_family = AF_INET; a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(0x7f000001);
  for (int i = 0; i < n; i++) {
    int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    if (connect(s, (struct sockaddr *)&a, sizeof a)) { perror("connect"); return 1; }
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = s}; epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev);
    if (send(s, msg, MSG, 0) != MSG) { perror("send"); return 1; }
  }
  long count = 0; double t0 = now(), t_measure = t0 + warm, t_end = t_measure + secs, m0 = 0, c0 = 0;
  int measuring = 0; struct epoll_event evs[256];
  for (;;) {
    double t = now();
    if (!measuring && t >= t_measure) { measuring = 1; count = 0; m0 = t; c0 = cpu(); }
    if (t >= t_end) break;
    int k = epoll_wait(ep, evs, 256, 200);
    for (int i = 0; i < k; i++) {
      int fd = evs[i].data.fd; ssize_t r = recv(fd, buf, sizeof buf, 0);
      if (r <= 0) { fprintf(stderr, "server closed\n"); return 1; }
      got[fd] += (int)r;
      while (got[fd] >= MSG) {
        got[fd] -= MSG; count++;
        if (send(fd, msg, MSG, 0) != MSG) { perror("send"); return 1; }
      }
    }
  }
  double el = now() - m0;
  printf("{\"msgs\": %ld, \"secs\": %.6f, \"client_cpu_pct\": %.1f}\n", count, el, 100 * (cpu() - c0) / el);
  return 0;
}
"""


# ------------------------------------------------------------------------- servers

def serve_cogen(port: int, ready) -> None:
    sys.path.insert(0, str(ROOT))
    from cogen.common import Scheduler, coroutine, sockets

    @coroutine
    def handler(conn):
        try:
            while True:
                data = yield sockets.Read(conn, 65536)
                yield sockets.WriteAll(conn, data)
        except sockets.ConnectionClosed:
            pass
        finally:
            conn.close()

    @coroutine
    def server(srv):
        while True:
            conn, _ = yield sockets.Accept(srv)
            sched.add(handler, conn)

    sched = Scheduler()
    srv = sockets.listen((HOST, port), backlog=1024)
    sched.add(server, srv)
    ready()
    sched.run()


def serve_asyncio_streams(port: int, ready) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    loop.run_until_complete(asyncio.start_server(handle, HOST, port, backlog=1024))
    ready()
    loop.run_forever()


def serve_raw_selectors(port: int, ready) -> None:
    import selectors
    sel = selectors.DefaultSelector()
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind((HOST, port))
    lsock.listen(1024)
    lsock.setblocking(False)
    sel.register(lsock, selectors.EVENT_READ, None)
    pending: dict[socket.socket, bytes] = {}
    ready()
    while True:
        for key, ev in sel.select():
            s = key.fileobj
            if key.data is None:
                try:
                    c, _ = s.accept()
                except BlockingIOError:
                    continue
                c.setblocking(False)
                c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sel.register(c, selectors.EVENT_READ, 1)
                continue
            if ev & selectors.EVENT_WRITE:
                data = pending.pop(s)
                n = s.send(data)
                if n < len(data):
                    pending[s] = data[n:]
                else:
                    sel.modify(s, selectors.EVENT_READ, 1)
                continue
            try:
                data = s.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                sel.unregister(s)
                pending.pop(s, None)
                s.close()
                continue
            if s in pending:
                pending[s] += data
                continue
            try:
                n = s.send(data)
            except BlockingIOError:
                n = 0
            if n < len(data):
                pending[s] = data[n:]
                sel.modify(s, selectors.EVENT_READ | selectors.EVENT_WRITE, 1)


def server_main(kind: str, port: int, cpu: int) -> None:
    """Child process: pin to ``cpu``, serve, print READY once listening."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})
    signal.alarm(900)

    def ready() -> None:
        print("READY", flush=True)

    {"cogen": serve_cogen, "asyncio-streams": serve_asyncio_streams,
     "raw-selectors": serve_raw_selectors}[kind](port, ready)


# ------------------------------------------------------------------------- clients

def py_client_main(port: int, conns: int, secs: float, warm: float, cpu: int) -> None:
    """Child process: the Python epoll load client; prints one JSON line."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})
    payload = b"x" * MSG
    ep = select.epoll()
    socks, got = {}, {}
    for _ in range(conns):
        s = socket.create_connection((HOST, port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
        socks[s.fileno()] = s
        got[s.fileno()] = 0
        ep.register(s.fileno(), select.EPOLLIN)
        s.send(payload)
    count, measuring = 0, False
    t_measure = time.perf_counter() + warm
    t_end = t_measure + secs
    while True:
        now = time.perf_counter()
        if not measuring and now >= t_measure:
            measuring, count, m0, c0 = True, 0, now, os.times()
        if now >= t_end:
            break
        for fd, _ in ep.poll(0.2):
            data = socks[fd].recv(65536)
            if not data:
                raise SystemExit("server closed")
            n = got[fd] + len(data)
            while n >= MSG:
                n -= MSG
                count += 1
                socks[fd].send(payload)
            got[fd] = n
    el = time.perf_counter() - m0
    c1 = os.times()
    cpu_s = (c1.user - c0.user) + (c1.system - c0.system)
    print(json.dumps({"msgs": count, "secs": el, "client_cpu_pct": 100 * cpu_s / el}), flush=True)


def build_c_client() -> str | None:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return None
    out = Path(tempfile.gettempdir()) / "cogen-bench-echo-client"
    src = out.with_suffix(".c")
    src.write_text(C_CLIENT)
    done = subprocess.run([cc, "-O2", "-o", str(out), str(src)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        print(f"cannot build the C client: {done.stderr.strip()}", file=sys.stderr)
        return None
    return str(out)


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def run_one(kind: str, args: argparse.Namespace, c_client: str | None) -> dict:
    port = _free_port()
    me = [sys.executable, str(Path(__file__).resolve())]
    srv = subprocess.Popen(
        me + ["--serve", kind, str(port), str(args.cpu)], stdout=subprocess.PIPE, text=True
    )
    try:
        line = srv.stdout.readline().strip() if srv.stdout else ""
        if line != "READY":
            raise RuntimeError(f"{kind}: server said {line!r}")
        t0 = time.monotonic()
        c0 = _cpu_seconds(srv.pid) if os.path.exists(f"/proc/{srv.pid}/stat") else None
        if c_client:
            cmd = ["taskset", "-c", str(args.client_cpu), c_client] if shutil.which("taskset") else [c_client]
            cmd += [str(port), str(args.conns), str(args.secs), str(args.warmup)]
        else:
            cmd = me + ["--client", str(port), str(args.conns), str(args.secs), str(args.warmup),
                        str(args.client_cpu)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=args.secs + args.warmup + 120,
                              check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{kind}: client failed: {done.stderr.strip()[-500:]}")
        wall = time.monotonic() - t0
        res = json.loads(done.stdout.strip().splitlines()[-1])
        res["rate"] = res["msgs"] / res["secs"]
        res["server_cpu_pct"] = 100 * (_cpu_seconds(srv.pid) - c0) / wall if c0 is not None else float("nan")
        return res
    finally:
        srv.terminate()
        try:
            srv.wait(timeout=5)
        except subprocess.TimeoutExpired:
            srv.kill()
            srv.wait()


def main() -> int:
    if sys.argv[1:2] == ["--serve"]:
        server_main(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
        return 0
    if sys.argv[1:2] == ["--client"]:
        a = sys.argv[2:]
        py_client_main(int(a[0]), int(a[1]), float(a[2]), float(a[3]), int(a[4]))
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--secs", type=float, default=5.0, help="measured seconds per run")
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--conns", type=int, default=100)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--cpu", type=int, default=0, help="CPU the servers are pinned to")
    p.add_argument("--client-cpu", type=int, default=1, help="CPU the load client is pinned to")
    p.add_argument("--client", choices=["auto", "c", "py"], default="auto")
    p.add_argument(
        "--servers", default=",".join(SERVERS), help="comma-separated subset of " + ", ".join(SERVERS)
    )
    args = p.parse_args()
    servers = [s for s in args.servers.split(",") if s]
    c_client = build_c_client() if args.client in ("auto", "c") else None
    if args.client == "c" and c_client is None:
        p.error("--client c needs a C compiler")
    print(f"Python {sys.version.split()[0]}; servers on CPU {args.cpu}, "
          f"{'C' if c_client else 'Python'} client on CPU {args.client_cpu}; "
          f"{args.conns} connections x {MSG}-byte messages, {args.secs:g}s runs, "
          f"median of {args.repeats}", flush=True)
    results: dict[str, list[dict]] = {k: [] for k in servers}
    for _ in range(args.repeats):
        for kind in servers:  # round-robin, so that drift spreads over every server
            results[kind].append(run_one(kind, args, c_client))
    base = (
        statistics.median(r["rate"] for r in results["asyncio-streams"])
        if "asyncio-streams" in results
        else None
    )
    for rows in results.values():
        for r in rows:  # server CPU time per echoed message: steadier than msgs/s on a busy machine
            r["us_per_msg"] = 1e4 * r["server_cpu_pct"] / r["rate"]
    base_us = (statistics.median(r["us_per_msg"] for r in results["asyncio-streams"])
               if "asyncio-streams" in results else None)
    print(f"\n{'server':18s} {'msgs/s':>10s} {'MB/s':>7s} {'min..max msgs/s':>19s} {'srv CPU':>8s} "
          f"{'cli CPU':>8s} {'CPU us/msg':>10s} {'msgs/s vs asyncio':>18s} {'CPU/msg vs asyncio':>19s}")
    for kind in servers:
        rates = [r["rate"] for r in results[kind]]
        med = statistics.median(rates)
        us = statistics.median(r["us_per_msg"] for r in results[kind])
        ratio = f"{med / base:.2f}x" if base else "-"
        cpu_ratio = f"{base_us / us:.2f}x less" if base_us else "-"
        print(f"{kind:18s} {med:10,.0f} {med * MSG / 1e6:7.2f} {min(rates):9,.0f}..{max(rates):<9,.0f}"
              f"{statistics.median(r['server_cpu_pct'] for r in results[kind]):7.0f}% "
              f"{statistics.median(r['client_cpu_pct'] for r in results[kind]):7.0f}% {us:10.1f} "
              f"{ratio:>18s} {cpu_ratio:>19s}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
