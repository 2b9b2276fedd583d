"""Tests of cogen.core.proactors: the reactors under the original cogen's later (0.2.x) names."""
from __future__ import annotations

import select
from typing import Any

import pytest

from cogen.core import events, proactors, reactors
from cogen.core.coroutines import coroutine
from cogen.core.schedulers import Scheduler

pytestmark = pytest.mark.timeout(60)

PROBES = {
    "select": (proactors.has_select, hasattr(select, "select")),
    "poll": (proactors.has_poll, hasattr(select, "poll")),
    "epoll": (proactors.has_stdlib_epoll, hasattr(select, "epoll")),
    "kqueue": (proactors.has_stdlib_kqueue, hasattr(select, "kqueue")),
}


@pytest.mark.parametrize("name", list(PROBES))
def test_has_functions_return_a_proactor_class_or_none(name: str) -> None:
    probe, exists = PROBES[name]
    cls = probe()
    if exists:
        assert isinstance(cls, type) and issubclass(cls, proactors.ProactorBase)
        assert cls.name == name
    else:
        assert cls is None


def test_has_any_and_default_proactor_are_the_best_backend() -> None:
    assert proactors.has_any() is proactors.DefaultProactor
    assert proactors.DefaultProactor is reactors.DefaultReactor
    assert proactors.DefaultProactor in reactors.available().values()


def test_the_proactor_class_aliases_name_the_reactors() -> None:
    assert proactors.SelectProactor is reactors.SelectReactor
    assert proactors.PollProactor is reactors.PollReactor
    assert proactors.StdlibEpollProactor is proactors.EpollProactor is reactors.EpollReactor
    assert proactors.StdlibKQueueProactor is proactors.KQueueProactor is reactors.KQueueReactor
    assert proactors.ProactorBase is reactors.Reactor


@pytest.mark.parametrize("name", [n for n, (probe, exists) in PROBES.items() if exists])
def test_a_scheduler_runs_on_each_proactor_given_by_class_or_name(name: str) -> None:
    cls = PROBES[name][0]()
    for spec in (cls, name):
        sched = Scheduler(proactor=spec, proactor_resolution=0.01, proactor_multiplex_first=True)
        try:
            assert type(sched.proactor) is cls
            assert sched.proactor.resolution == 0.01

            @coroutine
            def worker() -> Any:
                yield events.Sleep(0.001)
                return "ran"

            instance = sched.add(worker)
            sched.run()
            assert instance.result == "ran"
        finally:
            sched.close()


def test_a_scheduler_without_a_proactor_uses_the_default() -> None:
    sched = Scheduler()
    try:
        assert type(sched.proactor) is proactors.DefaultProactor
        assert len(sched.proactor) == 0
    finally:
        sched.close()


def test_an_unknown_proactor_name_is_a_value_error_naming_the_available_ones() -> None:
    with pytest.raises(ValueError) as info:
        Scheduler(proactor="IOCPProactor")
    for name in reactors.available():
        assert name in str(info.value)
