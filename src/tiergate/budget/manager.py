"""Admission and settlement: rate limits and budgets for one request (pipeline stages `admit` and
`settle`).

Scopes. A request is counted in every scope that applies to it: `global` (the `budgets` section),
its key's team (`teams.<name>`) and its key (`key:<id>`, the key's own budgets and limits). The
config gives global and team limits; the admin API can override a scope (`budgets` table), which
then replaces the config's entry for that scope.

Admission, in order:
1. Rate limits: requests and tokens per minute of each scope, all-or-nothing (a refused request
   counts nowhere). Tokens are counted at admission as the prompt estimate plus `max_tokens` (the
   configured estimate when the request sets none), as OpenAI counts them. Over a limit: 429
   `rate_limit_exceeded` with `Retry-After`. The most constraining limit's numbers become the
   `x-ratelimit-*` headers of the answer.
2. Budgets (seed 002's rules, for each daily/monthly budget of each scope):
   - less than `emergency_below` (10 %) left of any of them, or `emergency_local_only`: only
     zero-cost or local deployments stay candidates;
   - a candidate whose estimated maximum cost exceeds `max_request_share` (5 %) of what is left
     of a budget is dropped;
   - the request then reserves the highest estimated maximum among the remaining candidates
     (whichever of them answers, it cannot cost more), in all its budgets at once; if any has no
     room, only zero-cost candidates remain, and with none left the answer is 429
     `budget_exceeded` naming the budget and when it resets.
   At `alert_threshold` (80 %) of a budget an alert goes out once per budget period: a log event,
   a counter, and the optional webhook.
3. Settlement (after the answer, or the failure): the reservation is released and the actual cost
   added; a request that failed before any tokens costs nothing.

When the counter store (Redis or the shared database) cannot be reached, each budget's
`on_store_unavailable` decides: `refuse` (default: 503, nothing is sent) or `allow` (admit
uncounted, with a warning).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import orjson

from ..config.models import Deployment, Limits, Settings
from ..errors import GatewayError, RateLimitError, ServiceUnavailableError
from ..routing.eligible import Exclusion
from ..routing.router import DeploymentBusyError
from .counters import (
    Counters,
    CounterStoreUnavailable,
    RateLimit,
    RateResult,
    RateState,
    Reservation,
    Window,
    WindowUsage,
    to_nano,
    to_usd,
)
from .policies import Policies
from .pricing import is_free, max_cost_nano, pico_per_token
from .windows import WindowClock, period_of, scope_of

if TYPE_CHECKING:
    from ..auth import Principal

log = logging.getLogger("tiergate.budget")

_EMPTY: dict[str, str] = {}


class BudgetExceededError(GatewayError):
    status = 429
    type = "insufficient_quota"
    code = "budget_exceeded"

    def __init__(self, message: str, *, budget: dict[str, Any] | None = None, retry_after_s: float | None = None):
        headers = {"retry-after": str(max(1, int(retry_after_s)))} if retry_after_s else None
        super().__init__(message, headers=headers)
        self.budget = budget

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        if self.budget is not None:
            out["error"]["budget"] = self.budget
        return out


class DeploymentQuotaError(DeploymentBusyError):
    """A deployment's own requests/tokens per minute (its upstream quota) are used up: fall back."""

    upstream_status = 429

    def __init__(self, message: str, *, deployment: str, retry_after: float) -> None:
        super().__init__(message, deployment=deployment)
        self.retry_after = retry_after
        self.status = 429
        self.code = "deployment_rate_limited"


@dataclass(slots=True)
class Admission:
    """What one request holds: its reservation and the rate-limit headers of its answer."""

    request_id: str
    windows: tuple[Window, ...] = ()
    reserved_nano: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    emergency: bool = False
    settled: bool = False


@dataclass(slots=True)
class Scope:
    name: str
    limits: Limits


def _fmt_duration(seconds: float) -> str:
    """OpenAI's reset format: `1s`, `6m0s`, `20ms`, `1h2m3s`."""
    if seconds < 1:
        return f"{max(0, int(seconds * 1000))}ms"
    total = int(seconds + 0.999)
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    if h:
        return f"{h}h{m}m{s}s"
    if m:
        return f"{m}m{s}s"
    return f"{s}s"


def _rate_headers(states: Sequence[RateState], limits: Sequence[RateLimit]) -> dict[str, str]:
    """x-ratelimit-{limit,remaining,reset}-{requests,tokens}: the most constraining limit of each
    kind (fewest remaining)."""
    out: dict[str, str] = {}
    for kind, suffix in (("requests", "|rpm"), ("tokens", "|tpm")):
        best: RateState | None = None
        for st, lim in zip(states, limits):
            if lim.id.endswith(suffix) and (best is None or st.remaining < best.remaining):
                best = st
        if best is not None:
            out[f"x-ratelimit-limit-{kind}"] = str(best.limit)
            out[f"x-ratelimit-remaining-{kind}"] = str(best.remaining)
            out[f"x-ratelimit-reset-{kind}"] = _fmt_duration(best.reset_s)
    return out


def _describe_scope(scope: str) -> str:
    if scope == "global":
        return "the gateway's"
    kind, _, name = scope.partition(":")
    return f"{kind} {name}'s"


class BudgetManager:
    def __init__(
        self,
        settings: Settings,
        counters: Counters,
        *,
        policies: Policies,
        clock: Callable[[], float] = time.time,
        redis: Any = None,
        backend: str = "memory",
        seed: Callable[[Window, datetime], Any] | None = None,
    ) -> None:
        self.cfg = settings.budgets
        self.counters = counters
        self.policies = policies
        self.clock = clock
        self.backend = backend
        self.windows = WindowClock(self.cfg.timezone)
        self._redis = redis
        self._redis_prefix = settings.redis.prefix
        self._seed = seed  # async (window, start) -> spent_nano from the request log
        self._seeded: set[str] = set()
        self._alerted: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._prices = {d.name: pico_per_token(d) for d in settings.deployments}  # int math per request
        self._quota = {
            d.name: d for d in settings.deployments if d.rpm is not None or d.tpm is not None
        }
        self.stats: dict[str, int] = {
            "alerts": 0, "rate_limited": 0, "budget_exceeded": 0, "emergency": 0,
            "store_unavailable": 0, "uncounted": 0, "deployment_rate_limited": 0,
        }
        self._settle_now: Callable[[str, Sequence[Window], int, float], None] | None = getattr(
            counters, "settle_now", None
        )
        self._webhook = self.cfg.alert_webhook
        self._session: Any = None

    # ------------------------------------------------------------------ scopes
    def scopes(self, principal: Principal) -> list[Scope]:
        out: list[Scope] = []
        g = self.policies.get("global")
        if g is not None:
            out.append(Scope("global", g))
        if principal.team:
            t = self.policies.get(f"team:{principal.team}")
            if t is not None:
                out.append(Scope(f"team:{principal.team}", t))
        key = principal.key
        if key is not None and (key.daily_usd is not None or key.monthly_usd is not None or key.rpm or key.tpm):
            out.append(Scope(f"key:{key.id}", Limits(
                daily_usd=key.daily_usd, monthly_usd=key.monthly_usd, rpm=key.rpm, tpm=key.tpm,
            )))
        return out

    def _refuse_on_outage(self, scopes: Sequence[Scope]) -> bool:
        return any((s.limits.on_store_unavailable or self.cfg.on_store_unavailable) == "refuse" for s in scopes)

    def _outage(self, scopes: Sequence[Scope], what: str) -> None:
        """The counter store is down: refuse (503) or note the uncounted admission."""
        self.stats["store_unavailable"] += 1
        if self._refuse_on_outage(scopes):
            raise ServiceUnavailableError(
                f"the {self.backend} store that counts {what} cannot be reached; the request was refused "
                "rather than admitted uncounted, and nothing was sent upstream (on_store_unavailable: refuse)",
                code="budget_store_unavailable",
            )
        self.stats["uncounted"] += 1
        log.warning("budget store unreachable: %s admitted uncounted (on_store_unavailable: allow)", what)

    # ------------------------------------------------------------------ admit
    async def admit(
        self,
        request_id: str,
        principal: Principal,
        candidates: list[Deployment],
        prompt_tokens: int,
        max_tokens: int | None,
        *,
        dry_run: bool = False,
    ) -> tuple[list[Deployment], list[Exclusion], Admission | None]:
        """Rate limits, then budgets: the candidates the request may use, the exclusions (for the
        decision trace) and what it holds. `dry_run` (explain) counts and reserves nothing.

        Round trips are what cost with Redis, so the reservation is made first, for the most any
        candidate can cost, and the rules are then applied to the usage it returns (as it was
        before this reservation); with Redis the rate-limit check and the reservation go out
        together. A request whose candidates are all free touches no budget counter."""
        scopes = self.scopes(principal)
        if not scopes:
            return candidates, [], None
        now = self.clock()
        out_tokens = max_tokens if max_tokens is not None else self.cfg.estimate_max_tokens
        adm = Admission(request_id)
        limits = self._limits(scopes, prompt_tokens + out_tokens)
        windows = self._windows(scopes, now)
        prices = self._prices
        estimates = {
            d.name: max_cost_nano(prices[d.name] if d.name in prices else pico_per_token(d), prompt_tokens, out_tokens)
            for d in candidates if not is_free(d)
        }
        nano = max(estimates.values(), default=0) if windows and not dry_run else 0
        if windows and estimates:
            try:
                await self._ensure_seeded(windows)
            except CounterStoreUnavailable:
                self._outage(scopes, "budgets")
                windows, estimates, nano = [], {}, 0
        rate, res = await self._count(request_id, limits, windows if estimates else [], nano, now, dry_run, scopes)
        if rate is not None:
            adm.headers = _rate_headers(rate.states, limits)
            if not rate.ok and not dry_run:
                if res is not None and res.ok:
                    self._spawn(self._settle(Admission(request_id, tuple(windows), nano), 0))
                raise self._rate_limited(rate, limits, adm)
        if res is None:  # no budget applies, all candidates are free, or the store is down (allowed)
            return candidates, [], (None if dry_run else adm)
        usage = res.usage
        if res.ok and nano:  # the rules judge the state before this request's own reservation
            usage = tuple(WindowUsage(u.id, u.limit_nano, u.spent_nano, u.reserved_nano - nano) for u in usage)
        kept, excluded = self._apply_rules(adm, candidates, usage, windows, estimates, now)
        if dry_run:
            return kept, excluded, None
        paid = [d for d in kept if d.name in estimates]
        if res.ok:
            need = max((estimates[d.name] for d in paid), default=0)
            if need < nano:  # the rules dropped the priciest candidates: reserve only what is left
                await self._settle(Admission(request_id, tuple(windows), nano), 0)
                if not need:
                    return kept, excluded, adm
                try:
                    res = await self.counters.reserve(request_id, windows, need, self.cfg.reservation_ttl_s, now)
                except CounterStoreUnavailable:
                    self._outage(scopes, "budgets")
                    return kept, excluded, adm
                nano = need
        if res.ok:
            adm.windows, adm.reserved_nano = tuple(windows), nano
            self._check_alerts(res.usage, windows, now)
            return kept, excluded, adm
        free = [d for d in kept if d.name not in estimates]
        i = next(i for i, w in enumerate(windows) if w.id == res.refused_by)
        if not free:
            self.stats["budget_exceeded"] += 1
            raise self._exceeded(windows[i], res.usage[i], now, "has no room for this request's estimated "
                                 f"maximum of ${to_usd(nano):.6f}")
        excluded += [Exclusion(d.name, self._no_room(d, windows[i]), "budget") for d in paid]
        return free, excluded, adm

    def _limits(self, scopes: Sequence[Scope], tokens: int) -> list[RateLimit]:
        limits: list[RateLimit] = []
        for s in scopes:
            if s.limits.rpm:
                limits.append(RateLimit(f"{s.name}|rpm", s.limits.rpm, 1))
            if s.limits.tpm:
                limits.append(RateLimit(f"{s.name}|tpm", s.limits.tpm, tokens))
        return limits

    def _windows(self, scopes: Sequence[Scope], now: float) -> list[Window]:
        windows: list[Window] = []
        for s in scopes:
            if s.limits.daily_usd is not None:
                windows.append(self.windows.window(s.name, "daily", s.limits.daily_usd, now))
            if s.limits.monthly_usd is not None:
                windows.append(self.windows.window(s.name, "monthly", s.limits.monthly_usd, now))
        return windows

    async def _count(
        self, request_id: str, limits: list[RateLimit], windows: list[Window], nano: int, now: float,
        dry: bool, scopes: Sequence[Scope],
    ) -> tuple[RateResult | None, Reservation | None]:
        """The rate-limit hit and the reservation (or, for explain or nothing to reserve, the
        usage), concurrently when both go to Redis."""
        c = self.counters
        rate_op = (c.peek if dry else c.hit)(limits, now) if limits else None
        if windows:
            budget_op = c.reserve(request_id, windows, nano, self.cfg.reservation_ttl_s, now) if nano else None
            if budget_op is None:
                budget_op = self._usage_as_reservation(windows, now)
        else:
            budget_op = None
        rate: RateResult | None = None
        res: Reservation | None = None
        if rate_op is not None and budget_op is not None and self.backend == "redis":
            rate_out, res_out = await asyncio.gather(rate_op, budget_op, return_exceptions=True)
        else:
            rate_out = res_out = None
            if rate_op is not None:
                try:
                    rate_out = await rate_op
                except CounterStoreUnavailable as exc:
                    rate_out = exc
                if isinstance(rate_out, RateResult) and not rate_out.ok and not dry and budget_op is not None:
                    budget_op.close()  # refused: nothing to reserve
                    budget_op = None
            if budget_op is not None:
                try:
                    res_out = await budget_op
                except CounterStoreUnavailable as exc:
                    res_out = exc
        for out in (rate_out, res_out):
            if isinstance(out, BaseException) and not isinstance(out, CounterStoreUnavailable):
                raise out
        if isinstance(rate_out, CounterStoreUnavailable):
            self._outage(scopes, "rate limits")
        elif rate_out is not None:
            rate = rate_out
        if isinstance(res_out, CounterStoreUnavailable):
            self._outage(scopes, "budgets")
        elif res_out is not None:
            res = res_out
        return rate, res

    async def _usage_as_reservation(self, windows: Sequence[Window], now: float) -> Reservation:
        usage = await self.counters.usage(windows, now)
        return Reservation(True, usage)

    def _rate_limited(self, res: RateResult, limits: Sequence[RateLimit], adm: Admission) -> RateLimitError:
        self.stats["rate_limited"] += 1
        i = next(i for i, lim in enumerate(limits) if lim.id == res.refused_by)
        lim, st = limits[i], res.states[i]
        scope, _, kind = lim.id.rpartition("|")
        unit = "requests" if kind == "rpm" else "tokens"
        if lim.cost > lim.limit:
            msg = (f"this request needs ~{lim.cost} tokens (prompt estimate + max_tokens), more than "
                   f"{_describe_scope(scope)} limit of {lim.limit} tokens per minute allows at all; "
                   "lower max_tokens or the prompt")
        else:
            msg = (f"rate limit reached: {_describe_scope(scope)} limit is {lim.limit} {unit} per minute "
                   f"({st.remaining} left); retry in {_fmt_duration(st.retry_after_s)}")
        headers = {**adm.headers, "retry-after": str(max(1, int(st.retry_after_s + 0.999)))}
        return RateLimitError(msg, headers=headers)

    def _apply_rules(
        self, adm: Admission, candidates: list[Deployment], usage: Sequence[WindowUsage], windows: Sequence[Window],
        estimates: dict[str, int], now: float,
    ) -> tuple[list[Deployment], list[Exclusion]]:
        """Emergency mode and the per-request share (see the module docstring)."""
        low = [
            (w, u) for w, u in zip(windows, usage)
            if u.remaining_nano < w.limit_nano * self.cfg.emergency_below or u.remaining_nano == 0
        ]
        emergency = self.cfg.emergency_local_only or bool(low)
        cap_nano = min(u.remaining_nano for u in usage) * self.cfg.max_request_share
        kept: list[Deployment] = []
        excluded: list[Exclusion] = []
        for d in candidates:
            est = estimates.get(d.name, 0)
            free = d.name not in estimates
            if emergency and not (free or d.location == "local"):
                if self.cfg.emergency_local_only and not low:
                    why = "budgets.emergency_local_only is on: only zero-cost and local deployments are used"
                else:
                    w, u = low[0]
                    why = (f"less than {self.cfg.emergency_below:.0%} of {_describe_scope(scope_of(w))} "
                           f"{period_of(w)} budget is left (${to_usd(u.remaining_nano):.4f} of "
                           f"${to_usd(w.limit_nano):.2f}): only zero-cost and local deployments are used")
                excluded.append(Exclusion(d.name, why, "budget"))
                continue
            if not free:
                if est > cap_nano:
                    excluded.append(Exclusion(
                        d.name,
                        f"{d.name}'s estimated maximum of ${to_usd(est):.6f} exceeds "
                        f"{self.cfg.max_request_share:.0%} of what remains of the tightest budget "
                        f"(${to_usd(int(cap_nano / self.cfg.max_request_share)):.6f}; budgets.max_request_share)",
                        "budget",
                    ))
                    continue
            kept.append(d)
        if emergency:
            adm.emergency = True
            self.stats["emergency"] += 1
        if not kept:
            self.stats["budget_exceeded"] += 1
            # Name the budget that caused it: the tightest one.
            i = min(range(len(usage)), key=lambda j: usage[j].remaining_nano / max(1, windows[j].limit_nano))
            reason = excluded[0].reason if excluded else "has no room"
            raise self._exceeded(windows[i], usage[i], now, f"leaves no deployment this request may use ({reason})")
        return kept, excluded

    def _no_room(self, d: Deployment, w: Window) -> str:
        return f"{_describe_scope(scope_of(w))} {period_of(w)} budget has no room for {d.name}'s estimated maximum"

    def _exceeded(self, w: Window, u: WindowUsage, now: float, why: str) -> BudgetExceededError:
        scope, period = scope_of(w), period_of(w)
        resets = datetime.fromtimestamp(w.ends_at, self.windows.tz)
        budget = {
            "scope": scope,
            "period": period,
            "limit_usd": f"{to_usd(w.limit_nano):.2f}",
            "spent_usd": f"{to_usd(u.spent_nano):.6f}",
            "reserved_usd": f"{to_usd(u.reserved_nano):.6f}",
            "resets_at": resets.isoformat(),
        }
        msg = (f"{_describe_scope(scope)} {period} budget of ${to_usd(w.limit_nano):.2f} {why}: "
               f"${to_usd(u.spent_nano):.4f} spent, ${to_usd(u.reserved_nano):.4f} reserved by requests in "
               f"flight; it resets at {resets.isoformat()} ({self.cfg.timezone})")
        return BudgetExceededError(msg, budget=budget, retry_after_s=w.ends_at - now)

    # ------------------------------------------------------------------ seed and alerts
    async def _ensure_seeded(self, windows: Sequence[Window]) -> None:
        """A process that keeps counters in memory (or a Redis that lost them) starts each
        window from the request log's spend since the window began."""
        if self._seed is None:
            return
        todo = [w for w in windows if w.id not in self._seeded]
        if not todo:
            return
        spent: dict[Window, int] = {}
        for w in todo:
            spent[w] = await self._seed(w, self.windows.start_of(w))
        await self.counters.seed(spent)
        self._seeded.update(w.id for w in todo)

    def _check_alerts(self, usage: Sequence[WindowUsage], windows: Sequence[Window], now: float) -> None:
        for w, u in zip(windows, usage):
            if w.id in self._alerted or w.limit_nano == 0:
                continue
            used = u.spent_nano + u.reserved_nano
            if used >= w.limit_nano * self.cfg.alert_threshold:
                self._alerted.add(w.id)
                self._spawn(self._alert(w, u))

    async def _alert(self, w: Window, u: WindowUsage) -> None:
        if self._redis is not None:  # one alert per budget period across replicas
            try:
                first = await self._redis.set(
                    f"{self._redis_prefix}:alerted:{w.id}", b"1", nx=True, exat=int(w.ends_at) + 86400
                )
            except Exception:
                first = True
            if not first:
                return
        self.stats["alerts"] += 1
        event = {
            "event": "budget_alert",
            "scope": scope_of(w),
            "period": period_of(w),
            "threshold": self.cfg.alert_threshold,
            "limit_usd": f"{to_usd(w.limit_nano):.2f}",
            "spent_usd": f"{to_usd(u.spent_nano):.6f}",
            "reserved_usd": f"{to_usd(u.reserved_nano):.6f}",
            "used_share": round((u.spent_nano + u.reserved_nano) / w.limit_nano, 4),
            "resets_at": datetime.fromtimestamp(w.ends_at, self.windows.tz).isoformat(),
            "at": datetime.now(UTC).isoformat(),
        }
        log.warning("budget_alert %s", orjson.dumps(event).decode())
        if self._webhook:
            await self._post_webhook(event)

    async def _post_webhook(self, event: dict[str, Any]) -> None:
        import aiohttp

        try:
            if self._session is None:
                self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
            async with self._session.post(self._webhook, data=orjson.dumps(event),
                                          headers={"content-type": "application/json"}) as resp:
                if resp.status >= 400:
                    log.warning("budget alert webhook answered HTTP %d", resp.status)
        except Exception as exc:  # an alert must never fail a request
            log.warning("budget alert webhook failed: %s", type(exc).__name__)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ settle
    def settle(self, adm: Admission | None, actual_usd: Decimal | None) -> None:
        """Release the reservation and add the actual cost (in the background: the answer does
        not wait for the counter store)."""
        if adm is None or adm.settled or not adm.windows:
            return
        adm.settled = True
        actual = to_nano(actual_usd) if actual_usd else 0
        if self._settle_now is not None:  # in-process counters: nothing to wait for
            self._settle_now(adm.request_id, adm.windows, actual, self.clock())
            return
        self._spawn(self._settle(adm, actual))

    async def _settle(self, adm: Admission, actual_nano: int) -> None:
        try:
            await self.counters.settle(adm.request_id, adm.windows, actual_nano, self.clock())
        except CounterStoreUnavailable:
            self.stats["store_unavailable"] += 1
            log.warning("budget store unreachable: a settlement was lost (the request log keeps the cost; "
                        "the reservation expires after budgets.reservation_ttl_s)")

    # ------------------------------------------------------------------ deployment quotas
    def has_quota(self, d: Deployment) -> bool:
        return d.name in self._quota

    async def deployment_quota(self, d: Deployment, tokens: int) -> None:
        """Count one attempt at `d` against its rpm/tpm; over the quota -> fall back."""
        limits: list[RateLimit] = []
        if d.rpm:
            limits.append(RateLimit(f"deployment:{d.name}|rpm", d.rpm, 1))
        if d.tpm:
            limits.append(RateLimit(f"deployment:{d.name}|tpm", d.tpm, tokens))
        try:
            res = await self.counters.hit(limits, self.clock())
        except CounterStoreUnavailable:
            self.stats["store_unavailable"] += 1
            return  # an upstream quota is the upstream's to enforce: try it
        if not res.ok:
            self.stats["deployment_rate_limited"] += 1
            i = next(i for i, lim in enumerate(limits) if lim.id == res.refused_by)
            st = res.states[i]
            unit = "requests" if limits[i].id.endswith("rpm") else "tokens"
            raise DeploymentQuotaError(
                f"{d.name} reached its quota of {limits[i].limit} {unit} per minute; frees in "
                f"{_fmt_duration(st.retry_after_s)}",
                deployment=d.name, retry_after=st.retry_after_s,
            )

    # ------------------------------------------------------------------ status
    async def status(self, scopes: Sequence[Scope]) -> list[dict[str, Any]]:
        """Each budget of `scopes` now: limit, spent, reserved, remaining, reset (admin API)."""
        now = self.clock()
        windows = self._windows(scopes, now)
        if not windows:
            return []
        await self._ensure_seeded(windows)
        usage = await self.counters.usage(windows, now)
        out = []
        for w, u in zip(windows, usage):
            out.append({
                "scope": scope_of(w),
                "period": period_of(w),
                "window": w.id,
                "limit_usd": f"{to_usd(w.limit_nano):.2f}",
                "spent_usd": f"{to_usd(u.spent_nano):.6f}",
                "reserved_usd": f"{to_usd(u.reserved_nano):.6f}",
                "remaining_usd": f"{to_usd(u.remaining_nano):.6f}",
                "used_share": round((u.spent_nano + u.reserved_nano) / w.limit_nano, 4) if w.limit_nano else 1.0,
                "emergency": w.limit_nano == 0 or u.remaining_nano < w.limit_nano * self.cfg.emergency_below,
                "resets_at": datetime.fromtimestamp(w.ends_at, self.windows.tz).isoformat(),
            })
        return out

    async def close(self) -> None:
        for t in list(self._tasks):
            try:
                await asyncio.wait_for(asyncio.shield(t), 2.0)
            except Exception:
                pass
        if self._session is not None:
            await self._session.close()
        await self.counters.close()


__all__ = ["Admission", "BudgetExceededError", "BudgetManager", "DeploymentQuotaError", "Reservation", "Scope"]
