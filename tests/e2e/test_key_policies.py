"""What a virtual key carries into routing (issue 6): residency and deployment restrictions that
no fallback crosses, allowed models, default privacy and strategy, the key's own rate limit and
budget, its team's budget, and expiry taking effect at once. One gateway process, three simulated
upstream processes (one per location) that count what reaches them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.support import MASTER_KEY, GatewayProc, Sim, deployment, http_json, start_gateway, start_sim

ADMIN = {"authorization": f"Bearer {MASTER_KEY}"}


@dataclass
class World:
    gw: GatewayProc
    sims: dict[str, Sim]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("key-policies")
    sims: dict[str, Sim] = {}
    gw: GatewayProc | None = None
    try:
        for loc in ("local", "sovereign", "cloud"):
            sims[loc] = start_sim(tmp, loc)
        gw = start_gateway(tmp, {
            "server": {"key_cache_ttl_s": 60},
            "deployments": [
                # cloud first and cheapest: without restrictions it is the first choice
                deployment("us-cloud", sims["cloud"], "cloud", price={"input": 0, "output": 1000}),
                deployment("az-sov", sims["sovereign"], "sovereign", price={"input": 0, "output": 2000}),
                deployment("office", sims["local"], "local"),
            ],
            "model_groups": {"chat": ["us-cloud", "az-sov", "office"], "other": ["office"]},
            "teams": {"finance": {"daily_usd": "0.05"}},
            "budgets": {"max_request_share": 1.0, "emergency_below": 0},
            "routing": {"health_probe_interval_s": 0, "retries": {"attempts": 1}},
        })
        yield World(gw, sims)
    finally:
        if gw is not None:
            gw.stop()
        for s in sims.values():
            s.stop()


def new_key(w: World, **spec: Any) -> tuple[str, str]:
    status, body, _ = http_json("POST", f"{w.gw.base}/admin/keys", spec, headers=ADMIN)
    assert status == 201, body
    return body["id"], body["key"]


def chat(w: World, key: str, model: str = "chat", content: str = "Tell me about Baku.", **extra: Any
         ) -> tuple[int, Any, dict[str, str]]:
    body = {"model": model, "max_tokens": 10, "messages": [{"role": "user", "content": content}], **extra}
    return http_json("POST", f"{w.gw.url}/chat/completions", body, headers={"authorization": f"Bearer {key}"})


def served(w: World) -> dict[str, int]:
    return {loc: s.stats()["requests"] for loc, s in w.sims.items()}


def test_a_key_limited_to_az_never_reaches_another_residency(world: World) -> None:
    _, key = new_key(world, name="az-only", residencies=["AZ"])
    before = served(world)
    for _ in range(5):
        status, body, headers = chat(world, key)
        assert status == 200, body
        assert headers["x-tiergate-deployment"] == "az-sov" and headers["x-tiergate-residency"] == "AZ"
    # The decision trace names why the others were left out.
    status, trace, _ = http_json("POST", f"{world.gw.url}/chat/completions",
                                 {"model": "chat", "messages": [{"role": "user", "content": "hi"}]},
                                 headers={"authorization": f"Bearer {key}", "x-tiergate-explain": "true"})
    assert status == 200 and trace["order"] == ["az-sov"]
    kinds = {e["deployment"]: e["kind"] for e in trace["excluded"]}
    assert kinds == {"us-cloud": "key", "office": "key"}
    # With the AZ deployment failing, no fallback crosses the border: the client gets the error.
    http_json("POST", f"{world.sims['sovereign'].base}/_sim/config", {"fault": "500"})
    try:
        status, body, _ = chat(world, key)
        assert status == 502 and "az-sov" in body["error"]["message"]
    finally:
        http_json("POST", f"{world.sims['sovereign'].base}/_sim/config", {"fault": None})
    after = served(world)
    assert after["cloud"] == before["cloud"] and after["local"] == before["local"]
    assert after["sovereign"] >= before["sovereign"] + 6


def test_allowed_models_default_privacy_and_default_strategy(world: World) -> None:
    _, key = new_key(world, models=["chat"], default_privacy="SENSITIVE", default_strategy="local_first")
    status, body, _ = chat(world, key, model="other")
    assert status == 403 and body["error"]["code"] == "model_not_allowed" and body["error"]["param"] == "model"
    status, body, headers = chat(world, key)
    # local_first (the key's default) picks the office deployment; SENSITIVE would allow az-sov too.
    assert status == 200 and headers["x-tiergate-deployment"] == "office"
    assert headers["x-tiergate-privacy"] == "SENSITIVE"
    status, body, headers = chat(world, key, metadata={"strategy": "cost_optimized"})
    # cost_optimized among what SENSITIVE allows (az-sov, office): office is free.
    assert status == 200 and headers["x-tiergate-deployment"] == "office"
    status, trace, _ = http_json("POST", f"{world.gw.url}/chat/completions",
                                 {"model": "chat", "messages": [{"role": "user", "content": "hi"}]},
                                 headers={"authorization": f"Bearer {key}", "x-tiergate-explain": "true"})
    assert trace["privacy"]["level"] == "SENSITIVE" and "default of API key" in trace["privacy"]["reason"]
    assert "us-cloud" in {e["deployment"] for e in trace["excluded"]}


def test_key_rate_limit_headers_and_429(world: World) -> None:
    _, key = new_key(world, rpm=2, residencies=["on-prem"])
    answers = [chat(world, key) for _ in range(3)]
    assert [a[0] for a in answers] == [200, 200, 429]
    assert [a[2]["x-ratelimit-remaining-requests"] for a in answers] == ["1", "0", "0"]
    assert all(a[2]["x-ratelimit-limit-requests"] == "2" for a in answers)
    assert answers[2][1]["error"]["code"] == "rate_limit_exceeded" and int(answers[2][2]["retry-after"]) >= 1


def test_key_and_team_budgets(world: World) -> None:
    # us-cloud costs $0.001 per output token: 10 tokens = $0.01 a request.
    _, key = new_key(world, monthly_usd="0.02", deployments=["us-cloud"])
    results = [chat(world, key) for _ in range(3)]
    assert [r[0] for r in results] == [200, 200, 429]
    err = results[2][1]["error"]
    assert err["code"] == "budget_exceeded" and err["budget"]["scope"].startswith("key:")
    assert err["budget"]["period"] == "monthly"
    # Two keys of team finance share its $0.05 a day.
    _, k1 = new_key(world, team="finance", deployments=["us-cloud"])
    _, k2 = new_key(world, team="finance", deployments=["us-cloud"])
    statuses = [chat(world, k)[0] for k in (k1, k2, k1, k2, k1, k2)]
    assert statuses == [200] * 5 + [429]
    status, body, _ = http_json("GET", f"{world.gw.base}/admin/budgets/team:finance", headers=ADMIN)
    assert status == 200 and body["source"] == "config"
    daily = body["budgets"][0]
    assert daily["period"] == "daily" and daily["spent_usd"] == "0.050000"


def test_an_expired_key_is_refused_at_once(world: World) -> None:
    key_id, key = new_key(world, residencies=["on-prem"])
    assert chat(world, key)[0] == 200  # cached now (key_cache_ttl_s: 60)
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    status, body, _ = http_json("PATCH", f"{world.gw.base}/admin/keys/{key_id}", {"expires_at": past}, headers=ADMIN)
    assert status == 200, body
    status, body, _ = chat(world, key)
    assert status == 401 and body["error"]["code"] == "key_expired"


def test_admin_can_override_a_team_budget(world: World) -> None:
    _, key = new_key(world, team="ops", deployments=["us-cloud"])
    status, body, _ = http_json("PUT", f"{world.gw.base}/admin/budgets/team:ops", {"daily_usd": "0.01"}, headers=ADMIN)
    assert status == 200 and body["source"] == "admin"
    assert [chat(world, key)[0] for _ in range(2)] == [200, 429]
    status, body, _ = http_json("PUT", f"{world.gw.base}/admin/budgets/team:ops", {"daily_usd": "-1"}, headers=ADMIN)
    assert status == 400 and body["error"]["param"] == "daily_usd"
    status, body, _ = http_json("PUT", f"{world.gw.base}/admin/budgets/nobody", {"daily_usd": "1"}, headers=ADMIN)
    assert status == 400 and body["error"]["param"] == "scope"
    status, body, _ = http_json("DELETE", f"{world.gw.base}/admin/budgets/team:ops", headers=ADMIN)
    assert status == 200 and body["deleted"] is True
    assert chat(world, key)[0] == 200
