"""The gateway's own Redis client (`redisconn.connect`) against an empty Redis server: the budget
scripts are loaded on first use (SCRIPT LOAD, a two-word command the hiredis packer must split),
and concurrent calls are pipelined without mixing up their answers."""

from __future__ import annotations

import asyncio
import subprocess
import time

from tiergate.budget.counters import RateLimit, Window
from tiergate.budget.redis import RedisCounters
from tiergate.config.models import RedisConfig
from tiergate.redisconn import connect


async def test_budget_scripts_on_an_empty_redis(own_redis: subprocess.Popen[bytes]) -> None:
    client = connect(RedisConfig(url=str(own_redis.args), prefix="fresh"))
    assert client is not None
    try:
        counters = RedisCounters(client, "fresh")
        now = time.time()
        w = Window("global|monthly|2026-11", 1000, now + 3600)
        results = await asyncio.gather(*(counters.reserve(f"r{i}", [w], 30, 60, now) for i in range(100)))
        assert sum(r.ok for r in results) == 33  # 33 * 30 <= 1000 < 34 * 30
        hits = await asyncio.gather(*(counters.hit([RateLimit("key:k|rpm", 10, 1)], now) for _ in range(25)))
        assert sum(h.ok for h in hits) == 10
        await asyncio.gather(*(counters.settle(f"r{i}", [w], 10, now) for i in range(100)))
        (usage,) = await counters.usage([w], now)
        assert usage.reserved_nano == 0 and usage.spent_nano == 1000
        assert await client.script_exists(counters._reserve.sha) == [True]
    finally:
        await client.aclose()
