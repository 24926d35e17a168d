"""Store: readiness ping and the read helpers."""

from __future__ import annotations

from pathlib import Path

from tiergate.store import RequestLogWriter, Store

from .conftest import Target, free_port
from .test_request_log import make_record


async def test_ping_true_on_a_live_database(target: Target) -> None:
    store = await Store.open(target.url, schema=target.schema)
    try:
        assert await store.ping() is True
    finally:
        await store.close()


async def test_ping_false_when_sqlite_file_cannot_be_opened(tmp_path: Path) -> None:
    store = await Store.open(f"sqlite:///{tmp_path}/no/such/dir/tg.db", migrate=False)
    try:
        assert await store.ping(timeout=1.0) is False
    finally:
        await store.close()
    assert not (tmp_path / "no").exists()  # migrate=False creates nothing


async def test_ping_false_when_postgres_port_is_closed() -> None:
    store = await Store.open(f"postgresql://postgres@127.0.0.1:{free_port()}/x", migrate=False)
    try:
        assert await store.ping(timeout=1.0) is False
    finally:
        await store.close()


async def test_recent_requests_limit_and_order(target: Target) -> None:
    from datetime import UTC, datetime, timedelta

    store = await Store.open(target.url, schema=target.schema)
    writer = RequestLogWriter(store)
    base = datetime(2025, 6, 1, tzinfo=UTC)
    try:
        for i in range(20):
            writer.submit(make_record(i, created_at=base + timedelta(seconds=i)))
        await writer.close()
        recent = await store.recent_requests(limit=5)
        assert [r.id for r in recent] == [f"req-{i:06d}" for i in range(19, 14, -1)]
        assert await store.count_requests() == 20
    finally:
        await store.close()
