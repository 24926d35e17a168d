"""Fixtures for the virtual key tests: a database per backend (SQLite file; PostgreSQL in a
throwaway schema, or a throwaway database for gateway processes) and a migrated `KeyStore`."""

from __future__ import annotations

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
