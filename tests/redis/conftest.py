"""Fixtures of the Redis tests: a real redis-server (see tests/redis/_server.py)."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.redis._server import RedisServer


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server shared by the session's tests (each test uses its own keys or database)."""
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def own_redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server for one test alone (to be stopped, killed or restarted by it)."""
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.kill()
