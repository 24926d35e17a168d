"""Global and team limits: the config, overridden per scope by the admin API.

`budgets.daily_usd/monthly_usd/rpm/tpm` are the `global` scope, `teams.<name>` the `team:<name>`
scopes. `PUT /admin/budgets/{scope}` stores a row in the `budgets` table that replaces the config's
entry for that scope (a field left out means no limit); `DELETE` returns the scope to the config.
Rows are read at start and every `refresh_s` seconds (and at once after a change made through this
process), so a change made through another replica applies there within that time. Lookups on
the request path are dict reads.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from ..config.models import Limits, Settings
from ..store.models import budgets as budgets_table

log = logging.getLogger("tiergate.budget")

REFRESH_S = 5.0


def config_scopes(settings: Settings) -> dict[str, Limits]:
    b = settings.budgets
    out: dict[str, Limits] = {}
    if any(v is not None for v in (b.daily_usd, b.monthly_usd, b.rpm, b.tpm)):
        out["global"] = Limits(daily_usd=b.daily_usd, monthly_usd=b.monthly_usd, rpm=b.rpm, tpm=b.tpm)
    for name, limits in settings.teams.items():
        out[f"team:{name}"] = limits
    return out


def check_scope(scope: str) -> str:
    if scope == "global" or (scope.startswith("team:") and len(scope) > 5):
        return scope
    raise ValueError("scope must be 'global' or 'team:<name>' (key budgets are set on the key)")


class Policies:
    def __init__(self, settings: Settings, engine: Any = None, *, refresh_s: float = REFRESH_S) -> None:
        self._config = config_scopes(settings)
        self._engine = engine
        self._refresh_s = refresh_s
        self._db: dict[str, Limits] = {}
        self._merged: dict[str, Limits] = dict(self._config)
        self._task: asyncio.Task[None] | None = None

    def get(self, scope: str) -> Limits | None:
        return self._merged.get(scope)

    def all(self) -> dict[str, Limits]:
        return dict(self._merged)

    def source(self, scope: str) -> str:
        return "admin" if scope in self._db else "config" if scope in self._config else "none"

    @property
    def configured(self) -> bool:
        return bool(self._merged)

    async def start(self) -> None:
        if self._engine is None:
            return
        await self.refresh()
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_s)
            try:
                await self.refresh()
            except Exception as exc:  # keep the last known limits
                log.warning("could not refresh budgets from the database: %s", type(exc).__name__)

    async def refresh(self) -> None:
        async with self._engine.connect() as conn:
            rows = (await conn.execute(sa.select(budgets_table))).mappings().all()
        db = {
            r["scope"]: Limits(
                daily_usd=_dec(r["daily_usd"]), monthly_usd=_dec(r["monthly_usd"]),
                rpm=r["rpm"], tpm=r["tpm"], on_store_unavailable=r["on_store_unavailable"],
            )
            for r in rows
        }
        self._db = db
        self._merged = {**self._config, **db}

    async def put(self, scope: str, limits: Limits) -> None:
        check_scope(scope)
        values = {
            "daily_usd": limits.daily_usd, "monthly_usd": limits.monthly_usd, "rpm": limits.rpm,
            "tpm": limits.tpm, "on_store_unavailable": limits.on_store_unavailable,
            "updated_at": datetime.now(UTC),
        }
        async with self._engine.begin() as conn:
            updated = await conn.execute(
                sa.update(budgets_table).where(budgets_table.c.scope == scope).values(**values)
            )
            if updated.rowcount == 0:
                await conn.execute(sa.insert(budgets_table).values(scope=scope, **values))
        await self.refresh()

    async def delete(self, scope: str) -> bool:
        check_scope(scope)
        async with self._engine.begin() as conn:
            res = await conn.execute(sa.delete(budgets_table).where(budgets_table.c.scope == scope))
        await self.refresh()
        return bool(res.rowcount)


def _dec(value: Any) -> Decimal | None:
    if value is None:
        return None
    return value if isinstance(value, Decimal) else Decimal(str(value))
