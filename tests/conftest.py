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


@pytest.fixture
def own_redis(tmp_path):  # type: ignore[no-untyped-def]
    """A Redis server of this test's own, empty (no scripts loaded, nothing stored), that the test
    may stop (the machine's Redis is shared: tests never stop or flush it). `proc.args` is its
    URL."""
    import shutil
    import subprocess
    import time

    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed: this test needs a Redis server of its own")
    from tests.support import free_port

    port = free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        import redis

        deadline = time.monotonic() + 10
        while True:
            try:
                client = redis.Redis(port=port, socket_timeout=0.5)
                client.ping()
                client.close()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        proc.args = f"redis://127.0.0.1:{port}/0"  # type: ignore[misc] # the URL, for the test
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(10)


@pytest.fixture
def pg_database(postgres_url: str):  # type: ignore[no-untyped-def]
    """A database of this test's own on the PostgreSQL server (dropped afterwards), for gateway
    processes: their store URL has no schema option, and their request log and counters must
    start empty."""
    import asyncio
    import uuid

    import asyncpg

    name = f"tgtest_{uuid.uuid4().hex[:10]}"
    admin = postgres_url.replace("postgresql+asyncpg://", "postgresql://")

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    base, _, _db = admin.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
