"""Plain database URLs map to the async drivers; SQLite engines get WAL + busy_timeout."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from tiergate.store import Store, make_engine, normalize_url


@pytest.mark.parametrize(
    ("plain", "expected"),
    [
        ("sqlite:///data/tiergate.db", "sqlite+aiosqlite:///data/tiergate.db"),
        ("sqlite:////var/lib/tg.db", "sqlite+aiosqlite:////var/lib/tg.db"),
        ("sqlite://", "sqlite+aiosqlite://"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite:///x.db"),
        ("postgresql://u:p@127.0.0.1:5432/db", "postgresql+asyncpg://u:p@127.0.0.1:5432/db"),
        ("postgres://u@127.0.0.1/db", "postgresql+asyncpg://u@127.0.0.1/db"),
        ("postgresql+psycopg2://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgresql://u:p%40ss@h/db", "postgresql+asyncpg://u:p%40ss@h/db"),
        ("postgresql://u@h/db?sslmode=require", "postgresql+asyncpg://u@h/db?ssl=require"),
    ],
)
def test_normalize_url(plain: str, expected: str) -> None:
    assert normalize_url(plain) == expected


def test_unsupported_backend_is_rejected() -> None:
    with pytest.raises(ValueError, match="unsupported database URL"):
        normalize_url("mysql://u@h/db")


def test_schema_is_postgres_only_and_validated() -> None:
    with pytest.raises(ValueError, match="only supported for PostgreSQL"):
        make_engine("sqlite:///x.db", schema="s")
    with pytest.raises(ValueError, match="invalid schema"):
        make_engine("postgresql://u@h/db", schema='x"; drop')


async def test_sqlite_creates_directory_and_uses_wal(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "tg.db"
    store = await Store.open(f"sqlite:///{path}")
    try:
        assert path.exists()
        async with store.engine.connect() as conn:
            assert (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar() == "wal"
            assert (await conn.exec_driver_sql("PRAGMA busy_timeout")).scalar() == 10_000
    finally:
        await store.close()


async def test_sqlite_busy_timeout_from_url(tmp_path: Path) -> None:
    store = await Store.open(f"sqlite:///{tmp_path}/tg.db?timeout=2.5")
    try:
        async with store.engine.connect() as conn:
            assert (await conn.exec_driver_sql("PRAGMA busy_timeout")).scalar() == 2_500
    finally:
        await store.close()


async def test_in_memory_sqlite_store_works() -> None:
    store = await Store.open("sqlite://")
    try:
        assert await store.count_requests() == 0
        async with store.engine.connect() as conn:
            assert (await conn.scalar(sa.text("SELECT 1"))) == 1
    finally:
        await store.close()
