"""cogen.core: the coroutine runtime (coroutines, operations, scheduler, reactors)."""
from __future__ import annotations

from cogen.core import coroutines, events, reactors, schedulers, util

__all__ = ["coroutines", "events", "reactors", "schedulers", "util"]
