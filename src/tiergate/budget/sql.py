"""Budget counters in the database: several gateway processes share one SQLite file or one
PostgreSQL database, without Redis.

Tables (migration 0003): `budget_usage(window, spent_nano, ends_at)` holds each window's settled
spend; `budget_reservations(window, request_id, amount_nano, expires_at)` the open reservations.
A reservation counts while `expires_at > now`.

Reserve must be atomic across processes:

* PostgreSQL: the window rows are created if missing (INSERT .. ON CONFLICT DO NOTHING) and
  locked (SELECT .. FOR UPDATE), both in ascending window-id order, so two requests over
  overlapping windows always lock in the same order and cannot deadlock. Every statement that
  touches reservation rows (reserve, settle, the sweep) runs while holding the locks of their
  windows, settle included (its upsert of `spent` locks in the same order), so reservation rows
  never add a lock cycle. At READ COMMITTED each later statement sees everything committed by
  the previous lock holder.
* SQLite: the transaction starts with BEGIN IMMEDIATE (`store.db`: `sqlite_begin`), i.e. it
  holds the database's write lock from its first statement; other processes wait for it
  (`busy_timeout`). Within one process the writers queue on an asyncio lock, so they do not
  busy-wait against each other.

Under those locks reserve sums the unexpired reservations, refuses (rolling back: a refusal
stores nothing) unless the amount fits every window, else writes its reservation rows
(replacing the request's own) and deletes the window's expired ones. Settle adds the actual
cost and deletes the request's rows.
A sweep (at most every `sweep_every_s` of `now`) deletes expired rows of windows nobody
reserves in any more.

Rate limits are not kept in the database (one write per request would be too slow): `hit` and
`peek` raise NotImplementedError; they stay in-process or in Redis. Connection errors, SQLite's
busy timeout and (PostgreSQL) an operation slower than `timeout_s` become
`CounterStoreUnavailable`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import NoReturn

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tiergate.store.models import budget_reservations as _res
from tiergate.store.models import budget_usage as _usage

from .counters import (
    CounterStoreUnavailable,
    RateLimit,
    RateResult,
    Reservation,
    Window,
    WindowUsage,
    check_args,
)

log = logging.getLogger("tiergate.budget.sql")

DEFAULT_TIMEOUT_S = 5.0
MAX_WRITERS = 8
SWEEP_EVERY_S = 300.0
SWEEP_BATCH = 200  # windows per sweep

# SQLSTATE classes that mean "the database is not usable right now" rather than a bug:
# 08 connection exception, 40 transaction rollback (deadlock, serialization), 53 insufficient
# resources, 57 operator intervention (shutdown, statement timeout), 58 system error.
_UNAVAILABLE_SQLSTATE = ("08", "40", "53", "57", "58")


def _is_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError,
                        sa_exc.DisconnectionError, OSError, TimeoutError)):
        return True
    if isinstance(exc, sa_exc.DBAPIError):
        if exc.connection_invalidated:
            return True
        orig = exc.orig
        state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
        if state is None and orig is not None:
            state = getattr(orig.__cause__, "sqlstate", None)
        return isinstance(state, str) and state[:2] in _UNAVAILABLE_SQLSTATE
    return False


class SQLCounters:
    """`Counters` (budgets only) in the tables of `tiergate.store`; one per process."""

    def __init__(
        self, engine: AsyncEngine, *, timeout_s: float | None = DEFAULT_TIMEOUT_S,
        max_writers: int = MAX_WRITERS, sweep_every_s: float = SWEEP_EVERY_S,
    ) -> None:
        """`timeout_s` (PostgreSQL; None: none): the longest one write may take, from getting
        a connection to the commit, before it is abandoned as `CounterStoreUnavailable` (a
        hung server, a lock held by a stuck client). On SQLite the engine's `busy_timeout` has
        that role (a statement inside the driver's thread cannot be interrupted).
        `max_writers`: write transactions this process runs at once on PostgreSQL (the rest
        queue in the process, outside `timeout_s`: connections waiting on the same window's
        row lock add nothing); on SQLite one, as there is one write lock."""
        self._engine = engine
        self._pg = engine.dialect.name == "postgresql"
        if not self._pg and engine.dialect.name != "sqlite":
            raise ValueError(f"unsupported database {engine.dialect.name!r}")
        # Executed with a list of rows (executemany, in that order): one cached compilation,
        # where a multi-row VALUES would be compiled anew for every call.
        insert = pg_insert if self._pg else sqlite_insert
        self._ensure_usage = insert(_usage).on_conflict_do_nothing(index_elements=["window"])
        put = insert(_res)
        self._put_reservation = put.on_conflict_do_update(
            index_elements=["window", "request_id"],
            set_={"amount_nano": put.excluded.amount_nano, "expires_at": put.excluded.expires_at},
        )
        add = insert(_usage)
        self._add_spent = add.on_conflict_do_update(
            index_elements=["window"], set_={"spent_nano": _usage.c.spent_nano + add.excluded.spent_nano}
        )
        # SQLite: every write transaction takes the write lock at BEGIN.
        self._write_engine = engine if self._pg else engine.execution_options(sqlite_begin="IMMEDIATE")
        self._gate = asyncio.Semaphore(max_writers if self._pg else 1)
        self._timeout_s = timeout_s if self._pg else None
        self._sweep_every_s = sweep_every_s
        self._next_sweep = float("-inf")

    @asynccontextmanager
    async def _writing(self) -> AsyncIterator[AsyncConnection]:
        """A connection in a new write transaction (committed by the caller; rolled back on
        anything else), with database errors mapped."""
        try:
            async with self._gate:  # queueing here is local load, not the store's slowness
                async with asyncio.timeout(self._timeout_s):
                    async with self._write_engine.connect() as conn:
                        await conn.begin()
                        yield conn
        except Exception as exc:
            _reraise(exc)

    # -- budgets ------------------------------------------------------------------------------

    async def reserve(
        self, request_id: str, windows: Sequence[Window], amount_nano: int, ttl_s: float, now: float
    ) -> Reservation:
        check_args(windows, amount_nano, "amount_nano")
        if amount_nano == 0 or not windows:
            return Reservation(True, await self.usage(windows, now))
        if now >= self._next_sweep:
            await self._sweep(now)
        ordered = sorted(windows, key=lambda w: w.id)
        ids = [w.id for w in ordered]
        async with self._writing() as conn:
            rows = [{"window": w.id, "spent_nano": 0, "ends_at": w.ends_at} for w in ordered]
            if self._pg:
                await conn.execute(self._ensure_usage, rows)
            query = sa.select(_usage.c.window, _usage.c.spent_nano).where(_usage.c.window.in_(ids))
            if self._pg:
                query = query.order_by(_usage.c.window).with_for_update()
            spent: dict[str, int] = {row[0]: int(row[1]) for row in await conn.execute(query)}
            others, own, expired = await self._reserved(conn, ids, request_id, now)
            refused_by = None
            for w in windows:
                if spent.get(w.id, 0) + others.get(w.id, 0) + amount_nano > w.limit_nano:
                    refused_by = w.id
                    break
            if refused_by is not None:
                await conn.rollback()
                return Reservation(False, tuple(
                    WindowUsage(
                        w.id, w.limit_nano, spent.get(w.id, 0), others.get(w.id, 0) + own.get(w.id, 0)
                    )
                    for w in windows
                ), refused_by)
            if not self._pg:
                await conn.execute(self._ensure_usage, rows)
            if expired:
                await conn.execute(
                    sa.delete(_res).where(_res.c.window.in_(expired), _res.c.expires_at <= now)
                )
            await conn.execute(self._put_reservation, [
                {"window": i, "request_id": request_id, "amount_nano": amount_nano, "expires_at": now + ttl_s}
                for i in ids
            ])
            await conn.commit()
        return Reservation(True, tuple(
            WindowUsage(w.id, w.limit_nano, spent.get(w.id, 0), others.get(w.id, 0) + amount_nano)
            for w in windows
        ))

    async def _reserved(
        self, conn: AsyncConnection, ids: list[str], request_id: str, now: float
    ) -> tuple[dict[str, int], dict[str, int], list[str]]:
        """Per window: unexpired reservations of other requests, this request's own, and the
        windows holding expired rows."""
        live = _res.c.expires_at > now
        mine = _res.c.request_id == request_id
        query = (
            sa.select(
                _res.c.window,
                sa.func.sum(sa.case((sa.and_(live, sa.not_(mine)), _res.c.amount_nano), else_=0)),
                sa.func.sum(sa.case((sa.and_(live, mine), _res.c.amount_nano), else_=0)),
                sa.func.sum(sa.case((live, 0), else_=1)),
            )
            .where(_res.c.window.in_(ids))
            .group_by(_res.c.window)
        )
        others: dict[str, int] = {}
        own: dict[str, int] = {}
        expired: list[str] = []
        for window, other_sum, own_sum, n_expired in await conn.execute(query):
            others[window] = int(other_sum or 0)
            own[window] = int(own_sum or 0)
            if n_expired:
                expired.append(window)
        return others, own, expired

    async def settle(self, request_id: str, windows: Sequence[Window], actual_nano: int, now: float) -> None:
        check_args(windows, actual_nano, "actual_nano")
        if not windows:
            return
        ordered = sorted(windows, key=lambda w: w.id)
        ids = [w.id for w in ordered]
        async with self._writing() as conn:
            # Lock the window rows first, in id order (see the module docstring).
            if actual_nano > 0:
                await conn.execute(
                    self._add_spent,
                    [{"window": w.id, "spent_nano": actual_nano, "ends_at": w.ends_at} for w in ordered],
                )
            elif self._pg:
                await conn.execute(
                    sa.select(_usage.c.window).where(_usage.c.window.in_(ids))
                    .order_by(_usage.c.window).with_for_update()
                )
            await conn.execute(
                sa.delete(_res).where(_res.c.window.in_(ids), _res.c.request_id == request_id)
            )
            await conn.commit()

    async def usage(self, windows: Sequence[Window], now: float) -> tuple[WindowUsage, ...]:
        if not windows:
            return ()
        ids = [w.id for w in windows]
        # One statement, so one snapshot of both tables.
        query = (
            sa.select(_usage.c.window, _usage.c.spent_nano, sa.func.sum(_res.c.amount_nano))
            .select_from(
                _usage.outerjoin(_res, sa.and_(_res.c.window == _usage.c.window, _res.c.expires_at > now))
            )
            .where(_usage.c.window.in_(ids))
            .group_by(_usage.c.window, _usage.c.spent_nano)
        )
        try:
            async with asyncio.timeout(self._timeout_s):
                async with self._engine.connect() as conn:
                    rows = (await conn.execute(query)).all()
        except Exception as exc:
            _reraise(exc)
        found = {row[0]: (int(row[1]), int(row[2] or 0)) for row in rows}
        return tuple(WindowUsage(w.id, w.limit_nano, *found.get(w.id, (0, 0))) for w in windows)

    async def seed(self, spent: Mapping[Window, int]) -> None:
        if not spent:
            return
        values = sorted(
            ({"window": w.id, "spent_nano": int(nano), "ends_at": w.ends_at} for w, nano in spent.items()),
            key=lambda v: v["window"],
        )
        async with self._writing() as conn:
            await conn.execute(self._ensure_usage, values)
            await conn.commit()

    async def _sweep(self, now: float) -> None:
        """Delete expired reservation rows of windows no reserve has cleaned up (a crashed
        process's, in windows nobody reserves in any more). Best effort: failures are logged."""
        self._next_sweep = now + self._sweep_every_s
        try:
            async with self._writing() as conn:
                ids = list((await conn.execute(
                    sa.select(_res.c.window).where(_res.c.expires_at <= now).distinct()
                    .order_by(_res.c.window).limit(SWEEP_BATCH)
                )).scalars())
                if ids:
                    if self._pg:
                        await conn.execute(
                            sa.select(_usage.c.window).where(_usage.c.window.in_(ids))
                            .order_by(_usage.c.window).with_for_update()
                        )
                    await conn.execute(
                        sa.delete(_res).where(_res.c.window.in_(ids), _res.c.expires_at <= now)
                    )
                await conn.commit()
        except CounterStoreUnavailable as exc:
            log.warning("budget counters: sweeping expired reservations failed: %s", exc)

    # -- rate limits ---------------------------------------------------------------------------

    async def hit(self, limits: Sequence[RateLimit], now: float) -> RateResult:
        raise NotImplementedError(
            "SQLCounters keeps budgets only: rate limits are counted in-process (MemoryCounters) "
            "or in Redis (RedisCounters)"
        )

    async def peek(self, limits: Sequence[RateLimit], now: float) -> RateResult:
        raise NotImplementedError(
            "SQLCounters keeps budgets only: rate limits are counted in-process (MemoryCounters) "
            "or in Redis (RedisCounters)"
        )

    async def close(self) -> None:
        """Nothing to release: the engine belongs to the caller (`Store`)."""


def _reraise(exc: Exception) -> NoReturn:
    if _is_unavailable(exc):
        raise CounterStoreUnavailable(f"database: {type(exc).__name__}: {exc}") from exc
    raise exc

