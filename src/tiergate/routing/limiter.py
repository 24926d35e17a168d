"""Per-deployment concurrency limits with a bounded, fair wait.

A local GPU serves two requests at a time well and twenty badly; a paid API may refuse more than
its plan allows. A `Limiter` caps the requests in flight to one deployment. A request over the cap
waits its turn (first come, first served) for at most `queue_timeout_s`, then gets `QueueTimeout`,
which the gateway answers as a clear 503 (`deployment_busy`) instead of letting the client hang.
The queue itself is bounded (`max_waiters`): past it, a request is refused at once (`QueueFull`).

Why not `asyncio.Semaphore` with `wait_for`: its waiters can be overtaken by newcomers, it has no
bound on waiters, and it exposes no counters. Here a released slot is handed directly to the
oldest waiter, so nobody barges in, and a waiter cancelled at the moment it was handed a slot
passes that slot on, so no slot is ever lost or released twice.

Also the seed's environment-style defaults (`MAX_CONCURRENT_LOCAL`, `MAX_CONCURRENT_API`,
`LOCAL_TIMEOUT_SEC`, `API_TIMEOUT_SEC`) as a pure function over a mapping.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Mapping

DEFAULT_MAX_WAITERS = 1000


class QueueTimeout(asyncio.TimeoutError):
    """No concurrency slot of the deployment came free in time (answer: 503 `deployment_busy`).

    A subclass of `asyncio.TimeoutError` (= `TimeoutError`): catch it before any generic timeout
    handler, which would otherwise read it as an upstream timeout."""

    def __init__(self, message: str, *, in_flight: int, waiting: int, waited_s: float) -> None:
        super().__init__(message)
        self.message = message
        self.in_flight = in_flight
        self.waiting = waiting
        self.waited_s = waited_s


class QueueFull(QueueTimeout):
    """The wait queue is full: refused at once without waiting."""


class Limiter:
    """At most `max_concurrency` holders at once; `acquire` waits FIFO for up to the timeout.

    Use as `async with limiter:` (the default timeout) or `await limiter.acquire(timeout_s)` then
    `limiter.release()` exactly once. Single event loop; no thread safety needed or given."""

    __slots__ = ("name", "max_concurrency", "queue_timeout_s", "max_waiters", "_in_flight", "_waiters")

    def __init__(
        self,
        max_concurrency: int,
        queue_timeout_s: float,
        *,
        max_waiters: int = DEFAULT_MAX_WAITERS,
        name: str = "",
    ) -> None:
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        if max_waiters < 0:
            raise ValueError("max_waiters must not be negative")
        self.name = name
        self.max_concurrency = max_concurrency
        self.queue_timeout_s = queue_timeout_s
        self.max_waiters = max_waiters
        self._in_flight = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def in_flight(self) -> int:
        """Slots held now (including ones handed to a waiter that has not resumed yet)."""
        return self._in_flight

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    async def acquire(self, timeout_s: float | None = None) -> None:
        """Take a slot, waiting at most `timeout_s` (default `queue_timeout_s`).

        Raises:
            QueueFull: `max_waiters` requests are already waiting (or the timeout is 0).
            QueueTimeout: no slot came free in time.
        """
        if self._in_flight < self.max_concurrency and not self._waiters:
            self._in_flight += 1
            return
        timeout = self.queue_timeout_s if timeout_s is None else timeout_s
        if len(self._waiters) >= self.max_waiters:
            raise QueueFull(
                f"deployment {self.name or '?'} is busy: {self._in_flight} requests in flight and "
                f"{len(self._waiters)} waiting (limit {self.max_concurrency} at once)",
                in_flight=self._in_flight, waiting=len(self._waiters), waited_s=0.0,
            )
        if timeout <= 0:
            raise self._timeout(timeout, 0.0)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        t0 = time.monotonic()
        try:
            async with asyncio.timeout(timeout):
                await fut
        except BaseException as exc:
            if fut.done() and not fut.cancelled():
                self.release()  # handed a slot while being cancelled: pass it on, exactly once
            else:
                fut.cancel()
                try:
                    self._waiters.remove(fut)
                except ValueError:  # `release` already dropped it as cancelled
                    pass
            if isinstance(exc, TimeoutError):
                raise self._timeout(timeout, time.monotonic() - t0) from None
            raise
        # The slot was handed over by `release`, which left `_in_flight` unchanged.

    def _timeout(self, timeout: float, waited_s: float) -> QueueTimeout:
        return QueueTimeout(
            f"deployment {self.name or '?'} is busy: no concurrency slot came free within "
            f"{timeout:g} s ({self._in_flight} in flight, limit {self.max_concurrency})",
            in_flight=self._in_flight, waiting=len(self._waiters), waited_s=waited_s,
        )

    def release(self) -> None:
        """Give a slot back: to the oldest waiter still waiting, else to the pool."""
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                return
        if self._in_flight <= 0:
            raise RuntimeError("Limiter.release() called more often than acquire()")
        self._in_flight -= 1

    async def __aenter__(self) -> Limiter:
        await self.acquire()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release()


# ---------------------------------------------------------------------------- seed defaults
SEED_DEFAULTS: Mapping[str, str] = {
    "MAX_CONCURRENT_LOCAL": "2",
    "MAX_CONCURRENT_API": "10",
    "LOCAL_TIMEOUT_SEC": "10",
    "API_TIMEOUT_SEC": "30",
}
"""The values seed 002's example `.env` sets. Not applied unless asked for: pass
`{**SEED_DEFAULTS, **os.environ}` to `defaults_for` to use them where the environment is silent."""


def defaults_for(location: str, env: Mapping[str, str]) -> tuple[int | None, float | None]:
    """(max_concurrency, timeout_s) for a deployment at `location` from environment-style values:
    `MAX_CONCURRENT_LOCAL` / `LOCAL_TIMEOUT_SEC` for `local`, `MAX_CONCURRENT_API` /
    `API_TIMEOUT_SEC` for every remote location (sovereign, cloud). None where the variable is
    unset or empty: keep the deployment's own setting.

    Raises:
        ValueError: a value is not a positive number (the message names the variable).
    """
    kind = "LOCAL" if location == "local" else "API"
    return _positive_int(env, f"MAX_CONCURRENT_{kind}"), _positive_float(env, f"{kind}_TIMEOUT_SEC")


def _positive_int(env: Mapping[str, str], key: str) -> int | None:
    raw = (env.get(key) or "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{key}={raw!r}: expected a whole number of requests, at least 1")
    return value


def _positive_float(env: Mapping[str, str], key: str) -> float | None:
    raw = (env.get(key) or "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not value > 0 or value == float("inf"):
        raise ValueError(f"{key}={raw!r}: expected a number of seconds greater than 0")
    return value
