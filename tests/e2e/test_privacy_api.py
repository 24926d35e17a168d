"""The privacy engine end to end with the `openai` SDK: a gateway process in front of simulated
local, sovereign and cloud upstreams (real processes that record what they received)."""

from __future__ import annotations

import json
from typing import Any, Iterator

import openai
import pytest
from openai import OpenAI

from tests.support import MASTER_KEY, GatewayProc, Sim, deployment, http_json, start_gateway, start_sim

NAME, PHONE, EMAIL = "Rəşad Əliyev", "+994 50 123 45 67", "rashad.aliyev@bank.az"
PROMPT = f"[[echo]]Salam! Mənim adım {NAME}, telefonum {PHONE}, e-poçtum {EMAIL}."


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("privacy")
    sims: dict[str, Sim] = {}
    gw: GatewayProc | None = None
    try:
        for loc in ("local", "sovereign", "cloud"):
            sims[loc] = start_sim(tmp, loc)
        config = {
            "deployments": [deployment(f"{loc}-a", sims[loc], loc) for loc in sims],
            "model_groups": {"cloud-first": ["cloud-a", "sovereign-a", "local-a"], "cloud-only": ["cloud-a"]},
        }
        gw = start_gateway(tmp, config)
        yield {"gw": gw, "sims": sims}
    finally:
        if gw is not None:
            gw.stop()
        for s in sims.values():
            s.stop()


@pytest.fixture
def sims(world: dict[str, Any]) -> dict[str, Sim]:
    for s in world["sims"].values():
        s.reset()
    return world["sims"]


@pytest.fixture
def client(world: dict[str, Any]) -> Iterator[OpenAI]:
    c = OpenAI(base_url=world["gw"].url, api_key=MASTER_KEY, max_retries=0, timeout=20)
    yield c
    c.close()


def _upstream_text(sim: Sim) -> str:
    return json.dumps(sim.stats()["last_request"], ensure_ascii=False)


def test_cloud_gets_placeholders_and_client_gets_values(client: OpenAI, sims: dict[str, Sim]) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="cloud-first", messages=[{"role": "user", "content": PROMPT}]
    )
    assert raw.headers["x-tiergate-deployment"] == "cloud-a"
    assert raw.headers["x-tiergate-transform"] == "pseudonymize"
    sent = _upstream_text(sims["cloud"])
    for value in (NAME, PHONE, EMAIL):
        assert value not in sent
    assert "[PERSON_1]" in sent and "[PHONE_1]" in sent and "[EMAIL_1]" in sent
    assert raw.parse().choices[0].message.content == PROMPT.removeprefix("[[echo]]")


def test_streamed_answer_is_restored_too(client: OpenAI, sims: dict[str, Sim]) -> None:
    stream = client.chat.completions.create(
        model="cloud-first", messages=[{"role": "user", "content": PROMPT}], stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == PROMPT.removeprefix("[[echo]]")
    assert NAME not in _upstream_text(sims["cloud"])


def test_fin_keeps_the_request_off_cloud(client: OpenAI, sims: dict[str, Sim]) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="cloud-first", messages=[{"role": "user", "content": "[[echo]]Mənim FİN kodum 5ZJ8K2L-dir."}]
    )
    assert raw.headers["x-tiergate-privacy"] == "SENSITIVE"
    assert raw.headers["x-tiergate-deployment"] == "sovereign-a"
    assert sims["cloud"].stats()["chat_requests"] == 0
    with pytest.raises(openai.PermissionDeniedError):
        client.chat.completions.create(
            model="cloud-only", messages=[{"role": "user", "content": "FİN: 5ZJ8K2L"}]
        )
    assert sims["cloud"].stats()["chat_requests"] == 0


def test_secret_keeps_the_request_on_the_premises(client: OpenAI, sims: dict[str, Sim]) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="cloud-first",
        messages=[{"role": "user", "content": "Why does AKIAIOSFODNN7EXAMPLE fail with my secret key?"}],
    )
    assert raw.headers["x-tiergate-privacy"] == "PRIVATE" and raw.headers["x-tiergate-location"] == "local"
    assert sims["cloud"].stats()["chat_requests"] == 0 and sims["sovereign"].stats()["chat_requests"] == 0


def test_local_deployment_sees_the_original_text(client: OpenAI, sims: dict[str, Sim]) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="cloud-first", messages=[{"role": "user", "content": PROMPT}], extra_headers={"x-tiergate-privacy": "PRIVATE"}
    )
    assert raw.headers["x-tiergate-location"] == "local" and raw.headers["x-tiergate-transform"] == "none"
    assert NAME in _upstream_text(sims["local"])


def test_explain_shows_types_positions_and_transforms_never_values(world: dict[str, Any], sims: dict[str, Sim]) -> None:
    status, body, _ = http_json(
        "POST", f"{world['gw'].url}/chat/completions",
        {"model": "cloud-first", "messages": [{"role": "user", "content": PROMPT}]},
        {"authorization": f"Bearer {MASTER_KEY}", "x-tiergate-explain": "true"},
    )
    assert status == 200
    text = json.dumps(body, ensure_ascii=False)
    for value in (NAME, PHONE, EMAIL):
        assert value not in text
    detection = body["privacy"]["detection"]
    assert detection["counts"] == {"PERSON": 1, "PHONE": 1, "EMAIL": 1}
    person = next(e for e in detection["entities"] if e["type"] == "PERSON")
    assert PROMPT[person["start"]:person["end"]] == NAME and person["action"] == "pseudonymize"
    assert body["order"] == ["cloud-a", "sovereign-a", "local-a"]
    assert body["transforms"] == {"cloud-a": "pseudonymize", "sovereign-a": "pseudonymize", "local-a": "none"}
    assert all(s.stats()["chat_requests"] == 0 for s in sims.values())


def test_anthropic_route_pseudonymises_and_restores_streams(world: dict[str, Any], sims: dict[str, Sim]) -> None:
    import anthropic

    claude = anthropic.Anthropic(base_url=world["gw"].base, api_key=MASTER_KEY, max_retries=0, timeout=20)
    try:
        with claude.messages.stream(
            model="cloud-first", max_tokens=200, messages=[{"role": "user", "content": PROMPT}]
        ) as stream:
            text = "".join(stream.text_stream)
        assert text == PROMPT.removeprefix("[[echo]]")
        sent = _upstream_text(sims["cloud"])
        assert NAME not in sent and EMAIL not in sent and "[PERSON_1]" in sent
    finally:
        claude.close()


def test_embedding_inputs_follow_the_same_rules(client: OpenAI, sims: dict[str, Sim]) -> None:
    raw = client.embeddings.with_raw_response.create(model="cloud-first", input=[f"contact {EMAIL}", "FİN: 5ZJ8K2L"])
    assert raw.headers["x-tiergate-deployment"] == "sovereign-a"  # the FIN keeps the batch in the country
    sent = _upstream_text(sims["sovereign"])
    assert EMAIL not in sent and "[EMAIL_1]" in sent
    assert sims["cloud"].stats()["chat_requests"] == 0
