"""The routing engine as the pipeline uses it: eligibility by constraints and live health, the
strategy a request gets, the order of its candidates, and each attempt's admission and outcome.

    filter     constraints (routing/constraints.py), routing.allowed_locations, open circuits
    strategy   header x-tiergate-strategy > metadata.strategy > constraints.optimize
               > routing.group_strategies[group] > routing.default_strategy
    order      routing/strategies.py (auto_route via routing/auto.py), then an experiment's arm
               first (routing/experiments.py)
    attempts   circuit breaker admission, concurrency slot with a bounded wait, per-attempt
               timeout within the failover budget, retries with backoff on the last candidate,
               outcome into live health (EWMA, breaker) and the learning statistics

Everything per request is synchronous and in memory except the awaits on slots and upstreams.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Mapping, Protocol, Sequence, TypeVar

from ..config.models import STRATEGIES, Deployment, Settings
from ..errors import (
    AllCandidatesFailedError,
    InvalidRequestError,
    UpstreamError,
    UpstreamTimeoutError,
)
from .auto import TaskProfile, classify
from .constraints import RequestNeeds, check
from .eligible import Exclusion
from .experiments import assign, order_with_arm, sticky_id_for
from .health import HealthMonitor, HealthRegistry
from .learning import Learner
from .limiter import Limiter, QueueTimeout
from .retry import FailoverBudget, backoff_delay
from .strategies import RankContext, Ranked, rank

T = TypeVar("T")
_FALLBACK_RESERVE_S = 10.0
_MIN_ATTEMPT_S = 0.05


class Attempts(Protocol):
    """What a request keeps of its attempts (the pipeline's per-request state)."""

    attempts: list[UpstreamError]
    upstream_s: float

#: `constraints.optimize` (the seeds' SDK word) -> strategy.
OPTIMIZE = {
    "cost": "cost_optimized", "cheap": "cost_optimized", "quality": "quality", "speed": "speed",
    "latency": "speed", "throughput": "throughput", "local": "local_first", "balanced": "balanced",
    "learned": "learned",
}


class DeploymentBusyError(UpstreamError):
    """No concurrency slot of the deployment freed within `routing.queue_timeout_s`."""

    status = 503
    code = "deployment_busy"


class FailoverBudgetError(UpstreamTimeoutError):
    """The request's failover budget ran out during this attempt: not the deployment's fault
    (no verdict for its breaker or statistics). Reported, with every attempt, as a 504."""

    code = "failover_budget_exhausted"


class CircuitOpenError(UpstreamError):
    """The deployment's circuit opened after the request was routed (it is skipped)."""

    status = 503
    code = "circuit_open"


@dataclass(slots=True)
class Route:
    strategy: str
    order: list[Deployment]
    ranked: list[Ranked]
    profile: TaskProfile | None
    arm: str | None = None

    def explain(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ranking": [r.to_dict() for r in self.ranked]}
        if self.profile is not None:
            p = self.profile
            out["task"] = {"complexity": round(p.complexity, 3), "domain": p.domain, "class": p.task_class,
                           "features": p.features}
        if self.arm is not None:
            out["experiment_arm"] = self.arm
        return out


class Slot:
    """One admitted attempt at one deployment: the breaker's permission and the concurrency slot.
    `done` must be called exactly once (success, failure or no verdict)."""

    __slots__ = ("_router", "name", "_limiter", "t0", "_open")

    def __init__(self, router: Router, name: str, limiter: Limiter | None) -> None:
        self._router, self.name, self._limiter = router, name, limiter
        self.t0 = time.perf_counter()
        self._open = True

    def done(self, ok: bool | None, *, exc: UpstreamError | None = None, ttft_ms: float | None = None) -> None:
        """ok True/False: the attempt's verdict for live health; None: no verdict (cancelled)."""
        if not self._open:
            return
        self._open = False
        if self._limiter is not None:
            self._limiter.release()
        health = self._router.health
        latency_ms = (time.perf_counter() - self.t0) * 1000.0
        if ok:
            health.record_success(self.name, latency_ms, ttft_ms)
        elif ok is None or isinstance(exc, FailoverBudgetError):
            health.release(self.name)  # no verdict on the deployment
        else:
            counts = exc is None or exc.retryable
            timed_out = isinstance(exc, UpstreamTimeoutError)
            health.record_failure(
                self.name, exc.code if exc else "error", counts, latency_ms=latency_ms if timed_out else None
            )


class Router:
    def __init__(self, settings: Settings, providers: Mapping[str, Any], store: Any = None) -> None:
        self.cfg = cfg = settings.routing
        self._providers = providers
        names = [d.name for d in settings.deployments]
        self.health = HealthRegistry(cfg, names)
        self.monitor = HealthMonitor(self.health) if cfg.health_probe_interval_s > 0 else None
        self.learner = Learner(store) if cfg.learning else None
        self.limiters = {
            d.name: Limiter(d.max_concurrency, cfg.queue_timeout_s, name=d.name)
            for d in settings.deployments
            if d.max_concurrency
        }
        self.rng = random.Random()
        self._allowed = frozenset(cfg.allowed_locations)
        # Set by the gateway when deployments have rpm/tpm: awaited before each attempt, raises a
        # DeploymentBusyError subclass when the deployment's quota is used up (fallback).
        self.quota: Callable[[Deployment, Any], Awaitable[None]] | None = None

    async def start(self) -> None:
        if self.learner is not None:
            try:
                await self.learner.load()
            except Exception:  # noqa: BLE001 - statistics are an optimisation, never a blocker
                pass
            self.learner.start()
        if self.monitor is not None:
            self.monitor.start(dict(self._providers))

    async def close(self) -> None:
        if self.monitor is not None:
            await self.monitor.stop()
        if self.learner is not None:
            await self.learner.stop()

    # ------------------------------------------------------------------ eligibility
    def filter(self, candidates: Sequence[Deployment], needs: RequestNeeds) -> tuple[list[Deployment], list[Exclusion]]:
        ok: list[Deployment] = []
        out: list[Exclusion] = []
        for d in candidates:
            if self._allowed and d.location not in self._allowed:
                out.append(Exclusion(
                    d.name, f"{d.name}: location {d.location} not in routing.allowed_locations "
                    f"[{', '.join(sorted(self._allowed))}]", "constraint"))
                continue
            observed = self.health.stats(d.name).latency_ms if needs.max_latency_ms is not None else None
            reason = check(d, needs, observed)
            if reason is not None:
                out.append(Exclusion(d.name, reason, "constraint"))
                continue
            if not self.health.available(d.name):
                out.append(Exclusion(d.name, f"{d.name}: circuit open after repeated failures", "unavailable"))
                continue
            ok.append(d)
        return ok, out

    # ------------------------------------------------------------------ strategy and order
    def strategy(
        self, group: str, constraints: Mapping[str, Any], header: str | None, key_default: str | None = None
    ) -> str:
        """The request's strategy: header, then metadata, then the key's default, then the
        group's, then the gateway's."""
        for value, param in (
            (header, "x-tiergate-strategy"),
            (constraints.get("strategy"), "metadata.strategy"),
            (constraints.get("optimize"), "metadata.constraints.optimize"),
        ):
            if value is None:
                continue
            name = str(value).strip().lower().replace("-", "_")
            name = OPTIMIZE.get(name, name)
            if name not in STRATEGIES:
                raise InvalidRequestError(
                    f"unknown routing strategy {value!r} in {param}; use one of {', '.join(STRATEGIES)} "
                    f"(or optimize: {', '.join(sorted(OPTIMIZE))})",
                    param=param,
                )
            return name
        if key_default:
            return key_default
        return self.cfg.group_strategies.get(group, self.cfg.default_strategy)

    def route(
        self, group: str, strategy: str, eligible: list[Deployment], needs: RequestNeeds, body: Mapping[str, Any],
        *, auto: bool, key_id: str | None, explain: bool,
    ) -> Route:
        auto_cfg = self.cfg.auto_route if auto else None
        profile = classify(body, self.cfg.auto_route) if (auto or strategy == "learned") else None
        arm = None
        if strategy == "ordered" and auto_cfg is None:
            ranked = [Ranked(d, 0.0, "configured order") for d in eligible] if explain else []
            order = list(eligible)
        else:
            ctx = RankContext(
                needs=needs, profile=profile, live=self._live, learned=self._beta,
                weights=self.cfg.balanced, rng=self.rng, auto=auto_cfg,
            )
            ranked = rank(strategy, eligible, ctx)
            order = [r.deployment for r in ranked]
        experiment = self.cfg.experiments.get(group)
        if experiment is not None and len(order) > 1:
            user = body.get("user") if isinstance(body.get("user"), str) else None
            arm = assign(experiment, sticky_id_for(experiment, key_id, user), self.rng, salt=group)
            order = order_with_arm(order, arm)
        return Route(strategy, order, ranked, profile, arm)

    def _live(self, name: str) -> Any:
        return self.health.stats(name)

    def _beta(self, name: str, task_class: str) -> tuple[float, float] | None:
        return self.learner.beta(name, task_class) if self.learner is not None else None

    # ------------------------------------------------------------------ attempts
    def budget(self) -> FailoverBudget:
        return FailoverBudget(self.cfg.max_failover_s)

    async def admit(self, d: Deployment, budget: FailoverBudget) -> Slot:
        """The breaker's permission and a concurrency slot (waiting at most the queue timeout
        and the remaining budget); raises an `UpstreamError` to fall back on."""
        if not self.health.allow(d.name):
            raise CircuitOpenError(f"circuit of {d.name} is open", deployment=d.name)
        limiter = self.limiters.get(d.name)
        if limiter is not None:
            try:
                await limiter.acquire(min(self.cfg.queue_timeout_s, max(0.0, budget.remaining())))
            except QueueTimeout as exc:
                self.health.release(d.name)
                raise DeploymentBusyError(
                    f"{d.name} is busy: no concurrency slot freed within {exc.waited_s:.1f} s "
                    f"({exc.in_flight} in flight, {exc.waiting} waiting)",
                    deployment=d.name,
                ) from None
            except BaseException:
                self.health.release(d.name)
                raise
        return Slot(self, d.name, limiter)

    async def bounded(self, aw: Awaitable[T], d: Deployment, budget: FailoverBudget, *, last: bool) -> T:
        """Await an upstream call within the failover budget. The deployment's own timeout
        applies inside the adapter; while other candidates remain, an attempt may use at most
        the budget minus a reserve (half of what is left, at most 10 s) so that a hanging
        deployment still leaves the fallback time to answer."""
        remaining = budget.remaining()
        bound = remaining if last else remaining - min(remaining / 2, _FALLBACK_RESERVE_S)
        if bound >= d.timeout_s:
            return await aw
        try:
            # asyncio.timeout, not wait_for: no extra task per request on the hot path.
            async with asyncio.timeout(max(0.001, bound)):
                return await aw
        except TimeoutError:
            if last:
                raise FailoverBudgetError(
                    f"failover budget of {self.cfg.max_failover_s:g} s spent (routing.max_failover_s)",
                    deployment=d.name,
                ) from None
            raise UpstreamTimeoutError(
                f"no answer within {bound:.1f} s, the share of the failover budget this attempt may "
                "use while other candidates remain",
                deployment=d.name,
            ) from None

    def retry_delay(self, attempt: int, exc: UpstreamError, budget: FailoverBudget, last: bool) -> float | None:
        """Seconds to wait before trying the same deployment again, or None to move on. Only the
        last candidate is retried: while others remain, falling back is the better retry."""
        if not last or not exc.retryable or attempt >= self.cfg.retries.attempts:
            return None
        if isinstance(exc, (DeploymentBusyError, CircuitOpenError)):
            return None
        delay = backoff_delay(attempt, self.cfg.retries, self.rng, exc.retry_after)
        if delay is None or not budget.allows(delay):
            return None
        return delay

    async def first_success(
        self, ctx: Attempts, order: Sequence[Deployment], call: Callable[[Deployment], Awaitable[T]],
        *, hold: bool = False,
    ) -> tuple[Deployment, T, Slot]:
        """Call each candidate in order (retrying the last) until one answers. Failed attempts go
        to `ctx.attempts`, time spent on upstreams to `ctx.upstream_s`. Returns the deployment,
        its answer and its slot (already closed unless `hold`: a stream keeps its slot until it
        ends)."""
        budget = self.budget()
        for i, d in enumerate(order):
            if i and budget.remaining() < _MIN_ATTEMPT_S:
                break  # too little left for another attempt to mean anything
            last = i == len(order) - 1
            attempt = 0
            while True:
                attempt += 1
                t_up = time.perf_counter()
                slot: Slot | None = None
                try:
                    if self.quota is not None:
                        await self.quota(d, ctx)  # the deployment's own rpm/tpm (budget/manager.py)
                    slot = await self.admit(d, budget)
                    result = await self.bounded(call(d), d, budget, last=last)
                except UpstreamError as exc:
                    ctx.upstream_s += time.perf_counter() - t_up
                    if slot is not None:
                        slot.done(False, exc=exc)
                    exc.deployment = d.name
                    ctx.attempts.append(exc)
                    if not exc.retryable:
                        raise
                    delay = self.retry_delay(attempt, exc, budget, last)
                    if delay is None:
                        break
                    await asyncio.sleep(delay)
                    continue
                except BaseException:
                    if slot is not None:
                        slot.done(None)
                    raise
                ctx.upstream_s += time.perf_counter() - t_up
                if not hold:
                    slot.done(True)
                return d, result, slot
            if budget.exhausted:
                break
        raise AllCandidatesFailedError(ctx.attempts)

    # ------------------------------------------------------------------ outcomes
    def learn_failures(self, attempts: Sequence[UpstreamError], task_class: str) -> None:
        """Failed attempts that were the deployment's fault (not a full queue, not a circuit
        the gateway itself kept shut), including those a fallback hid from the client."""
        if self.learner is None:
            return
        for a in attempts:
            if a.retryable and a.deployment and not isinstance(
                a, (DeploymentBusyError, CircuitOpenError, FailoverBudgetError)
            ):
                self.learner.record(a.deployment, task_class, False, 0.0, 0.0)

    def learn(self, request_id: str, d: Deployment, task_class: str, ok: bool, latency_ms: float, cost: float) -> None:
        if self.learner is not None:
            self.learner.record(d.name, task_class, ok, latency_ms, cost)
            if ok:
                self.learner.remember(request_id, d.name, task_class)
