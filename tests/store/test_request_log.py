"""The batched request log: round trip, batching, shutdown flush, outages, bad rows."""

from __future__ import annotations

import asyncio
import inspect
import shutil
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import event
from sqlalchemy.engine import make_url

from tiergate.store import RequestLogRecord, RequestLogWriter, Store, run_migrations
from tiergate.store.sqlite_sink import SQLiteSink, chunks

from .conftest import Target, TcpProxy, free_port


def make_record(i: int = 0, **overrides: object) -> RequestLogRecord:
    values: dict[str, object] = dict(
        id=f"req-{i:06d}", model_group="chat", deployment="local-llama", location="local",
        residency="DE", privacy_level="PRIVATE", status_code=200,
        latency_ms=12.5, overhead_ms=0.75, upstream_ms=11.75,
    )
    values.update(overrides)
    return RequestLogRecord(**values)  # type: ignore[arg-type]


@pytest.fixture
async def store(target: Target) -> AsyncIterator[Store]:
    store = await Store.open(target.url, schema=target.schema)
    yield store
    await store.close()


def count_commits(store: Store) -> Callable[[], int]:
    """Transactions committed on the database: engine commits, plus (SQLite files) COMMITs the
    request log's own sqlite3 connection runs, seen through its statement trace."""
    commits = 0

    def on_commit(_conn: object) -> None:
        nonlocal commits
        commits += 1

    def on_statement(sql: str) -> None:
        nonlocal commits
        if sql.strip().upper() == "COMMIT":
            commits += 1

    event.listen(store.engine.sync_engine, "commit", on_commit)
    original = SQLiteSink._connect

    def traced(self: SQLiteSink) -> sqlite3.Connection:
        conn = original(self)
        conn.set_trace_callback(on_statement)
        return conn

    SQLiteSink._connect = traced  # type: ignore[method-assign]
    _restore.append(lambda: setattr(SQLiteSink, "_connect", original))
    return lambda: commits


_restore: list[Callable[[], None]] = []


@pytest.fixture(autouse=True)
def _undo_tracing() -> Iterator[None]:
    yield
    while _restore:
        _restore.pop()()


async def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


async def test_round_trip_all_fields(store: Store) -> None:
    full = make_record(
        1,
        key_id="k_3f9a2c",
        prompt_tokens=1234,
        completion_tokens=567,
        total_tokens=1801,
        tokens_estimated=True,
        cost_usd=Decimal("0.0012345678"),
        ttft_ms=85.25,
        error_code=None,
        stream=True,
        fallbacks=2,
        attempts=[
            {"deployment": "cloud-a", "error_code": "upstream_timeout", "status": 504},
            {"deployment": "sovereign-b", "error_code": "rate_limited", "status": 429},
        ],
        request_body='{"messages":[{"role":"user","content":"héllo ✓"}]}',
        response_body='{"choices":[]}',
        created_at=datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
    )
    failed = make_record(
        2,
        deployment=None, location=None, residency=None, status_code=503,
        error_code="no_eligible_deployment", privacy_level="SENSITIVE",
        created_at=datetime(2025, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2))),
    )
    writer = RequestLogWriter(store)
    writer.submit(full)
    writer.submit(failed)
    await writer.flush()
    got = await store.recent_requests()
    assert [r.id for r in got] == ["req-000001", "req-000002"]  # newest first
    assert got[0] == full
    assert got[1] == failed
    assert got[1].created_at.tzinfo is not None
    assert got[1].created_at.utcoffset() == timedelta(0)  # stored and returned as UTC
    assert got[1].cost_usd is None and got[1].attempts == [] and got[1].ttft_ms is None
    assert isinstance(got[0].cost_usd, Decimal) and isinstance(got[0].stream, bool)
    assert await store.count_requests() == 2
    await writer.close()


async def test_batching_uses_few_transactions(store: Store) -> None:
    commits = count_commits(store)
    writer = RequestLogWriter(store, flush_interval_ms=60_000, batch_size=250)
    writer.start()
    assert not inspect.iscoroutinefunction(writer.submit)
    t0 = time.perf_counter()
    for i in range(1000):
        writer.submit(make_record(i))
    submit_s = time.perf_counter() - t0
    assert submit_s < 0.5  # O(1) appends, nothing awaited
    # No flush() here: a full batch wakes the background task long before the 60 s interval.
    await wait_for(lambda: writer.written == 1000)
    assert writer.flushes == 4
    assert commits() == 4
    assert await store.count_requests() == 1000
    await writer.close()
    assert writer.dropped == 0


async def test_interval_flush_without_a_full_batch(store: Store) -> None:
    writer = RequestLogWriter(store, flush_interval_ms=30, batch_size=500)
    writer.start()
    for i in range(3):
        writer.submit(make_record(i))
    await wait_for(lambda: writer.written == 3, timeout=3.0)
    assert writer.flushes == 1
    await writer.close()


async def test_close_flushes_pending_rows(store: Store) -> None:
    writer = RequestLogWriter(store, flush_interval_ms=60_000, batch_size=10_000)
    writer.start()
    for i in range(123):
        writer.submit(make_record(i))
    await asyncio.sleep(0.05)
    assert writer.written == 0  # neither interval nor batch size reached
    await writer.close()
    assert writer.written == 123
    assert await store.count_requests() == 123
    writer.submit(make_record(999))  # after close: counted, never raised
    assert writer.dropped == 1


async def test_bounded_queue_counts_drops(store: Store) -> None:
    writer = RequestLogWriter(store, max_queue=5)  # not started: nothing drains the queue
    for i in range(8):
        writer.submit(make_record(i))
    assert writer.queued == 5 and writer.dropped == 3
    await writer.close()
    assert sorted(r.id for r in await store.recent_requests()) == [f"req-{i:06d}" for i in range(5)]


async def test_bad_rows_are_discarded_alone_and_duplicates_ignored(
    store: Store, target: Target
) -> None:
    writer = RequestLogWriter(store)
    writer.start()
    writer.submit(make_record(1))
    writer.submit(make_record(2, model_group=None))  # NOT NULL violation
    writer.submit(make_record(3))
    writer.submit(make_record(1, model_group="other"))  # same request id again: ignored
    writer.submit(make_record(4, created_at="yesterday"))  # cannot be bound
    writer.submit(object())  # type: ignore[arg-type]  # not even a record
    writer.submit(make_record(5, prompt_tokens=2**40))  # > INTEGER on PostgreSQL only
    writer.submit(make_record(6))
    await writer.flush()
    pg = target.backend == "postgres"
    assert writer.rejected == (4 if pg else 3) and writer.queued == 0
    got = {r.id: r for r in await store.recent_requests()}
    assert set(got) == {"req-000001", "req-000003", "req-000006"} | (set() if pg else {"req-000005"})
    assert got["req-000001"].model_group == "chat"  # first write wins
    # the log keeps working afterwards
    before = writer.written
    writer.submit(make_record(7))
    await wait_for(lambda: writer.written == before + 1)
    await writer.close()
    assert writer.failures == 0 and await store.count_requests() == len(got) + 1


async def test_writer_survives_sqlite_directory_appearing_later(tmp_path: Path) -> None:
    staging = tmp_path / "staging"
    live = tmp_path / "live"
    run_migrations(f"sqlite:///{staging}/tg.db")  # a ready database, not yet where we look
    store = await Store.open(f"sqlite:///{live}/tg.db", migrate=False)
    writer = RequestLogWriter(store, flush_interval_ms=20, max_backoff_ms=200)
    writer.start()
    try:
        for i in range(10):
            writer.submit(make_record(i))
        await wait_for(lambda: writer.failures >= 2)  # "unable to open database file", retried
        assert writer.written == 0 and writer.queued == 10
        assert not await store.ping()
        shutil.move(staging, live)  # the volume shows up
        for i in range(10, 15):
            writer.submit(make_record(i))
        await wait_for(lambda: writer.written == 15)
        assert writer.dropped == 0 and await store.count_requests() == 15
        assert await store.ping()
    finally:
        await writer.close()
        await store.close()


@pytest.mark.postgres
async def test_writer_survives_postgres_unreachable_at_first(pg_target: Target) -> None:
    target = pg_target
    run_migrations(target.url, schema=target.schema)
    real = make_url(target.url)
    port = free_port()  # nothing listens here yet: connection refused
    proxied = real.set(host="127.0.0.1", port=port).render_as_string(hide_password=False)
    proxy = TcpProxy(real.host or "127.0.0.1", real.port or 5432, port)
    store = await Store.open(proxied, schema=target.schema, migrate=False)
    writer = RequestLogWriter(store, flush_interval_ms=20, max_backoff_ms=200)
    writer.start()
    try:
        for i in range(10):
            writer.submit(make_record(i))
        await wait_for(lambda: writer.failures >= 2)
        assert writer.written == 0 and writer.queued == 10
        assert not await store.ping()
        await proxy.start()  # the database comes up on that port
        await wait_for(lambda: writer.written == 10)
        assert await store.ping()
        assert await store.count_requests() == 10
    finally:
        await writer.close()
        await store.close()
        await proxy.stop()


async def test_close_gives_up_after_timeout_when_database_is_gone(tmp_path: Path) -> None:
    store = await Store.open(f"sqlite:///{tmp_path}/missing/tg.db", migrate=False)
    writer = RequestLogWriter(store, flush_interval_ms=20)
    writer.start()
    writer.submit(make_record(1))
    t0 = time.monotonic()
    await writer.close(timeout=0.3)  # never raises
    assert time.monotonic() - t0 < 2.0
    assert writer.dropped == 1 and writer.written == 0 and writer.failures >= 1
    await store.close()


def test_sqlite_statements_come_in_few_sizes() -> None:
    """Any batch length maps onto the fixed statement sizes (bounded prepared-statement cache)."""
    for n in (1, 5, 255, 256, 499, 500, 1000, 1777):
        parts = chunks(n)
        assert sum(size for _, size in parts) == n
        assert [start for start, _ in parts] == sorted(start for start, _ in parts)
    assert len({size for n in range(1, 3000) for _, size in chunks(n)}) <= 6
