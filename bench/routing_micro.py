#!/usr/bin/env python3
"""Micro-benchmark of the pure routing functions (no I/O, no servers).

    .venv/bin/python bench/routing_micro.py            # prints medians
    .venv/bin/python bench/routing_micro.py --rounds 5000

Measures, each as the median (and p90) of many timed calls after a warm-up:
- `RequestNeeds.from_body` + `constraints.check` over 50 deployments (constraint filtering);
- `strategies.rank()` for every strategy over 50 deployments, and with auto_route on
  (target: <= 100 us median per routing decision);
- `auto.classify()` on 100 B, 1 KB and 4 KB prompts (target: 4 KB <= 1 ms);
- a whole decision: needs + constraint checks + classify (1 KB) + rank over 50.
The deployments, live stats and learned parameters are built deterministically below.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from tiergate.config.models import STRATEGIES, AutoRouteConfig, Deployment, Price  # noqa: E402
from tiergate.routing.auto import classify  # noqa: E402
from tiergate.routing.constraints import RequestNeeds, check  # noqa: E402
from tiergate.routing.strategies import EXACT_BETA_UP_TO, LiveSnapshot, RankContext, rank  # noqa: E402

LOCATIONS = ("local", "sovereign", "cloud")
TAGS = ((), ("code",), ("analysis",), ("creative",), ("translation",), ("code", "math"))


def deployments(n: int = 50) -> list[Deployment]:
    rnd = random.Random(7)
    out = []
    for i in range(n):
        loc = LOCATIONS[i % 3]
        paid = loc != "local"
        out.append(
            Deployment(
                name=f"d{i:02d}", model=f"m{i}", location=loc,
                price=Price(
                    input=Decimal(str(round(rnd.uniform(0.05, 5), 3))) if paid else Decimal(0),
                    output=Decimal(str(round(rnd.uniform(0.2, 15), 3))) if paid else Decimal(0),
                ),
                latency_ms=rnd.uniform(200, 3000) if i % 7 else None,
                quality=round(rnd.uniform(0.4, 0.95), 2),
                capabilities=("tools", "json", "streaming") if i % 2 else (),
                tags=TAGS[i % len(TAGS)],
                context_length=rnd.choice((8192, 32768, 128000)),
            )
        )
    return out


PROSE = (
    "Please review the following service description and explain why the retry logic can "
    "duplicate payments; compare it with an idempotency-key design, step by step. "
    "Zəhmət olmasa bu mətni izah et və müqayisə et. Объясни пошагово, почему это важно. "
    "Adım adım açıkla ve karşılaştır. The data shows a trend of 12 + 7 = 19 failures per day. "
)
CODE = "```python\ndef pay(order, key):\n    if key in seen:\n        return seen[key]\n    return charge(order)\n```\n"


def prompt(size: int) -> str:
    if size <= 100:
        return "Hi! Can you tell me what the capital of Azerbaijan is, please? Thanks a lot!!"[:size]
    text = ""
    while len(text.encode()) < size:
        text += PROSE + CODE
    return text.encode()[:size].decode("utf-8", "ignore")


def timed(fn: Callable[[], Any], rounds: int) -> tuple[float, float]:
    for _ in range(min(200, rounds)):
        fn()
    samples = []
    clock = time.perf_counter_ns
    for _ in range(rounds):
        t0 = clock()
        fn()
        samples.append(clock() - t0)
    samples.sort()
    return statistics.median(samples) / 1000.0, samples[int(len(samples) * 0.9)] / 1000.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3000)
    args = ap.parse_args()
    deps = deployments()
    rnd = random.Random(1)
    live = {
        d.name: LiveSnapshot(rnd.uniform(50, 400), rnd.uniform(300, 3000), 20, 19, 1)
        for d in deps[::2]
    }
    learned = {(d.name, "code:complex"): (rnd.uniform(1, 40), rnd.uniform(1, 40)) for d in deps[::3]}
    body = {
        "model": "g", "max_tokens": 512,
        "messages": [{"role": "system", "content": "You are helpful."},
                     {"role": "user", "content": prompt(1024)}],
    }
    needs = RequestNeeds.from_body(body, {"max_cost": 0.05, "min_quality": 0.5})
    profile = classify(body)
    base = dict(needs=needs, live=live.get, learned=lambda n, tc: learned.get((n, tc)), rng=random.Random(3))

    print(f"{'what':48s} {'median µs':>10s} {'p90 µs':>10s}")
    med, p90 = timed(lambda: RequestNeeds.from_body(body, {"max_cost": 0.05, "min_quality": 0.5}), args.rounds)
    print(f"{'RequestNeeds.from_body (1 KB prompt)':48s} {med:10.2f} {p90:10.2f}")
    med, p90 = timed(lambda: [check(d, needs) for d in deps], args.rounds)
    print(f"{'check() x 50 deployments':48s} {med:10.2f} {p90:10.2f}")
    for strategy in STRATEGIES:
        ctx = RankContext(profile=profile, **base)
        med, p90 = timed(lambda: rank(strategy, deps, ctx), args.rounds)
        print(f"{'rank ' + strategy + ' (50)':48s} {med:10.2f} {p90:10.2f}")
    for strategy in ("balanced", "learned"):
        ctx = RankContext(profile=profile, auto=AutoRouteConfig(enabled=True), **base)
        med, p90 = timed(lambda: rank(strategy, deps, ctx), args.rounds)
        print(f"{'rank ' + strategy + ' + auto_route (50, ' + profile.task_class + ')':48s} {med:10.2f} {p90:10.2f}")
    simple = classify({"messages": [{"role": "user", "content": prompt(100)}]})
    ctx = RankContext(profile=simple, auto=AutoRouteConfig(enabled=True), **base)
    med, p90 = timed(lambda: rank("balanced", deps, ctx), args.rounds)
    print(f"{'rank balanced + auto_route (50, ' + simple.task_class + ')':48s} {med:10.2f} {p90:10.2f}")
    few = deps[:EXACT_BETA_UP_TO]
    ctx = RankContext(profile=profile, **base)
    med, p90 = timed(lambda: rank("learned", few, ctx), args.rounds)
    print(f"{f'rank learned ({len(few)}, exact Beta draws)':48s} {med:10.2f} {p90:10.2f}")
    cfg = AutoRouteConfig(enabled=True)

    def decision() -> None:
        n = RequestNeeds.from_body(body, {"max_cost": 0.05, "min_quality": 0.5})
        ok = [d for d in deps if check(d, n) is None]
        rank("balanced", ok, RankContext(needs=n, profile=classify(body, cfg), auto=cfg, live=live.get))

    med, p90 = timed(decision, args.rounds)
    print(f"{'whole decision: needs+check+classify 1KB+rank':48s} {med:10.2f} {p90:10.2f}")
    ctx = RankContext(profile=profile, **base)
    ranked = rank("balanced", deps, ctx)
    med, p90 = timed(lambda: [r.why for r in rank("balanced", deps, ctx)], args.rounds // 3 or 1)
    print(f"{'rank balanced + render every why (explain)':48s} {med:10.2f} {p90:10.2f}")
    for size in (100, 1024, 4096):
        b = {"messages": [{"role": "user", "content": prompt(size)}]}
        med, p90 = timed(lambda: classify(b), args.rounds)
        print(f"{f'classify {size} B':48s} {med:10.2f} {p90:10.2f}   -> {classify(b).task_class}")
    print(f"\nexample: {ranked[0].why}")


if __name__ == "__main__":
    main()
