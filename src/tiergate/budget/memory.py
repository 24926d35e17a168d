"""In-process counters: one gateway process, all state in dicts (the default without Redis).

Every operation runs to completion without awaiting, so under asyncio each one is atomic: no
locks are needed. This is on every request's hot path, so it stays allocation-light:

* a budget window is a `_Budget` (settled `spent`, running `reserved` total, and the open
  reservations by request id with their expiry). Expired reservations are reaped lazily: a
  window remembers the earliest expiry it may hold and scans only once `now` passes it.
* a rate limit is a `_Buckets`: a deque of `[second, count]` pairs (oldest first) and their
  total, pruned from the left as the window slides.

Windows long past their `ends_at`, and rate limits with nothing left in their window, are
dropped by a sweep that runs at most once a minute (of the injected `now`).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence

from .counters import RateLimit, RateResult, RateState, Reservation, Window, WindowUsage, check_args

_INF = math.inf
SWEEP_EVERY_S = 60.0
WINDOW_GRACE_S = 2 * 86400.0  # a window's counters are kept this long after its ends_at


class _Budget:
    __slots__ = ("spent", "reserved", "open", "next_expiry", "ends_at")

    def __init__(self, ends_at: float, spent: int = 0) -> None:
        self.spent = spent
        self.reserved = 0  # sum of the amounts in `open`
        self.open: dict[str, tuple[int, float]] = {}  # request id -> (amount, expires_at)
        self.next_expiry = _INF  # no reservation in `open` expires before this
        self.ends_at = ends_at

    def reap(self, now: float) -> None:
        """Drop reservations with expires_at <= now (only scans once one may have expired)."""
        if now < self.next_expiry:
            return
        earliest = _INF
        gone: list[str] = []
        for request_id, (amount, expires_at) in self.open.items():
            if expires_at <= now:
                gone.append(request_id)
                self.reserved -= amount
            elif expires_at < earliest:
                earliest = expires_at
        for request_id in gone:
            del self.open[request_id]
        self.next_expiry = earliest


class _Buckets:
    __slots__ = ("buckets", "total", "window_s")

    def __init__(self, window_s: int) -> None:
        self.buckets: deque[list[int]] = deque()  # [second, count], ascending seconds
        self.total = 0
        self.window_s = window_s  # as last used (for the sweep)

    def prune(self, oldest_kept: int) -> None:
        buckets = self.buckets
        while buckets and buckets[0][0] < oldest_kept:
            self.total -= buckets.popleft()[1]

    def add(self, second: int, cost: int) -> None:
        buckets = self.buckets
        if buckets and buckets[-1][0] >= second:
            # This second's bucket, or (a caller's `now` slightly behind another's) the newest:
            # counting a unit a moment later only keeps it in the window a little longer.
            buckets[-1][1] += cost
        else:
            buckets.append([second, cost])
        self.total += cost


def rate_state(
    limit: RateLimit, used: int, fits: bool, buckets: Sequence[Sequence[int]], newest: int | None,
    now: float,
) -> RateState:
    """The `RateState` of one limit: `used` is what its window holds (the request's cost
    included when it was counted), `buckets` its `(second, count)` pairs oldest first (only
    looked at when `cost` does not fit), `newest` the newest bucket's second (None: empty)."""
    window_s = limit.window_s
    reset = newest + window_s - now if newest is not None else 0.0
    if fits:
        retry = 0.0
    elif limit.cost > limit.limit:
        retry = float(window_s)
    else:
        need = used + limit.cost - limit.limit  # units that must leave the window first
        retry = float(window_s)
        freed = 0
        for second, count in buckets:
            freed += count
            if freed >= need:
                retry = second + window_s - now
                break
    return RateState(limit.id, limit.limit, max(0, limit.limit - used), max(0.0, reset), max(0.0, retry))


class MemoryCounters:
    """`Counters` for one process. Construct once per process; `close()` forgets everything."""

    def __init__(self) -> None:
        self._budgets: dict[str, _Budget] = {}
        self._rates: dict[str, _Buckets] = {}
        self._next_sweep = -_INF

    # -- budgets ------------------------------------------------------------------------------

    async def reserve(
        self, request_id: str, windows: Sequence[Window], amount_nano: int, ttl_s: float, now: float
    ) -> Reservation:
        check_args(windows, amount_nano, "amount_nano")
        if amount_nano == 0:
            return Reservation(True, self._usage(windows, now))
        if now >= self._next_sweep:
            self._sweep(now)
        budgets = self._budgets
        # Pass 1: is there room everywhere? (A repeated reserve of the same request replaces
        # its reservation, so its own open amount does not count against it.)
        for w in windows:
            b = budgets.get(w.id)
            if b is None:
                if amount_nano > w.limit_nano:
                    return self._refused(windows, w.id, now)
                continue
            b.reap(now)
            own = b.open.get(request_id)
            if b.spent + b.reserved - (own[0] if own else 0) + amount_nano > w.limit_nano:
                return self._refused(windows, w.id, now)
        # Pass 2: reserve in all of them.
        expires_at = now + ttl_s
        usage = []
        for w in windows:
            b = budgets.get(w.id)
            if b is None:
                b = budgets[w.id] = _Budget(w.ends_at)
            own = b.open.get(request_id)
            b.reserved += amount_nano - (own[0] if own else 0)
            b.open[request_id] = (amount_nano, expires_at)
            if expires_at < b.next_expiry:
                b.next_expiry = expires_at
            usage.append(WindowUsage(w.id, w.limit_nano, b.spent, b.reserved))
        return Reservation(True, tuple(usage))

    def _refused(self, windows: Sequence[Window], by: str, now: float) -> Reservation:
        return Reservation(False, self._usage(windows, now), by)

    async def settle(self, request_id: str, windows: Sequence[Window], actual_nano: int, now: float) -> None:
        self.settle_now(request_id, windows, actual_nano, now)

    def settle_now(self, request_id: str, windows: Sequence[Window], actual_nano: int, now: float) -> None:
        """`settle` without a coroutine: the manager calls it directly (no task per request)."""
        check_args(windows, actual_nano, "actual_nano")
        budgets = self._budgets
        for w in windows:
            b = budgets.get(w.id)
            if b is None:
                if not actual_nano:
                    continue
                b = budgets[w.id] = _Budget(w.ends_at)
            own = b.open.pop(request_id, None)
            if own is not None:
                b.reserved -= own[0]
                if not b.open:
                    b.next_expiry = _INF
            b.spent += actual_nano

    async def usage(self, windows: Sequence[Window], now: float) -> tuple[WindowUsage, ...]:
        return self._usage(windows, now)

    def _usage(self, windows: Sequence[Window], now: float) -> tuple[WindowUsage, ...]:
        out = []
        budgets = self._budgets
        for w in windows:
            b = budgets.get(w.id)
            if b is None:
                out.append(WindowUsage(w.id, w.limit_nano, 0, 0))
            else:
                b.reap(now)
                out.append(WindowUsage(w.id, w.limit_nano, b.spent, b.reserved))
        return tuple(out)

    async def seed(self, spent: Mapping[Window, int]) -> None:
        for w, nano in spent.items():
            if w.id not in self._budgets:
                self._budgets[w.id] = _Budget(w.ends_at, int(nano))

    # -- rate limits ---------------------------------------------------------------------------

    async def hit(self, limits: Sequence[RateLimit], now: float) -> RateResult:
        return self._rate(limits, now, count=True)

    async def peek(self, limits: Sequence[RateLimit], now: float) -> RateResult:
        return self._rate(limits, now, count=False)

    def _rate(self, limits: Sequence[RateLimit], now: float, count: bool) -> RateResult:
        if now >= self._next_sweep:
            self._sweep(now)
        second = math.floor(now)
        rates = self._rates
        found: list[_Buckets | None] = []
        refused_by: str | None = None
        for lim in limits:
            b = rates.get(lim.id)
            if b is not None:
                b.window_s = lim.window_s
                b.prune(second - lim.window_s + 1)
                used = b.total
            else:
                used = 0
            found.append(b)
            if refused_by is None and used + lim.cost > lim.limit:
                refused_by = lim.id
        ok = refused_by is None
        states = []
        for lim, b in zip(limits, found):
            if ok and count and lim.cost:
                if b is None:
                    b = rates[lim.id] = _Buckets(lim.window_s)
                b.add(second, lim.cost)
            if b is None or not b.buckets:
                used, newest, buckets = 0, None, ()
            else:
                used, newest, buckets = b.total, b.buckets[-1][0], b.buckets
            fits = (ok and count) or used + lim.cost <= lim.limit
            states.append(rate_state(lim, used, fits, buckets, newest, now))
        return RateResult(ok, tuple(states), refused_by)

    # -- housekeeping ----------------------------------------------------------------------------

    def _sweep(self, now: float) -> None:
        """Forget windows long past their end (nothing open) and rate limits gone quiet."""
        self._next_sweep = now + SWEEP_EVERY_S
        dead = []
        for k, b in self._budgets.items():
            if b.ends_at + WINDOW_GRACE_S < now:
                b.reap(now)
                if not b.open:
                    dead.append(k)
        for k in dead:
            del self._budgets[k]
        second = math.floor(now)
        quiet = [
            k for k, r in self._rates.items() if not r.buckets or r.buckets[-1][0] <= second - r.window_s
        ]
        for k in quiet:
            del self._rates[k]

    async def close(self) -> None:
        self._budgets.clear()
        self._rates.clear()
