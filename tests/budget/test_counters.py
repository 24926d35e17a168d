"""The counter backends (memory, SQL on SQLite and PostgreSQL, Redis) against the `Counters`
semantics: reserve-then-settle budgets and sliding-window rate limits, with injected time.

Every backend runs against the real store: a SQLite file, a throwaway PostgreSQL schema
(TIERGATE_TEST_POSTGRES_URL), this test's own Redis key prefix (TIERGATE_TEST_REDIS_URL; never
flushed). Cross-process tests start two interpreters that hit the same store at the same moment.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tiergate.budget.counters import Counters, CounterStoreUnavailable, RateLimit, Window, WindowUsage
from tiergate.budget.memory import MemoryCounters
from tiergate.budget.sql import SQLCounters

if TYPE_CHECKING:
    from redis.asyncio import Redis

T0 = 1_700_000_000.25  # an injected "now": a quarter past a whole second
DAY_END = T0 + 86_400.0


def win(id: str = "global|daily|2026-11-23", limit: int = 100, ends_at: float = DAY_END) -> Window:
    return Window(id, limit, ends_at)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def redis_client(url: str) -> Redis:
    """A client whose pool makes callers wait for a free connection (redis-py's default pool
    raises MaxConnectionsError beyond 100 concurrent commands, as 500 concurrent calls need)."""
    from redis.asyncio import BlockingConnectionPool, Redis

    return Redis.from_pool(BlockingConnectionPool.from_url(
        url, max_connections=50, timeout=10, socket_timeout=5, socket_connect_timeout=5
    ))


@dataclass
class Backend:
    kind: str  # memory | sqlite | postgres | redis
    counters: Counters
    url: str = ""
    extra: str = ""  # the PostgreSQL schema or the Redis key prefix

    @property
    def shared(self) -> bool:
        return self.kind != "memory"


async def _drop_schema(url: str, schema: str) -> None:
    import asyncpg

    from tiergate.store import normalize_url

    conn = await asyncpg.connect(normalize_url(url).replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


@asynccontextmanager
async def _open(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    from tiergate.store import Store

    if kind == "memory":
        counters = MemoryCounters()
        try:
            yield Backend("memory", counters)
        finally:
            await counters.close()
    elif kind == "sqlite":
        url = f"sqlite:///{tmp_path}/counters.db"
        store = await Store.open(url)
        try:
            yield Backend("sqlite", SQLCounters(store.engine), url)
        finally:
            await store.close()
    elif kind == "postgres":
        url = request.getfixturevalue("postgres_url")
        schema = f"tg_test_{uuid.uuid4().hex[:16]}"
        try:
            store = await Store.open(url, schema=schema)
            try:
                yield Backend("postgres", SQLCounters(store.engine), url, schema)
            finally:
                await store.close()
        finally:
            await _drop_schema(url, schema)
    else:
        from tiergate.budget.redis import RedisCounters

        url = request.getfixturevalue("redis_url")
        prefix = request.getfixturevalue("redis_prefix")
        client = redis_client(url)
        try:
            yield Backend("redis", RedisCounters(client, prefix), url, prefix)
        finally:
            await client.aclose()


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres), "redis"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """Every budget backend."""
    async with _open(request.param, request, tmp_path) as b:
        yield b


@pytest.fixture(params=["memory", "redis"])
async def rate_backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """The backends that keep rate limits."""
    async with _open(request.param, request, tmp_path) as b:
        yield b


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres), "redis"])
async def shared_backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """The backends several processes can share."""
    async with _open(request.param, request, tmp_path) as b:
        yield b


def usage_pairs(usage: Sequence[WindowUsage]) -> list[tuple[str, int, int]]:
    return [(u.id, u.spent_nano, u.reserved_nano) for u in usage]


# ---------------------------------------------------------------------------------- budgets


async def test_reserve_up_to_the_limit_exactly(backend: Backend) -> None:
    c, w = backend.counters, win(limit=100)
    r1 = await c.reserve("a", [w], 60, 300, T0)
    assert r1.ok and r1.refused_by is None
    assert usage_pairs(r1.usage) == [(w.id, 0, 60)]
    r2 = await c.reserve("b", [w], 40, 300, T0)  # spent + reserved + amount == limit: fits
    assert r2.ok and usage_pairs(r2.usage) == [(w.id, 0, 100)]
    assert r2.usage[0].remaining_nano == 0
    r3 = await c.reserve("c", [w], 1, 300, T0)
    assert not r3.ok and r3.refused_by == w.id
    assert usage_pairs(r3.usage) == [(w.id, 0, 100)]  # what is there now
    assert usage_pairs(await c.usage([w], T0)) == [(w.id, 0, 100)]


async def test_reserve_is_all_or_nothing_and_names_the_first_full_window(backend: Backend) -> None:
    c = backend.counters
    glob, team, key = win("global|daily|d", 1000), win("team:r|daily|d", 50), win("key:k|daily|d", 30)
    ok = await c.reserve("a", [glob, team], 40, 300, T0)
    assert ok.ok and usage_pairs(ok.usage) == [(glob.id, 0, 40), (team.id, 0, 40)]
    refused = await c.reserve("b", [glob, team], 20, 300, T0)  # fits glob, not team
    assert not refused.ok and refused.refused_by == team.id
    assert usage_pairs(refused.usage) == [(glob.id, 0, 40), (team.id, 0, 40)]
    assert usage_pairs(await c.usage([glob, team], T0)) == [(glob.id, 0, 40), (team.id, 0, 40)]
    # Both team and key lack room: the first of them in the order given is named.
    both = await c.reserve("c", [glob, key, team], 35, 300, T0)
    assert not both.ok and both.refused_by == key.id
    both = await c.reserve("c", [team, key, glob], 35, 300, T0)
    assert both.refused_by == team.id
    # Usage comes back in the order given, and nothing was stored for "c" anywhere.
    assert usage_pairs(both.usage) == [(team.id, 0, 40), (key.id, 0, 0), (glob.id, 0, 40)]
    await c.settle("c", [glob, key, team], 0, T0)
    assert usage_pairs(await c.usage([key, glob, team], T0)) == [
        (key.id, 0, 0), (glob.id, 0, 40), (team.id, 0, 40)
    ]


async def test_an_amount_larger_than_a_fresh_limit_is_refused(backend: Backend) -> None:
    c, w = backend.counters, win(limit=10)
    res = await c.reserve("a", [w], 11, 300, T0)
    assert not res.ok and res.refused_by == w.id and usage_pairs(res.usage) == [(w.id, 0, 0)]
    # Refusing stored nothing: the window has no counter yet, so a seed still applies.
    await c.seed({w: 3})
    assert usage_pairs(await c.usage([w], T0)) == [(w.id, 3, 0)]


async def test_amount_zero_always_succeeds_and_stores_nothing(backend: Backend) -> None:
    c, full, fresh = backend.counters, win("full", 10), win("fresh", 10)
    await c.settle("spent", [full], 25, T0)  # over the limit already
    res = await c.reserve("free", [full, fresh], 0, 300, T0)
    assert res.ok and res.refused_by is None
    assert usage_pairs(res.usage) == [("full", 25, 0), ("fresh", 0, 0)]
    await c.seed({fresh: 7, full: 1})  # "fresh" still has no counter; "full" has one
    assert usage_pairs(await c.usage([full, fresh], T0)) == [("full", 25, 0), ("fresh", 7, 0)]


async def test_settle_releases_the_reservation_and_adds_the_actual_cost(backend: Backend) -> None:
    c = backend.counters
    a, b = win("a", 1000), win("b", 1000)
    await c.reserve("r1", [a, b], 100, 300, T0)
    await c.reserve("r2", [a], 50, 300, T0)
    await c.settle("r1", [a, b], 30, T0 + 1)
    assert usage_pairs(await c.usage([a, b], T0 + 1)) == [("a", 30, 50), ("b", 30, 0)]
    # The actual cost counts even when it exceeds the reservation (and the limit).
    await c.settle("r2", [a], 1200, T0 + 2)
    assert usage_pairs(await c.usage([a, b], T0 + 2)) == [("a", 1230, 0), ("b", 30, 0)]
    assert (await c.usage([a], T0 + 2))[0].remaining_nano == 0
    # Settling again: the reservation part is idempotent (nothing left to release).
    await c.settle("r1", [a, b], 0, T0 + 3)
    assert usage_pairs(await c.usage([a, b], T0 + 3)) == [("a", 1230, 0), ("b", 30, 0)]
    # A settle without any reservation (e.g. reserve was skipped) just adds the cost.
    await c.settle("never-reserved", [b], 5, T0 + 4)
    assert usage_pairs(await c.usage([b], T0 + 4)) == [("b", 35, 0)]


async def test_settled_spend_leaves_room_only_for_what_is_left(backend: Backend) -> None:
    c, w = backend.counters, win(limit=100)
    await c.reserve("a", [w], 50, 300, T0)
    await c.settle("a", [w], 70, T0)
    assert not (await c.reserve("b", [w], 31, 300, T0)).ok
    res = await c.reserve("b", [w], 30, 300, T0)
    assert res.ok and usage_pairs(res.usage) == [(w.id, 70, 30)]


async def test_a_repeated_reserve_replaces_the_request_s_reservation(backend: Backend) -> None:
    c, w = backend.counters, win(limit=100)
    await c.reserve("a", [w], 60, 300, T0)
    res = await c.reserve("a", [w], 90, 300, T0)  # 60 is replaced, not added to
    assert res.ok and usage_pairs(res.usage) == [(w.id, 0, 90)]
    assert not (await c.reserve("a", [w], 101, 300, T0)).ok
    assert usage_pairs(await c.usage([w], T0)) == [(w.id, 0, 90)]
    await c.settle("a", [w], 10, T0)
    assert usage_pairs(await c.usage([w], T0)) == [(w.id, 10, 0)]


async def test_a_reservation_stops_counting_at_its_expiry(backend: Backend) -> None:
    c, w = backend.counters, win(limit=100)
    await c.reserve("crashed", [w], 80, 10.0, T0)  # expires at T0 + 10
    assert usage_pairs(await c.usage([w], T0 + 9.99)) == [(w.id, 0, 80)]
    assert not (await c.reserve("b", [w], 30, 10.0, T0 + 9.99)).ok
    assert usage_pairs(await c.usage([w], T0 + 10.0)) == [(w.id, 0, 0)]
    res = await c.reserve("b", [w], 100, 10.0, T0 + 10.0)
    assert res.ok and usage_pairs(res.usage) == [(w.id, 0, 100)]
    # The expired request settles late: its cost counts, the live reservation of "b" stays.
    await c.settle("crashed", [w], 5, T0 + 11)
    assert usage_pairs(await c.usage([w], T0 + 11)) == [(w.id, 5, 100)]


async def test_settle_after_expiry_never_releases_twice(backend: Backend) -> None:
    c, w = backend.counters, win(limit=100)
    await c.reserve("x", [w], 40, 5.0, T0)
    await c.reserve("y", [w], 50, 60.0, T0)
    # No read between expiry and settle: whichever way the backend reaps, "x" is released once.
    await c.settle("x", [w], 10, T0 + 6)
    assert usage_pairs(await c.usage([w], T0 + 6)) == [(w.id, 10, 50)]
    await c.reserve("z", [w], 5, 5.0, T0)
    assert usage_pairs(await c.usage([w], T0 + 6)) == [(w.id, 10, 50)]  # "z" expired already
    await c.settle("z", [w], 1, T0 + 7)
    assert usage_pairs(await c.usage([w], T0 + 7)) == [(w.id, 11, 50)]


async def test_expired_reservations_are_deleted_from_the_store(backend: Backend) -> None:
    c, w = backend.counters, win(limit=100)
    for i in range(5):
        await c.reserve(f"old{i}", [w], 10, 1.0, T0)
    await c.reserve("new", [w], 10, 60.0, T0 + 2)
    assert usage_pairs(await c.usage([w], T0 + 2)) == [(w.id, 0, 10)]
    if backend.kind in ("sqlite", "postgres"):
        import sqlalchemy as sa

        from tiergate.store.models import budget_reservations

        engine = backend.counters._engine  # type: ignore[attr-defined]
        async with engine.connect() as conn:
            left = (await conn.execute(sa.select(budget_reservations.c.request_id))).scalars().all()
        assert left == ["new"]
    elif backend.kind == "redis":
        from redis.asyncio import Redis

        raw = Redis.from_url(backend.url)
        try:
            h = await raw.hgetall(f"{backend.extra}:budget:{w.id}")
            z = await raw.zrange(f"{backend.extra}:budget-exp:{w.id}", 0, -1)
        finally:
            await raw.aclose()
        assert h == {b"reserved": b"10", b"r:new": b"10"} and z == [b"new"]


async def test_seed_sets_only_windows_without_a_counter(backend: Backend) -> None:
    c = backend.counters
    used, reserved_only, new = win("used", 1000), win("reserved", 1000), win("new", 1000)
    await c.settle("r", [used], 40, T0)
    await c.reserve("q", [reserved_only], 10, 300, T0)
    await c.seed({used: 999, reserved_only: 999, new: 123})
    assert usage_pairs(await c.usage([used, reserved_only, new], T0)) == [
        ("used", 40, 0), ("reserved", 0, 10), ("new", 123, 0)
    ]
    await c.seed({new: 5})  # seeded once: left alone
    res = await c.reserve("z", [new], 877, 300, T0)
    assert res.ok and usage_pairs(res.usage) == [("new", 123, 877)]
    assert not (await c.reserve("z2", [new], 1, 300, T0)).ok


async def test_usage_of_unknown_windows_is_zero(backend: Backend) -> None:
    usage = await backend.counters.usage([win("x", 5), win("y", 6)], T0)
    assert usage_pairs(usage) == [("x", 0, 0), ("y", 0, 0)]
    assert await backend.counters.usage([], T0) == ()


async def test_large_amounts_stay_exact(backend: Backend) -> None:
    # ~ 3 million USD in nano-dollars: beyond 32 bits, within Lua's exact 2^53.
    c, w = backend.counters, win(limit=9_000_000_000_000_001)
    big = 3_000_000_000_000_123
    assert (await c.reserve("a", [w], big, 300, T0)).ok
    assert (await c.reserve("b", [w], big, 300, T0)).ok
    res = await c.reserve("c", [w], 9_000_000_000_000_001 - 2 * big, 300, T0)
    assert res.ok and res.usage[0].reserved_nano == 9_000_000_000_000_001
    await c.settle("a", [w], big + 7, T0)
    assert usage_pairs(await c.usage([w], T0)) == [(w.id, big + 7, 9_000_000_000_000_001 - big)]
    await c.settle("b", [w], 0, T0)
    await c.settle("c", [w], 1, T0)
    assert usage_pairs(await c.usage([w], T0 + 1000)) == [(w.id, big + 8, 0)]


async def test_invalid_arguments(backend: Backend) -> None:
    c, w = backend.counters, win()
    with pytest.raises(ValueError, match="duplicate"):
        await c.reserve("a", [w, w], 1, 300, T0)
    with pytest.raises(ValueError):
        await c.reserve("a", [w], -1, 300, T0)
    with pytest.raises(ValueError):
        await c.settle("a", [w], -1, T0)
    with pytest.raises(ValueError, match="duplicate"):
        await c.settle("a", [w, w], 1, T0)
    assert usage_pairs(await c.usage([w], T0)) == [(w.id, 0, 0)]  # nothing was stored


async def test_500_concurrent_reservations_fit_exactly_50(backend: Backend) -> None:
    c = backend.counters
    glob, team = win("global|monthly|m", 50 * 7), win("team:t|monthly|m", 10_000)
    results = await asyncio.gather(*(
        c.reserve(f"r{i}", [glob, team] if i % 2 else [team, glob], 7, 300, T0) for i in range(500)
    ))
    assert sum(r.ok for r in results) == 50
    assert {r.refused_by for r in results if not r.ok} == {glob.id}
    for r in results:  # nobody ever saw more than the limit reserved
        assert all(u.reserved_nano <= u.limit_nano for u in r.usage)
    assert usage_pairs(await c.usage([glob, team], T0)) == [(glob.id, 0, 350), (team.id, 0, 350)]
    # Settling all of them (refused ones included: a no-op for them) brings spent to 50 * 3.
    await asyncio.gather(*(
        c.settle(f"r{i}", [glob, team], 3 if results[i].ok else 0, T0 + 1) for i in range(500)
    ))
    assert usage_pairs(await c.usage([glob, team], T0 + 1)) == [(glob.id, 150, 0), (team.id, 150, 0)]


_WORKER = textwrap.dedent(
    """
    import asyncio, json, sys, time

    from tiergate.budget.counters import RateLimit, Window

    kind, url, extra, mode, name, start_at = sys.argv[1:7]
    n, amount, limit = int(sys.argv[7]), int(sys.argv[8]), int(sys.argv[9])

    async def main():
        if kind == "redis":
            from redis.asyncio import Redis
            from tiergate.budget.redis import RedisCounters
            client = Redis.from_url(url, socket_timeout=10, socket_connect_timeout=10)
            counters, close = RedisCounters(client, extra), client.aclose
        else:
            from tiergate.budget.sql import SQLCounters
            from tiergate.store import Store
            store = await Store.open(url, schema=extra or None, migrate=False)
            counters, close = SQLCounters(store.engine), store.close
        glob = Window("global|daily|x", limit, time.time() + 86400)
        team = Window("team:t|daily|x", 10**12, time.time() + 86400)
        order = [glob, team] if name == "p0" else [team, glob]  # opposite orders: no deadlock
        time.sleep(max(0.0, float(start_at) - time.time()))
        if mode == "reserve":
            calls = [counters.reserve(f"{name}-{i}", order, amount, 600, time.time()) for i in range(n)]
        else:
            lim = [RateLimit("key:k|rpm", limit, amount)]
            calls = [counters.hit(lim, time.time()) for i in range(n)]
        ok = 0
        for i in range(0, n, 20):  # batches of 20 concurrent calls
            ok += sum(r.ok for r in await asyncio.gather(*calls[i:i + 20]))
        await close()
        print(json.dumps({"ok": ok}))

    asyncio.run(main())
    """
)


def run_two_workers(b: Backend, mode: str, n: int, amount: int, limit: int) -> list[int]:
    start_at = time.time() + 2.0  # both interpreters are up and connected by then
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, b.kind, b.url, b.extra, mode, f"p{k}", str(start_at),
             str(n), str(amount), str(limit)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        for k in range(2)
    ]
    oks = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=90)
            assert proc.returncode == 0, err.decode()
            oks.append(int(json.loads(out)["ok"]))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return oks


async def test_two_processes_reserve_exactly_up_to_the_limit(shared_backend: Backend) -> None:
    b = shared_backend
    oks = await asyncio.to_thread(run_two_workers, b, "reserve", 150, 11, 11 * 170)
    assert sum(oks) == 170, oks
    assert all(k > 0 for k in oks), oks  # both processes got some: they really competed
    windows = [win("global|daily|x", 11 * 170), win("team:t|daily|x", 10**12)]
    usage = await b.counters.usage(windows, time.time())
    assert [u.reserved_nano for u in usage] == [11 * 170, 11 * 170]


async def test_two_processes_share_a_redis_rate_limit(redis_url: str, redis_prefix: str) -> None:
    from tiergate.budget.redis import RedisCounters

    client = redis_client(redis_url)
    try:
        b = Backend("redis", RedisCounters(client, redis_prefix), redis_url, redis_prefix)
        oks = await asyncio.to_thread(run_two_workers, b, "rate", 150, 2, 2 * 120)
        assert sum(oks) == 120, oks
        assert all(k > 0 for k in oks), oks
        peek = await b.counters.peek([RateLimit("key:k|rpm", 240, 2)], time.time())
        assert not peek.ok and peek.states[0].remaining == 0
    finally:
        await client.aclose()


# ------------------------------------------------------------------------------ rate limits


async def test_rate_limit_admits_up_to_the_limit_then_slides(rate_backend: Backend) -> None:
    c, rpm = rate_backend.counters, [RateLimit("key:k|rpm", 3, 1)]
    states = []
    for t in (0.25, 10.5, 20.75):
        res = await c.hit(rpm, T0 - 0.25 + t)
        assert res.ok and res.refused_by is None
        states.append(res.states[0])
    assert [s.remaining for s in states] == [2, 1, 0]
    # Reset: until the newest bucket (this second) leaves the window.
    assert [s.reset_s for s in states] == pytest.approx([59.75, 59.5, 59.25])
    assert [s.retry_after_s for s in states] == [0.0, 0.0, 0.0]
    base = T0 - 0.25  # a whole second
    refused = await c.hit(rpm, base + 30.0)
    assert not refused.ok and refused.refused_by == "key:k|rpm"
    s = refused.states[0]
    assert (s.id, s.limit, s.remaining) == ("key:k|rpm", 3, 0)
    assert s.reset_s == pytest.approx(50.0)  # the bucket of second 20 leaves at 80
    assert s.retry_after_s == pytest.approx(30.0)  # the bucket of second 0 leaves at 60
    assert not (await c.hit(rpm, base + 59.99)).ok
    res = await c.hit(rpm, base + 60.0)  # second 0 has left the window (60 - 60, 60]
    assert res.ok and res.states[0].remaining == 0
    assert res.states[0].reset_s == pytest.approx(60.0)
    # Much later everything has left: a fresh window.
    peek = await c.peek(rpm, base + 500.5)
    assert peek.ok and peek.states[0].remaining == 3 and peek.states[0].reset_s == 0.0


async def test_retry_after_waits_for_enough_of_the_oldest_buckets(rate_backend: Backend) -> None:
    c, base = rate_backend.counters, T0 - 0.25
    tpm = lambda cost: [RateLimit("key:k|tpm", 10, cost)]  # noqa: E731
    assert (await c.hit(tpm(4), base + 0.5)).ok
    assert (await c.hit(tpm(4), base + 5.5)).ok  # used 8
    one = (await c.hit(tpm(5), base + 6.5)).states[0]  # needs 3 more: the bucket of second 0
    assert one.remaining == 2 and one.retry_after_s == pytest.approx(60 - 6.5)
    assert one.reset_s == pytest.approx(65 - 6.5)
    two = (await c.hit(tpm(7), base + 6.5)).states[0]  # needs 5: buckets 0 and 5
    assert two.retry_after_s == pytest.approx(65 - 6.5)
    never = (await c.hit(tpm(11), base + 6.5)).states[0]  # more than the limit: a window
    assert never.retry_after_s == 60.0
    assert (await c.peek(tpm(2), base + 6.5)).ok  # nothing refused was counted
    fits = await c.hit(tpm(5), base + 60.0)  # second 0 has left: 4 + 5 <= 10
    assert fits.ok and fits.states[0].remaining == 1 and fits.states[0].retry_after_s == 0.0


async def test_buckets_leave_after_window_s(rate_backend: Backend) -> None:
    c, base = rate_backend.counters, T0 - 0.25
    lim = [RateLimit("dep:d|rps10", 5, 1, window_s=10)]
    for t in range(5):  # one per second at seconds 0..4
        assert (await c.hit(lim, base + t + 0.1)).ok
    assert not (await c.hit(lim, base + 9.9)).ok
    for t in range(5):  # at 10 + t the bucket of second t leaves: one more fits each second
        res = await c.hit(lim, base + 10 + t)
        assert res.ok, t
        assert res.states[0].remaining == 0
        assert not (await c.hit(lim, base + 10 + t + 0.5)).ok
    peek = await c.peek(lim, base + 14.5)
    assert peek.states[0].reset_s == pytest.approx(24 - 14.5)
    assert peek.states[0].retry_after_s == pytest.approx(20 - 14.5)  # the bucket of second 10


async def test_hit_is_all_or_nothing_across_limits(rate_backend: Backend) -> None:
    c = rate_backend.counters
    rpm, tpm = RateLimit("key:k|rpm", 10, 1), RateLimit("key:k|tpm", 100, 60)
    assert (await c.hit([rpm, tpm], T0)).ok
    res = await c.hit([rpm, tpm], T0 + 1)  # tpm: 60 + 60 > 100
    assert not res.ok and res.refused_by == "key:k|tpm"
    # Per limit: rpm had room (retry 0), tpm waits for the bucket of second 0.
    assert [(s.id, s.remaining) for s in res.states] == [("key:k|rpm", 9), ("key:k|tpm", 40)]
    assert res.states[0].retry_after_s == 0.0
    assert res.states[1].retry_after_s == pytest.approx(60 - 1.25)  # T0 is a quarter past
    # The refused hit counted nowhere: rpm still has 9.
    peek = await c.peek([rpm, RateLimit("key:k|tpm", 100, 40)], T0 + 1)
    assert peek.ok and [s.remaining for s in peek.states] == [9, 40]
    ok = await c.hit([RateLimit("key:k|tpm", 100, 40), rpm], T0 + 2)
    assert ok.ok and [s.remaining for s in ok.states] == [0, 8]
    both = await c.hit([rpm, RateLimit("key:k|tpm", 100, 1)], T0 + 3)
    assert both.refused_by == "key:k|tpm"


async def test_peek_counts_nothing(rate_backend: Backend) -> None:
    c, lim = rate_backend.counters, [RateLimit("key:k|rpm", 2, 1)]
    for _ in range(5):
        p = await c.peek(lim, T0)
        assert p.ok and p.states[0].remaining == 2 and p.states[0].reset_s == 0.0
    await c.hit(lim, T0)
    await c.hit(lim, T0)
    p = await c.peek(lim, T0 + 1)
    assert not p.ok and p.refused_by == "key:k|rpm"
    assert p.states[0].remaining == 0 and p.states[0].retry_after_s == pytest.approx(58.75)
    big = await c.peek([RateLimit("key:k|rpm", 2, 3)], T0 + 100)
    assert not big.ok and big.states[0].retry_after_s == 60.0


async def test_500_concurrent_hits_admit_exactly_the_limit(rate_backend: Backend) -> None:
    c, lim = rate_backend.counters, [RateLimit("key:k|rpm", 50, 1), RateLimit("key:k|tpm", 10_000, 7)]
    results = await asyncio.gather(*(c.hit(lim, T0 + i / 1000) for i in range(500)))
    assert sum(r.ok for r in results) == 50
    p = await c.peek(lim, T0 + 1)
    assert [s.remaining for s in p.states] == [0, 10_000 - 350]


async def test_memory_forgets_ended_windows_and_quiet_limits() -> None:
    c = MemoryCounters()
    ended, current = win("old", 100, ends_at=T0 + 10), win("current", 100, ends_at=T0 + 10 * 86400)
    await c.settle("a", [ended, current], 5, T0)
    await c.reserve("b", [ended], 5, 3 * 86400, T0)  # open across the window's end
    await c.hit([RateLimit("key:k|rpm", 5, 1)], T0)
    assert len(c._budgets) == 2 and len(c._rates) == 1
    later = T0 + 2 * 86400 + 11  # past ends_at + 2 days; the reservation is still open
    await c.hit([RateLimit("key:other|rpm", 5, 1)], later)
    assert set(c._budgets) == {"old", "current"} and set(c._rates) == {"key:other|rpm"}
    await c.hit([RateLimit("key:other|rpm", 5, 1)], T0 + 3 * 86400 + 1)  # reservation expired
    assert set(c._budgets) == {"current"}
    assert usage_pairs(await c.usage([current], T0 + 3 * 86400 + 1)) == [("current", 5, 0)]


async def test_redis_keys_are_namespaced_and_expire(redis_url: str, redis_prefix: str) -> None:
    from tiergate.budget.redis import RedisCounters

    client = redis_client(redis_url)
    try:
        c = RedisCounters(client, redis_prefix)
        now = time.time()
        w = Window("team:r|daily|2026-11-23", 100, now + 3600)
        await c.reserve("a", [w], 10, 300, now)
        await c.hit([RateLimit("key:k|rpm", 5, 1, window_s=30)], now)
        keys = sorted([k.decode() async for k in client.scan_iter(match=f"{redis_prefix}:*")])
        assert keys == [f"{redis_prefix}:budget-exp:{w.id}", f"{redis_prefix}:budget:{w.id}",
                        f"{redis_prefix}:rl:key:k|rpm"]
        grace = 2 * 86400 + 3600
        assert grace - 5 <= await client.ttl(f"{redis_prefix}:budget:{w.id}") <= grace
        assert grace - 5 <= await client.ttl(f"{redis_prefix}:budget-exp:{w.id}") <= grace
        assert 25 <= await client.ttl(f"{redis_prefix}:rl:key:k|rpm") <= 30
        # A window long over still keeps its counters a while (a late settle lands somewhere).
        old = Window("team:r|daily|2020-01-01", 100, now - 10 * 86400)
        await c.settle("z", [old], 5, now)
        assert 3500 <= await client.ttl(f"{redis_prefix}:budget:{old.id}") <= 3600
    finally:
        await client.aclose()


# --------------------------------------------------------------------------- store failures


def _redis_calls(c: Counters) -> list[Callable[[], Awaitable[object]]]:
    w, lim = win(), [RateLimit("key:k|rpm", 5, 1)]
    return [
        lambda: c.reserve("a", [w], 1, 300, T0), lambda: c.settle("a", [w], 1, T0),
        lambda: c.usage([w], T0), lambda: c.seed({w: 1}), lambda: c.hit(lim, T0),
        lambda: c.peek(lim, T0),
    ]


async def test_redis_unreachable_is_counter_store_unavailable_quickly() -> None:
    from redis.asyncio import Redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    from tiergate.budget.redis import RedisCounters

    # Nothing listens on the port: connection refused. (redis-py's default Retry backs off for
    # seconds between attempts; a gateway client wants at most a quick retry.)
    client = Redis(host="127.0.0.1", port=free_port(), socket_timeout=0.3, socket_connect_timeout=0.3,
                   retry=Retry(NoBackoff(), 1))
    try:
        for call in _redis_calls(RedisCounters(client, "tg-nowhere")):
            start = time.monotonic()
            with pytest.raises(CounterStoreUnavailable, match="ConnectionError"):
                await call()
            assert time.monotonic() - start < 1.0
    finally:
        await client.aclose()


async def test_redis_that_never_answers_is_counter_store_unavailable_after_the_timeout() -> None:
    from redis.asyncio import Redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    from tiergate.budget.redis import RedisCounters

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:  # accepts, never replies
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        client = Redis(host="127.0.0.1", port=silent.getsockname()[1], socket_timeout=0.2,
                       socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
        try:
            calls = _redis_calls(RedisCounters(client, "tg-silent"))
            for call in (calls[0], calls[4]):
                start = time.monotonic()
                with pytest.raises(CounterStoreUnavailable, match="Timeout"):
                    await call()
                assert time.monotonic() - start < 1.5
        finally:
            await client.aclose()


async def test_postgres_unreachable_is_counter_store_unavailable() -> None:
    from tiergate.store import Store

    store = await Store.open(f"postgresql://postgres@127.0.0.1:{free_port()}/x", migrate=False)
    try:
        c, w = SQLCounters(store.engine), win()
        for call in (lambda: c.reserve("a", [w], 1, 300, T0), lambda: c.settle("a", [w], 1, T0),
                     lambda: c.usage([w], T0), lambda: c.seed({w: 1})):
            start = time.monotonic()
            with pytest.raises(CounterStoreUnavailable):
                await call()
            assert time.monotonic() - start < 5.0
    finally:
        await store.close()


async def test_postgres_that_never_answers_times_out_as_unavailable() -> None:
    from tiergate.store import Store

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:  # accepts, never replies
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        url = f"postgresql://postgres@127.0.0.1:{silent.getsockname()[1]}/x"
        store = await Store.open(url, migrate=False)
        try:
            c, w = SQLCounters(store.engine, timeout_s=0.4), win()
            for call in (lambda: c.reserve("a", [w], 1, 300, T0), lambda: c.usage([w], T0)):
                start = time.monotonic()
                with pytest.raises(CounterStoreUnavailable, match="TimeoutError"):
                    await call()
                assert time.monotonic() - start < 2.0
        finally:
            await store.close()


@pytest.mark.postgres
async def test_postgres_lock_held_by_a_stuck_client_times_out_then_recovers(
    postgres_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    import asyncpg

    from tiergate.store import normalize_url

    async with _open("postgres", request, tmp_path) as b:
        engine = b.counters._engine  # type: ignore[attr-defined]
        c, w = SQLCounters(engine, timeout_s=0.5), win(limit=10)
        assert (await c.reserve("a", [w], 4, 300, T0)).ok
        dsn = normalize_url(postgres_url).replace("postgresql+asyncpg://", "postgresql://", 1)
        stuck = await asyncpg.connect(dsn, server_settings={"search_path": b.extra})
        try:
            tx = stuck.transaction()
            await tx.start()
            await stuck.execute("SELECT 1 FROM budget_usage WHERE \"window\" = $1 FOR UPDATE", w.id)
            for call in (lambda: c.reserve("b", [w], 4, 300, T0), lambda: c.settle("a", [w], 1, T0)):
                start = time.monotonic()
                with pytest.raises(CounterStoreUnavailable, match="TimeoutError"):
                    await call()
                assert time.monotonic() - start < 2.0
            assert usage_pairs(await c.usage([w], T0)) == [(w.id, 0, 4)]  # readers do not wait
            await tx.rollback()
        finally:
            await stuck.close()
        # The abandoned transactions left nothing behind, and the pool still works.
        assert (await c.reserve("b", [w], 6, 300, T0)).ok
        assert not (await c.reserve("c", [w], 1, 300, T0)).ok
        await c.settle("a", [w], 1, T0)
        assert usage_pairs(await c.usage([w], T0)) == [(w.id, 1, 6)]


async def test_sqlite_locked_by_another_writer_is_counter_store_unavailable(tmp_path: Path) -> None:
    from tiergate.store import Store

    path = tmp_path / "locked.db"
    store = await Store.open(f"sqlite:///{path}?timeout=0.3")
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        c, w = SQLCounters(store.engine), win()
        assert (await c.reserve("a", [w], 1, 300, T0)).ok
        holder.execute("BEGIN IMMEDIATE")  # another process's write transaction, stuck
        start = time.monotonic()
        with pytest.raises(CounterStoreUnavailable):
            await c.reserve("b", [w], 1, 300, T0)
        with pytest.raises(CounterStoreUnavailable):
            await c.settle("a", [w], 1, T0)
        assert time.monotonic() - start < 5.0
        assert usage_pairs(await c.usage([w], T0)) == [(w.id, 0, 1)]  # WAL: reads still work
        holder.execute("ROLLBACK")
        assert (await c.reserve("b", [w], 1, 300, T0)).ok  # and writes work again
    finally:
        holder.close()
        await store.close()


async def test_sql_counters_do_not_keep_rate_limits(tmp_path: Path) -> None:
    from tiergate.store import Store

    store = await Store.open(f"sqlite:///{tmp_path}/c.db")
    try:
        c = SQLCounters(store.engine)
        with pytest.raises(NotImplementedError, match="Redis"):
            await c.hit([RateLimit("key:k|rpm", 5, 1)], T0)
        with pytest.raises(NotImplementedError, match="in-process"):
            await c.peek([RateLimit("key:k|rpm", 5, 1)], T0)
    finally:
        await store.close()

