#!/usr/bin/env python3
"""Micro-benchmark of the budget/rate-limit counter backends (one process, sequential calls).

    .venv/bin/python bench/counters_micro.py                                  # memory + sqlite
    .venv/bin/python bench/counters_micro.py --redis-url redis://127.0.0.1:6379/0
    .venv/bin/python bench/counters_micro.py --postgres-url postgresql://postgres@127.0.0.1/test

Times, per backend, a reserve+settle pair over two windows (global + team, as a team key's
request does) and a rate-limit hit over two limits (rpm + tpm), and prints the median and p99 in
microseconds. SQLite uses a throwaway file in a temporary directory; PostgreSQL a throwaway
schema (dropped afterwards); Redis keys under a random prefix (deleted afterwards). The loops
are bounded (`--rounds`, default 2000 for memory, a tenth of that for the stores), so a whole
run takes a few seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from tiergate.budget.counters import Counters, RateLimit, Window  # noqa: E402
from tiergate.budget.memory import MemoryCounters  # noqa: E402
from tiergate.budget.sql import SQLCounters  # noqa: E402


async def timed(fn: Callable[[int], Awaitable[object]], rounds: int, warmup: int) -> list[float]:
    for i in range(warmup):
        await fn(-1 - i)
    out = []
    clock = time.perf_counter_ns
    for i in range(rounds):
        t = clock()
        await fn(i)
        out.append((clock() - t) / 1000)
    return out


def summary(name: str, what: str, samples: list[float]) -> None:
    samples.sort()
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    print(f"{name:<9} {what:<16} median {statistics.median(samples):9.1f} us   p99 {p99:9.1f} us"
          f"   (n={len(samples)})")


async def bench(name: str, counters: Counters, rounds: int, rates: bool) -> None:
    now = time.time()
    windows = [
        Window("global|monthly|bench", 10**15, now + 86400), Window("team:b|daily|bench", 10**15, now + 86400)
    ]
    limits = [RateLimit("key:bench|rpm", 10**9, 1), RateLimit("key:bench|tpm", 10**12, 1500)]

    async def reserve_settle(i: int) -> None:
        rid = f"req-{i}"
        t = now + i * 0.001
        res = await counters.reserve(rid, windows, 250_000, 600.0, t)
        assert res.ok
        await counters.settle(rid, windows, 120_000, t)

    async def hit(i: int) -> None:
        res = await counters.hit(limits, now + i * 0.001)
        assert res.ok

    summary(name, "reserve+settle", await timed(reserve_settle, rounds, max(10, rounds // 10)))
    if rates:
        summary(name, "hit", await timed(hit, rounds, max(10, rounds // 10)))


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=2000, help="timed calls per measurement (memory)")
    ap.add_argument("--store-rounds", type=int, default=0, help="... for SQLite/PostgreSQL/Redis "
                    "(default: rounds / 10)")
    ap.add_argument("--redis-url", help="also benchmark RedisCounters against this server")
    ap.add_argument("--postgres-url", help="also benchmark SQLCounters on PostgreSQL")
    ap.add_argument("--no-sqlite", action="store_true")
    args = ap.parse_args()
    rounds = max(1, min(args.rounds, 200_000))
    store_rounds = max(1, min(args.store_rounds or rounds // 10, 20_000))

    await bench("memory", MemoryCounters(), rounds, rates=True)

    from tiergate.store import Store

    if not args.no_sqlite:
        with tempfile.TemporaryDirectory() as tmp:
            store = await Store.open(f"sqlite:///{tmp}/bench.db")
            try:
                await bench("sqlite", SQLCounters(store.engine), store_rounds, rates=False)
            finally:
                await store.close()

    if args.postgres_url:
        schema = f"tg_bench_{uuid.uuid4().hex[:12]}"
        store = await Store.open(args.postgres_url, schema=schema)
        try:
            await bench("postgres", SQLCounters(store.engine), store_rounds, rates=False)
        finally:
            import sqlalchemy as sa

            async with store.engine.begin() as conn:
                await conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
            await store.close()

    if args.redis_url:
        from redis.asyncio import Redis

        from tiergate.budget.redis import RedisCounters

        prefix = f"tgbench-{uuid.uuid4().hex[:12]}"
        client = Redis.from_url(args.redis_url, socket_timeout=5, socket_connect_timeout=5)
        try:
            await bench("redis", RedisCounters(client, prefix), store_rounds, rates=True)
        finally:
            keys = [k async for k in client.scan_iter(match=f"{prefix}:*", count=1000)]
            if keys:
                await client.delete(*keys)
            await client.aclose()


if __name__ == "__main__":
    asyncio.run(main())
