"""Building the budget manager for a gateway: which counter backend, and where spend restarts.

* Redis configured (`redis.url`): `RedisCounters`, shared by every replica.
* Otherwise, several processes on one database (PostgreSQL, or `server.workers` > 1): budgets in
  that database (`SQLCounters`); rate limits stay in each process, which admits its share of each
  limit (limit // workers, at least 1), so together they never exceed it (one worker may refuse
  while another still has room: set `redis.url` for one exact window).
* Otherwise (one process): `MemoryCounters`.

In-memory and Redis counters start each budget window from the request log's spend since the
window began (Redis on this machine keeps nothing on disk; a restarted Redis loses its counters).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from ..config.models import Settings
from ..store.models import request_log
from .counters import Counters, RateLimit, RateResult, Reservation, Window, WindowUsage, to_nano
from .manager import BudgetManager
from .policies import Policies
from .windows import scope_of

log = logging.getLogger("tiergate.budget")


class SplitCounters:
    """Budgets in the shared database, rate limits in this process at its share of each limit."""

    def __init__(self, budgets: Counters, rates: Counters, processes: int) -> None:
        self._budgets, self._rates, self._n = budgets, rates, max(1, processes)

    def _share(self, limits: Sequence[RateLimit]) -> list[RateLimit]:
        return [replace(lim, limit=max(1, lim.limit // self._n)) for lim in limits]

    async def reserve(self, request_id: str, windows: Sequence[Window], amount_nano: int, ttl_s: float,
                      now: float) -> Reservation:
        return await self._budgets.reserve(request_id, windows, amount_nano, ttl_s, now)

    async def settle(self, request_id: str, windows: Sequence[Window], actual_nano: int, now: float) -> None:
        await self._budgets.settle(request_id, windows, actual_nano, now)

    async def usage(self, windows: Sequence[Window], now: float) -> tuple[WindowUsage, ...]:
        return await self._budgets.usage(windows, now)

    async def seed(self, spent: Mapping[Window, int]) -> None:
        await self._budgets.seed(spent)

    async def hit(self, limits: Sequence[RateLimit], now: float) -> RateResult:
        return await self._rates.hit(self._share(limits), now)

    async def peek(self, limits: Sequence[RateLimit], now: float) -> RateResult:
        return await self._rates.peek(self._share(limits), now)

    async def close(self) -> None:
        await self._rates.close()
        await self._budgets.close()


def choose_counters(settings: Settings, engine: Any, redis: Any) -> tuple[Counters, str]:
    from .memory import MemoryCounters

    if redis is not None:
        from .redis import RedisCounters

        return RedisCounters(redis, settings.redis.prefix), "redis"
    if engine is not None and (engine.dialect.name != "sqlite" or settings.server.workers > 1):
        from .sql import SQLCounters

        return SplitCounters(SQLCounters(engine), MemoryCounters(), settings.server.workers), "database"
    return MemoryCounters(), "memory"


def log_seeder(engine: Any) -> Any:
    """(window, start) -> nano-dollars the request log holds for the window's scope since start."""

    async def seed(w: Window, start: datetime) -> int:
        scope = scope_of(w)
        query = sa.select(sa.func.coalesce(sa.func.sum(request_log.c.cost_usd), 0)).where(
            request_log.c.created_at >= start
        )
        if scope.startswith("team:"):
            query = query.where(request_log.c.team == scope[5:])
        elif scope.startswith("key:"):
            query = query.where(request_log.c.key_id == scope[4:])
        async with engine.connect() as conn:
            total = await conn.scalar(query)
        return to_nano(Decimal(str(total or 0)))

    return seed


def build_budget_manager(settings: Settings, engine: Any = None, redis: Any = None, **kwargs: Any) -> BudgetManager:
    counters, backend = choose_counters(settings, engine, redis)
    if backend == "database" and (settings.budgets.daily_usd is not None or settings.budgets.monthly_usd is not None
                                  or any(t.daily_usd is not None or t.monthly_usd is not None
                                         for t in settings.teams.values())):
        log.warning(
            "budgets are counted in the database shared by %d worker(s) (no redis.url): every paid request "
            "takes a few milliseconds of database transactions (measured ~5 ms on SQLite); set redis.url "
            "for several processes", settings.server.workers,
        )
    seed = log_seeder(engine) if engine is not None and backend in ("memory", "redis") else None
    return BudgetManager(
        settings, counters, policies=Policies(settings, engine), redis=redis, backend=backend, seed=seed, **kwargs
    )
