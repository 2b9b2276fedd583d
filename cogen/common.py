"""Everything a cogen program usually needs, for ``from cogen.common import *``.

Gives ``coroutine`` (``coro``), ``Scheduler``, ``priority``, ``local`` and the
modules ``events``, ``sockets``, ``queue``, ``pubsub``, ``threads``,
``reactors`` and ``proactors``, as the original cogen did.
"""
from __future__ import annotations

from cogen.core import events, proactors, reactors
from cogen.core.coroutines import Coroutine, coro, coroutine, local
from cogen.core.events import OperationTimeout
from cogen.core.schedulers import Scheduler
from cogen.core.util import priority

__all__ = [
    "Coroutine",
    "OperationTimeout",
    "Scheduler",
    "coro",
    "coroutine",
    "events",
    "local",
    "priority",
    "proactors",
    "reactors",
]

try:  # the layers built on the core, as they become available
    from cogen.core import sockets  # noqa: F401
    __all__.append("sockets")
except ImportError:  # pragma: no cover
    pass
for _name in ("queue", "pubsub", "threads"):
    try:
        globals()[_name] = __import__(f"cogen.core.{_name}", fromlist=[_name])
        __all__.append(_name)
    except ImportError:  # pragma: no cover
        pass
del _name
