"""Retry timing: exponential backoff with jitter, Retry-After, and the failover budget."""

from __future__ import annotations

import random

import pytest

from tiergate.config.models import RetryConfig
from tiergate.routing.retry import FailoverBudget, backoff_delay


def test_backoff_doubles_up_to_the_cap_without_jitter() -> None:
    cfg = RetryConfig(backoff_base_ms=100, backoff_max_ms=1000, jitter=0)
    rng = random.Random(1)
    delays = [backoff_delay(n, cfg, rng, None) for n in range(1, 7)]
    assert delays == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert backoff_delay(0, cfg, rng) == 0.1  # attempts below 1 count as the first
    assert backoff_delay(10_000, cfg, rng) == 1.0  # no overflow on absurd attempt numbers


def test_jitter_stays_in_range_and_spreads() -> None:
    cfg = RetryConfig(backoff_base_ms=100, backoff_max_ms=10_000, jitter=0.2)
    rng = random.Random(7)
    for attempt in (1, 2, 3):
        nominal = 0.1 * 2 ** (attempt - 1)
        values = [backoff_delay(attempt, cfg, rng) for _ in range(2000)]
        assert all(v is not None and nominal * 0.8 <= v <= nominal * 1.2 for v in values)
        spread = max(values) - min(values)  # type: ignore[operator]
        assert spread > nominal * 0.3  # really jittered, both ways
        mean = sum(values) / len(values)  # type: ignore[arg-type]
        assert mean == pytest.approx(nominal, rel=0.03)


def test_jittered_delay_never_exceeds_the_cap() -> None:
    cfg = RetryConfig(backoff_base_ms=500, backoff_max_ms=1000, jitter=0.5)
    rng = random.Random(3)
    values = [backoff_delay(5, cfg, rng) for _ in range(1000)]
    assert all(v is not None and 0.5 <= v <= 1.0 for v in values)


def test_retry_after_is_honoured_and_over_the_limit_means_fall_back() -> None:
    cfg = RetryConfig(max_retry_after_s=5.0, jitter=0.5)
    rng = random.Random(0)
    assert backoff_delay(1, cfg, rng, 2.5) == 2.5  # the upstream's value wins, no jitter
    assert backoff_delay(3, cfg, rng, 0.0) == 0.0
    assert backoff_delay(1, cfg, rng, 5.0) == 5.0  # at the limit: still wait
    assert backoff_delay(1, cfg, rng, 5.01) is None  # past it: fall back now
    assert backoff_delay(1, cfg, rng, -3.0) == 0.0


def test_failover_budget_arithmetic() -> None:
    now = [100.0]
    budget = FailoverBudget(10.0, clock=lambda: now[0])
    assert budget.remaining() == 10.0
    assert budget.timeout_for(60.0) == 10.0  # a 60 s deployment timeout is cut to the budget
    assert budget.timeout_for(3.0) == 3.0
    assert budget.allows(2.0)
    now[0] += 7.5
    assert budget.remaining() == pytest.approx(2.5)
    assert budget.timeout_for(3.0) == pytest.approx(2.5)
    assert budget.allows(2.0) and not budget.allows(2.5)  # a wait must leave time for the attempt
    assert not budget.exhausted
    now[0] += 5.0
    assert budget.remaining() == 0.0 and budget.exhausted
    assert budget.timeout_for(3.0) == 0.0
    assert not budget.allows(0.0)


def test_retries_times_timeouts_stay_within_the_budget() -> None:
    """A dead deployment that times out every attempt: the loop the call stage runs, on a fake
    clock, never spends more than the budget."""
    now = [0.0]
    cfg = RetryConfig(attempts=10, backoff_base_ms=200, backoff_max_ms=2000, jitter=0.2)
    rng = random.Random(5)
    budget = FailoverBudget(12.0, clock=lambda: now[0])
    attempt = 0
    while not budget.exhausted:
        attempt += 1
        now[0] += budget.timeout_for(5.0)  # the attempt times out
        if attempt >= cfg.attempts:
            break
        delay = backoff_delay(attempt, cfg, rng)
        assert delay is not None
        if not budget.allows(delay):
            break
        now[0] += delay
    assert now[0] <= 12.0 + 1e-9
