"""Migrations: idempotent, safe from two processes at once, and in step with models.py."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from tiergate.store import Store, run_migrations
from tiergate.store.migrate import current_revision
from tiergate.store.models import metadata

from .conftest import Target

HEAD = "0003"


def _diff(connection: sa.Connection) -> list[object]:
    ctx = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(ctx, metadata))


def test_run_migrations_twice_is_a_no_op(target: Target) -> None:
    assert current_revision(target.url, schema=target.schema) is None
    run_migrations(target.url, schema=target.schema)
    assert current_revision(target.url, schema=target.schema) == HEAD
    run_migrations(target.url, schema=target.schema)
    assert current_revision(target.url, schema=target.schema) == HEAD


async def test_migrated_schema_matches_models(target: Target) -> None:
    store = await Store.open(target.url, schema=target.schema)
    try:
        async with store.engine.connect() as conn:
            assert await conn.run_sync(_diff) == []
            tables = await conn.run_sync(lambda c: set(sa.inspect(c).get_table_names()))
            indexes = await conn.run_sync(
                lambda c: {ix["name"] for ix in sa.inspect(c).get_indexes("request_log")}
            )
        assert {"alembic_version", "request_log"} <= tables
        assert {"ix_request_log_created_at", "ix_request_log_model_group_created_at"} <= indexes
    finally:
        await store.close()
    # Store.open migrates again: still fine.
    store = await Store.open(target.url, schema=target.schema)
    await store.close()


@pytest.mark.postgres
async def test_postgres_tables_live_in_the_given_schema(pg_target: Target) -> None:
    target = pg_target
    store = await Store.open(target.url, schema=target.schema)
    try:
        async with store.engine.connect() as conn:
            rows = await conn.execute(
                sa.text("SELECT table_name FROM information_schema.tables WHERE table_schema = :s"),
                {"s": target.schema},
            )
            assert {"alembic_version", "request_log"} <= {r[0] for r in rows}
    finally:
        await store.close()


_WORKER = textwrap.dedent(
    """
    import asyncio, sys, time
    from tiergate.store import RequestLogRecord, RequestLogWriter, Store, run_migrations

    url, schema, start_at, name, rows = sys.argv[1], sys.argv[2] or None, float(sys.argv[3]), sys.argv[4], int(sys.argv[5])
    time.sleep(max(0.0, start_at - time.time()))
    run_migrations(url, schema=schema)          # as the parent does before forking workers

    async def main():
        store = await Store.open(url, schema=schema)   # and once more, as a worker may
        writer = RequestLogWriter(store, flush_interval_ms=20, batch_size=50)
        writer.start()
        for i in range(rows):
            writer.submit(RequestLogRecord(
                id=f"{name}-{i}", model_group="g", deployment="d", location="local",
                residency=None, privacy_level="PUBLIC", status_code=200,
                latency_ms=1.0, overhead_ms=0.1, upstream_ms=0.9))
            if i % 50 == 0:
                await asyncio.sleep(0.005)
        await writer.close()
        await store.close()
        assert writer.written == rows and writer.dropped == 0, (writer.written, writer.dropped)

    asyncio.run(main())
    """
)


async def test_two_processes_migrate_and_write_concurrently(target: Target) -> None:
    rows = 300
    start_at = time.time() + 1.5  # both interpreters are up and importing by then
    env = {**os.environ, "PYTHONWARNINGS": "error::RuntimeWarning"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, target.url, target.schema or "", str(start_at),
             f"p{n}", str(rows)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
        )
        for n in range(2)
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err.decode()
    assert current_revision(target.url, schema=target.schema) == HEAD
    store = await Store.open(target.url, schema=target.schema, migrate=False)
    try:
        assert await store.count_requests() == 2 * rows
    finally:
        await store.close()
