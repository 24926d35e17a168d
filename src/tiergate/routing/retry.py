"""Retry timing: how long to wait before trying a deployment again, and how much time one request
may spend on upstreams in total.

Retries of a failing upstream must spread out (exponential backoff with random jitter, so that
many clients do not retry in lockstep) and obey the upstream's own `Retry-After`. But waiting is
only worth it while it is short: a long `Retry-After` means "use another deployment", and the
`FailoverBudget` caps retries × timeouts so a dead deployment never costs a client more than
`max_failover_s` (peers are known to add 5-30 s per request here). Pure functions and a clock;
the caller does the sleeping.
"""

from __future__ import annotations

import random
import time
from typing import Callable

from ..config.models import RetryConfig

_MAX_DOUBLINGS = 62  # 2**62 x any base is past every sane cap; avoids float overflow


def backoff_delay(
    attempt: int, cfg: RetryConfig, rng: random.Random, retry_after: float | None = None
) -> float | None:
    """Seconds to wait before retry number `attempt` (1 = the first retry) of one deployment,
    or None: do not retry it, fall back to the next candidate now.

    Without `retry_after`: `backoff_base_ms × 2^(attempt-1)`, varied by ± `jitter` of itself, and
    never above `backoff_max_ms` (a hard cap, so budgets can count on it). With `retry_after`
    (seconds, from the upstream's `Retry-After` header): exactly that, as the upstream knows its
    own load best, unless it exceeds `max_retry_after_s`, in which case None.
    """
    if retry_after is not None:
        if retry_after > cfg.max_retry_after_s:
            return None
        return max(0.0, retry_after)
    doublings = min(max(attempt, 1) - 1, _MAX_DOUBLINGS)
    delay_ms = min(cfg.backoff_base_ms * float(1 << doublings), cfg.backoff_max_ms)
    if cfg.jitter:
        delay_ms *= 1.0 + cfg.jitter * (2.0 * rng.random() - 1.0)
    return min(max(delay_ms, 0.0), cfg.backoff_max_ms) / 1000.0


class FailoverBudget:
    """The time one request may still spend on upstream attempts, retries and backoff waits.

    Starts counting when created (at the call stage). Each attempt's timeout is cut to what is
    left, and a retry whose wait would use up the rest is skipped."""

    __slots__ = ("max_failover_s", "_clock", "_deadline")

    def __init__(self, max_failover_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_failover_s = max_failover_s
        self._clock = clock
        self._deadline = clock() + max_failover_s

    def remaining(self) -> float:
        """Seconds left, never negative."""
        return max(0.0, self._deadline - self._clock())

    @property
    def exhausted(self) -> bool:
        return self.remaining() <= 0.0

    def allows(self, delay_s: float) -> bool:
        """Whether waiting `delay_s` still leaves time for an attempt afterwards."""
        return delay_s < self.remaining()

    def timeout_for(self, deployment_timeout_s: float) -> float:
        """The timeout for the next attempt: the deployment's own, or what is left if less."""
        return min(deployment_timeout_s, self.remaining())
