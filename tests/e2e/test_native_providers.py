"""Every wire format behind both inbound APIs: one gateway process routing to simulated upstreams
that speak OpenAI's, Anthropic's, Gemini's, Ollama's and Bedrock's wire formats (real processes,
real sockets), driven by the official `openai` and `anthropic` SDKs."""

from __future__ import annotations

from typing import Any, Iterator

import anthropic
import openai
import pytest
from anthropic import Anthropic, AsyncAnthropic
from openai import OpenAI

from tests.support import MASTER_KEY, GatewayProc, Sim, deployment, start_gateway, start_sim

FORMATS = ("openai", "anthropic", "gemini", "ollama", "bedrock")
AWS_KEY_ID, AWS_SECRET = "AKIDTIERGATETEST", "tiergate-test-secret-access-key"
BEDROCK_MODEL = "anthropic.claude-3-5-sonnet-20241022-v2:0"
TITAN = "amazon.titan-embed-text-v2:0"
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def _native(name: str, sim: Sim, fmt: str, location: str) -> dict[str, Any]:
    """A deployment of wire format `fmt` pointing at its simulated upstream."""
    if fmt == "openai":
        return deployment(name, sim, location)
    extra: dict[str, Any] = {"provider": fmt, "base_url": sim.base}
    if fmt == "gemini":
        extra.update(base_url=f"{sim.base}/v1beta", model="gemini-2.0-flash", api_key="env:SIM_GEMINI_KEY")
    elif fmt == "anthropic":
        extra.update(model="claude-3-5-sonnet-20241022", api_key="env:SIM_ANTHROPIC_KEY")
    elif fmt == "ollama":
        extra.update(model="llama3.2:3b")
    elif fmt == "bedrock":
        extra.update(model=BEDROCK_MODEL, region="us-east-1")
    return deployment(name, sim, location, **extra)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("native")
    sims: dict[str, Sim] = {}
    gw: GatewayProc | None = None
    args: dict[str, tuple[str, ...]] = {
        "anthropic": ("--api-key", "sk-ant-sim-key"),
        "gemini": ("--api-key", "gemini-sim-key"),
        "ollama": ("--model", "llama3.2:3b"),
        "bedrock": ("--api-key", f"{AWS_KEY_ID}:{AWS_SECRET}", "--model", BEDROCK_MODEL, "--model", TITAN),
        "openai": (),
    }
    try:
        for fmt in FORMATS:
            sims[fmt] = start_sim(tmp, "cloud", *args[fmt], fmt=fmt)
        sims["local-ollama"] = start_sim(tmp, "local", "--model", "llama3.2:3b", fmt="ollama")
        sims["busy"] = start_sim(tmp, "cloud", "--fault", "503", *args["anthropic"], fmt="anthropic")
        deployments = [_native(f"{fmt}-cloud", sims[fmt], fmt, "cloud") for fmt in FORMATS]
        deployments.append(_native("ollama-local", sims["local-ollama"], "ollama", "local"))
        deployments.append(_native("anthropic-busy", sims["busy"], "anthropic", "cloud"))
        deployments.append({**_native("bedrock-titan", sims["bedrock"], "bedrock", "cloud"), "model": TITAN})
        groups: dict[str, list[str]] = {f"{fmt}-only": [f"{fmt}-cloud"] for fmt in FORMATS}
        groups["bedrock-embed"] = ["bedrock-titan"]
        groups["busy-then-gemini"] = ["anthropic-busy", "gemini-cloud"]
        groups["mixed"] = [f"{fmt}-cloud" for fmt in FORMATS if fmt != "openai"] + ["ollama-local"]
        env = {
            "SIM_GEMINI_KEY": "gemini-sim-key", "SIM_ANTHROPIC_KEY": "sk-ant-sim-key",
            "AWS_ACCESS_KEY_ID": AWS_KEY_ID, "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
            "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": str(tmp / "no-aws-config"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "no-aws-creds"),
        }
        gw = start_gateway(tmp, {"deployments": deployments, "model_groups": groups}, env=env)
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
def oai(world: dict[str, Any]) -> Iterator[OpenAI]:
    c = OpenAI(base_url=world["gw"].url, api_key=MASTER_KEY, max_retries=0, timeout=20)
    yield c
    c.close()


@pytest.fixture
def claude(world: dict[str, Any]) -> Iterator[Anthropic]:
    c = Anthropic(base_url=world["gw"].base, api_key=MASTER_KEY, max_retries=0, timeout=20)
    yield c
    c.close()


@pytest.mark.parametrize("fmt", FORMATS)
def test_openai_sdk_reaches_every_format(fmt: str, oai: OpenAI, sims: dict[str, Sim]) -> None:
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "[[echo]]Salam, necəsən?"}]
    raw = oai.chat.completions.with_raw_response.create(model=f"{fmt}-only", messages=msgs)  # type: ignore[arg-type]
    res = raw.parse()
    assert res.choices[0].message.content == "Salam, necəsən?"
    assert res.choices[0].finish_reason == "stop" and res.usage is not None and res.usage.prompt_tokens > 0
    assert raw.headers["x-tiergate-deployment"] == f"{fmt}-cloud"
    assert sims[fmt].stats()["chat_requests"] == 1
    stream = oai.chat.completions.create(
        model=f"{fmt}-only", messages=msgs, stream=True, stream_options={"include_usage": True}  # type: ignore[arg-type]
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Salam, necəsən?"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


@pytest.mark.parametrize("fmt", FORMATS)
def test_anthropic_sdk_reaches_every_format(fmt: str, claude: Anthropic, sims: dict[str, Sim]) -> None:
    msg = claude.messages.create(
        model=f"{fmt}-only", max_tokens=200, system="Be brief.",
        messages=[{"role": "user", "content": "[[echo]]Привет из Баку"}],
    )
    assert msg.content[0].type == "text" and msg.content[0].text == "Привет из Баку"
    assert msg.stop_reason == "end_turn" and msg.usage.output_tokens > 0
    with claude.messages.stream(
        model=f"{fmt}-only", max_tokens=200, messages=[{"role": "user", "content": "[[echo]]Привет из Баку"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Привет из Баку" and final.stop_reason == "end_turn"
    assert sims[fmt].stats()["chat_requests"] == 2


@pytest.mark.parametrize("fmt", FORMATS)
async def test_anthropic_tool_use_round_trip_on_every_format(fmt: str, world: dict[str, Any], sims: dict[str, Sim]) -> None:
    client = AsyncAnthropic(base_url=world["gw"].base, api_key=MASTER_KEY, max_retries=0, timeout=20)
    try:
        first = await client.messages.create(
            model=f"{fmt}-only", max_tokens=200, tools=[WEATHER_TOOL],  # type: ignore[list-item]
            tool_choice={"type": "any"}, messages=[{"role": "user", "content": "Weather in Baku?"}],
        )
        assert first.stop_reason == "tool_use"
        call = next(b for b in first.content if b.type == "tool_use")
        assert call.name == "get_weather" and isinstance(call.input, dict) and "city" in call.input
        second = await client.messages.create(
            model=f"{fmt}-only", max_tokens=200, tools=[WEATHER_TOOL],  # type: ignore[list-item]
            messages=[
                {"role": "user", "content": "Weather in Baku?"},
                {"role": "assistant", "content": [b.model_dump() for b in first.content]},  # type: ignore[misc]
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "22°C, windy"}]},
            ],
        )
        assert second.stop_reason == "end_turn" and second.content[0].type == "text"
        assert "22°C, windy" in str(sims[fmt].stats()["last_request"])  # the tool result went upstream
    finally:
        await client.close()


def test_private_request_on_messages_route_never_reaches_cloud(claude: Anthropic, sims: dict[str, Sim]) -> None:
    msg = claude.messages.with_raw_response.create(
        model="mixed", max_tokens=50, messages=[{"role": "user", "content": "[[echo]]FIN 5ZJ8K2L"}],
        extra_headers={"x-tiergate-privacy": "PRIVATE"},
    )
    assert msg.headers["x-tiergate-deployment"] == "ollama-local"
    assert msg.parse().content[0].text == "FIN 5ZJ8K2L"  # type: ignore[union-attr]
    with pytest.raises(anthropic.PermissionDeniedError):
        claude.messages.create(
            model="gemini-only", max_tokens=50, messages=[{"role": "user", "content": "secret"}],
            metadata={"privacy": "PRIVATE"},  # type: ignore[typeddict-unknown-key]
        )
    for fmt in FORMATS:
        assert sims[fmt].stats()["chat_requests"] == 0, fmt


def test_mixed_group_falls_back_across_formats(oai: OpenAI, claude: Anthropic, sims: dict[str, Sim]) -> None:
    """The first candidate (Anthropic) is overloaded (529): Gemini answers the same request."""
    raw = oai.chat.completions.with_raw_response.create(
        model="busy-then-gemini", messages=[{"role": "user", "content": "[[echo]]hello"}]
    )
    assert raw.headers["x-tiergate-deployment"] == "gemini-cloud"
    assert raw.headers["x-tiergate-fallbacks"] == "1"
    assert raw.parse().choices[0].message.content == "hello"
    msg = claude.messages.create(
        model="busy-then-gemini", max_tokens=50, messages=[{"role": "user", "content": "[[echo]]again"}]
    )
    assert msg.content[0].text == "again"  # type: ignore[union-attr]
    assert sims["busy"].stats()["chat_requests"] == 2 and sims["gemini"].stats()["chat_requests"] == 2


@pytest.mark.parametrize("model", ["openai-only", "gemini-only", "ollama-only", "bedrock-embed"])
def test_embeddings_through_every_format_that_has_them(model: str, oai: OpenAI) -> None:
    raw = oai.embeddings.with_raw_response.create(model=model, input=["first text", "second text"])
    res = raw.parse()
    assert len(res.data) == 2 and len(res.data[0].embedding) > 0
    assert res.data[0].embedding != res.data[1].embedding
    assert raw.headers["x-tiergate-location"] == "cloud"


def test_embeddings_on_a_format_without_them_say_so(oai: OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as e:
        oai.embeddings.create(model="anthropic-only", input="x")
    assert e.value.status_code == 502 and "does not serve embeddings" in e.value.message
