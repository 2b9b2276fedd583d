"""Tests for cogen.core.coroutines.local: coroutine-local storage."""
from __future__ import annotations

import gc
import weakref
from typing import Any

import pytest

from cogen.core import events
from cogen.core.coroutines import coroutine, local
from cogen.core.schedulers import Scheduler

pytestmark = pytest.mark.timeout(60)


class Value:
    """A weak-referenceable payload, to see when the storage lets go of it."""

    def __init__(self, name: str) -> None:
        self.name = name


def run(*coros: Any) -> list[Any]:
    sched = Scheduler()
    added = [sched.add(c) for c in coros]
    sched.run()
    sched.close()
    for c in added:
        if c.exception is not None:
            raise c.exception
        assert not c.running
    return [c.result for c in added]


def test_values_set_in_one_coroutine_are_invisible_in_another() -> None:
    data = local()
    seen: dict[str, Any] = {}

    @coroutine
    def first() -> Any:
        data.name = "first"
        yield events.Signal("set", recipients=1)
        yield events.WaitForSignal("checked")
        seen["first"] = data.name

    @coroutine
    def second() -> Any:
        yield events.WaitForSignal("set")
        seen["second before"] = getattr(data, "name", None)
        data.name = "second"
        yield events.Sleep(0)
        seen["second"] = data.name
        yield events.Signal("checked", recipients=1)

    run(first(), second())
    assert seen == {"first": "first", "second before": None, "second": "second"}


def test_interleaved_coroutines_keep_their_own_values() -> None:
    data = local()

    @coroutine
    def worker(n: int) -> Any:
        total = 0
        for _ in range(20):
            data.counter = getattr(data, "counter", 0) + n
            yield events.Sleep(0)
            total = data.counter
        return total

    assert run(*[worker(n) for n in range(1, 11)]) == [20 * n for n in range(1, 11)]


def test_called_sub_coroutine_shares_its_callers_values() -> None:
    data = local()

    @coroutine
    def inner() -> Any:
        seen = data.who
        data.who = "changed by inner"
        yield events.Sleep(0)
        return seen

    @coroutine
    def middle() -> Any:
        return (yield inner())

    @coroutine
    def outer() -> Any:
        data.who = "outer"
        seen_by_inner = yield middle()
        return seen_by_inner, data.who

    assert run(outer()) == [("outer", "changed by inner")]


def test_added_coroutine_does_not_inherit_values() -> None:
    data = local()

    @coroutine
    def child() -> Any:
        yield events.Sleep(0)
        return hasattr(data, "who")

    @coroutine
    def parent() -> Any:
        data.who = "parent"
        c = yield events.AddCoro(child)
        return (yield events.Join(c))

    assert run(parent()) == [False]


def test_values_are_gone_after_the_coroutine_ends() -> None:
    data = local()
    refs: list[weakref.ref[Value]] = []

    @coroutine
    def owner() -> Any:
        value = Value("payload")
        refs.append(weakref.ref(value))
        data.value = value
        yield events.Sleep(0)

    @coroutine
    def later() -> Any:
        yield events.Sleep(0)
        return hasattr(data, "value")

    sched = Scheduler()
    sched.add(owner)
    sched.run()
    gc.collect()
    assert refs[0]() is None
    reader = sched.add(later)
    sched.run()
    sched.close()
    assert reader.result is False


def test_new_coroutine_never_sees_a_finished_ones_values() -> None:
    data = local()

    @coroutine
    def setter() -> Any:
        data.secret = "s3cret"
        yield events.Sleep(0)

    @coroutine
    def reader() -> Any:
        yield events.Sleep(0)
        return getattr(data, "secret", None)

    results = run(setter(), reader())
    assert results == [None, None]
    assert run(reader()) == [None]


def test_each_local_object_has_its_own_namespace() -> None:
    a, b = local(), local()

    @coroutine
    def body() -> Any:
        a.x = 1
        b.x = 2
        yield events.Sleep(0)
        return a.x, b.x

    assert run(body()) == [(1, 2)]


def test_a_new_local_at_a_reused_address_starts_empty() -> None:
    @coroutine
    def body() -> Any:
        old = local()
        old.secret = "old"
        old_id = id(old)
        del old
        gc.collect()
        for _ in range(2000):
            new = local()
            if id(new) == old_id:
                return getattr(new, "secret", "empty")
            del new
        return "empty"
        yield

    assert run(body()) == ["empty"]


def test_missing_attribute_and_delete() -> None:
    data = local()

    @coroutine
    def body() -> Any:
        with pytest.raises(AttributeError):
            data.missing  # noqa: B018
        data.x = 1
        del data.x
        with pytest.raises(AttributeError):
            data.x  # noqa: B018
        with pytest.raises(AttributeError):
            del data.x
        yield events.Sleep(0)
        return "ok"

    assert run(body()) == ["ok"]


def test_use_outside_a_coroutine_raises_runtime_error() -> None:
    data = local()
    with pytest.raises(RuntimeError):
        data.x = 1
    with pytest.raises(RuntimeError):
        data.x  # noqa: B018


def test_async_def_coroutines_have_their_own_values() -> None:
    data = local()

    async def body(n: int) -> Any:
        data.n = n
        await events.Sleep(0)
        return data.n

    assert run(coroutine(body)(1), coroutine(body)(2)) == [1, 2]


def test_subclass_with_class_defaults() -> None:
    class Settings(local):
        colour = "blue"

    settings = Settings()

    @coroutine
    def body(colour: str | None) -> Any:
        if colour:
            settings.colour = colour
        yield events.Sleep(0)
        return settings.colour

    assert run(body("red"), body(None)) == ["red", "blue"]
