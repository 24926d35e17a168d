"""Running the Alembic migrations programmatically, safely from several processes at once.

The migration scripts live inside the package (`tiergate/store/migrations`), so this works from
an installed wheel; there is no alembic.ini. `run_migrations(url)` is synchronous and meant for
start-up, before the event loop serves (the gateway's parent process calls it once before
forking workers); `Store.open(migrate=True)` runs the same upgrade on its own engine.

Concurrency: the whole upgrade is one transaction that first takes a database-level lock, so
two processes (or two coroutines) starting at once queue up and the second finds the schema
already at head:
    PostgreSQL  `pg_advisory_xact_lock(MIGRATION_LOCK_KEY)`, released at commit/rollback;
    SQLite      `BEGIN IMMEDIATE` (the write lock), waited for through `busy_timeout`.
The lock is taken in `migrations/env.py` (`lock_for_migrations`), so the `alembic` command
line gets it too.

Adding a table later: write `migrations/versions/000N_name.py` with `revision = "000N"` and
`down_revision` set to the previous number, and add the same table to `models.py`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import NullPool

from tiergate.store.db import check_schema, make_engine, sqlite_file

T = TypeVar("T")

SCRIPT_LOCATION = Path(__file__).resolve().parent / "migrations"
HEAD = "head"
# "tiergate" as a big-endian int64: the advisory lock every tiergate process migrates under.
MIGRATION_LOCK_KEY = int.from_bytes(b"tiergate", "big")


def alembic_config(
    connection: sa.Connection | None = None, *, schema: str | None = None
) -> Config:
    """An Alembic Config pointing at the packaged scripts; `connection` is used by env.py."""
    cfg = Config()
    cfg.set_main_option("script_location", str(SCRIPT_LOCATION).replace("%", "%%"))
    cfg.set_main_option("path_separator", "os")
    if connection is not None:
        cfg.attributes["connection"] = connection
    cfg.attributes["schema"] = schema
    return cfg


def lock_for_migrations(connection: sa.Connection, schema: str | None) -> None:
    """Called by env.py first thing inside the migration transaction (see module docstring)."""
    if connection.dialect.name == "postgresql":
        connection.execute(
            sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
        )
        if schema is not None:
            exists = connection.scalar(
                sa.text("SELECT 1 FROM pg_namespace WHERE nspname = :schema"), {"schema": schema}
            )
            if not exists:  # checked first: an existing schema needs no CREATE privilege
                connection.exec_driver_sql(f'CREATE SCHEMA "{check_schema(schema)}"')
    # SQLite: env.py begins the transaction with BEGIN IMMEDIATE, which is the lock.


def _upgrade(connection: sa.Connection, schema: str | None, revision: str) -> None:
    command.upgrade(alembic_config(connection, schema=schema), revision)


async def migrate_engine(
    engine: AsyncEngine, *, schema: str | None = None, revision: str = HEAD
) -> None:
    """Upgrade the database behind `engine` to `revision` (idempotent)."""
    path = sqlite_file(engine.url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    async with engine.connect() as connection:
        await connection.run_sync(_upgrade, schema, revision)


def run_migrations(url: str, *, schema: str | None = None, revision: str = HEAD) -> None:
    """Synchronously upgrade the database at `url` to `revision` (default: newest).

    Creates the parent directory of a SQLite file. Safe to run concurrently from several
    processes and to run again (a no-op at head). If called from inside a running event loop
    it runs on a helper thread and blocks the caller until done.
    """

    async def go() -> None:
        engine = make_engine(url, schema=schema, poolclass=NullPool)
        try:
            await migrate_engine(engine, schema=schema, revision=revision)
        finally:
            await engine.dispose()

    _run_blocking(go)


def current_revision(url: str, *, schema: str | None = None) -> str | None:
    """The revision the database at `url` is at (None before the first migration).

    A SQLite file that does not exist is reported as None (and not created).
    """
    from alembic.runtime.migration import MigrationContext

    path = sqlite_file(url)
    if path is not None and not path.exists():
        return None

    async def go() -> str | None:
        engine = make_engine(url, schema=schema, poolclass=NullPool)
        try:
            async with engine.connect() as connection:
                return await connection.run_sync(
                    lambda c: MigrationContext.configure(c).get_current_revision()
                )
        finally:
            await engine.dispose()

    return _run_blocking(go)


def _run_blocking(fn: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """asyncio.run(fn()), on a helper thread if this thread already runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(fn())
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="tiergate-migrate") as ex:
        return ex.submit(lambda: asyncio.run(fn())).result()
