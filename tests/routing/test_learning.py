"""Learning statistics: in-memory math, feedback lookup, and persistence on SQLite/PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from tiergate.routing.learning import (
    DEFAULT_TASK_CLASS,
    UNKNOWN_CLASS,
    Learner,
    UnknownRequest,
)
from tiergate.store import RequestLogRecord, RequestLogWriter, Store, normalize_url
from tiergate.store.models import deployment_stats, feedback

T0 = 1_700_000_000.0


def clock() -> float:
    return T0


@dataclass(frozen=True)
class Db:
    url: str
    schema: str | None

    async def open(self, *, migrate: bool = True) -> Store:
        return await Store.open(self.url, schema=self.schema, migrate=migrate)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Db]:
    """A fresh database: a SQLite file, or a throwaway schema in TIERGATE_TEST_POSTGRES_URL."""
    if request.param == "sqlite":
        yield Db(f"sqlite:///{tmp_path}/learn.db", None)
        return
    url = request.getfixturevalue("postgres_url")
    schema = f"tg_learn_{uuid.uuid4().hex[:12]}"
    try:
        yield Db(url, schema)
    finally:
        import asyncpg

        dsn = normalize_url(url).replace("postgresql+asyncpg://", "postgresql://", 1)
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()


async def _stats_rows(store: Store) -> dict[tuple[str, str], dict[str, object]]:
    async with store.engine.connect() as conn:
        rows = (await conn.execute(sa.select(deployment_stats))).mappings().all()
    return {(r["deployment"], r["task_class"]): dict(r) for r in rows}


# ----- in memory ---------------------------------------------------------------------------


def test_beta_posterior_math() -> None:
    learner = Learner(None, clock)
    assert learner.beta("a", "code") is None  # no data at all
    for ok in (True, True, True, False):
        learner.record("a", "code", ok, 100.0, 0.001)
    assert learner.beta("a", "code") == (1 + 3, 1 + 1)  # Beta(1, 1) prior
    learner.remember("r1", "a", "code")
    result = asyncio.run(learner.feedback("r1", 0.75))
    assert (result.deployment, result.task_class, result.source) == ("a", "code", "memory")
    alpha, beta = learner.beta("a", "code")  # type: ignore[misc]
    assert alpha == pytest.approx(1 + 3 + 0.75) and beta == pytest.approx(1 + 1 + 0.25)

    # A class without data falls back to the deployment overall (every class summed).
    learner.record("a", "chat", False, 50.0, 0.0)
    assert learner.beta("a", "chat") == (1, 1 + 1)
    assert learner.beta("a", "translation") == pytest.approx((1 + 3 + 0.75, 1 + 2 + 0.25))
    assert learner.beta("b", "code") is None

    custom = Learner(None, clock, prior=(2.0, 5.0))
    custom.record("a", None, True, 1.0, 0.0)
    assert custom.beta("a", None) == (3.0, 5.0)
    assert custom.beta("a", DEFAULT_TASK_CLASS) == (3.0, 5.0)


def test_stats_means() -> None:
    learner = Learner(None, clock)
    learner.record("a", "code", True, 100.0, 0.002)
    learner.record("a", "code", False, 300.0, 0.004)
    stats = learner.stats("a", "code")
    assert stats is not None
    assert stats.mean_latency_ms == pytest.approx(200.0)
    assert stats.mean_cost_usd == pytest.approx(0.003)
    assert stats.feedback_avg is None
    assert learner.snapshot()[("a", "code")]["requests"] == 2


async def test_feedback_validation_duplicates_and_lru() -> None:
    learner = Learner(None, clock, remember_size=2)
    learner.remember("r1", "a", "code")
    learner.remember("r2", "b", "chat")
    with pytest.raises(ValueError):
        await learner.feedback("r1", 1.5)
    first = await learner.feedback("r1", 1.0)
    again = await learner.feedback("r1", 0.0)
    assert not first.duplicate and again.duplicate
    assert learner.stats("a", "code").feedback_count == 1  # type: ignore[union-attr]

    learner.remember("r3", "c", "code")  # evicts r1 (least recently remembered)
    with pytest.raises(UnknownRequest):  # no store to fall back on
        await learner.feedback("r4", 1.0)
    given = await learner.feedback("r5", 0.5, deployment="d", task_class="x")
    assert (given.source, given.deployment, given.task_class) == ("given", "d", "x")
    assert learner.beta("d", "x") == (1.5, 1.5)
    assert await learner.flush() == 0  # store=None: in memory only, nothing to write


# ----- persistence -------------------------------------------------------------------------


async def test_stats_survive_a_restart(db: Db) -> None:
    store = await db.open()
    try:
        learner = Learner(store, clock)
        await learner.load()
        for i in range(10):
            learner.record("local-a", "code", i % 5 != 0, 100.0 + i, 0.0)
        learner.record("cloud-b", "chat", True, 800.0, 0.0125)
        learner.remember("req-1", "cloud-b", "chat")
        await learner.feedback("req-1", 0.25, comment="meh")
        before = learner.snapshot()
        await learner.stop()  # never started: just the final flush
    finally:
        await store.close()

    store = await db.open()
    try:
        restarted = Learner(store, clock)
        await restarted.load()
        assert restarted.snapshot() == before  # doubles round-trip exactly
        assert restarted.beta("local-a", "code") == (1 + 8, 1 + 2)
        assert restarted.beta("cloud-b", "chat") == (1 + 1 + 0.25, 1 + 0.75)
        rows = await _stats_rows(store)
        assert rows[("local-a", "code")]["latency_ms_sum"] == pytest.approx(sum(100.0 + i for i in range(10)))
        assert rows[("cloud-b", "chat")]["updated_at"] == datetime.fromtimestamp(T0, UTC)
        async with store.engine.connect() as conn:
            fb = (await conn.execute(sa.select(feedback))).mappings().one()
        assert (fb["request_id"], fb["score"], fb["comment"], fb["deployment"], fb["task_class"]) == (
            "req-1", 0.25, "meh", "cloud-b", "chat"
        )
        assert fb["created_at"] == datetime.fromtimestamp(T0, UTC)
    finally:
        await store.close()


async def test_upsert_adds_increments_across_flushes_and_workers(db: Db) -> None:
    store = await db.open()
    try:
        one, two = Learner(store, clock), Learner(store, clock)  # two worker processes
        await one.load()
        await two.load()
        expected = {"requests": 0, "successes": 0, "failures": 0, "latency_ms_sum": 0.0}
        for round_ in range(4):
            for learner, n in ((one, 3), (two, 2)):
                for i in range(n):
                    ok = (i + round_) % 3 != 0
                    learner.record("dep", "code", ok, 10.0 * (i + 1), 0.001)
                    expected["requests"] += 1
                    expected["successes" if ok else "failures"] += 1
                    expected["latency_ms_sum"] += 10.0 * (i + 1)
            assert await one.flush() == 1
            assert await two.flush() == 1
            assert await one.flush() == 0  # nothing new: no write
        row = (await _stats_rows(store))[("dep", "code")]
        for name, value in expected.items():
            assert row[name] == pytest.approx(value), name
        assert row["cost_usd_sum"] == pytest.approx(0.001 * expected["requests"])
        # After its flush each worker re-read the table: both see everyone's traffic.
        await one.flush()
        for learner in (one, two):
            stats = learner.stats("dep", "code")
            assert stats is not None and stats.requests == expected["requests"]
        # Unflushed increments survive a reload (memory = database + pending).
        one.record("dep", "code", True, 1.0, 0.0)
        await one.load()
        assert one.stats("dep", "code").requests == expected["requests"] + 1  # type: ignore[union-attr]
    finally:
        await store.close()


async def test_feedback_found_via_request_log(db: Db) -> None:
    store = await db.open()
    try:
        writer = RequestLogWriter(store, flush_interval_ms=10)
        writer.start()
        writer.submit(RequestLogRecord(
            id="old-req", model_group="g", deployment="sov-1", location="sovereign",
            residency="EU", privacy_level="PUBLIC", status_code=200, latency_ms=5.0,
            overhead_ms=1.0, upstream_ms=4.0,
        ))
        writer.submit(RequestLogRecord(
            id="no-deployment", model_group="g", deployment=None, location=None,
            residency=None, privacy_level="PUBLIC", status_code=422, latency_ms=1.0,
            overhead_ms=1.0, upstream_ms=0.0,
        ))
        await writer.close()

        learner = Learner(store, clock, remember_size=1)
        learner.remember("recent", "local-1", "code")
        learner.remember("newest", "local-2", "chat")  # "recent" falls out of the LRU
        result = await learner.feedback("old-req", 1.0)
        assert (result.source, result.deployment, result.task_class) == (
            "request_log", "sov-1", UNKNOWN_CLASS
        )
        memory = await learner.feedback("newest", 0.0)
        assert memory.source == "memory"
        for unknown in ("recent", "no-deployment", "never-seen"):
            with pytest.raises(UnknownRequest):
                await learner.feedback(unknown, 1.0)
        assert await learner.flush() == 2
        rows = await _stats_rows(store)
        assert rows[("sov-1", UNKNOWN_CLASS)]["feedback_count"] == 1
        assert rows[("sov-1", UNKNOWN_CLASS)]["feedback_sum"] == 1.0
        assert rows[("local-2", "chat")]["feedback_sum"] == 0.0
        assert learner.beta("sov-1", "code") == (2.0, 1.0)  # class empty: the overall row

        # A second process does not know req was scored; the feedback table's key stops the
        # double count at flush, and the re-read corrects its memory.
        other = Learner(store, clock)
        again = await other.feedback("old-req", 0.0)
        assert not again.duplicate
        await other.flush()
        assert (await _stats_rows(store))[("sov-1", UNKNOWN_CLASS)]["feedback_count"] == 1
        assert other.stats("sov-1", UNKNOWN_CLASS).feedback_sum == 1.0  # type: ignore[union-attr]
    finally:
        await store.close()


async def test_failed_flush_keeps_increments(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/late.db"
    store = await Store.open(url, migrate=False)  # tables not there yet: writes fail
    try:
        learner = Learner(store, clock)
        learner.record("a", "code", True, 1.0, 0.0)
        learner.remember("r", "a", "code")
        await learner.feedback("r", 1.0)
        with pytest.raises(sa.exc.OperationalError):
            await learner.flush()
        assert learner.flush_failures == 1
        learner.record("a", "code", False, 3.0, 0.0)
        await learner.stop()  # final flush fails too: logged, not raised
        from tiergate.store.migrate import migrate_engine

        await migrate_engine(store.engine)
        assert await learner.flush() == 1
        row = (await _stats_rows(store))[("a", "code")]
        assert (row["requests"], row["successes"], row["failures"], row["feedback_count"]) == (2, 1, 1, 1)
        assert row["latency_ms_sum"] == 4.0
    finally:
        await store.close()


async def test_background_flush(tmp_path: Path) -> None:
    store = await Store.open(f"sqlite:///{tmp_path}/bg.db")
    try:
        learner = Learner(store, clock)
        learner.start(flush_interval_s=0.01)
        learner.record("a", "code", True, 1.0, 0.0)
        for _ in range(200):  # at most ~2 s; usually one interval
            if learner.flushes:
                break
            await asyncio.sleep(0.01)
        assert (await _stats_rows(store))[("a", "code")]["requests"] == 1
        learner.record("a", "code", True, 1.0, 0.0)
        await learner.stop()  # the last increment goes out with the final flush
        assert (await _stats_rows(store))[("a", "code")]["requests"] == 2
    finally:
        await store.close()
