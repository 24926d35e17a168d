"""The routing engine end to end (issue 5): real gateway processes routing to real simulated
upstream processes over real sockets.

Two gateways share one set of simulators:

* `gw` (patient): strategies, constraints, explain, circuit breaker with fast health probes,
  concurrency limit with a long queue, the `speed` shift, learning from feedback, experiments,
  retries, `POST /v1/feedback`.
* `tight`: a 1 s failover budget and a 50 ms queue timeout (busy deployments, hanging upstreams),
  and `learned` learning from upstream failures that fallback hides from the client.

Simulators change behaviour mid-test through `POST /_sim/config`; every wait polls against a
deadline. Nothing here sleeps for a fixed time to "let things settle".
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import aiohttp
import pytest

from tests.support import (
    MASTER_KEY,
    GatewayProc,
    Sim,
    deployment,
    http_json,
    start_gateway,
    start_sim,
)

AUTH = {"authorization": f"Bearer {MASTER_KEY}"}
HELLO = [{"role": "user", "content": "Hello, how are you today?"}]

CONSECUTIVE_FAILURES = 3  # circuit_breaker.consecutive_failures of `gw`
COOLDOWN_S = 5.0  # long enough that only a health probe can readmit within the test's bound
PROBE_INTERVAL_S = 0.2
MAX_RETRY_AFTER_S = 0.5  # the simulator's 429 says Retry-After: 1
MAX_FAILOVER_S = 1.0  # of `tight`

BETA = re.compile(r"Beta\(([0-9.e+-]+), ([0-9.e+-]+)\) \[([^\]]+)\]")  # in a `learned` why
PICK = ("pick-sov", "pick-cheap", "pick-smart", "pick-fast", "pick-local")


@dataclass
class World:
    gw: GatewayProc
    tight: GatewayProc
    sims: dict[str, Sim]


# Simulator processes: name -> (profile, extra args, fast mode).
SIMS: dict[str, tuple[str, tuple[str, ...], bool]] = {
    "fast": ("cloud", (), True),
    "slow": ("cloud", ("--latency-ms", "30", "--ttft-ms", "30", "--tps", "0"), False),
    "cb": ("cloud", (), True),
    "conc": ("local", ("--latency-ms", "20"), True),
    "spd": ("cloud", (), True),
    "retry": ("cloud", (), True),
    "r429": ("cloud", ("--fault", "429"), True),
    "busy": ("local", ("--latency-ms", "600"), True),
    "hang1": ("cloud", ("--fault", "timeout", "--hang-s", "10"), True),
    "hang2": ("cloud", ("--fault", "timeout", "--hang-s", "10"), True),
    "lfbad": ("cloud", ("--fault", "500", "--fault-rate", "0.5"), True),
    "lfgood": ("cloud", (), True),
}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("routing")
    sims: dict[str, Sim] = {}
    gateways: list[GatewayProc] = []
    try:
        with ThreadPoolExecutor(len(SIMS)) as pool:
            futures = {
                name: pool.submit(start_sim, tmp, profile, *args, fast=fast)
                for name, (profile, args, fast) in SIMS.items()
            }
            for name, future in futures.items():
                sims[name] = future.result()
            configs = (_patient_config(sims), _tight_config(sims))
            for gw_future in [pool.submit(start_gateway, tmp, cfg) for cfg in configs]:
                gateways.append(gw_future.result())
        yield World(gateways[0], gateways[1], sims)
    finally:
        for gw in gateways:
            gw.stop()
        for sim in sims.values():
            sim.stop()


def _price(inp: float, out: float) -> dict[str, float]:
    return {"input": inp, "output": out}


def _patient_config(s: dict[str, Sim]) -> dict[str, Any]:
    pick_group = list(PICK)
    return {
        "privacy": {"default_level": "PUBLIC"},
        "routing": {
            "default_strategy": "ordered",
            "group_strategies": {
                "g-quality": "quality", "g-cost": "cost_optimized", "g-speed": "speed",
                "g-local": "local_first", "g-ordered": "ordered",
            },
            "circuit_breaker": {"consecutive_failures": CONSECUTIVE_FAILURES, "cooldown_s": COOLDOWN_S},
            "health_probe_interval_s": PROBE_INTERVAL_S,
            "queue_timeout_s": 10,
            "retries": {
                "attempts": 2, "backoff_base_ms": 20, "backoff_max_ms": 50,
                "max_retry_after_s": MAX_RETRY_AFTER_S,
            },
            "experiments": {"ab": {"arms": {"ab-a": 50, "ab-b": 50}, "sticky_by": "user"}},
        },
        "deployments": [
            # Each of these is the best at exactly one thing.
            deployment("pick-sov", s["slow"], "sovereign", price=_price(1, 2), quality=0.7, latency_ms=300),
            deployment("pick-cheap", s["slow"], "cloud", price=_price(0.01, 0.02), quality=0.3, latency_ms=400),
            deployment("pick-smart", s["slow"], "cloud", price=_price(10, 30), quality=0.95, latency_ms=250),
            deployment("pick-fast", s["fast"], "cloud", price=_price(3, 6), quality=0.6, latency_ms=20),
            deployment("pick-local", s["slow"], "local", price=_price(0.05, 0.1), quality=0.5, latency_ms=200),
            deployment("cb-primary", s["cb"], "cloud"),
            deployment("cb-fallback", s["fast"], "cloud"),
            deployment("conc-limited", s["conc"], "local", max_concurrency=2),
            deployment("spd-a", s["spd"], "cloud", latency_ms=50),
            deployment("spd-b", s["fast"], "cloud", latency_ms=50),
            deployment("learn-good", s["fast"], "cloud", price=_price(1, 2)),
            deployment("learn-bad", s["fast"], "cloud", price=_price(1, 2)),
            deployment("ab-a", s["fast"], "cloud"),
            deployment("ab-b", s["fast"], "cloud"),
            deployment("con-local", s["fast"], "local", capabilities=["tools", "json"], quality=0.4,
                       price=_price(0.1, 0.2)),
            deployment("con-cloud", s["fast"], "cloud", capabilities=["tools"], quality=0.8,
                       price=_price(5, 15)),
            deployment("retry-one", s["retry"], "cloud"),
            deployment("r429-one", s["r429"], "cloud"),
        ],
        "model_groups": {
            "pick": pick_group,
            "g-quality": pick_group, "g-cost": pick_group, "g-speed": pick_group,
            "g-local": pick_group, "g-ordered": pick_group,
            "cb": ["cb-primary", "cb-fallback"],
            "conc": ["conc-limited"],
            "spd": ["spd-a", "spd-b"],
            "learn": ["learn-good", "learn-bad"],
            "ab": ["ab-a", "ab-b"],
            "con": ["con-local", "con-cloud"],
            "retry": ["retry-one"],
            "r429": ["r429-one"],
        },
    }


def _tight_config(s: dict[str, Sim]) -> dict[str, Any]:
    return {
        "privacy": {"default_level": "PUBLIC"},
        "routing": {
            "max_failover_s": MAX_FAILOVER_S,
            "queue_timeout_s": 0.05,
            "health_probe_interval_s": 0,
            # Only learning may move traffic off the flaky arm here, not its breaker.
            "circuit_breaker": {"consecutive_failures": 1000, "error_rate": 1.0, "min_requests": 1000},
        },
        "deployments": [
            deployment("busy-one", s["busy"], "local", max_concurrency=1),
            deployment("hang-a", s["hang1"], "cloud", timeout_s=5),
            deployment("hang-b", s["hang2"], "cloud", timeout_s=5),
            deployment("lf-good", s["lfgood"], "cloud", price=_price(1, 2)),
            deployment("lf-bad", s["lfbad"], "cloud", price=_price(1, 2)),
        ],
        "model_groups": {"busy": ["busy-one"], "hang": ["hang-a", "hang-b"], "lf": ["lf-bad", "lf-good"]},
    }


@pytest.fixture
def gw(world: World) -> GatewayProc:
    return world.gw


@pytest.fixture
def tight(world: World) -> GatewayProc:
    return world.tight


@pytest.fixture
def sims(world: World) -> dict[str, Sim]:
    for s in world.sims.values():
        s.reset()
    return world.sims


# ---------------------------------------------------------------- helpers
def chat(
    gw: GatewayProc, model: str, *, headers: dict[str, str] | None = None, metadata: dict[str, Any] | None = None,
    messages: list[dict[str, Any]] | None = None, timeout: float = 10.0, **body: Any,
) -> tuple[int, Any, dict[str, str]]:
    payload: dict[str, Any] = {"model": model, "messages": messages or HELLO, **body}
    if metadata is not None:
        payload["metadata"] = metadata
    status, data, h = http_json(
        "POST", f"{gw.url}/chat/completions", payload, {**AUTH, **(headers or {})}, timeout=timeout
    )
    return status, data, {k.lower(): v for k, v in h.items()}


def served_by(gw: GatewayProc, model: str, **kw: Any) -> str:
    status, data, h = chat(gw, model, **kw)
    assert status == 200, data
    return h["x-tiergate-deployment"]


def explain(gw: GatewayProc, model: str, **kw: Any) -> dict[str, Any]:
    headers = {"x-tiergate-explain": "true", **kw.pop("headers", {})}
    status, data, _ = chat(gw, model, headers=headers, **kw)
    assert status == 200, data
    return data


def sim_config(sim: Sim, **changes: Any) -> dict[str, Any]:
    status, data, _ = http_json("POST", f"{sim.base}/_sim/config", changes)
    assert status == 200, data
    return data


def ready(gw: GatewayProc) -> dict[str, Any]:
    return http_json("GET", f"{gw.base}/ready")[1]


def wait_until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.02)


async def _fan_out(gw: GatewayProc, bodies: list[dict[str, Any]], limit: int = 200) -> list[tuple[int, Any, dict[str, str]]]:
    """POST every body at once (at most `limit` connections); answers in order."""
    url = f"{gw.url}/chat/completions"
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=limit), timeout=timeout) as s:

        async def one(body: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
            async with s.post(url, json=body, headers=AUTH) as r:
                return r.status, await r.json(), {k.lower(): v for k, v in r.headers.items()}

        return await asyncio.gather(*(one(b) for b in bodies))


def fan_out(gw: GatewayProc, bodies: list[dict[str, Any]], limit: int = 200) -> list[tuple[int, Any, dict[str, str]]]:
    return asyncio.run(_fan_out(gw, bodies, limit))


# ---------------------------------------------------------------- strategies
EXPECTED = {
    "ordered": "pick-sov",
    "local_first": "pick-local",
    "cost_optimized": "pick-cheap",
    "quality": "pick-smart",
    "speed": "pick-fast",
}
OPTIMIZE = {"cost": "pick-cheap", "quality": "pick-smart", "speed": "pick-fast", "local": "pick-local"}
GROUPS = {
    "g-ordered": "pick-sov", "g-local": "pick-local", "g-cost": "pick-cheap",
    "g-quality": "pick-smart", "g-speed": "pick-fast",
}


@pytest.mark.parametrize(("strategy", "expected"), sorted(EXPECTED.items()))
def test_strategy_by_header(gw: GatewayProc, sims: dict[str, Sim], strategy: str, expected: str) -> None:
    for _ in range(3):  # live statistics from earlier requests must not change the answer
        assert served_by(gw, "pick", headers={"x-tiergate-strategy": strategy}) == expected


@pytest.mark.parametrize(("strategy", "expected"), sorted(EXPECTED.items()))
def test_strategy_by_metadata(gw: GatewayProc, sims: dict[str, Sim], strategy: str, expected: str) -> None:
    assert served_by(gw, "pick", metadata={"strategy": strategy}) == expected


@pytest.mark.parametrize(("optimize", "expected"), sorted(OPTIMIZE.items()))
def test_strategy_by_constraints_optimize(gw: GatewayProc, sims: dict[str, Sim], optimize: str, expected: str) -> None:
    assert served_by(gw, "pick", metadata={"constraints": {"optimize": optimize}}) == expected


@pytest.mark.parametrize(("group", "expected"), sorted(GROUPS.items()))
def test_strategy_per_group(gw: GatewayProc, sims: dict[str, Sim], group: str, expected: str) -> None:
    assert served_by(gw, group) == expected


def test_strategy_precedence(gw: GatewayProc, sims: dict[str, Sim]) -> None:
    """header > metadata.strategy > constraints.optimize > routing.group_strategies."""
    both = {"strategy": "quality", "constraints": {"optimize": "cost"}}
    assert served_by(gw, "g-local", metadata={"constraints": {"optimize": "cost"}}) == "pick-cheap"
    assert served_by(gw, "g-local", metadata=both) == "pick-smart"
    assert served_by(gw, "g-local", metadata=both, headers={"x-tiergate-strategy": "speed"}) == "pick-fast"
    d = explain(gw, "g-cost", headers={"x-tiergate-strategy": "local-first"})
    assert d["strategy"] == "local_first" and d["order"][0] == "pick-local"


def test_strategy_answers_have_the_served_deployment_upstream(gw: GatewayProc, sims: dict[str, Sim]) -> None:
    """The receipt names the deployment that really answered: the fast simulator saw it."""
    assert served_by(gw, "pick", headers={"x-tiergate-strategy": "speed"}) == "pick-fast"
    last = sims["fast"].stats()["last_request"]
    assert last["model"] == "pick-fast-model"
    assert sims["slow"].stats()["chat_requests"] == 0


@pytest.mark.parametrize(
    ("where", "param"),
    [
        ("header", "x-tiergate-strategy"),
        ("metadata", "metadata.strategy"),
        ("optimize", "metadata.constraints.optimize"),
    ],
)
def test_unknown_strategy_is_400_naming_the_param(gw: GatewayProc, sims: dict[str, Sim], where: str, param: str) -> None:
    kw: dict[str, Any] = {
        "header": {"headers": {"x-tiergate-strategy": "fastest-please"}},
        "metadata": {"metadata": {"strategy": "fastest-please"}},
        "optimize": {"metadata": {"constraints": {"optimize": "fastest-please"}}},
    }[where]
    status, data, _ = chat(gw, "pick", **kw)
    assert status == 400, data
    assert data["error"]["param"] == param
    assert "fastest-please" in data["error"]["message"] and param in data["error"]["message"]
    assert "cost_optimized" in data["error"]["message"]  # says what would be valid
    assert sum(s.stats()["chat_requests"] for s in sims.values()) == 0


# ---------------------------------------------------------------- constraints and explain
@pytest.mark.parametrize(
    ("constraints", "words"),
    [
        ({"max_cost": 0.0000001}, ["max_cost"]),
        ({"min_quality": 0.9}, ["min_quality"]),
        ({"capabilities": ["vision"]}, ["capability vision"]),
        ({"allowed_locations": ["sovereign"]}, ["allowed_locations"]),
        ({"exclude": ["con-local", "con-cloud"]}, ["excluded"]),
    ],
)
def test_unsatisfiable_constraint_is_422_naming_it_per_candidate(
    gw: GatewayProc, sims: dict[str, Sim], constraints: dict[str, Any], words: list[str]
) -> None:
    status, data, _ = chat(gw, "con", metadata={"constraints": constraints})
    assert status == 422, data
    err = data["error"]
    assert err["code"] == "no_eligible_deployment"
    for name in ("con-local", "con-cloud"):  # each candidate with the constraint that excluded it
        part = err["message"].split(f"{name}:", 1)
        assert len(part) == 2, err["message"]
        assert any(w in part[1].split(";")[0] for w in words), err["message"]
    assert sims["fast"].stats()["chat_requests"] == 0


def test_each_candidate_names_its_own_constraint(gw: GatewayProc, sims: dict[str, Sim]) -> None:
    status, data, _ = chat(gw, "con", metadata={"constraints": {"exclude": ["con-cloud"], "min_quality": 0.5}})
    assert status == 422, data
    msg = data["error"]["message"]
    assert "con-cloud: excluded" in msg and "con-local: quality 0.4 < min_quality 0.5" in msg
    # An image implies vision; con-local declares capabilities without it, con-cloud too.
    image = [{"role": "user", "content": [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
    ]}]
    status, data, _ = chat(gw, "con", messages=image)
    assert status == 422 and data["error"]["message"].count("lacks capability vision") == 2, data


def test_satisfiable_constraints_route_within_them(gw: GatewayProc, sims: dict[str, Sim]) -> None:
    assert served_by(gw, "con", metadata={"constraints": {"min_quality": 0.5}}) == "con-cloud"
    assert served_by(gw, "con", metadata={"constraints": {"max_cost": 0.01}}) == "con-local"
    assert served_by(gw, "con", metadata={"constraints": {"allowed_locations": ["cloud"]}}) == "con-cloud"
    assert served_by(gw, "con", metadata={"constraints": {"capabilities": ["json"]}}) == "con-local"
    # Explain lists the excluded ones with their reasons next to the ranking of the rest.
    d = explain(gw, "con", metadata={"constraints": {"max_cost": 0.01}})
    assert [e["deployment"] for e in d["excluded"]] == ["con-cloud"]
    assert "max_cost" in d["excluded"][0]["reason"]
    assert [r["deployment"] for r in d["routing"]["ranking"]] == ["con-local"]


def test_explain_shows_full_ranking_and_auto_route_task(gw: GatewayProc, sims: dict[str, Sim]) -> None:
    d = explain(gw, "pick", headers={"x-tiergate-strategy": "quality"})
    ranking = d["routing"]["ranking"]
    assert [r["deployment"] for r in ranking] == d["order"]
    assert sorted(r["deployment"] for r in ranking) == sorted(PICK)  # every eligible one
    assert ranking[0]["deployment"] == "pick-smart"
    scores = [r["score"] for r in ranking]
    assert scores == sorted(scores, reverse=True)
    assert all(isinstance(r["why"], str) and "quality" in r["why"] for r in ranking)
    assert d["upstream_called"] is False

    code = "```python\ndef f(x):\n    return x * 2\n```\nRefactor this function and explain the steps."
    d = explain(gw, "pick", metadata={"auto_route": True}, messages=[{"role": "user", "content": code}])
    task = d["routing"]["task"]
    assert set(task) >= {"complexity", "domain", "class", "features"}
    assert 0.0 <= task["complexity"] <= 1.0 and task["features"]
    assert task["domain"] == "code" and task["class"].startswith("code:")
    assert len(d["routing"]["ranking"]) == len(PICK)
    assert all(r["why"].startswith("auto:") for r in d["routing"]["ranking"])
    assert sum(s.stats()["chat_requests"] for s in sims.values()) == 0  # explain calls nothing


# ---------------------------------------------------------------- circuit breaker
def test_circuit_breaker_skips_dead_upstream_then_probe_readmits_it(gw: GatewayProc, sims: dict[str, Sim]) -> None:
    cb = sims["cb"]
    assert served_by(gw, "cb") == "cb-primary"
    assert ready(gw)["deployments"]["cb-primary"]["circuit"] == "closed"

    # Dead: chat and the model listing (what the health probe reads) fail.
    sim_config(cb, fault="500", fault_models=True)
    cb.reset()
    fallbacks = []
    for _ in range(CONSECUTIVE_FAILURES):
        status, data, h = chat(gw, "cb")
        assert status == 200 and h["x-tiergate-deployment"] == "cb-fallback", data  # the client never sees it
        fallbacks.append(int(h["x-tiergate-fallbacks"]))
    opened_at = time.monotonic()
    assert fallbacks == [1] * CONSECUTIVE_FAILURES
    for _ in range(5):  # now skipped without an attempt
        status, _, h = chat(gw, "cb")
        assert (status, h["x-tiergate-deployment"], h["x-tiergate-fallbacks"]) == (200, "cb-fallback", "0")
    assert cb.stats()["chat_requests"] == CONSECUTIVE_FAILURES
    state = ready(gw)["deployments"]["cb-primary"]
    assert state["circuit"] == "open" and state["ok"] is False
    d = explain(gw, "cb")
    assert d["order"] == ["cb-fallback"]
    assert any(e["deployment"] == "cb-primary" and e["kind"] == "unavailable" for e in d["excluded"])

    # The outage lasts a few probe intervals, so the probes see it too (a probe answering while
    # the probes never saw the outage is no evidence of recovery: then only the cooldown counts).
    time.sleep(PROBE_INTERVAL_S * 4)
    # Recovered: a background probe sees it answer, the next request is the trial, it closes.
    sim_config(cb, fault=None, fault_models=False)
    wait_until(lambda: served_by(gw, "cb") == "cb-primary", 3.0, "cb-primary readmitted after recovery")
    assert time.monotonic() - opened_at < COOLDOWN_S  # readmitted by the probe, not the cooldown
    assert ready(gw)["deployments"]["cb-primary"]["circuit"] == "closed"
    assert all(served_by(gw, "cb") == "cb-primary" for _ in range(3))


# ---------------------------------------------------------------- concurrency limits
def test_concurrency_limit_bounds_in_flight_upstream_requests(gw: GatewayProc, sims: dict[str, Sim]) -> None:
    conc = sims["conc"]
    started = time.monotonic()
    answers = fan_out(gw, [{"model": "conc", "messages": HELLO} for _ in range(100)])
    elapsed = time.monotonic() - started
    assert [a[0] for a in answers] == [200] * 100, [a[1] for a in answers if a[0] != 200][:3]
    assert {a[2]["x-tiergate-deployment"] for a in answers} == {"conc-limited"}
    stats = conc.stats()
    assert stats["chat_requests"] == 100
    assert stats["max_in_flight"] == 2, stats
    assert stats["in_flight"] == 0
    assert elapsed >= 50 * 0.020 * 0.9  # 100 requests of 20 ms, two at a time


def test_queue_timeout_gives_clear_503_naming_the_busy_deployment(tight: GatewayProc, sims: dict[str, Sim]) -> None:
    started = time.monotonic()
    answers = fan_out(tight, [{"model": "busy", "messages": HELLO} for _ in range(6)])
    elapsed = time.monotonic() - started
    ok = [a for a in answers if a[0] == 200]
    refused = [a for a in answers if a[0] != 200]
    # One holds the only slot for 600 ms; the others wait 50 ms for it (at most one more may
    # arrive late enough, on a loaded machine, to find it free).
    assert len(ok) in (1, 2) and len(refused) == 6 - len(ok), [a[:2] for a in answers]
    for status, data, _ in refused:
        assert status == 503, data
        assert data["error"]["code"] in ("deployment_busy", "upstream_overloaded"), data
        assert "busy-one" in data["error"]["message"] and "busy" in data["error"]["message"]
    busy = sims["busy"].stats()
    assert busy["max_in_flight"] == 1 and busy["chat_requests"] == len(ok)
    assert elapsed < MAX_FAILOVER_S * 2


# ---------------------------------------------------------------- speed follows live latency
def test_speed_moves_traffic_away_from_a_slowed_deployment(gw: GatewayProc, sims: dict[str, Sim]) -> None:
    spd = sims["spd"]
    sim_config(spd, latency_ms=0)
    before = [served_by(gw, "spd", headers={"x-tiergate-strategy": "speed"}) for _ in range(5)]
    assert before.count("spd-a") >= 4, before  # equal expectations: configured order, then live data
    sim_config(spd, latency_ms=250)
    try:
        after = [served_by(gw, "spd", headers={"x-tiergate-strategy": "speed"}) for _ in range(20)]
    finally:
        sim_config(spd, latency_ms=0)
    assert after.count("spd-a") <= 3, after  # a few slow answers teach the EWMA
    assert after[-10:] == ["spd-b"] * 10, after


def test_max_latency_constraint_uses_observed_latency(gw: GatewayProc, sims: dict[str, Sim]) -> None:
    """spd-a is configured at 50 ms but answers in 200 ms: `max_latency_ms: 120` must exclude it
    by what traffic shows, as it does for `speed` (constraints.check takes the observed EWMA)."""
    spd = sims["spd"]
    sim_config(spd, latency_ms=200)
    try:
        for _ in range(4):  # ordered, spd-b excluded: spd-a's live average climbs to ~200 ms
            assert served_by(gw, "spd", metadata={"constraints": {"exclude": ["spd-b"]}}) == "spd-a"
    finally:
        sim_config(spd, latency_ms=0)
    d = explain(gw, "spd", metadata={"constraints": {"max_latency_ms": 120}})
    reasons = {e["deployment"]: e["reason"] for e in d["excluded"]}
    assert "spd-a" in reasons and "observed" in reasons["spd-a"], d
    assert d["order"] == ["spd-b"]


# ---------------------------------------------------------------- learning
def _first_choice(h: dict[str, str], group: tuple[str, str]) -> str:
    """In a pair, the first choice is the deployment that answered unless it was a fallback."""
    served = h["x-tiergate-deployment"]
    if int(h["x-tiergate-fallbacks"]) == 0:
        return served
    return group[0] if served == group[1] else group[1]


def test_learned_converges_on_feedback(gw: GatewayProc, sims: dict[str, Sim]) -> None:
    pair = ("learn-good", "learn-bad")
    firsts = []
    for _ in range(80):
        status, data, h = chat(gw, "learn", headers={"x-tiergate-strategy": "learned"})
        assert status == 200, data
        first = _first_choice(h, pair)
        firsts.append(first)
        score = 1.0 if h["x-tiergate-deployment"] == "learn-good" else 0.0
        fs, fb, _ = http_json("POST", f"{gw.url}/feedback", {"request_id": h["x-request-id"], "score": score}, AUTH)
        assert fs == 200 and fb["deployment"] == h["x-tiergate-deployment"], fb
    tail = firsts[-30:]
    assert tail.count("learn-good") >= 24, firsts  # >= 80 % of first choices in the last 30


def test_learned_converges_on_upstream_failures_hidden_by_fallback(tight: GatewayProc, sims: dict[str, Sim]) -> None:
    """lf-bad fails half its calls with a 500; fallback to lf-good hides that from the client,
    but the outcome of every attempt must still teach the bandit."""
    pair = ("lf-good", "lf-bad")
    sim_config(sims["lfbad"], seed=_seed_fail_then_pass(0.5))  # its first call fails
    firsts = []
    for _ in range(100):
        status, data, h = chat(tight, "lf", headers={"x-tiergate-strategy": "learned"})
        assert status == 200, data  # never visible to the client
        firsts.append(_first_choice(h, pair))
    bad = sims["lfbad"].stats()
    assert bad["faults"] > 0
    tail = firsts[-30:]
    assert tail.count("lf-good") >= 24, firsts
    # The bandit's posterior of lf-bad counts the failures its upstream really had (explain
    # shows the Beta parameters each draw came from).
    ranking = explain(tight, "lf", headers={"x-tiergate-strategy": "learned"})["routing"]["ranking"]
    why = next(r["why"] for r in ranking if r["deployment"] == "lf-bad")
    m = BETA.search(why)
    assert m is not None, why
    alpha, beta = float(m.group(1)), float(m.group(2))
    assert m.group(3) != "prior" and beta - 1 >= bad["faults"], (
        f"lf-bad failed {bad['faults']} of {bad['chat_requests']} calls, but the learned posterior is "
        f"Beta({alpha:g}, {beta:g}): failed attempts are not recorded ({why})"
    )
    assert alpha - 1 >= bad["chat_requests"] - bad["faults"]


# ---------------------------------------------------------------- experiments
def test_experiment_sticky_by_user_and_split(gw: GatewayProc, sims: dict[str, Sim]) -> None:
    users = [f"user-{i}" for i in range(200)]
    bodies = [{"model": "ab", "messages": HELLO, "user": u} for u in users]
    first = fan_out(gw, bodies, limit=32)
    second = fan_out(gw, list(reversed(bodies)), limit=32)[::-1]
    assert all(a[0] == 200 for a in first + second)
    arms = [a[2]["x-tiergate-deployment"] for a in first]
    assert arms == [a[2]["x-tiergate-deployment"] for a in second]  # sticky per user
    counts = {arm: arms.count(arm) for arm in ("ab-a", "ab-b")}
    assert sum(counts.values()) == 200
    assert 70 <= counts["ab-a"] <= 130, counts  # 50/50 within ~4 standard deviations
    d = explain(gw, "ab", user=users[0])
    assert d["routing"]["experiment_arm"] == arms[0] and d["order"][0] == arms[0]
    # An arm that is not eligible is never forced: the other one answers.
    other = "ab-b" if arms[0] == "ab-a" else "ab-a"
    assert served_by(gw, "ab", user=users[0], metadata={"constraints": {"exclude": [arms[0]]}}) == other


# ---------------------------------------------------------------- retries and budgets
def _seed_fail_then_pass(rate: float) -> int:
    """A seed whose fault dice fail the first roll and pass the second (simulator: roll < rate)."""
    for seed in range(10_000):
        rng = random.Random(seed)
        if rng.random() < rate <= rng.random():
            return seed
    raise AssertionError("no seed found")


def test_retry_on_the_last_candidate_counts_attempts(gw: GatewayProc, sims: dict[str, Sim]) -> None:
    retry = sims["retry"]
    try:
        sim_config(retry, fault="503", fault_rate=0.5, seed=_seed_fail_then_pass(0.5))
        status, data, h = chat(gw, "retry")
        assert status == 200, data  # 503, backoff, retry, answer
        assert h["x-tiergate-deployment"] == "retry-one" and h["x-tiergate-fallbacks"] == "1"
        assert retry.stats()["chat_requests"] == 2 and retry.stats()["faults"] == 1

        retry.reset()
        sim_config(retry, fault="503", fault_rate=1.0)
        started = time.monotonic()
        status, data, _ = chat(gw, "retry")
        assert time.monotonic() - started < 1.0
        assert status == 503 and data["error"]["code"] == "upstream_overloaded", data
        assert retry.stats()["chat_requests"] == 2  # routing.retries.attempts, no more
    finally:
        sim_config(retry, fault=None, fault_rate=1.0)
    assert served_by(gw, "retry") == "retry-one"


def test_retry_after_over_the_limit_is_not_waited_for(gw: GatewayProc, sims: dict[str, Sim]) -> None:
    started = time.monotonic()
    status, data, h = chat(gw, "r429")  # the simulator's 429 says Retry-After: 1 > 0.5
    elapsed = time.monotonic() - started
    assert status == 429 and data["error"]["code"] == "upstream_rate_limited", data
    assert elapsed < 0.8, elapsed
    assert sims["r429"].stats()["chat_requests"] == 1  # not retried: the client decides
    assert h.get("retry-after") == "1"


def test_failover_budget_bounds_hanging_deployments(tight: GatewayProc, sims: dict[str, Sim]) -> None:
    started = time.monotonic()
    status, data, _ = chat(tight, "hang", timeout=15)
    elapsed = time.monotonic() - started
    assert elapsed < MAX_FAILOVER_S + 0.5, elapsed  # not 10 s (hang), not 2 x 5 s (timeouts)
    assert elapsed >= MAX_FAILOVER_S * 0.9
    assert status == 504 and data["error"]["code"] == "upstream_timeout", data
    assert "max_failover_s" in data["error"]["message"]


def test_failover_budget_bounds_streams_too(tight: GatewayProc, sims: dict[str, Sim]) -> None:
    started = time.monotonic()
    status, data, _ = chat(tight, "hang", stream=True, timeout=15)
    assert time.monotonic() - started < MAX_FAILOVER_S + 0.5
    assert status == 504, data


# ---------------------------------------------------------------- feedback API
def test_feedback_api(gw: GatewayProc, sims: dict[str, Sim]) -> None:
    status, _, h = chat(gw, "ab", user="feedback-user")
    assert status == 200
    rid, served = h["x-request-id"], h["x-tiergate-deployment"]
    url = f"{gw.url}/feedback"

    status, data, _ = http_json("POST", url, {"request_id": rid, "score": 0.75, "comment": "fine"}, AUTH)
    assert status == 200 and data["deployment"] == served and data["request_id"] == rid, data
    assert data["duplicate"] is False
    status, data, _ = http_json("POST", url, {"request_id": rid, "score": 1}, AUTH)
    assert status == 200 and data["duplicate"] is True  # only the first score counts

    status, data, _ = http_json("POST", url, {"request_id": "req_does_not_exist", "score": 1}, AUTH)
    assert status == 404 and data["error"]["code"] == "request_not_found", data
    for bad in (1.5, -0.1, "good", None, True):
        status, data, _ = http_json("POST", url, {"request_id": rid, "score": bad}, AUTH)
        assert status in (400, 422) and data["error"]["param"] == "score", (bad, data)
    status, data, _ = http_json("POST", url, {"score": 1}, AUTH)
    assert status == 400 and data["error"]["param"] == "request_id"
    status, _, _ = http_json("POST", url, {"request_id": rid, "score": 1})
    assert status == 401
