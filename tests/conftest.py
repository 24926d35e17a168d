"""Shared fixtures. Services (PostgreSQL, Redis) come from environment variables set by .ci/run;
tests that need them skip with the reason when they are not set."""

from __future__ import annotations

import os

import pytest


@pytest.fixture
def postgres_url() -> str:
    url = os.environ.get("TIERGATE_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("TIERGATE_TEST_POSTGRES_URL not set: PostgreSQL tests did not run")
    return url


@pytest.fixture
def redis_url() -> str:
    url = os.environ.get("TIERGATE_TEST_REDIS_URL")
    if not url:
        pytest.skip("TIERGATE_TEST_REDIS_URL not set: Redis tests did not run")
    return url


@pytest.fixture
def redis_prefix(redis_url: str):  # type: ignore[no-untyped-def]
    """A key prefix of this test's own (`redis.prefix`); its keys are deleted afterwards (the
    Redis server is shared: tests never flush it)."""
    import uuid

    import redis

    prefix = f"tgtest-{uuid.uuid4().hex[:12]}"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()
