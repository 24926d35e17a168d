"""Routing strategies: put a request's eligible deployments in the order to try them.

`rank(strategy, candidates, ctx)` is pure and synchronous (no I/O, no clock): everything it needs
is in `RankContext` -- the request's needs, the auto_route profile, live latency statistics and
learned Beta parameters as lookup functions, the balanced weights and a seeded `random.Random`.
The first `Ranked` is tried first; the rest are the fallback chain. `Ranked.why` is rendered on
demand (only `explain` and logs read it), so ranking 50 deployments stays within microseconds.

Every strategy gives each candidate a score where higher is better; ties keep a secondary key
and then the configured order, so rankings are deterministic (except `learned`, which is random
by design and reproducible with a seeded rng):

    ordered         1 - position/(n-1): the configured fallback chain.
    local_first     local 1, sovereign 0.5, cloud 0; configured order within a location.
    cost_optimized  predicted cost (prompt tokens at the input price + max_tokens, default 1024,
                    at the output price) rescaled among the candidates: cheapest 1, dearest 0.
                    Ties: higher quality first.
    quality         the configured quality (already an absolute 0..1 scale). Ties: cheaper first.
    speed           expected latency rescaled among the candidates: fastest 1, slowest 0. The
                    latency is the live EWMA (time to first token for streams, total latency
                    otherwise) once it has a sample, else the configured `latency_ms`,
                    else a neutral default: the mean of the other candidates' known latencies
                    (1000 ms when none is known), so an undescribed deployment is neither
                    favoured nor punished.
    throughput      generation speed `throughput_tps` rescaled among the candidates: fastest 1,
                    slowest 0 (unknown: the mean of the known ones); ties: lower latency. For
                    `optimize: throughput` batches; spreading a batch over deployments is the
                    fan-out's job, this only says which deployment generates fastest.
    balanced        (w_cost * cost + w_quality * quality + w_speed * speed) / (sum of weights),
                    with cost and speed rescaled as above and quality as configured. Cost and
                    latency have no natural scale, so they are placed on one relative to the
                    candidates; quality has one, and is not stretched (0.80 vs 0.82 stays close).
    learned         Thompson sampling: a draw from Beta(alpha, beta) of (deployment, task class)
                    times a quality-per-cost factor 1 / (1 + cost / mean cost of the candidates)
                    (free 1, average-priced 0.5, 3x average 0.25). A deployment without data
                    draws from a prior centred on its configured quality, Beta(1 + 2q, 1 + 2(1-q));
                    when no candidate has data the ranking is `balanced`.

auto_route (`ctx.auto` set and a `ctx.profile`): complexity < simple_below ranks as
cost_optimized with local before sovereign before cloud among equal costs; complexity >
complex_above ranks as quality; in between the given strategy. A deployment tagged with the
profile's (non-general) domain gets `domain_boost` added to its score: with the default 0.3 a
tagged deployment wins unless an untagged one is ahead by more than 0.3 on that strategy's 0..1
scale; a boost >= 1 puts every tagged deployment first.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from math import sqrt
from statistics import NormalDist
from typing import Any, Callable, Protocol, Sequence

from ..config.models import STRATEGIES, AutoRouteConfig, BalancedWeights, Deployment
from .auto import TaskProfile
from .constraints import RequestNeeds, float_prices, usd

DEFAULT_LATENCY_MS = 1000.0
ANY_TASK_CLASS = "general"  # = learning.DEFAULT_TASK_CLASS: where outcomes without a class count
_LOCATION_SCORE = {"local": 1.0, "sovereign": 0.5, "cloud": 0.0}
_LOCATION_RANK = {"local": 0, "sovereign": 1, "cloud": 2}
_AUTO_SIMPLE = "auto_simple"


class LiveStats(Protocol):
    """What `routing/health.py` knows about one deployment from real traffic."""

    @property
    def ttft_ms(self) -> float | None: ...  # EWMA time to first token (streams)

    @property
    def latency_ms(self) -> float | None: ...  # EWMA total latency

    @property
    def samples(self) -> int: ...

    @property
    def successes(self) -> int: ...

    @property
    def failures(self) -> int: ...


@dataclass(slots=True, frozen=True)
class LiveSnapshot:
    """A plain `LiveStats` (tests, benchmarks, or a health module that returns values)."""

    ttft_ms: float | None = None
    latency_ms: float | None = None
    samples: int = 0
    successes: int = 0
    failures: int = 0


def _no_live(_name: str) -> LiveStats | None:
    return None


def _no_learned(_name: str, _task_class: str) -> tuple[float, float] | None:
    return None


@dataclass(slots=True)
class RankContext:
    needs: RequestNeeds = field(default_factory=RequestNeeds)
    profile: TaskProfile | None = None
    live: Callable[[str], LiveStats | None] = _no_live
    learned: Callable[[str, str], tuple[float, float] | None] = _no_learned
    weights: BalancedWeights = field(default_factory=BalancedWeights)
    rng: random.Random = field(default_factory=random.Random)
    auto: AutoRouteConfig | None = None


class Ranked:
    """One candidate's place in the ranking; `why` is rendered when first read."""

    __slots__ = ("deployment", "score", "_why")

    def __init__(self, deployment: Deployment, score: float, why: str | tuple[Any, ...]) -> None:
        self.deployment = deployment
        self.score = score
        self._why = why  # a string, or (note, template, args, domain boost text)

    @property
    def why(self) -> str:
        w = self._why
        if isinstance(w, tuple):
            note, fmt, args, extra = w
            w = self._why = note + fmt.format(*args) + extra
        return w

    def to_dict(self) -> dict[str, Any]:
        return {"deployment": self.deployment.name, "score": round(self.score, 6), "why": self.why}

    def __repr__(self) -> str:
        return f"Ranked({self.deployment.name!r}, {self.score:.4f}, {self.why!r})"


def task_class_of(profile: TaskProfile | None) -> str:
    """The key the learned statistics use: the profile's task class, else "general" (the class
    `routing/learning.py` records outcomes under when none is given)."""
    return profile.task_class if profile is not None else ANY_TASK_CLASS


def effective_strategy(strategy: str, ctx: RankContext) -> tuple[str, str]:
    """(the ranking actually used, the auto_route note for `why`); see the module doc."""
    auto, profile = ctx.auto, ctx.profile
    if auto is None or profile is None:
        return strategy, ""
    c = profile.complexity
    if c < auto.simple_below:
        mode, level = _AUTO_SIMPLE, f"simple < {auto.simple_below:g}"
    elif c > auto.complex_above:
        mode, level = "quality", f"complex > {auto.complex_above:g}"
    else:
        mode, level = strategy, "medium"
    shown = "cost_optimized, local first" if mode == _AUTO_SIMPLE else mode
    return mode, f"auto: complexity {c:.2f} ({level}) -> {shown}; domain {profile.domain}; "


def rank(strategy: str, candidates: Sequence[Deployment], ctx: RankContext) -> list[Ranked]:
    """The candidates best first, with each one's score and reason (see the module doc)."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown routing strategy {strategy!r}; known: {', '.join(STRATEGIES)}")
    if not candidates:
        return []
    mode, note = effective_strategy(strategy, ctx)
    scores, ties, fmt, args = _SCORERS[mode](candidates, ctx)
    boosted: set[int] = set()
    extra = ""
    if ctx.auto is not None and ctx.profile is not None and ctx.profile.domain != "general":
        boost, domain = ctx.auto.domain_boost, ctx.profile.domain
        if boost:
            extra = f" +{boost:.2f} domain {domain}"
            for i, d in enumerate(candidates):
                if domain in d.tags:
                    scores[i] += boost
                    boosted.add(i)
    keyed = list(zip([-x for x in scores], ties, range(len(scores)))) if ties is not None else list(
        zip([-x for x in scores], range(len(scores)))
    )
    keyed.sort()  # (-score, tie, position): every key is distinct, deployments are never compared
    out = []
    for k in keyed:
        i = k[-1]
        out.append(Ranked(candidates[i], scores[i], (note, fmt, args[i], extra if i in boosted else "")))
    return out


def seed_strategy(value: str) -> tuple[str, tuple[str, ...] | None]:
    """The seeds' `LLM_STRATEGY` as (strategy, allowed_locations or None).

    local    -> local_first, local only (nothing leaves the machine)
    hybrid   -> balanced, every location (pair it with auto_route: simple prompts go cheap/local,
                complex ones to quality -- that is what "hybrid" means in the seeds)
    api-only -> cost_optimized over sovereign and cloud (no local model is assumed to exist)
    """
    v = value.strip().lower().replace("_", "-")
    if v == "local":
        return "local_first", ("local",)
    if v == "hybrid":
        return "balanced", None
    if v in ("api-only", "api"):
        return "cost_optimized", ("sovereign", "cloud")
    raise ValueError(f"LLM_STRATEGY must be local, hybrid or api-only (got {value!r})")


# ----------------------------------------------------------------------------- scorers
# Each returns, for the candidates in order: scores (higher is better), tie-breaks (lower is
# better; None: the configured order decides), one str.format template for `why`, and its
# arguments per candidate.
Scored = tuple[list[float], "list[Any] | None", str, list[tuple[Any, ...]]]

def _costs(candidates: Sequence[Deployment], needs: RequestNeeds) -> list[float]:
    """Predicted USD per candidate: prompt tokens at the input price + max_tokens at the output."""
    pt, mt = needs.prompt_tokens * 1e-6, needs.max_tokens * 1e-6
    out = []
    for d in candidates:
        pin, pout = float_prices(d)
        out.append(pin * pt + pout * mt)
    return out


def _rescale_low_best(values: list[float]) -> list[float]:
    lo, hi = min(values), max(values)
    if hi <= lo:
        return [1.0] * len(values)
    inv = 1.0 / (hi - lo)
    return [(hi - v) * inv for v in values]


def _latencies(candidates: Sequence[Deployment], ctx: RankContext) -> tuple[list[float], list[str]]:
    stream = ctx.needs.stream
    live = ctx.live
    values: list[float] = []
    sources: list[str] = []
    unknown = False
    for d in candidates:
        s = live(d.name)
        if s is not None:  # each average is None until its first sample
            ttft = s.ttft_ms
            if stream and ttft is not None:
                values.append(ttft)
                sources.append("live ttft")
                continue
            total = s.latency_ms
            if total is not None:
                values.append(total)
                sources.append("live")
                continue
        if d.latency_ms is not None:
            values.append(d.latency_ms)
            sources.append("configured")
        else:
            values.append(-1.0)
            sources.append("default")
            unknown = True
    if unknown:
        known = [v for v in values if v >= 0]
        neutral = sum(known) / len(known) if known else DEFAULT_LATENCY_MS
        values = [neutral if v < 0 else v for v in values]
    return values, sources


def _ordered(candidates: Sequence[Deployment], ctx: RankContext) -> Scored:
    n = len(candidates)
    last = max(1, n - 1)
    return [1.0 - i / last for i in range(n)], None, "configured position {0}", [(i + 1,) for i in range(n)]


def _local_first(candidates: Sequence[Deployment], ctx: RankContext) -> Scored:
    locs = [d.location for d in candidates]
    return [_LOCATION_SCORE.get(loc, 0.0) for loc in locs], None, "location {0}", [(loc,) for loc in locs]


def _cost_optimized(candidates: Sequence[Deployment], ctx: RankContext) -> Scored:
    costs = _costs(candidates, ctx.needs)
    scores = _rescale_low_best(costs)
    qs = [d.quality for d in candidates]
    return (
        scores, [-q for q in qs], "predicted cost {0} (cost score {1:.2f}), quality {2:g}",
        list(zip(map(_Usd, costs), scores, qs)),
    )


def _auto_simple(candidates: Sequence[Deployment], ctx: RankContext) -> Scored:
    costs = _costs(candidates, ctx.needs)
    scores = _rescale_low_best(costs)
    ties = [(_LOCATION_RANK.get(d.location, 3), -d.quality) for d in candidates]
    return (
        scores, ties, "predicted cost {0} (cost score {1:.2f}), {2}",
        list(zip(map(_Usd, costs), scores, [d.location for d in candidates])),
    )


def _quality(candidates: Sequence[Deployment], ctx: RankContext) -> Scored:
    costs = _costs(candidates, ctx.needs)
    qs = [d.quality for d in candidates]
    return qs, costs, "quality {0:g}, predicted cost {1}", list(zip(qs, map(_Usd, costs)))


def _speed(candidates: Sequence[Deployment], ctx: RankContext) -> Scored:
    lats, sources = _latencies(candidates, ctx)
    scores = _rescale_low_best(lats)
    return scores, None, "latency {0:.0f} ms ({1}), speed score {2:.2f}", list(zip(lats, sources, scores))


def _throughput(candidates: Sequence[Deployment], ctx: RankContext) -> Scored:
    known = [d.throughput_tps for d in candidates if d.throughput_tps is not None]
    neutral = sum(known) / len(known) if known else 0.0
    tps = [d.throughput_tps if d.throughput_tps is not None else neutral for d in candidates]
    scores = _rescale_low_best([-v for v in tps])
    lats, sources = _latencies(candidates, ctx)
    notes = ["" if d.throughput_tps is not None else " (unknown: mean)" for d in candidates]
    return (
        scores, lats, "throughput {0:.0f} tokens/s{1}, latency {2:.0f} ms ({3})",
        list(zip(tps, notes, lats, sources)),
    )


def _balanced(candidates: Sequence[Deployment], ctx: RankContext) -> Scored:
    w = ctx.weights
    total = w.cost + w.quality + w.speed
    wc, wq, ws = (w.cost / total, w.quality / total, w.speed / total) if total > 0 else (0.0, 0.0, 0.0)
    costs = _costs(candidates, ctx.needs)
    cost_s = _rescale_low_best(costs)
    lats, sources = _latencies(candidates, ctx)
    speed_s = _rescale_low_best(lats)
    qs = [d.quality for d in candidates]
    scores = [wc * c + wq * q + ws * v for c, q, v in zip(cost_s, qs, speed_s)]
    n = len(candidates)
    args = list(zip(scores, cost_s, map(_Usd, costs), [wc] * n, qs, [wq] * n, speed_s, lats, sources, [ws] * n))
    return scores, None, _BALANCED_WHY, args


_BALANCED_WHY = (
    "balanced {0:.3f} = cost {1:.2f} ({2}) x {3:.2f} + quality {4:g} x {5:.2f} "
    "+ speed {6:.2f} ({7:.0f} ms {8}) x {9:.2f}"
)
_LEARNED_WHY = "Thompson draw {0:.3f} from Beta({1:g}, {2:g}) [{3}] x cost factor {4:.2f} (predicted cost {5})"
EXACT_BETA_UP_TO = 8
_Z_TABLE: list[float] = []


def _z_table() -> list[float]:
    """1,024 standard-normal quantiles at (k + 0.5)/1024: a cheap normal draw is one lookup."""
    if not _Z_TABLE:
        inv = NormalDist().inv_cdf
        _Z_TABLE.extend(inv((k + 0.5) / 1024) for k in range(1024))
    return _Z_TABLE


def _learned(candidates: Sequence[Deployment], ctx: RankContext) -> Scored:
    """Thompson sampling over (deployment, task class); see the module doc.

    Up to EXACT_BETA_UP_TO candidates draw exactly (`random.betavariate`, a few µs each); beyond
    that each draw is moment-matched normal (same mean and variance as the Beta, clipped to
    0..1) from a quantile table, so ranking 50 candidates stays within the routing budget.
    """
    tc = task_class_of(ctx.profile)
    learned = ctx.learned
    params = [learned(d.name, tc) for d in candidates]
    if all(p is None for p in params):
        scores, ties, fmt, args = _balanced(candidates, ctx)
        safe = tc.replace("{", "{{").replace("}", "}}")
        return scores, ties, "learned: no data yet for " + safe + ", so balanced: " + fmt, args
    costs = _costs(candidates, ctx.needs)
    mean = sum(costs) / len(costs)
    rng = ctx.rng
    exact = len(candidates) <= EXACT_BETA_UP_TO
    table = None if exact else _z_table()
    scores: list[float] = []
    args: list[tuple[Any, ...]] = []
    for d, p, c in zip(candidates, params, costs):
        if p is None:
            q = d.quality
            a, b, src = 1.0 + 2.0 * q, 3.0 - 2.0 * q, "prior"
        else:
            a, b, src = max(p[0], 1e-3), max(p[1], 1e-3), tc
        if table is None:
            draw = rng.betavariate(a, b)
        else:
            s = a + b
            m = a / s
            draw = m + table[int(rng.random() * 1024)] * sqrt(m * (1.0 - m) / (s + 1.0))
            draw = 0.0 if draw < 0.0 else 1.0 if draw > 1.0 else draw
        factor = 1.0 / (1.0 + c / mean) if mean > 0 else 1.0
        scores.append(draw * factor)
        args.append((draw, a, b, src, factor, _Usd(c)))
    return scores, None, _LEARNED_WHY, args


class _Usd(float):
    """A cost that formats as `$0.0021` in `why` (formatted only when `why` is read)."""

    __slots__ = ()

    def __format__(self, spec: str) -> str:
        return usd(float(self))


_SCORERS: dict[str, Callable[[Sequence[Deployment], RankContext], Scored]] = {
    "ordered": _ordered,
    "local_first": _local_first,
    "cost_optimized": _cost_optimized,
    "quality": _quality,
    "speed": _speed,
    "throughput": _throughput,
    "balanced": _balanced,
    "learned": _learned,
    _AUTO_SIMPLE: _auto_simple,
}
