"""The Python SDK: the seeds' `llm_call` shape in-process (no server), and the remote client."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from tests.support import MASTER_KEY, Sim, deployment, free_port, start_gateway, start_sim
from tiergate.errors import GatewayError, PolicyError, UnprocessableRequestError
from tiergate.sdk import (
    DailyCostLimitError,
    LLMResponse,
    RemoteClient,
    Tiergate,
    TierNotConfiguredError,
    allm_call,
    configure,
    llm_call,
)


@pytest.fixture(scope="module")
def sims(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Sim]]:
    tmp = tmp_path_factory.mktemp("sdk")
    s = {"local": start_sim(tmp, "local"), "cloud": start_sim(tmp, "cloud")}
    yield s
    for sim in s.values():
        sim.stop()


@pytest.fixture
def config(tmp_path: Path, sims: dict[str, Sim]) -> Path:
    for s in sims.values():
        s.reset()
    cfg: dict[str, Any] = {
        "deployments": [
            deployment("ollama-local", sims["local"], "local", latency_ms=300),
            deployment("groq-cloud", sims["cloud"], "cloud", latency_ms=200, price={"input": 0.2, "output": 0.6}),
        ],
        "model_groups": {"default": ["groq-cloud", "ollama-local"], "cloud": ["groq-cloud"]},
    }
    path = tmp_path / "tiergate.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_llm_call_in_process(config: Path, sims: dict[str, Sim]) -> None:
    r = llm_call("[[echo]]Salam, dünya", config=str(config))
    assert r.text == "Salam, dünya" and r.deployment == "groq-cloud" and r.location == "cloud"
    assert sims["cloud"].stats()["chat_requests"] == 1


def test_privacy_high_forces_local(config: Path, sims: dict[str, Sim]) -> None:
    gw = Tiergate(config)
    try:
        r = gw.call("[[echo]]patient record", constraints={"privacy": "high"})
        assert r.deployment == "ollama-local" and r.privacy == "PRIVATE"
        with pytest.raises(PolicyError):
            gw.call("x", model="cloud", constraints={"privacy": "high"})
        assert sims["cloud"].stats()["chat_requests"] == 0
    finally:
        gw.close()


def test_latency_and_cost_constraints(config: Path) -> None:
    gw = Tiergate(config)
    try:
        assert gw.call("x", constraints={"max_latency_ms": 250}).deployment == "groq-cloud"
        assert gw.call("x", constraints={"max_cost": 0.0000001}).deployment == "ollama-local"
        with pytest.raises(UnprocessableRequestError) as e:
            gw.call("x", model="cloud", constraints={"max_latency_ms": 50})
        assert "max_latency_ms" in e.value.message
    finally:
        gw.close()


def test_embeddings_in_process_follow_privacy(config: Path, sims: dict[str, Sim]) -> None:
    gw = Tiergate(config)
    try:
        vectors = gw.embed(["a", "b", "c"], constraints={"privacy": "PRIVATE"}, dimensions=8)
        assert [len(v) for v in vectors] == [8, 8, 8]
        assert sims["local"].stats()["last_request"]["input"] == ["a", "b", "c"]
        assert sims["cloud"].stats()["chat_requests"] == 0
        assert gw.embed("public text", dimensions=8) != vectors[0]  # cloud first for PUBLIC
        assert sims["cloud"].stats()["chat_requests"] == 1
    finally:
        gw.close()


def test_streaming_in_process(config: Path) -> None:
    gw = Tiergate(config)
    try:
        full = gw.call("tell me a story").text
        assert "".join(gw.stream("tell me a story")) == full
    finally:
        gw.close()


async def test_async_twin(config: Path) -> None:
    r = await allm_call("[[echo]]async", config=str(config), constraints={"privacy": "PRIVATE"})
    assert r.text == "async" and r.location == "local"
    gw = Tiergate(config)
    try:
        parts = [p async for p in gw.astream("[[echo]]streamed async")]
        assert "".join(parts) == "streamed async"
    finally:
        await gw.aclose()


def test_remote_client(tmp_path: Path, sims: dict[str, Sim]) -> None:
    gw = start_gateway(tmp_path, {"deployments": [deployment("ollama-local", sims["local"], "local")],
                                  "model_groups": {"default": ["ollama-local"]}})
    client = RemoteClient(gw.base, api_key=MASTER_KEY)
    try:
        r = client.call("[[echo]]över the wire", constraints={"privacy": "high"})
        assert r.text == "över the wire" and r.deployment == "ollama-local" and r.privacy == "PRIVATE"
        assert "".join(client.stream("[[echo]]streamed remote")) == "streamed remote"
        vectors = client.embed(["one", "two"], constraints={"privacy": "high"})
        assert len(vectors) == 2 and len(vectors[0]) == 64 and vectors[0] != vectors[1]
        assert sims["local"].stats()["last_request"]["input"] == ["one", "two"]
    finally:
        client.close()
        gw.stop()


# ---------------------------------------------------------------------------- issue 5: tiers,
# batch, configure. Real simulated upstreams; `configure` is reset around every test.
@pytest.fixture(autouse=True)
def _fresh_sdk_config() -> Iterator[None]:
    configure()
    yield
    configure()


@pytest.fixture(scope="module")
def sov(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    sim = start_sim(tmp_path_factory.mktemp("sdk-sov"), "sovereign")
    yield sim
    sim.stop()


def _write(path: Path, cfg: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture
def tiers(tmp_path: Path, sims: dict[str, Sim], sov: Sim) -> Path:
    """Three tiers; the default group lists cloud first, so only a tier hint moves a call."""
    for s in (*sims.values(), sov):
        s.reset()
    return _write(tmp_path / "tiers.yaml", {
        "deployments": [
            deployment("groq-cloud", sims["cloud"], "cloud", latency_ms=200, price={"input": 0.2, "output": 0.6}),
            deployment("az-sov", sov, "sovereign", latency_ms=250),
            deployment("ollama-local", sims["local"], "local", latency_ms=300),
        ],
        "model_groups": {"default": ["groq-cloud", "az-sov", "ollama-local"], "cloud": ["groq-cloud"]},
    })


def test_tier_shortcuts_route_by_location(tiers: Path) -> None:
    cfg = str(tiers)
    assert llm_call.local("[[echo]]l", config=cfg).location == "local"
    assert llm_call.sovereign("[[echo]]s", config=cfg).deployment == "az-sov"
    assert llm_call.cloud("[[echo]]c", config=cfg).deployment == "groq-cloud"  # the `cloud` group
    assert llm_call.frontier("[[echo]]f", config=cfg).location == "cloud"
    assert llm_call.gpu("[[echo]]g", config=cfg).location in ("sovereign", "cloud")
    r = llm_call.local("[[echo]]pinned", model="ollama-local", config=cfg)  # explicit model wins
    assert (r.text, r.deployment) == ("pinned", "ollama-local")


def test_claude_shortcut_needs_a_group(tiers: Path, tmp_path: Path, sims: dict[str, Sim]) -> None:
    with pytest.raises(TierNotConfiguredError) as e:
        llm_call.claude("hi", config=str(tiers))
    assert "model group named 'claude'" in e.value.message
    assert sims["cloud"].stats()["chat_requests"] == 0  # refused before anything was sent
    cfg = yaml.safe_load(tiers.read_text())
    cfg["model_groups"]["claude"] = ["groq-cloud"]
    with_claude = _write(tmp_path / "claude.yaml", cfg)
    assert llm_call.claude("[[echo]]deep", config=str(with_claude)).deployment == "groq-cloud"


async def test_async_shortcut(tiers: Path) -> None:
    r = await allm_call.local("[[echo]]async local", config=str(tiers))
    assert (r.text, r.location) == ("async local", "local")


def test_batch_in_order_with_a_failed_item(tiers: Path, sims: dict[str, Sim]) -> None:
    prompts = [f"[[echo]]item {i}" for i in range(20)]
    prompts[7] = "[[fault:400]] bad item"
    out = llm_call.batch(prompts, model="cloud", concurrency=4, config=str(tiers))
    assert len(out) == 20
    assert isinstance(out[7], GatewayError) and out[7].status == 400
    answers = [o for i, o in enumerate(out) if i != 7]
    assert all(isinstance(o, LLMResponse) for o in answers)
    assert [o.text for o in answers] == [f"item {i}" for i in range(20) if i != 7]  # type: ignore[union-attr]
    assert sims["cloud"].stats()["chat_requests"] == 20


async def test_async_batch(tiers: Path) -> None:
    out = await allm_call.batch([f"[[echo]]{i}" for i in range(6)], config=str(tiers), concurrency=3,
                                constraints={"privacy": "high"})
    assert [(o.text, o.location) for o in out] == [(str(i), "local") for i in range(6)]  # type: ignore[union-attr]


def test_fallback_chain_skips_a_dead_tier(tmp_path: Path, sims: dict[str, Sim]) -> None:
    for s in sims.values():
        s.reset()
    dead = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    path = _write(tmp_path / "chain.yaml", {
        "deployments": [deployment("dead-local", dead, "local"), deployment("groq-cloud", sims["cloud"], "cloud")],
        "model_groups": {"default": ["groq-cloud"], "local": ["dead-local"], "cloud": ["groq-cloud"]},
    })
    configure(default_tier="local", fallback_chain=["local", "cloud"], config=str(path))
    r = llm_call("[[echo]]still answered")
    assert (r.text, r.deployment) == ("still answered", "groq-cloud")
    # A privacy refusal is final: PRIVATE data never moves to the next tier by itself.
    configure(default_tier="cloud", fallback_chain=["cloud", "local"], config=str(path))
    with pytest.raises(PolicyError):
        llm_call("x", constraints={"privacy": "high"})
    assert sims["cloud"].stats()["chat_requests"] == 1


def test_cost_limit_daily_refuses_after_the_limit(tiers: Path, sims: dict[str, Sim]) -> None:
    configure(cost_limit_daily=1e-9, config=str(tiers))  # the first priced answer reaches it
    r = llm_call("[[echo]]priced", model="cloud")
    assert r.cost_usd is not None and r.cost_usd > 1e-9
    with pytest.raises(DailyCostLimitError) as e:
        llm_call("[[echo]]one too many", model="cloud")
    assert "cost_limit_daily" in e.value.message and "UTC" in e.value.message
    assert sims["cloud"].stats()["chat_requests"] == 1  # the refused call sent nothing


def test_log_performance_never_logs_the_prompt(tiers: Path, caplog: pytest.LogCaptureFixture) -> None:
    configure(log_performance=True, config=str(tiers))
    secret = "[[echo]]the-secret-prompt-words"
    with caplog.at_level(logging.INFO, logger="tiergate.sdk"):
        llm_call(secret, model="cloud")
        with pytest.raises(GatewayError):
            llm_call("[[fault:400]] the-failing-prompt-words", model="cloud")
    lines = [rec.getMessage() for rec in caplog.records if rec.name == "tiergate.sdk"]
    assert len(lines) == 2
    ok, failed = lines
    for part in ("deployment=groq-cloud", "location=cloud", "latency_ms=", "prompt_tokens=", "completion_tokens=", "cost_usd="):
        assert part in ok
    assert "status=400" in failed
    assert not any("prompt-words" in line for line in lines)


def test_remote_client_batch_and_llm_call_through_it(tmp_path: Path, sims: dict[str, Sim]) -> None:
    gw = start_gateway(tmp_path, {"deployments": [deployment("ollama-local", sims["local"], "local")],
                                  "model_groups": {"default": ["ollama-local"], "local": ["ollama-local"]}})
    client = RemoteClient(gw.base, api_key=MASTER_KEY)
    try:
        out = client.batch([f"[[echo]]r{i}" for i in range(5)] + ["[[fault:400]]x"], concurrency=3)
        assert [o.text for o in out[:5]] == [f"r{i}" for i in range(5)]  # type: ignore[union-attr]
        assert isinstance(out[5], GatewayError) and out[5].status == 400
        configure(config=client)
        r = llm_call.local("[[echo]]via remote")  # the `local` group, learned from /v1/models
        assert (r.text, r.deployment) == ("via remote", "ollama-local")
    finally:
        client.close()
        gw.stop()


def test_llm_call_stream_is_guarded_and_logged(tiers: Path, caplog: pytest.LogCaptureFixture) -> None:
    cfg = configure(cost_limit_daily=1e-9, log_performance=True, config=str(tiers))
    with caplog.at_level(logging.INFO, logger="tiergate.sdk"):
        text = "".join(llm_call("tell me a story", model="cloud", stream=True))  # type: ignore[arg-type]
    assert text
    assert cfg.guard is not None and cfg.guard.spent_usd > 0  # estimated from the streamed text
    lines = [rec.getMessage() for rec in caplog.records if rec.name == "tiergate.sdk"]
    assert len(lines) == 1 and "deployment=groq-cloud" in lines[0] and "story" not in lines[0]
    with pytest.raises(DailyCostLimitError):
        next(iter(llm_call("again", model="cloud", stream=True)))  # type: ignore[call-overload]
