"""Fixtures for the virtual key tests: a database per backend (SQLite file; PostgreSQL in a
throwaway schema, or a throwaway database for gateway processes) and a migrated `KeyStore`."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.store.conftest import Target, _postgres_target
from tiergate.keys import KeyStore
from tiergate.store import Store

SECRET = "test-hmac-secret-0123456789"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    """Each test runs on SQLite and (if configured) on PostgreSQL in a throwaway schema."""
    if request.param == "sqlite":
        yield Target("sqlite", f"sqlite:///{tmp_path}/data/tiergate.db", None, tmp_path)
    else:
        yield from _postgres_target(tmp_path)


@pytest.fixture
async def store(target: Target) -> AsyncIterator[Store]:
    s = await Store.open(target.url, schema=target.schema)
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
def keystore(store: Store) -> KeyStore:
    return KeyStore(store.engine, SECRET)


@pytest.fixture
def sqlite_store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/data/tiergate.db"


@pytest.fixture
def pg_database(postgres_url: str) -> Iterator[str]:
    """A database of this test's own on the PostgreSQL server (dropped afterwards), for gateway
    processes (whose store URL has no schema option)."""
    import asyncpg

    name = f"tgkeys_{uuid.uuid4().hex[:10]}"
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
