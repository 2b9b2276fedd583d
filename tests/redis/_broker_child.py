"""A child process for the broker tests: wait for one signal through the broker, print its value.

Usage: python -m tests.redis._broker_child REDIS_URL SIGNAL_NAME TIMEOUT
Prints ``ready`` once its broker is subscribed and its waiter parked, then
the JSON of what the waiter got (or ``timeout``), and exits.
"""
from __future__ import annotations

import json
import sys
from collections.abc import Generator
from typing import Any

from cogen.core.events import AddCoro, OperationTimeout, Sleep, WaitForSignal
from cogen.core.schedulers import Scheduler


def main() -> None:
    url, name, timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
    sched = Scheduler(broker=url)
    done = []

    def waiter() -> Generator[Any, Any, None]:
        try:
            value = yield WaitForSignal(name, timeout=timeout)
        except OperationTimeout:
            value = "timeout"
        if isinstance(value, bytes):
            value = {"bytes": value.decode("latin-1")}
        print(json.dumps(value), flush=True)
        done.append(True)

    def announce() -> Generator[Any, Any, None]:
        yield AddCoro(waiter)
        while sched.broker.is_up is not True:  # the listener subscribes when the loop runs
            yield Sleep(0.01)
        print("ready", flush=True)

    sched.add(announce)
    while not done:
        sched.run_once(0.5)
    sched.close()


if __name__ == "__main__":
    main()
