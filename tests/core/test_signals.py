"""cogen.core.signals: SignalPipe runs handlers as loop code; ParentWatch sees its writer die."""
from __future__ import annotations

import os
import signal
from typing import Any

import pytest

from cogen.core.schedulers import Scheduler
from cogen.core.signals import ParentWatch, SignalPipe


@pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="no SIGUSR1")
def test_signal_pipe_runs_the_handler_from_the_loop_and_close_restores_the_old_one() -> None:
    sched = Scheduler()
    seen: list[int] = []
    before = signal.getsignal(signal.SIGUSR1)

    def on_usr1(signum: int) -> None:
        seen.append(signum)
        pipe.close()  # ends the watcher: the scheduler runs out of work

    pipe = SignalPipe(sched, {signal.SIGUSR1: on_usr1})
    sched.call_later(0, os.kill, os.getpid(), signal.SIGUSR1)
    sched.run()
    assert seen == [signal.SIGUSR1]
    assert signal.getsignal(signal.SIGUSR1) == before


def test_parent_watch_calls_on_exit_once_when_the_write_end_closes() -> None:
    sched = Scheduler()
    r, w = os.pipe()
    exits: list[Any] = []
    watch = ParentWatch(sched, r, lambda: exits.append(True))
    sched.call_later(0, os.close, w)
    sched.run()
    assert exits == [True]
    watch.close()  # idempotent after the exit closed it
    with pytest.raises(OSError):
        os.fstat(r)
