"""Live health of each deployment: latency averages, outcome counts and a circuit breaker.

Routing reads this to rank candidates (`speed` wants live latency, `learned` wants outcomes) and
to skip deployments that are failing; the call stage writes it after every attempt; a background
`HealthMonitor` probes each deployment so that a recovered one comes back without waiting for user
traffic to find out. Everything here runs on the serving event loop's thread, so plain attributes
need no locks, and the per-request methods (`allow`, `record_*`) do a dictionary lookup and a few
arithmetic operations: microseconds, no allocation on the success path.

The breaker's states::

    closed --(N failures in a row, or error rate >= R over the window)--> open
    open   --(cooldown elapsed, or a background probe succeeded)--------> half_open
    half_open --(a trial request succeeds)--> closed (counters reset)
    half_open --(a trial request fails)-----> open (fresh cooldown)

Time comes from an injectable clock so that tests move it by hand instead of sleeping.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import TYPE_CHECKING, Any, Callable, Iterable, Literal, Mapping

from ..config.models import CircuitBreakerConfig, RoutingConfig

if TYPE_CHECKING:
    from ..providers.base import Provider

log = logging.getLogger("tiergate.routing.health")

CircuitState = Literal["closed", "open", "half_open"]
CLOSED: CircuitState = "closed"
OPEN: CircuitState = "open"
HALF_OPEN: CircuitState = "half_open"

Clock = Callable[[], float]

_WINDOW_BUCKETS = 10
_NEVER = -(2**62)


class _Window:
    """Requests and failures over the last `window_s` seconds, in fixed buckets.

    A ring of counters instead of a list of timestamps: constant memory however busy the
    deployment is, and the window slides in steps of a tenth of its length, which is precise
    enough for deciding whether a deployment is failing."""

    __slots__ = ("_width", "_epochs", "_total", "_failed")

    def __init__(self, window_s: float) -> None:
        self._width = window_s / _WINDOW_BUCKETS
        self._epochs = [_NEVER] * _WINDOW_BUCKETS
        self._total = [0] * _WINDOW_BUCKETS
        self._failed = [0] * _WINDOW_BUCKETS

    def add(self, now: float, failed: bool) -> None:
        epoch = int(now // self._width)
        slot = epoch % _WINDOW_BUCKETS
        if self._epochs[slot] != epoch:  # the slot still holds an older bucket: recycle it
            self._epochs[slot] = epoch
            self._total[slot] = 0
            self._failed[slot] = 0
        self._total[slot] += 1
        if failed:
            self._failed[slot] += 1

    def counts(self, now: float) -> tuple[int, int]:
        """(requests, failures) in the window ending now."""
        oldest = int(now // self._width) - _WINDOW_BUCKETS + 1
        total = failed = 0
        for i in range(_WINDOW_BUCKETS):
            if self._epochs[i] >= oldest:
                total += self._total[i]
                failed += self._failed[i]
        return total, failed

    def clear(self) -> None:
        for i in range(_WINDOW_BUCKETS):
            self._epochs[i] = _NEVER
            self._total[i] = 0
            self._failed[i] = 0


class CircuitBreaker:
    """One deployment's breaker: stops sending traffic to a deployment that keeps failing, and
    lets a few trial requests through after a cooldown to find out whether it recovered.

    Only failures that say something about the deployment count (the caller decides: connection
    errors, timeouts, 429 and 5xx do; a 400 caused by the client's own request does not)."""

    __slots__ = (
        "cfg", "_clock", "_state", "_consecutive", "_window", "_opened_at", "_probes",
        "_probe_at", "opens", "reason",
    )

    def __init__(self, cfg: CircuitBreakerConfig, clock: Clock = time.monotonic) -> None:
        self.cfg = cfg
        self._clock = clock
        self._state: CircuitState = CLOSED
        self._consecutive = 0
        self._window = _Window(cfg.window_s)
        self._opened_at = 0.0
        self._probes = 0  # trial requests let through and not yet reported (half-open)
        self._probe_at = 0.0  # when the last trial slot was handed out
        self.opens = 0  # how often it opened (for the snapshot)
        self.reason = ""  # why it last opened

    # ---------------------------------------------------------------- reading
    @property
    def state(self) -> CircuitState:
        return self._current(self._clock())

    @property
    def consecutive_failures(self) -> int:
        return self._consecutive

    def _current(self, now: float) -> CircuitState:
        """The state now: an open breaker whose cooldown has elapsed is half-open."""
        if self._state is OPEN and now - self._opened_at >= self.cfg.cooldown_s:
            self._half_open()
        return self._state

    def available(self) -> bool:
        """Whether `allow` would let a request through now, without reserving a trial slot
        (for ranking candidates; the call stage then asks `allow`)."""
        if self._state is CLOSED:
            return True
        now = self._clock()
        state = self._current(now)
        if state is OPEN:
            return False
        return self._probes < self.cfg.half_open_probes or self._stale(now)

    # ---------------------------------------------------------------- per request
    def allow(self) -> bool:
        """May a request go to this deployment now? When half-open this takes one of the
        `half_open_probes` trial slots, which `on_success`, `on_failure` or `release` gives back."""
        if self._state is CLOSED:  # the common case: no clock read
            return True
        now = self._clock()
        if self._current(now) is OPEN:
            return False
        if self._probes >= self.cfg.half_open_probes and not self._stale(now):
            return False  # refused as if open: the trial requests are still out
        if self._probes >= self.cfg.half_open_probes:
            self._probes = 0  # those trials never reported back (caller bug or lost task)
        self._probes += 1
        self._probe_at = now
        return True

    def _stale(self, now: float) -> bool:
        """Trial slots held longer than a cooldown are presumed lost, so that one forgotten
        `release` cannot keep a deployment out of rotation for good."""
        return now - self._probe_at >= self.cfg.cooldown_s

    def on_success(self) -> None:
        now = self._clock()
        state = self._current(now)
        if state is HALF_OPEN:
            self._close()
        elif state is CLOSED:
            self._consecutive = 0
            self._window.add(now, False)
        # open: a request sent before the breaker opened; the cooldown still applies

    def on_failure(self) -> None:
        now = self._clock()
        state = self._current(now)
        if state is HALF_OPEN:
            self._open(now, "trial request failed")
            return
        if state is OPEN:
            return  # a request sent before it opened: no news, and no cooldown extension
        self._consecutive += 1
        self._window.add(now, True)
        cfg = self.cfg
        if self._consecutive >= cfg.consecutive_failures:
            self._open(now, f"{self._consecutive} consecutive failures")
            return
        total, failed = self._window.counts(now)
        if total >= cfg.min_requests and failed >= cfg.error_rate * total:
            self._open(now, f"{failed}/{total} failed in the last {cfg.window_s:g} s")

    def release(self) -> None:
        """An allowed request ended without a verdict on the deployment (it never reached the
        upstream, the client gave up, or the upstream rejected the client's request): give its
        trial slot back so that the next request can probe."""
        if self._state is HALF_OPEN and self._probes > 0:
            self._probes -= 1

    def recover_early(self) -> bool:
        """A background probe saw the deployment answer: go half-open now rather than after the
        cooldown, so user traffic tries it again at once. Returns whether the state changed."""
        if self._current(self._clock()) is OPEN:
            self._half_open()
            return True
        return False

    # ---------------------------------------------------------------- transitions
    def _open(self, now: float, reason: str) -> None:
        self._state = OPEN
        self._opened_at = now
        self._probes = 0
        self.opens += 1
        self.reason = reason

    def _half_open(self) -> None:
        self._state = HALF_OPEN
        self._probes = 0

    def _close(self) -> None:
        self._state = CLOSED
        self._consecutive = 0
        self._probes = 0
        self._window.clear()

    def snapshot(self) -> dict[str, Any]:
        now = self._clock()
        state = self._current(now)
        total, failed = self._window.counts(now)
        out: dict[str, Any] = {
            "state": state,
            "consecutive_failures": self._consecutive,
            "window_requests": total,
            "window_failures": failed,
            "opens": self.opens,
        }
        if state is not CLOSED:
            out["reason"] = self.reason
        if state is OPEN:
            out["retry_in_s"] = round(max(0.0, self.cfg.cooldown_s - (now - self._opened_at)), 3)
        return out


class LiveStats:
    """One deployment's live numbers. `ttft_ms` and `latency_ms` are exponentially weighted
    moving averages of real traffic (None until the first sample: the strategies then use the
    configured expectation); `failures` counts only failures that are the deployment's fault."""

    __slots__ = (
        "ttft_ms", "latency_ms", "samples", "ttft_samples", "successes", "failures",
        "client_errors", "last_error", "last_error_at", "last_probe_ok", "last_probe_ms",
        "last_probe_error", "last_probe_at", "breaker",
    )

    def __init__(self, breaker: CircuitBreaker) -> None:
        self.ttft_ms: float | None = None
        self.latency_ms: float | None = None
        self.samples = 0  # latency samples in `latency_ms`
        self.ttft_samples = 0
        self.successes = 0
        self.failures = 0
        self.client_errors = 0  # failures the client caused (400-style); not the deployment's fault
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.last_probe_ok: bool | None = None
        self.last_probe_ms: float | None = None
        self.last_probe_error: str | None = None
        self.last_probe_at: float | None = None
        self.breaker = breaker

    @property
    def state(self) -> CircuitState:
        return self.breaker.state

    def observe_latency(self, latency_ms: float, alpha: float) -> None:
        self.latency_ms = _ewma(self.latency_ms, latency_ms, alpha)
        self.samples += 1

    def observe_ttft(self, ttft_ms: float, alpha: float) -> None:
        self.ttft_ms = _ewma(self.ttft_ms, ttft_ms, alpha)
        self.ttft_samples += 1

    @property
    def error_rate(self) -> float:
        """Share of the deployment's own failures among all verdicts so far (0 before any)."""
        total = self.successes + self.failures
        return self.failures / total if total else 0.0

    def snapshot(self) -> dict[str, Any]:
        out: dict[str, Any] = self.breaker.snapshot()
        out.update(
            ttft_ms=_round(self.ttft_ms),
            latency_ms=_round(self.latency_ms),
            samples=self.samples,
            successes=self.successes,
            failures=self.failures,
            client_errors=self.client_errors,
            last_error=self.last_error,
        )
        if self.last_probe_ok is not None:
            out["probe"] = {
                "ok": self.last_probe_ok,
                "latency_ms": _round(self.last_probe_ms),
                "error": self.last_probe_error,
            }
        return out


def _ewma(current: float | None, sample: float, alpha: float) -> float:
    """The first sample is the average; each later one moves it by `alpha` of the difference."""
    if current is None:
        return float(sample)
    return current + alpha * (sample - current)


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 1)


#: Failure codes meaning the upstream did not answer at all: a probe that gets an answer again
#: shows it is back.
_UNREACHABLE = frozenset({"upstream_connection_error", "upstream_auth_error"})


class HealthRegistry:
    """The live stats and breaker of every deployment, by name. Unknown names get fresh entries
    (a deployment added by a reload starts closed, with no data)."""

    __slots__ = ("cfg", "_clock", "_alpha", "_stats")

    def __init__(self, cfg: RoutingConfig, names: Iterable[str] = (), clock: Clock = time.monotonic) -> None:
        self.cfg = cfg
        self._clock = clock
        self._alpha = cfg.ewma_alpha
        self._stats: dict[str, LiveStats] = {}
        for name in names:
            self.stats(name)

    def stats(self, name: str) -> LiveStats:
        s = self._stats.get(name)
        if s is None:
            s = self._stats[name] = LiveStats(CircuitBreaker(self.cfg.circuit_breaker, self._clock))
        return s

    def names(self) -> list[str]:
        return list(self._stats)

    def state(self, name: str) -> CircuitState:
        return self.stats(name).breaker.state

    def available(self, name: str) -> bool:
        """Would `allow` let a request through now? (No trial slot is taken.)"""
        return self.stats(name).breaker.available()

    def allow(self, name: str) -> bool:
        """Whether the breaker lets a request through now; when half-open this reserves one of
        the trial slots, so every `True` must be followed by `record_success`, `record_failure`
        or `release`."""
        return self.stats(name).breaker.allow()

    def release(self, name: str) -> None:
        """The allowed request never got a verdict (queue timeout, budget spent, cancelled)."""
        self.stats(name).breaker.release()

    def record_success(self, name: str, latency_ms: float, ttft_ms: float | None = None) -> None:
        s = self.stats(name)
        s.successes += 1
        s.observe_latency(latency_ms, self._alpha)
        if ttft_ms is not None:
            s.observe_ttft(ttft_ms, self._alpha)
        s.breaker.on_success()

    def record_failure(
        self, name: str, error_code: str, counts_for_breaker: bool, *, latency_ms: float | None = None
    ) -> None:
        """A failed attempt. `counts_for_breaker=False` for errors the client caused (a 400 for
        its own malformed request): they neither open the breaker nor count as the deployment's
        failures. `latency_ms`, when given (a timeout), also feeds the latency average, so the
        `speed` strategy learns that the deployment became slow."""
        s = self.stats(name)
        s.last_error = error_code
        s.last_error_at = self._clock()
        if not counts_for_breaker:
            s.client_errors += 1
            s.breaker.release()
            return
        s.failures += 1
        if latency_ms is not None:
            s.observe_latency(latency_ms, self._alpha)
        s.breaker.on_failure()

    def record_probe(self, name: str, ok: bool, latency_ms: float | None = None, error: str | None = None) -> None:
        """A background probe's result. A success moves an open breaker to half-open at once
        when the probe is evidence of recovery: the previous probe had failed too (the outage
        was visible to probes), or the breaker opened on connection errors (nothing answered at
        all). A model listing that kept answering while chat requests hung or failed proves
        nothing, so then the cooldown decides. A failed probe changes nothing: some upstreams
        fail the model listing while still serving chat, and such a probe must not keep a
        working deployment out of rotation."""
        s = self.stats(name)
        was_failing = s.last_probe_ok is False
        s.last_probe_ok = ok
        s.last_probe_ms = latency_ms
        s.last_probe_error = error
        s.last_probe_at = self._clock()
        evidence = was_failing or s.last_error in _UNREACHABLE
        if ok and evidence and s.breaker.recover_early():
            log.info("deployment %s answered a health probe: circuit half-open", name)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Every deployment's state and numbers, JSON-ready (for /ready and explain)."""
        return {name: s.snapshot() for name, s in self._stats.items()}


class HealthMonitor:
    """Probes every deployment in the background with `provider.health()`.

    One task per deployment, each probing, then sleeping the interval (± `jitter`), so probes of
    one deployment never overlap; the first probe of each comes at a random point of the first
    interval, which spreads the probes of many deployments over time. A semaphore bounds how many
    probes run at once, and each has a timeout. `stop()` cancels and awaits all tasks."""

    def __init__(
        self,
        registry: HealthRegistry,
        *,
        interval_s: float | None = None,
        timeout_s: float = 5.0,
        max_concurrent: int = 8,
        jitter: float = 0.1,
        rng: random.Random | None = None,
    ) -> None:
        self.registry = registry
        self.interval_s = registry.cfg.health_probe_interval_s if interval_s is None else interval_s
        self.timeout_s = timeout_s
        self.jitter = jitter
        self._max_concurrent = max_concurrent
        self._rng = rng or random.Random()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._stopping = False
        self._gate: asyncio.Semaphore | None = None

    @property
    def running(self) -> bool:
        return bool(self._tasks)

    def start(self, providers: Mapping[str, Provider]) -> None:
        """Start probing (on the running event loop). An interval of 0 disables probes."""
        if self._tasks:
            raise RuntimeError("health monitor already started")
        if self.interval_s <= 0:
            return
        self._gate = asyncio.Semaphore(self._max_concurrent)
        for name, provider in providers.items():
            self._tasks[name] = asyncio.create_task(self._loop(name, provider), name=f"health-probe:{name}")

    async def stop(self) -> None:
        self._stopping = True  # a loop that missed its cancellation still ends at its next turn
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._stopping = False

    async def _loop(self, name: str, provider: Provider) -> None:
        await asyncio.sleep(self._rng.uniform(0.0, self.interval_s))
        while not self._stopping:
            await self.probe(name, provider)
            spread = 1.0 + self.jitter * (2.0 * self._rng.random() - 1.0)
            await asyncio.sleep(self.interval_s * spread)

    async def probe(self, name: str, provider: Provider) -> bool:
        """Probe one deployment now and record the result; returns whether it answered."""
        if self._gate is None:  # also usable without start(), e.g. for one on-demand probe
            self._gate = asyncio.Semaphore(self._max_concurrent)
        async with self._gate:
            try:
                # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a cancellation
                # that arrives as the probe completes, and the monitor would never stop.
                async with asyncio.timeout(self.timeout_s):
                    health = await provider.health()
            except TimeoutError:
                self.registry.record_probe(name, False, error=f"probe timed out after {self.timeout_s:g} s")
                return False
            except Exception as exc:  # noqa: BLE001 - a broken adapter must not end the monitor
                log.warning("health probe of %s raised %s", name, type(exc).__name__)
                self.registry.record_probe(name, False, error=f"probe failed: {type(exc).__name__}")
                return False
        self.registry.record_probe(name, health.ok, health.latency_ms, health.error)
        return health.ok
