"""Fixtures of the scale-out tests: a real redis-server per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from scaleout_helpers import RedisProcess


@pytest.fixture
def redis_server() -> Iterator[RedisProcess]:
    process = RedisProcess()
    process.start()
    yield process
    process.stop()
