"""Core-runtime micro benchmarks: cogen against asyncio (and uvloop) in one run.

Run from the checkout::

    python3 -m benchmarks.core [--repeats 5] [--scale 1.0] [--cpu 0] [--reactor NAME] [--clock cpu|wall]

Everything runs in this process, pinned to one CPU (``--cpu``, where
``os.sched_setaffinity`` exists). Each program runs once, small, to warm up
(CPython specialises code only after a few runs), then ``--repeats`` times,
the cogen, asyncio and uvloop versions taking turns so that a change in the
machine's load hits them alike; every number is the best run. Time is the
process's CPU time by default (``--clock cpu``: other load on a shared
machine does not count), or wall time (``--clock wall``). The programs:

- ``Sleep(0) switches``: one coroutine yielding ``events.Sleep(0)`` N times,
  against one task awaiting ``asyncio.sleep(0)`` N times -> switches/s.
- ``ping-pong``: two coroutines passing the turn back and forth N times,
  against two tasks doing the same through a pair of Futures (and through a
  pair of ``asyncio.Event``) -> round trips/s. Signals are not latched: a
  ``Signal`` sent while nobody waits is lost. So each side sends with
  ``prio=priority.CORO`` and goes straight on to its ``WaitForSignal``: it is
  parked again before the other side can run and answer. Per round trip both
  sides do what the asyncio tasks do: two wake-ups, two waits, two switches.
  A second cogen row makes the four operations once, before the loop (an
  operation can be yielded again and again), against the same asyncio
  program: what is left is the cost of the scheduler itself.
- ``spawn``: 100,000 coroutines that return at once, added and run to
  completion, against ``create_task`` x 100,000 and awaiting them all ->
  coroutines/s. The cogen side is timed from the first ``add`` to the end of
  ``run()``; the asyncio side inside ``run_until_complete`` (loop creation is
  outside both).

The last columns are cogen's rate divided by asyncio's (and uvloop's):
above 1 means cogen is faster.
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import time
from collections.abc import Callable
from functools import partial
from typing import Any

if __package__ in (None, ""):  # run as a script: make the checkout importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from cogen.core import events
from cogen.core.coroutines import coroutine
from cogen.core.schedulers import Scheduler
from cogen.core.util import priority

#: The clock every program is timed with; main() sets it from --clock.
_clock: Callable[[], float] = time.process_time

# -- cogen programs: each returns the seconds it took -----------------------------------


def cogen_sleep0(n: int, reactor: str | None) -> float:
    sched = Scheduler(reactor=reactor)
    Sleep = events.Sleep

    @coroutine
    def switcher() -> Any:
        for _ in range(n):
            yield Sleep(0)

    sched.add(switcher)
    t0 = _clock()
    sched.run()
    elapsed = _clock() - t0
    sched.close()
    return elapsed


def cogen_pingpong(n: int, reactor: str | None) -> float:
    sched = Scheduler(reactor=reactor)
    Signal, WaitForSignal, CORO = events.Signal, events.WaitForSignal, priority.CORO

    @coroutine
    def ponger() -> Any:
        for _ in range(n):
            yield WaitForSignal("ping")
            yield Signal("pong", prio=CORO)  # then straight on to wait for the next ping

    @coroutine
    def pinger() -> Any:
        for _ in range(n):
            yield Signal("ping", prio=CORO)  # the ponger is parked: it was added first
            yield WaitForSignal("pong")

    sched.add(ponger)
    sched.add(pinger)
    return _run_pingpong(sched)


def cogen_pingpong_ops_once(n: int, reactor: str | None) -> float:
    sched = Scheduler(reactor=reactor)
    CORO = priority.CORO
    wait_ping, send_pong = events.WaitForSignal("ping"), events.Signal("pong", prio=CORO)
    send_ping, wait_pong = events.Signal("ping", prio=CORO), events.WaitForSignal("pong")

    @coroutine
    def ponger() -> Any:
        for _ in range(n):
            yield wait_ping
            yield send_pong

    @coroutine
    def pinger() -> Any:
        for _ in range(n):
            yield send_ping
            yield wait_pong

    sched.add(ponger)
    sched.add(pinger)
    return _run_pingpong(sched)


def _run_pingpong(sched: Scheduler) -> float:
    t0 = _clock()
    sched.run()
    elapsed = _clock() - t0
    if sched.sigwait:
        raise RuntimeError("ping-pong deadlocked: a signal was lost")
    sched.close()
    return elapsed


def cogen_spawn(n: int, reactor: str | None) -> float:
    sched = Scheduler(reactor=reactor)

    @coroutine
    def noop() -> Any:
        return None
        yield

    add = sched.add
    t0 = _clock()
    for _ in range(n):
        add(noop)
    sched.run()
    elapsed = _clock() - t0
    sched.close()
    return elapsed


# -- asyncio programs ------------------------------------------------------------------


async def _sleep0(n: int) -> None:
    sleep = asyncio.sleep
    for _ in range(n):
        await sleep(0)


async def _pingpong_future(n: int) -> None:
    loop = asyncio.get_running_loop()
    box = {"ping": loop.create_future(), "pong": loop.create_future()}

    async def ponger() -> None:
        for _ in range(n):
            await box["ping"]
            box["ping"] = loop.create_future()
            box["pong"].set_result(None)

    t = loop.create_task(ponger())
    for _ in range(n):
        box["ping"].set_result(None)
        await box["pong"]
        box["pong"] = loop.create_future()
    await t


async def _pingpong_event(n: int) -> None:
    ping, pong = asyncio.Event(), asyncio.Event()

    async def ponger() -> None:
        for _ in range(n):
            await ping.wait()
            ping.clear()
            pong.set()

    t = asyncio.get_running_loop().create_task(ponger())
    for _ in range(n):
        ping.set()
        await pong.wait()
        pong.clear()
    await t


async def _noop() -> None:
    return None


async def _spawn(n: int) -> None:
    loop = asyncio.get_running_loop()
    tasks = [loop.create_task(_noop()) for _ in range(n)]
    for t in tasks:
        await t


def asyncio_runner(factory: Callable[[int], Any], new_loop: Callable[[], asyncio.AbstractEventLoop]
                   ) -> Callable[[int], float]:
    def run(n: int) -> float:
        loop = new_loop()
        try:
            asyncio.set_event_loop(loop)
            t0 = _clock()
            loop.run_until_complete(factory(n))
            return _clock() - t0
        finally:
            asyncio.set_event_loop(None)
            loop.close()
    return run


# -- driver ------------------------------------------------------------------------------


def best_rates(fns: list[Callable[[int], float]], n: int, repeats: int) -> list[float]:
    """Operations per second of each of ``fns``: the best of ``repeats`` runs of ``fn(n)``.

    One small warm-up run each first; then the functions take turns.
    """
    for fn in fns:
        fn(max(1, n // 20))
    best = [float("inf")] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            gc.collect()
            best[i] = min(best[i], fn(n))
    return [n / b for b in best]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="benchmarks.core", description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=5, help="runs of each program; the best counts (5)")
    p.add_argument("--scale", type=float, default=1.0, help="multiply the iteration counts (1.0)")
    p.add_argument("--cpu", type=int, default=0, help="the CPU to pin to (0)")
    p.add_argument("--reactor", default=None, help="cogen reactor name (the platform's best)")
    p.add_argument("--clock", choices=["cpu", "wall"], default="cpu",
                   help="time with the process's CPU time (default) or wall time")
    args = p.parse_args(argv)
    global _clock
    _clock = time.process_time if args.clock == "cpu" else time.perf_counter

    pinned = "not pinned"
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})
        pinned = f"pinned to CPU {args.cpu}"
    n_sleep, n_pp, n_spawn = (max(1, int(c * args.scale)) for c in (1_000_000, 200_000, 100_000))

    loops: list[tuple[str, Callable[[], asyncio.AbstractEventLoop]]] = [("asyncio", asyncio.new_event_loop)]
    try:
        import uvloop
        loops.append((f"uvloop {uvloop.__version__}", uvloop.new_event_loop))  # type: ignore[attr-defined]
    except ImportError:
        pass

    rows = [
        ("Sleep(0) switches", "switches/s", n_sleep, cogen_sleep0, _sleep0),
        ("ping-pong (Signal vs Future)", "round trips/s", n_pp, cogen_pingpong, _pingpong_future),
        ("ping-pong (Signal vs Event)", "round trips/s", n_pp, cogen_pingpong, _pingpong_event),
        ("ping-pong, ops made once (vs Future)", "round trips/s", n_pp, cogen_pingpong_ops_once,
         _pingpong_future),
        ("spawn+finish (add vs create_task)", "coroutines/s", n_spawn, cogen_spawn, _spawn),
    ]
    sched = Scheduler(reactor=args.reactor)
    reactor_name = sched.reactor.name
    sched.close()
    print(f"Python {sys.version.split()[0]}, {pinned}, {args.clock} time, best of {args.repeats}, "
          f"cogen reactor {reactor_name}; ratio = cogen / the loop on its left")
    header = f"{'benchmark':38s} {'unit':>14s} {'cogen':>11s}"
    for label, _ in loops:
        header += f" {label.split()[0]:>11s} {'ratio':>6s}"
    print(header)
    print("-" * len(header))
    for name, unit, n, cogen_fn, async_fn in rows:
        fns: list[Callable[[int], float]] = [partial(cogen_fn, reactor=args.reactor)]
        fns += [asyncio_runner(async_fn, new_loop) for _label, new_loop in loops]
        mine, *theirs = best_rates(fns, n, args.repeats)
        line = f"{name:38s} {unit:>14s} {mine:11,.0f}"
        for rate in theirs:
            line += f" {rate:11,.0f} {mine / rate:5.2f}x"
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
