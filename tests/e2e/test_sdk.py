"""The Python SDK: the seeds' `llm_call` shape in-process (no server), and the remote client."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from tests.support import MASTER_KEY, Sim, deployment, start_gateway, start_sim
from tiergate.errors import PolicyError, UnprocessableRequestError
from tiergate.sdk import RemoteClient, Tiergate, allm_call, llm_call


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
