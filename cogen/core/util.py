"""Small shared pieces of the runtime: priorities and sentinels."""
from __future__ import annotations

__all__ = ["PENDING", "USE_DEFAULT", "priority"]


class priority:
    """Who runs first when an operation completes at once.

    The values are bit flags, as in the original cogen:

    - ``CORO`` (1): favour the coroutine that yielded the operation: it is
      resumed at once, before anything else runs.
    - ``OP`` (2): favour the other party of the operation (the coroutines a
      ``Signal`` wakes, the coroutine ``AddCoro`` adds, ...): it is put at the
      front of the run queue instead of the back.
    - ``FIRST`` (``PRIO``, 3): both of the above.
    - ``LAST`` (``NOPRIO``, 0): neither; everybody goes to the back of the
      run queue. The scheduler's default.
    - ``DEFAULT`` (-1): use the scheduler's ``default_priority``.
    """

    DEFAULT = -1
    LAST = NOPRIO = 0
    CORO = 1
    OP = 2
    FIRST = PRIO = 3


class _Sentinel:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name

    def __reduce__(self) -> str:
        return self.name


#: Returned by ``Operation.process`` when the operation parked the coroutine
#: and arranged a later wake-up.
PENDING = _Sentinel("PENDING")

#: The default ``timeout=`` of timed operations: use the scheduler's
#: ``default_timeout``.
USE_DEFAULT = _Sentinel("USE_DEFAULT")
