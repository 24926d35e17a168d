"""Alembic environment for tiergate's store (async, SQLite and PostgreSQL).

Normally run by `tiergate.store.migrate`, which hands over an open connection in
`config.attributes["connection"]` (and the PostgreSQL schema in `config.attributes["schema"]`).
Run from the `alembic` command line instead (with `-c` pointing at an ini whose
script_location is this directory), the URL comes from `-x url=...`, the ini's sqlalchemy.url
or $TIERGATE_DATABASE_URL, and the schema from `-x schema=...`; an async engine is built and
the migrations run through `connection.run_sync`. `--sql` (offline) mode prints the SQL.

Either way the upgrade is a single transaction that begins by taking the migration lock
(`migrate.lock_for_migrations`), so concurrent start-ups serialise instead of colliding.
"""

from __future__ import annotations

import asyncio
import os

import sqlalchemy as sa
from alembic import context
from sqlalchemy.pool import NullPool

from tiergate.store.db import make_engine, normalize_url
from tiergate.store.migrate import lock_for_migrations
from tiergate.store.models import metadata

config = context.config


def _schema() -> str | None:
    schema = config.attributes.get("schema")
    return schema or context.get_x_argument(as_dictionary=True).get("schema") or None


def _url() -> str:
    url = (
        context.get_x_argument(as_dictionary=True).get("url")
        or config.get_main_option("sqlalchemy.url")
        or os.environ.get("TIERGATE_DATABASE_URL")
    )
    if not url:
        raise RuntimeError("no database URL: pass -x url=... or set TIERGATE_DATABASE_URL")
    return url


def do_run_migrations(connection: sa.Connection) -> None:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        # Take SQLite's write lock when the migration transaction begins (db._on_begin).
        connection.execution_options(sqlite_begin="IMMEDIATE")
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # One transaction for the whole upgrade, SQLite included (db.py makes its DDL
        # transactional), so the lock is held until the schema is at head.
        transactional_ddl=True,
        transaction_per_migration=False,
        render_as_batch=sqlite,
    )
    with context.begin_transaction():
        lock_for_migrations(connection, _schema())
        context.run_migrations()


async def run_async_migrations() -> None:
    engine = make_engine(_url(), schema=_schema(), poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(do_run_migrations)
    finally:
        await engine.dispose()


def run_migrations_offline() -> None:
    context.configure(
        url=normalize_url(_url()),
        target_metadata=metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
elif (conn := config.attributes.get("connection")) is not None:
    do_run_migrations(conn)
else:
    asyncio.run(run_async_migrations())
