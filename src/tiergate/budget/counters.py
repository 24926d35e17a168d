"""The counter interface: budget reservations and sliding-window rate limits.

Money is counted in integer nano-dollars (1e-9 USD): exact, and safe in Redis/Lua numbers up to
about 9 million USD per budget window.

Budgets (reserve-then-settle): a budget *window* (one budget's current period, e.g. the global
monthly budget for 2026-11) has a limit, a settled `spent` total and open reservations. A request
reserves its estimated maximum cost in every window that applies to it, all-or-nothing, and only
if `spent + reserved + amount <= limit` holds in each; after the call it settles: its reservation
is released and the actual cost added to `spent`. A reservation that is never settled (a crashed
process) stops counting at its `expires_at`. Concurrent requests can therefore never together
reserve more than the limit; spend exceeds a limit only by what actual costs exceed estimates.

Rate limits: a sliding window of `window_s` one-second buckets per limit id; a request is admitted
only if for every limit `used + cost <= limit`, and then counted in all of them (all-or-nothing).
`used` counts the buckets of the last `window_s` seconds (the current second included).

Window is frozen (a dict key, made once per budget period); the values made for every request
are plain slotted dataclasses (a frozen dataclass's __init__ costs several times more).

Every backend implements `Counters`; `CounterStoreUnavailable` means the shared store could not be
reached (the caller decides to refuse or admit uncounted, per budget).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from typing import Protocol

NANO_PER_USD = 1_000_000_000


def to_nano(usd: Decimal | float | int) -> int:
    """USD -> integer nano-dollars, rounded up (a reservation never under-counts)."""
    return int((Decimal(str(usd)) * NANO_PER_USD).to_integral_value(rounding=ROUND_CEILING))


def to_usd(nano: int) -> Decimal:
    return Decimal(nano) / NANO_PER_USD


def check_args(windows: Sequence[Window], nano: int, name: str) -> None:
    """What every backend refuses: a negative amount, the same window twice."""
    if nano < 0:
        raise ValueError(f"{name} must be >= 0")
    if len(windows) > 1 and len({w.id for w in windows}) != len(windows):
        raise ValueError("duplicate window ids")


class CounterStoreUnavailable(Exception):
    """The shared counter store (Redis, the database) did not answer."""


@dataclass(frozen=True, slots=True)
class Window:
    """One budget's current period."""

    id: str  # e.g. "global|monthly|2026-11", "team:research|daily|2026-11-23"
    limit_nano: int
    ends_at: float  # epoch seconds of the reset; counters may be dropped a while after this


@dataclass(slots=True)
class WindowUsage:
    id: str
    limit_nano: int
    spent_nano: int  # settled
    reserved_nano: int  # open, unexpired reservations

    @property
    def remaining_nano(self) -> int:
        return max(0, self.limit_nano - self.spent_nano - self.reserved_nano)


@dataclass(slots=True)
class Reservation:
    ok: bool
    usage: tuple[WindowUsage, ...]  # per window, in the order given: after reserving when ok
    refused_by: str | None = None  # id of the first window without room


@dataclass(slots=True)
class RateLimit:
    id: str  # e.g. "key:key_ab12|rpm", "deployment:groq-llama|tpm"
    limit: int
    cost: int  # 1 for a request limit, the estimated tokens for a token limit
    window_s: int = 60


@dataclass(slots=True)
class RateState:
    id: str
    limit: int
    remaining: int  # after this request when admitted; what is left now when refused
    reset_s: float  # until every counted unit has left the window (OpenAI's x-ratelimit-reset-*)
    retry_after_s: float  # refused: until `cost` would fit (window_s when cost > limit); else 0


@dataclass(slots=True)
class RateResult:
    ok: bool
    states: tuple[RateState, ...]  # per limit, in the order given
    refused_by: str | None = None


class Counters(Protocol):
    """What the budget manager needs from a backend. `now` is epoch seconds (injected by tests)."""

    async def reserve(
        self, request_id: str, windows: Sequence[Window], amount_nano: int, ttl_s: float, now: float
    ) -> Reservation:
        """All-or-nothing; an amount of 0 always succeeds (and stores nothing)."""
        ...

    async def settle(self, request_id: str, windows: Sequence[Window], actual_nano: int, now: float) -> None:
        """Release `request_id`'s reservation in each window (if any is left) and add
        `actual_nano` to each window's spent. Idempotent for the reservation part."""
        ...

    async def usage(self, windows: Sequence[Window], now: float) -> tuple[WindowUsage, ...]:
        ...

    async def seed(self, spent: Mapping[Window, int]) -> None:
        """Set `spent` of windows that have no counter yet (after a restart of an in-memory or
        Redis store, from the request log); windows that already have one are left alone."""
        ...

    async def hit(self, limits: Sequence[RateLimit], now: float) -> RateResult:
        """Admit and count, all-or-nothing."""
        ...

    async def peek(self, limits: Sequence[RateLimit], now: float) -> RateResult:
        """The state as `hit` would see it, counting nothing (ok: `cost` would fit)."""
        ...

    async def close(self) -> None:
        ...
