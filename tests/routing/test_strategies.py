"""Each strategy on a fixed deployment table; auto_route; learned converges (seeded)."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest

from tiergate.config.models import STRATEGIES, AutoRouteConfig, BalancedWeights, Deployment, Price
from tiergate.routing.auto import TaskProfile, classify
from tiergate.routing.constraints import RequestNeeds
from tiergate.routing.strategies import (
    EXACT_BETA_UP_TO,
    LiveSnapshot,
    RankContext,
    effective_strategy,
    rank,
    seed_strategy,
    task_class_of,
)


def dep(name: str, location: str, pin: str, pout: str, **kw) -> Deployment:
    return Deployment(
        name=name, model="m", location=location, price=Price(input=Decimal(pin), output=Decimal(pout)), **kw
    )


# The fixed table (configured order). With 1,000 prompt tokens and 1,000 output tokens the
# predicted costs are: local 0, sov-a $0.002, cloud-a $0.018, cloud-b $0.00075.
TABLE = [
    dep("local-a", "local", "0", "0", latency_ms=900, quality=0.55, tags=("code",), throughput_tps=40),
    dep("sov-a", "sovereign", "0.5", "1.5", latency_ms=600, quality=0.75, tags=("analysis",), throughput_tps=150),
    dep("cloud-a", "cloud", "3", "15", latency_ms=350, quality=0.95, throughput_tps=90),
    dep("cloud-b", "cloud", "0.15", "0.6", latency_ms=500, quality=0.7, tags=("translation",)),
    dep("local-b", "local", "0", "0", quality=0.5),
]
NEEDS = RequestNeeds(prompt_tokens=1000, max_tokens=1000)


def names(strategy: str, ctx: RankContext | None = None, table: list[Deployment] = TABLE) -> list[str]:
    return [r.deployment.name for r in rank(strategy, table, ctx or RankContext(needs=NEEDS))]


def profile(complexity: float, domain: str = "general") -> TaskProfile:
    level = "simple" if complexity < 0.35 else "complex" if complexity > 0.65 else "medium"
    return TaskProfile(complexity, domain, f"{domain}:{level}", {})


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        ("ordered", ["local-a", "sov-a", "cloud-a", "cloud-b", "local-b"]),
        ("local_first", ["local-a", "local-b", "sov-a", "cloud-a", "cloud-b"]),
        # free ones first, the better of them first; then by predicted cost
        ("cost_optimized", ["local-a", "local-b", "cloud-b", "sov-a", "cloud-a"]),
        ("quality", ["cloud-a", "sov-a", "cloud-b", "local-a", "local-b"]),
        # configured latency; local-b has none: the neutral mean of the others, 587.5 ms
        ("speed", ["cloud-a", "cloud-b", "local-b", "sov-a", "local-a"]),
        # local-b and cloud-b have no throughput: the mean of the known, 93.3 tokens/s
        ("throughput", ["sov-a", "cloud-b", "local-b", "cloud-a", "local-a"]),
        # equal weights: cloud-b .795 > sov-a .728 > local-b .689 > cloud-a .650 > local-a .517
        ("balanced", ["cloud-b", "sov-a", "local-b", "cloud-a", "local-a"]),
    ],
)
def test_each_strategy_on_the_table(strategy: str, expected: list[str]) -> None:
    assert names(strategy) == expected


def test_every_configured_strategy_is_implemented_and_explains_itself() -> None:
    for strategy in STRATEGIES:
        ranked = rank(strategy, TABLE, RankContext(needs=NEEDS, rng=random.Random(1)))
        assert sorted(r.deployment.name for r in ranked) == sorted(d.name for d in TABLE)
        assert all(r.why for r in ranked)
        assert ranked[0].to_dict()["deployment"] == ranked[0].deployment.name
    assert rank("quality", [], RankContext()) == []
    with pytest.raises(ValueError, match="unknown routing strategy"):
        rank("auto_simple", TABLE, RankContext())


def test_why_names_the_numbers() -> None:
    r = rank("cost_optimized", TABLE, RankContext(needs=NEEDS))
    assert r[2].why == "predicted cost $0.00075 (cost score 0.96), quality 0.7"
    b = rank("balanced", TABLE, RankContext(needs=NEEDS))[0]
    assert b.why.startswith("balanced 0.795 = cost 0.96 ($0.00075) x 0.33 + quality 0.7 x 0.33")
    assert "500 ms configured" in b.why
    assert rank("ordered", TABLE, RankContext())[1].why == "configured position 2"


def test_balanced_weights() -> None:
    ctx = RankContext(needs=NEEDS, weights=BalancedWeights(cost=1, quality=3, speed=1))
    assert names("balanced", ctx)[0] == "cloud-a"
    ctx = RankContext(needs=NEEDS, weights=BalancedWeights(cost=1, quality=0, speed=0))
    assert names("balanced", ctx)[:2] == ["local-a", "local-b"]
    ctx = RankContext(needs=NEEDS, weights=BalancedWeights(cost=0, quality=0, speed=0))
    assert names("balanced", ctx) == names("ordered")  # nothing to weigh: the configured order


def test_speed_uses_live_latency_and_ttft_for_streams() -> None:
    live = {
        "local-a": LiveSnapshot(ttft_ms=900, latency_ms=100, samples=5, successes=5),
        "cloud-a": LiveSnapshot(ttft_ms=50, latency_ms=2500, samples=5, successes=5),
        "sov-a": LiveSnapshot(samples=0),  # no samples yet: configured 600
    }
    ctx = RankContext(needs=NEEDS, live=live.get)
    assert names("speed", ctx)[:2] == ["local-a", "cloud-b"]
    assert "100 ms (live)" in rank("speed", TABLE, ctx)[0].why
    stream = RankContext(needs=RequestNeeds(prompt_tokens=1000, max_tokens=1000, stream=True), live=live.get)
    assert names("speed", stream)[0] == "cloud-a"
    assert "(live ttft)" in rank("speed", TABLE, stream)[0].why


def test_speed_moves_away_from_a_deployment_that_slows_down() -> None:
    stats = {"cloud-a": LiveSnapshot(latency_ms=300, samples=10)}
    ctx = RankContext(needs=NEEDS, live=stats.get)
    assert names("speed", ctx)[0] == "cloud-a"
    stats["cloud-a"] = LiveSnapshot(latency_ms=4000, samples=20)
    assert names("speed", ctx)[0] == "cloud-b"
    assert names("speed", ctx)[-1] == "cloud-a"


def test_ties_keep_the_configured_order() -> None:
    same = [dep(f"d{i}", "cloud", "1", "1", quality=0.8, latency_ms=100) for i in range(6)]
    for strategy in ("local_first", "cost_optimized", "quality", "speed", "balanced", "throughput"):
        assert names(strategy, table=same) == [d.name for d in same]


def test_auto_route_by_complexity() -> None:
    auto = AutoRouteConfig(enabled=True)
    simple = RankContext(needs=NEEDS, profile=profile(0.1), auto=auto)
    assert names("quality", simple) == ["local-a", "local-b", "cloud-b", "sov-a", "cloud-a"]
    assert effective_strategy("quality", simple)[0] == "auto_simple"
    complex_ = RankContext(needs=NEEDS, profile=profile(0.9), auto=auto)
    assert names("cost_optimized", complex_)[0] == "cloud-a"
    medium = RankContext(needs=NEEDS, profile=profile(0.5), auto=auto)
    assert names("local_first", medium) == names("local_first")
    why = rank("quality", TABLE, complex_)[0].why
    assert why.startswith("auto: complexity 0.90 (complex > 0.65) -> quality; domain general; quality 0.95")
    # without auto config or without a profile, the strategy is used as given
    assert names("quality", RankContext(needs=NEEDS, profile=profile(0.1))) == names("quality")
    assert names("quality", RankContext(needs=NEEDS, auto=auto)) == names("quality")


def test_auto_simple_puts_local_first_among_equal_costs() -> None:
    table = [
        dep("free-sov", "sovereign", "0", "0", quality=0.9),
        dep("free-local", "local", "0", "0", quality=0.6),
        dep("paid", "cloud", "1", "1", quality=0.99),
    ]
    assert names("cost_optimized", table=table) == ["free-sov", "free-local", "paid"]  # quality breaks ties
    ctx = RankContext(needs=NEEDS, profile=profile(0.05), auto=AutoRouteConfig())
    assert names("cost_optimized", ctx, table) == ["free-local", "free-sov", "paid"]


def test_domain_boost() -> None:
    auto = AutoRouteConfig(domain_boost=0.3)
    ctx = RankContext(needs=NEEDS, profile=profile(0.9, "translation"), auto=auto)
    ranked = rank("quality", TABLE, ctx)  # cloud-b: 0.7 + 0.3 > cloud-a 0.95
    assert [r.deployment.name for r in ranked][:2] == ["cloud-b", "cloud-a"]
    assert ranked[0].score == pytest.approx(1.0)
    assert ranked[0].why.endswith("quality 0.7, predicted cost $0.00075 +0.30 domain translation")
    assert "domain translation" in ranked[0].why and "complexity 0.90" in ranked[0].why
    assert "+0.30" not in ranked[1].why
    small = RankContext(needs=NEEDS, profile=profile(0.9, "translation"), auto=AutoRouteConfig(domain_boost=0.1))
    assert names("quality", small)[0] == "cloud-a"  # 0.8 < 0.95: not enough
    code = RankContext(needs=NEEDS, profile=profile(0.5, "code"), auto=AutoRouteConfig(domain_boost=1.0))
    assert names("cost_optimized", code)[0] == "local-a"
    assert names("quality", code)[0] == "local-a"  # a boost >= 1 puts the tagged one first


def test_auto_route_from_a_real_prompt() -> None:
    body = {"messages": [{"role": "user", "content": "Please do a code review: explain why this is slow "
                          "and compare it step by step with a set-based version\n```python\ndef f(): pass\n```"}]}
    p = classify(body)
    ctx = RankContext(needs=RequestNeeds.from_body(body), profile=p, auto=AutoRouteConfig(domain_boost=0.5))
    top = rank("balanced", TABLE, ctx)[0]
    assert p.task_class == "code:complex"
    assert top.deployment.name == "local-a"  # 0.55 + 0.5 beats cloud-a's 0.95
    hello = {"messages": [{"role": "user", "content": "Salam!"}]}
    ctx = RankContext(needs=RequestNeeds.from_body(hello), profile=classify(hello), auto=AutoRouteConfig())
    assert rank("quality", TABLE, ctx)[0].deployment.location == "local"


def test_learned_without_data_is_balanced() -> None:
    ctx = RankContext(needs=NEEDS, profile=profile(0.5, "code"), rng=random.Random(3))
    ranked = rank("learned", TABLE, ctx)
    assert [r.deployment.name for r in ranked] == names("balanced")
    assert ranked[0].why.startswith("learned: no data yet for code:medium, so balanced: balanced 0.795")
    assert task_class_of(None) == "general"


def _simulate(arms: list[Deployment], p_success: dict[str, float], rounds: int, seed: int) -> list[str]:
    """Route, observe a Bernoulli outcome, update Beta(alpha, beta); returns the chosen arms."""
    stats: dict[tuple[str, str], list[float]] = {}
    world = random.Random(seed + 1000)
    ctx = RankContext(
        needs=NEEDS, profile=profile(0.5, "code"), rng=random.Random(seed),
        learned=lambda name, tc: tuple(stats[(name, tc)]) if (name, tc) in stats else None,
    )
    chosen = []
    for _ in range(rounds):
        d = rank("learned", arms, ctx)[0].deployment
        ab = stats.setdefault((d.name, "code:medium"), [1.0, 1.0])
        ab[0 if world.random() < p_success[d.name] else 1] += 1
        chosen.append(d.name)
    return chosen


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_learned_converges_to_the_better_arm(seed: int) -> None:
    arms = [dep("arm-a", "cloud", "1", "1", quality=0.7), dep("arm-b", "cloud", "1", "1", quality=0.7)]
    chosen = _simulate(arms, {"arm-a": 0.5, "arm-b": 0.85}, rounds=300, seed=seed)
    assert chosen[-100:].count("arm-b") >= 90


def test_learned_weighs_cost() -> None:
    # Same success rate, one costs 4x: quality per cost prefers the cheaper one.
    arms = [dep("dear", "cloud", "4", "4", quality=0.8), dep("cheap", "cloud", "1", "1", quality=0.8)]
    chosen = _simulate(arms, {"dear": 0.8, "cheap": 0.8}, rounds=200, seed=5)
    assert chosen[-100:].count("cheap") >= 85


def test_learned_converges_among_many_arms_with_the_fast_draw() -> None:
    n = EXACT_BETA_UP_TO + 4  # beyond the exact-Beta limit: moment-matched normal draws
    arms = [dep(f"arm{i}", "cloud", "1", "1", quality=0.7) for i in range(n)]
    p = {d.name: 0.4 for d in arms} | {"arm7": 0.9}
    chosen = _simulate(arms, p, rounds=600, seed=11)
    assert chosen[-100:].count("arm7") >= 85


def test_seed_strategy() -> None:
    assert seed_strategy("local") == ("local_first", ("local",))
    assert seed_strategy(" Hybrid ") == ("balanced", None)
    assert seed_strategy("api-only") == ("cost_optimized", ("sovereign", "cloud"))
    assert seed_strategy("API_ONLY") == seed_strategy("api-only")
    with pytest.raises(ValueError, match="LLM_STRATEGY"):
        seed_strategy("everything")
