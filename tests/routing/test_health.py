"""Live health: EWMA latency, the circuit breaker's transitions, and the background monitor."""

from __future__ import annotations

import asyncio
import time

import pytest

from tiergate.config.models import CircuitBreakerConfig, RoutingConfig
from tiergate.providers.base import Health
from tiergate.routing.health import CircuitBreaker, HealthMonitor, HealthRegistry


class FakeClock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, s: float) -> None:
        self.t += s


def _cfg(**cb: object) -> RoutingConfig:
    base: dict[str, object] = {
        "consecutive_failures": 3, "error_rate": 0.5, "window_s": 10.0, "min_requests": 4,
        "cooldown_s": 5.0, "half_open_probes": 1,
    }
    base.update(cb)
    return RoutingConfig(circuit_breaker=CircuitBreakerConfig(**base), ewma_alpha=0.5)  # type: ignore[arg-type]


def _registry(clock: FakeClock, **cb: object) -> HealthRegistry:
    return HealthRegistry(_cfg(**cb), ["a", "b"], clock=clock)


# ---------------------------------------------------------------------------- EWMA
def test_ewma_first_sample_then_weighted() -> None:
    reg = _registry(FakeClock())
    s = reg.stats("a")
    assert s.latency_ms is None and s.ttft_ms is None and s.samples == 0
    reg.record_success("a", 100.0, ttft_ms=40.0)
    assert s.latency_ms == 100.0 and s.ttft_ms == 40.0
    reg.record_success("a", 200.0)  # alpha 0.5: halfway; no ttft sample leaves ttft alone
    assert s.latency_ms == pytest.approx(150.0)
    assert s.ttft_ms == 40.0
    reg.record_success("a", 50.0, ttft_ms=20.0)
    assert s.latency_ms == pytest.approx(100.0)
    assert s.ttft_ms == pytest.approx(30.0)
    assert (s.samples, s.ttft_samples, s.successes, s.failures) == (3, 2, 3, 0)


def test_ewma_converges_to_a_new_level() -> None:
    reg = HealthRegistry(RoutingConfig(ewma_alpha=0.2), ["a"], clock=FakeClock())
    for _ in range(5):
        reg.record_success("a", 100.0)
    for _ in range(30):
        reg.record_success("a", 1000.0)
    latency = reg.stats("a").latency_ms
    assert latency is not None and 990.0 < latency <= 1000.0


def test_timeout_latency_feeds_the_average() -> None:
    reg = _registry(FakeClock())
    reg.record_success("a", 100.0)
    reg.record_failure("a", "upstream_timeout", True, latency_ms=30_000.0)
    assert reg.stats("a").latency_ms == pytest.approx(15_050.0)


# ---------------------------------------------------------------------------- breaker
def test_opens_after_consecutive_failures_and_success_resets_the_run() -> None:
    clock = FakeClock()
    reg = _registry(clock, min_requests=100)
    reg.record_failure("a", "upstream_connection_error", True)
    reg.record_failure("a", "upstream_connection_error", True)
    reg.record_success("a", 10.0)  # breaks the run
    reg.record_failure("a", "upstream_connection_error", True)
    reg.record_failure("a", "upstream_connection_error", True)
    assert reg.state("a") == "closed" and reg.allow("a")
    reg.record_failure("a", "upstream_overloaded", True)
    assert reg.state("a") == "open"
    assert not reg.allow("a") and not reg.available("a")
    assert reg.state("b") == "closed"  # breakers are per deployment
    snap = reg.snapshot()["a"]
    assert snap["state"] == "open" and "3 consecutive" in snap["reason"]
    assert snap["retry_in_s"] == 5.0 and snap["last_error"] == "upstream_overloaded"


def test_opens_on_error_rate_over_the_window() -> None:
    clock = FakeClock()
    reg = _registry(clock, consecutive_failures=100, min_requests=4, error_rate=0.5)
    # alternate: never two failures in a row, but half of all requests fail
    reg.record_success("a", 10.0)
    reg.record_failure("a", "upstream_error", True)
    reg.record_success("a", 10.0)
    assert reg.state("a") == "closed"  # 1/3 and below min_requests
    reg.record_failure("a", "upstream_error", True)  # 2/4 = 0.5 with 4 requests
    assert reg.state("a") == "open"
    assert "2/4 failed" in reg.snapshot()["a"]["reason"]


def test_error_rate_forgets_requests_older_than_the_window() -> None:
    clock = FakeClock()
    reg = _registry(clock, consecutive_failures=100, min_requests=4, window_s=10.0)
    reg.record_failure("a", "upstream_error", True)
    reg.record_failure("a", "upstream_error", True)
    clock.advance(11.0)  # those two slide out of the window
    reg.record_success("a", 10.0)
    reg.record_success("a", 10.0)
    reg.record_success("a", 10.0)
    reg.record_failure("a", "upstream_error", True)  # 1/4 in the window
    assert reg.state("a") == "closed"
    snap = reg.snapshot()["a"]
    assert (snap["window_requests"], snap["window_failures"]) == (4, 1)


def test_client_errors_do_not_count() -> None:
    clock = FakeClock()
    reg = _registry(clock, consecutive_failures=2, min_requests=2)
    for _ in range(50):
        reg.record_failure("a", "upstream_rejected", False)
    s = reg.stats("a")
    assert reg.state("a") == "closed"
    assert (s.failures, s.client_errors, s.last_error) == (0, 50, "upstream_rejected")


def test_half_open_after_cooldown_then_closes_on_success() -> None:
    clock = FakeClock()
    reg = _registry(clock, cooldown_s=5.0, half_open_probes=1)
    for _ in range(3):
        reg.record_failure("a", "upstream_timeout", True)
    clock.advance(4.9)
    assert reg.state("a") == "open" and not reg.allow("a")
    clock.advance(0.2)
    assert reg.state("a") == "half_open"
    assert reg.available("a")
    assert reg.allow("a")  # the one trial slot
    assert not reg.allow("a") and not reg.available("a")  # others are refused as if open
    reg.record_success("a", 20.0)
    assert reg.state("a") == "closed"
    snap = reg.snapshot()["a"]
    assert snap["consecutive_failures"] == 0 and snap["window_requests"] == 0  # counters reset
    # a fresh run of failures is needed to open it again
    reg.record_failure("a", "upstream_timeout", True)
    reg.record_failure("a", "upstream_timeout", True)
    assert reg.state("a") == "closed"


def test_failed_trial_reopens_with_a_fresh_cooldown() -> None:
    clock = FakeClock()
    reg = _registry(clock, cooldown_s=5.0)
    for _ in range(3):
        reg.record_failure("a", "upstream_timeout", True)
    clock.advance(5.0)
    assert reg.allow("a")
    reg.record_failure("a", "upstream_timeout", True)
    assert reg.state("a") == "open"
    clock.advance(4.0)  # the cooldown counts from the failed trial, not the first opening
    assert reg.state("a") == "open"
    clock.advance(1.0)
    assert reg.state("a") == "half_open"
    assert reg.stats("a").breaker.opens == 2


def test_several_trial_slots_and_release() -> None:
    clock = FakeClock()
    reg = _registry(clock, half_open_probes=2)
    for _ in range(3):
        reg.record_failure("a", "upstream_error", True)
    clock.advance(5.0)
    assert reg.allow("a") and reg.allow("a")
    assert not reg.allow("a")
    reg.release("a")  # one trial never reached the upstream
    assert reg.allow("a")
    reg.record_failure("a", "upstream_rejected", False)  # a client error gives its slot back too
    assert reg.allow("a")
    assert reg.state("a") == "half_open"


def test_lost_trial_slots_expire_after_a_cooldown() -> None:
    clock = FakeClock()
    reg = _registry(clock, cooldown_s=5.0)
    for _ in range(3):
        reg.record_failure("a", "upstream_error", True)
    clock.advance(5.0)
    assert reg.allow("a")  # ... and the caller never reports back
    clock.advance(4.0)
    assert not reg.allow("a")
    clock.advance(1.0)
    assert reg.allow("a")


def test_failures_while_open_do_not_extend_the_cooldown() -> None:
    clock = FakeClock()
    reg = _registry(clock, cooldown_s=5.0)
    for _ in range(3):
        reg.record_failure("a", "upstream_error", True)
    clock.advance(4.0)
    reg.record_failure("a", "upstream_error", True)  # a request sent before it opened
    clock.advance(1.0)
    assert reg.state("a") == "half_open"


def test_breaker_closed_path_is_cheap() -> None:
    breaker = CircuitBreaker(CircuitBreakerConfig())
    n = 100_000
    t0 = time.perf_counter()
    for _ in range(n):
        breaker.allow()
        breaker.on_success()
    per_op_us = (time.perf_counter() - t0) / n * 1e6
    assert per_op_us < 20  # generous for slow CI; measured about 0.5 us


def test_probe_success_moves_open_to_half_open_and_failure_changes_nothing() -> None:
    clock = FakeClock()
    reg = _registry(clock, cooldown_s=60.0)
    for _ in range(3):
        reg.record_failure("a", "upstream_error", True)
    reg.record_probe("a", False, error="connection refused")
    assert reg.state("a") == "open"
    reg.record_probe("a", True, 3.0)
    assert reg.state("a") == "half_open"
    assert reg.snapshot()["a"]["probe"] == {"ok": True, "latency_ms": 3.0, "error": None}
    reg.record_probe("b", True, 3.0)  # closed stays closed
    assert reg.state("b") == "closed"


def test_a_probe_that_never_saw_the_outage_does_not_readmit_early() -> None:
    """A hanging chat endpoint whose model listing keeps answering: the cooldown decides, not
    the probe (each early readmission would cost a user a full timeout)."""
    clock = FakeClock()
    reg = _registry(clock, cooldown_s=60.0)
    reg.record_probe("a", True, 2.0)
    for _ in range(3):
        reg.record_failure("a", "upstream_timeout", True)
    reg.record_probe("a", True, 2.0)
    assert reg.state("a") == "open"
    # Connection errors: nothing answered at all, so an answering probe is evidence.
    for _ in range(3):
        reg.record_failure("b", "upstream_connection_error", True)
    reg.record_probe("b", True, 2.0)
    assert reg.state("b") == "half_open"


def test_unknown_names_start_closed() -> None:
    reg = _registry(FakeClock())
    assert reg.allow("new") and reg.state("new") == "closed"
    assert set(reg.snapshot()) == {"a", "b", "new"}


# ---------------------------------------------------------------------------- monitor
class FlakyProvider:
    """Just enough of a Provider for the monitor: `health()` answers as told, counting calls and
    the most probes it ever saw at once."""

    def __init__(self, ok: bool, delay_s: float = 0.0) -> None:
        self.ok = ok
        self.delay_s = delay_s
        self.calls = 0
        self.active = 0
        self.max_active = 0

    async def health(self) -> Health:
        self.calls += 1
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            return Health(True, 1.0) if self.ok else Health(False, error="refused")
        finally:
            self.active -= 1


async def _until(cond: object, timeout_s: float = 2.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)


async def test_monitor_reopens_a_recovered_deployment_early() -> None:
    clock = FakeClock()
    reg = _registry(clock, cooldown_s=3600.0)  # only a probe can bring it back within the test
    for _ in range(3):
        reg.record_failure("a", "upstream_connection_error", True)
    dead, fine = FlakyProvider(ok=False), FlakyProvider(ok=True)
    monitor = HealthMonitor(reg, interval_s=0.02, timeout_s=0.5)
    monitor.start({"a": dead, "b": fine})  # type: ignore[dict-item]
    try:
        await _until(lambda: dead.calls >= 3)
        assert reg.state("a") == "open"  # failed probes keep it open
        assert reg.snapshot()["a"]["probe"]["error"] == "refused"
        dead.ok = True
        await _until(lambda: reg.state("a") == "half_open")
        assert reg.allow("a")
        reg.record_success("a", 5.0)
        assert reg.state("a") == "closed"
        assert reg.state("b") == "closed" and fine.calls >= 1
    finally:
        await monitor.stop()
    assert not monitor.running


async def test_monitor_probes_never_overlap_and_time_out() -> None:
    reg = _registry(FakeClock())
    slow = FlakyProvider(ok=True, delay_s=0.2)  # slower than the interval and the timeout
    monitor = HealthMonitor(reg, interval_s=0.01, timeout_s=0.03)
    monitor.start({"a": slow})  # type: ignore[dict-item]
    try:
        await _until(lambda: slow.calls >= 3)
    finally:
        await monitor.stop()
    assert slow.max_active == 1
    probe = reg.snapshot()["a"]["probe"]
    assert probe["ok"] is False and "timed out" in probe["error"]


async def test_monitor_survives_a_raising_adapter_and_stops_cleanly() -> None:
    class Broken:
        calls = 0

        async def health(self) -> Health:
            Broken.calls += 1
            raise RuntimeError("adapter bug")

    reg = _registry(FakeClock())
    monitor = HealthMonitor(reg, interval_s=0.01)
    monitor.start({"a": Broken()})  # type: ignore[dict-item]
    with pytest.raises(RuntimeError):
        monitor.start({})
    try:
        await _until(lambda: Broken.calls >= 3)
    finally:
        await monitor.stop()
    calls = Broken.calls
    await asyncio.sleep(0.05)
    assert Broken.calls == calls  # nothing runs after stop()
    assert reg.snapshot()["a"]["probe"]["error"] == "probe failed: RuntimeError"


async def test_monitor_interval_zero_disables_probes() -> None:
    reg = HealthRegistry(RoutingConfig(health_probe_interval_s=0), ["a"])
    monitor = HealthMonitor(reg)
    monitor.start({"a": FlakyProvider(ok=True)})  # type: ignore[dict-item]
    assert not monitor.running
    await monitor.stop()


async def test_monitor_bounds_concurrent_probes() -> None:
    reg = _registry(FakeClock())
    providers = {f"d{i}": FlakyProvider(ok=True, delay_s=0.02) for i in range(10)}
    active = 0
    peak = 0

    def wrap(p: FlakyProvider) -> FlakyProvider:
        inner = p.health

        async def health() -> Health:
            nonlocal active, peak
            active += 1
            peak = max(peak, active)
            try:
                return await inner()
            finally:
                active -= 1

        p.health = health  # type: ignore[method-assign]
        return p

    monitor = HealthMonitor(reg, interval_s=0.005, max_concurrent=3)
    monitor.start({n: wrap(p) for n, p in providers.items()})  # type: ignore[misc]
    try:
        await _until(lambda: all(p.calls >= 2 for p in providers.values()))
    finally:
        await monitor.stop()
    assert 1 <= peak <= 3
