"""Budget periods on calendar boundaries in the configured time zone.

A budget *window* is one budget's current period: the daily budget resets at local midnight, the
monthly one at local midnight on the 1st (`budgets.timezone`, default UTC; daylight-saving days
are 23 or 25 hours long, as the calendar says). The window id names the scope, the period and the
local date, e.g. `global|monthly|2026-11` or `key:key_ab12|daily|2026-11-23`: a new period is a
new id, so nothing has to be reset, and old counters simply expire.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo

from .counters import Window, to_nano

Period = Literal["daily", "monthly"]
PERIODS: tuple[Period, ...] = ("daily", "monthly")


@lru_cache(maxsize=16)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def period_bounds(period: Period, now: float, tz: ZoneInfo) -> tuple[str, datetime, datetime]:
    """(label, start, end) of the period containing `now` (epoch seconds), as aware datetimes."""
    local = datetime.fromtimestamp(now, tz)
    if period == "daily":
        start = local.replace(hour=0, minute=0, second=0, microsecond=0)
        nxt = start.date() + timedelta(days=1)
        label = start.strftime("%Y-%m-%d")
    else:
        start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        year, month = (start.year + 1, 1) if start.month == 12 else (start.year, start.month + 1)
        nxt = start.date().replace(year=year, month=month)
        label = start.strftime("%Y-%m")
    end = datetime(nxt.year, nxt.month, nxt.day, tzinfo=tz)
    return label, start, end


class WindowClock:
    """Window ids and resets for `now`, cached per (scope, period) until the period ends: on the
    hot path a window is a dict lookup, not a calendar computation."""

    def __init__(self, timezone: str) -> None:
        self.tz = zone(timezone)
        self._cache: dict[tuple[str, Period, Decimal], tuple[float, float, Window]] = {}

    def window(self, scope: str, period: Period, limit_usd: Decimal, now: float) -> Window:
        key = (scope, period, limit_usd)
        hit = self._cache.get(key)
        if hit is not None and hit[0] <= now < hit[1]:
            return hit[2]
        label, start, end = period_bounds(period, now, self.tz)
        w = Window(f"{scope}|{period}|{label}", to_nano(limit_usd), end.timestamp())
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key] = (start.timestamp(), end.timestamp(), w)
        return w

    def start_of(self, w: Window) -> datetime:
        """The start of window `w` (for summing the request log since then)."""
        _scope, period, label = w.id.rsplit("|", 2)
        if period == "daily":
            y, m, d = (int(x) for x in label.split("-"))
            return datetime(y, m, d, tzinfo=self.tz)
        y, m = (int(x) for x in label.split("-"))
        return datetime(y, m, 1, tzinfo=self.tz)


def scope_of(w: Window) -> str:
    return w.id.rsplit("|", 2)[0]


def period_of(w: Window) -> str:
    return w.id.rsplit("|", 2)[1]
