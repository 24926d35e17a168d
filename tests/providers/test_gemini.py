"""The native Gemini adapter against the simulated Gemini upstream (real process, real socket).

What the adapter sends is checked against `google.genai.types` (pydantic models that forbid
unknown fields, camelCase aliases = the REST field names), what the simulator answers against
`GenerateContentResponse`, and every canonical answer against the `openai` SDK's own types.
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Any, AsyncIterator, Iterator

import aiohttp
import openai
import orjson
import pytest
from google import genai
from google.genai import models as genai_models
from google.genai import types as gt
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from tests.support import MASTER_KEY, Sim, start_gateway, start_sim
from tiergate.config.models import Deployment
from tiergate.errors import (
    InvalidRequestError,
    UpstreamConnectionError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamStatusError,
    UpstreamTimeoutError,
)
from tiergate.providers.gemini import GeminiProvider, vertex_base_url

KEY = "sim-gemini-key-6f1c2d"
MODEL = "gemini-2.0-flash"
THINKING = "gemini-2.5-flash-thinking"
EMBED = "text-embedding-004"
VERTEX_PATH = "/v1/projects/demo-proj/locations/europe-west4/publishers/google"
PNG = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(24)).decode()
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}
REQUEST_FIELDS = {"contents", "systemInstruction", "tools", "toolConfig", "generationConfig"}


# ----------------------------------------------------------------------------- fixtures / helpers


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    s = start_sim(
        tmp_path_factory.mktemp("gemini"), "cloud", "--api-key", KEY, "--hang-s", "3",
        "--model", MODEL, "--model", THINKING, "--model", EMBED, fmt="gemini",
    )
    try:
        yield s
    finally:
        s.stop()


def _deployment(base_url: str, model: str = MODEL, **extra: Any) -> Deployment:
    return Deployment(name="gem", provider="gemini", base_url=base_url, model=model, location="cloud", **extra)


@pytest.fixture
async def gem(sim: Sim) -> AsyncIterator[GeminiProvider]:
    sim.reset()
    p = GeminiProvider(_deployment(f"{sim.base}/v1beta", timeout_s=2), api_key=KEY)
    await p.start()
    yield p
    await p.close()


def _body(messages: list[dict[str, Any]] | str, **extra: Any) -> dict[str, Any]:
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    return {"model": extra.pop("model", MODEL), "messages": messages, **extra}


def _sent(sim: Sim) -> dict[str, Any]:
    """The last request the simulator received, validated field by field with the SDK's types."""
    req: dict[str, Any] = sim.stats()["last_request"]
    assert set(req) <= REQUEST_FIELDS
    for content in req["contents"]:
        gt.Content.model_validate_json(orjson.dumps(content))
    if "systemInstruction" in req:
        gt.Content.model_validate_json(orjson.dumps(req["systemInstruction"]))
    for tool in req.get("tools", []):
        gt.Tool.model_validate_json(orjson.dumps(tool))
    if "toolConfig" in req:
        gt.ToolConfig.model_validate_json(orjson.dumps(req["toolConfig"]))
    if "generationConfig" in req:
        gt.GenerationConfig.model_validate_json(orjson.dumps(req["generationConfig"]))
    return req


async def _chat(p: GeminiProvider, body: dict[str, Any]) -> dict[str, Any]:
    data = (await p.chat(body)).json()
    ChatCompletion.model_validate(data)
    return data


async def _stream(p: GeminiProvider, body: dict[str, Any]) -> list[dict[str, Any]]:
    """All chunks of a streamed answer, each checked against the openai SDK's chunk type."""
    stream = await p.open_stream({**body, "stream": True, "stream_options": {"include_usage": True}})
    chunks: list[dict[str, Any]] = []
    try:
        async for batch in stream:
            assert batch
            for ev in batch:
                ChatCompletionChunk.model_validate(ev.data)
                chunks.append(ev.data)
    finally:
        await stream.aclose()
    return chunks


def _text(chunks: list[dict[str, Any]]) -> str:
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


def _assert_stream_ends_well(chunks: list[dict[str, Any]], finish: str) -> None:
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert finishes == [finish]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0


# ----------------------------------------------------------------------------- chat


async def test_chat_multi_turn_with_system_prompt(gem: GeminiProvider, sim: Sim) -> None:
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "first"},
        {"role": "user", "content": [{"type": "text", "text": "second"}]},
    ]
    data = await _chat(gem, _body(messages, temperature=0.2, top_p=0.9, max_tokens=300, stop="zzz", seed=7,
                                  presence_penalty=0.1, frequency_penalty=0.2))
    assert data["choices"][0]["message"]["content"] and data["choices"][0]["finish_reason"] == "stop"
    assert data["usage"]["prompt_tokens"] > 0 and data["usage"]["completion_tokens"] > 0
    sent = _sent(sim)
    assert sent["systemInstruction"] == {"parts": [{"text": "You are terse."}]}
    assert [c["role"] for c in sent["contents"]] == ["user", "model", "user"]
    assert sent["contents"][2]["parts"] == [{"text": "first"}, {"text": "second"}]  # same-role turns merged
    assert sent["generationConfig"] == {
        "temperature": 0.2, "topP": 0.9, "seed": 7, "presencePenalty": 0.1, "frequencyPenalty": 0.2,
        "maxOutputTokens": 300, "stopSequences": ["zzz"],
    }
    headers = sim.stats()["last_headers"]
    assert headers["x-goog-api-key"] == KEY and "Authorization" not in headers


async def test_n_choices_and_max_tokens_length(gem: GeminiProvider, sim: Sim) -> None:
    data = await _chat(gem, _body("two please", n=2, max_completion_tokens=3))
    assert [c["index"] for c in data["choices"]] == [0, 1]
    assert {c["finish_reason"] for c in data["choices"]} == {"length"}
    assert _sent(sim)["generationConfig"] == {"maxOutputTokens": 3, "candidateCount": 2}
    with pytest.raises(InvalidRequestError) as exc:
        await gem.open_stream(_body("two please", n=2, stream=True))
    assert exc.value.param == "n"


async def test_stream_reassembles_to_the_same_text(gem: GeminiProvider) -> None:
    body = _body("Tell me about privacy tiers.")
    whole = (await _chat(gem, body))["choices"][0]["message"]["content"]
    chunks = await _stream(gem, body)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert _text(chunks) == whole
    _assert_stream_ends_well(chunks, "stop")


async def test_trickled_stream_reassembles(gem: GeminiProvider) -> None:
    body = _body("[[echo]]Byte by byte, every event split: ə ğ ı ö ü ş ç, Привет! [[fault:trickle]]")
    whole = (await _chat(gem, body))["choices"][0]["message"]["content"]
    assert whole == "Byte by byte, every event split: ə ğ ı ö ü ş ç, Привет! [[fault:trickle]]"
    chunks = await _stream(gem, body)
    assert _text(chunks) == whole
    _assert_stream_ends_well(chunks, "stop")


async def test_thought_parts_are_skipped_and_thinking_tokens_counted(gem: GeminiProvider) -> None:
    body = _body("[[echo]]think then answer", model=THINKING)
    data = await _chat(gem, body)
    assert data["choices"][0]["message"]["content"] == "think then answer"
    chunks = await _stream(gem, body)
    assert _text(chunks) == "think then answer"
    # completion = candidates + thoughts tokens: more than the 5 tokens of the visible answer
    assert data["usage"]["completion_tokens"] > 5 and chunks[-1]["usage"] == data["usage"]


# ----------------------------------------------------------------------------- tools


async def test_tool_call_round_trip(gem: GeminiProvider, sim: Sim) -> None:
    data = await _chat(gem, _body("Weather in Baku?", tools=[WEATHER], tool_choice="required"))
    choice = data["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    call = choice["message"]["tool_calls"][0]
    assert call["function"]["name"] == "get_weather" and call["id"]
    assert json.loads(call["function"]["arguments"]) == {"city": "value", "days": 1}
    sent = _sent(sim)
    assert sent["tools"] == [{"functionDeclarations": [{
        "name": "get_weather", "description": "Weather for a city", "parametersJsonSchema": WEATHER["function"]["parameters"],
    }]}]
    assert sent["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}

    follow = _body([
        {"role": "user", "content": "Weather in Baku?"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": "sunny"},
    ], tools=[WEATHER])
    answer = await _chat(gem, follow)
    assert answer["choices"][0]["message"]["content"] == 'Tool result: {"result":"sunny"}'
    sent = _sent(sim)
    assert sent["contents"][1] == {"role": "model", "parts": [
        {"functionCall": {"name": "get_weather", "args": {"city": "value", "days": 1}, "id": call["id"]}}]}
    assert sent["contents"][2] == {"role": "user", "parts": [
        {"functionResponse": {"id": call["id"], "name": "get_weather", "response": {"result": "sunny"}}}]}


async def test_tool_choice_named_and_none(gem: GeminiProvider, sim: Sim) -> None:
    named = {"type": "function", "function": {"name": "get_weather"}}
    await _chat(gem, _body("x", tools=[WEATHER], tool_choice=named))
    assert _sent(sim)["toolConfig"] == {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}}
    data = await _chat(gem, _body("x", tools=[WEATHER], tool_choice="none"))
    assert data["choices"][0]["finish_reason"] == "stop"
    assert _sent(sim)["toolConfig"] == {"functionCallingConfig": {"mode": "NONE"}}


async def test_tool_result_objects_pass_as_they_are_and_unknown_ids_are_refused(gem: GeminiProvider, sim: Sim) -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Baku"}'}}
    msgs = [{"role": "user", "content": "w?"}, {"role": "assistant", "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 21}'}]
    await _chat(gem, _body(msgs))
    assert _sent(sim)["contents"][2]["parts"][0]["functionResponse"]["response"] == {"temp": 21}
    msgs[2]["tool_call_id"] = "call_unknown"
    with pytest.raises(InvalidRequestError):
        await gem.chat(_body(msgs))


async def test_streamed_tool_call(gem: GeminiProvider) -> None:
    chunks = await _stream(gem, _body("Weather?", tools=[WEATHER], tool_choice="required"))
    starts = [tc for c in chunks if c["choices"] for tc in c["choices"][0]["delta"].get("tool_calls") or []]
    assert len(starts) == 1 and starts[0]["index"] == 0 and starts[0]["id"]
    assert starts[0]["function"]["name"] == "get_weather"
    assert json.loads(starts[0]["function"]["arguments"]) == {"city": "value", "days": 1}
    _assert_stream_ends_well(chunks, "tool_calls")


# ----------------------------------------------------------------------------- media, JSON


async def test_image_inputs(gem: GeminiProvider, sim: Sim) -> None:
    parts = [{"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": PNG}},
             {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}]
    data = await _chat(gem, _body([{"role": "user", "content": parts}]))
    assert data["choices"][0]["message"]["content"].startswith("[2 images received]")
    assert _sent(sim)["contents"][0]["parts"] == [
        {"text": "What is this?"},
        {"inlineData": {"mimeType": "image/png", "data": PNG.split(",", 1)[1]}},
        {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/cat.jpg"}},
    ]
    with pytest.raises(InvalidRequestError):
        await gem.chat(_body([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x.test/img"}}]}]))


async def test_structured_output(gem: GeminiProvider, sim: Sim) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    fmt = {"type": "json_schema", "json_schema": {"name": "c", "schema": schema, "strict": True}}
    data = await _chat(gem, _body("city?", response_format=fmt))
    assert set(json.loads(data["choices"][0]["message"]["content"])) == {"city"}
    assert _sent(sim)["generationConfig"] == {"responseMimeType": "application/json", "responseJsonSchema": schema}
    data = await _chat(gem, _body("json", response_format={"type": "json_object"}))
    assert isinstance(json.loads(data["choices"][0]["message"]["content"]), dict)
    assert _sent(sim)["generationConfig"] == {"responseMimeType": "application/json"}


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("fault", "status", "code", "retryable"),
    [
        ("429", 429, "upstream_rate_limited", True),
        ("503", 503, "upstream_overloaded", True),
        ("500", 502, "upstream_error", True),
        ("401", 401, "upstream_auth_error", True),
        ("400", 400, "upstream_rejected", False),
    ],
)
@pytest.mark.parametrize("streamed", [False, True])
async def test_status_errors(gem: GeminiProvider, fault: str, status: int, code: str, retryable: bool, streamed: bool) -> None:
    body = _body(f"[[fault:{fault}]] hi")
    with pytest.raises(UpstreamStatusError) as exc:
        if streamed:
            await gem.open_stream({**body, "stream": True})
        else:
            await gem.chat(body)
    err = exc.value
    assert (err.status, err.code, err.retryable) == (status, code, retryable)
    if fault == "429":
        assert err.retry_after == 1.5 and err.headers["retry-after"] == "1.500"
        assert "RESOURCE_EXHAUSTED" in err.message


async def test_bad_key_is_an_auth_error_without_the_key(sim: Sim) -> None:
    sim.reset()
    wrong = "wrong-key-should-never-be-shown"
    p = GeminiProvider(_deployment(f"{sim.base}/v1beta"), api_key=wrong)
    await p.start()
    try:
        for call in (p.chat(_body("hi")), p.list_models()):
            with pytest.raises(UpstreamStatusError) as exc:
                await call
            assert exc.value.status == 401 and exc.value.code == "upstream_auth_error"
            assert wrong not in exc.value.message and KEY not in exc.value.message
        assert (await p.health()).ok is False
    finally:
        await p.close()


@pytest.mark.parametrize(
    ("fault", "error"),
    [("timeout", UpstreamTimeoutError), ("reset", UpstreamConnectionError),
     ("malformed", UpstreamProtocolError), ("truncate", UpstreamProtocolError)],
)
async def test_transport_faults(gem: GeminiProvider, fault: str, error: type[UpstreamError]) -> None:
    with pytest.raises(error):
        await gem.chat(_body(f"[[fault:{fault}]] hi"))


@pytest.mark.parametrize("fault", ["malformed", "truncate", "midstream_error", "reset"])
async def test_broken_streams_raise(gem: GeminiProvider, fault: str) -> None:
    seen: list[dict[str, Any]] = []
    with pytest.raises(UpstreamError):
        stream = await gem.open_stream(_body(f"[[fault:{fault}]] tell me a story", stream=True))
        try:
            async for batch in stream:
                seen.extend(ev.data for ev in batch)
        finally:
            await stream.aclose()
    if fault == "midstream_error":
        assert _text(seen)  # the content before the error reached the caller first
    assert not any(c["choices"] and c["choices"][0]["finish_reason"] for c in seen)


@pytest.mark.parametrize("streamed", [False, True])
async def test_blocked_prompt_is_a_client_error(gem: GeminiProvider, streamed: bool) -> None:
    body = _body("[[fault:blocked]] something bad")
    with pytest.raises(UpstreamStatusError) as exc:
        if streamed:
            await _stream(gem, body)
        else:
            await gem.chat(body)
    err = exc.value
    assert (err.status, err.code, err.retryable) == (400, "content_filter", False)
    assert "SAFETY" in err.message


async def test_answer_cut_by_safety_finishes_content_filter(gem: GeminiProvider) -> None:
    body = _body("[[fault:blocked:1]] partly bad")
    assert (await _chat(gem, body))["choices"][0]["finish_reason"] == "content_filter"
    _assert_stream_ends_well(await _stream(gem, body), "content_filter")


# ----------------------------------------------------------------------------- models, embeddings


async def test_list_models_and_health(gem: GeminiProvider) -> None:
    assert await gem.list_models() == [MODEL, THINKING, EMBED]
    health = await gem.health()
    assert health.ok and MODEL in health.models


async def test_embeddings(gem: GeminiProvider, sim: Sim) -> None:
    out = await gem.embed({"model": EMBED, "input": ["alpha", "beta"], "dimensions": 8})
    assert [d["index"] for d in out["data"]] == [0, 1]
    assert all(len(d["embedding"]) == 8 for d in out["data"])
    assert out["data"][0]["embedding"] != out["data"][1]["embedding"]
    assert out["usage"]["prompt_tokens"] > 0
    assert sim.stats()["last_request"] == {"requests": [
        {"model": f"models/{EMBED}", "content": {"parts": [{"text": "alpha"}]}, "outputDimensionality": 8},
        {"model": f"models/{EMBED}", "content": {"parts": [{"text": "beta"}]}, "outputDimensionality": 8},
    ]}
    again = await gem.embed({"model": EMBED, "input": "alpha", "dimensions": 8})
    assert again["data"][0]["embedding"] == out["data"][0]["embedding"]


# ----------------------------------------------------------------------------- Vertex AI


def _token_script(tmp_path: Path, tokens: list[str], fail: bool = False) -> str:
    """A token command printing `tokens` in turn (the last one from then on)."""
    state = tmp_path / "count"
    script = tmp_path / "print_token.py"
    script.write_text(
        "import sys, pathlib\n"
        f"state = pathlib.Path({str(state)!r})\n"
        "n = int(state.read_text()) if state.exists() else 0\n"
        "state.write_text(str(n + 1))\n"
        f"tokens = {tokens!r}\n"
        f"print(tokens[min(n, len(tokens) - 1)])\n"
        f"sys.exit({1 if fail else 0})\n"
    )
    return f"{sys.executable} {script}"


async def _vertex(sim: Sim, command: str) -> GeminiProvider:
    d = _deployment(f"{sim.base}{VERTEX_PATH}", project="demo-proj", region="europe-west4", token_command=command)
    p = GeminiProvider(d, api_key=None)
    await p.start()
    return p


async def test_vertex_uses_the_token_command(sim: Sim, tmp_path: Path) -> None:
    sim.reset()
    p = await _vertex(sim, _token_script(tmp_path, [KEY]))
    try:
        assert (await _chat(p, _body("hello vertex")))["choices"][0]["message"]["content"]
        headers = sim.stats()["last_headers"]
        assert headers["Authorization"] == f"Bearer {KEY}" and "x-goog-api-key" not in headers
        chunks = await _stream(p, _body("hello vertex"))
        _assert_stream_ends_well(chunks, "stop")
        out = await p.embed({"model": EMBED, "input": ["a b c d e"], "dimensions": 4})
        assert len(out["data"][0]["embedding"]) == 4 and out["usage"]["prompt_tokens"] == 3
        assert sim.stats()["last_request"] == {"instances": [{"content": "a b c d e"}], "parameters": {"outputDimensionality": 4}}
        assert await p.list_models() == [MODEL]
        assert (tmp_path / "count").read_text() == "1"  # fetched once, then cached
    finally:
        await p.close()


async def test_vertex_refetches_the_token_once_after_401(sim: Sim, tmp_path: Path) -> None:
    sim.reset()
    p = await _vertex(sim, _token_script(tmp_path, ["expired-token", KEY]))
    try:
        await _chat(p, _body("hello"))
        stats = sim.stats()
        assert (stats["requests"], stats["chat_requests"]) == (2, 1)  # refused once, then answered
        assert stats["last_headers"]["Authorization"] == f"Bearer {KEY}"
        assert (tmp_path / "count").read_text() == "2"
    finally:
        await p.close()


async def test_vertex_failing_token_command_is_clear_and_silent(sim: Sim, tmp_path: Path) -> None:
    p = await _vertex(sim, _token_script(tmp_path, ["ya29.secret-looking-output"], fail=True))
    try:
        with pytest.raises(UpstreamError) as exc:
            await p.chat(_body("hello"))
        assert "token_command failed with exit status 1" in exc.value.message
        assert "secret-looking" not in exc.value.message
    finally:
        await p.close()


def test_vertex_default_base_urls() -> None:
    assert vertex_base_url("p1", None) == (
        "https://us-central1-aiplatform.googleapis.com/v1/projects/p1/locations/us-central1/publishers/google")
    assert vertex_base_url("p1", "global") == (
        "https://aiplatform.googleapis.com/v1/projects/p1/locations/global/publishers/google")


# ----------------------------------------------------------------------------- the simulator's wire format


async def test_simulator_answers_validate_against_the_sdk_types(sim: Sim) -> None:
    headers = {"x-goog-api-key": KEY}
    req = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}],
           "tools": [{"functionDeclarations": [{"name": "f", "parametersJsonSchema": {"type": "object"}}]}]}
    url = f"{sim.base}/v1beta/models/{MODEL}"
    async with aiohttp.ClientSession(headers=headers) as http:
        async with http.post(f"{url}:generateContent", json={"contents": req["contents"]}) as r:
            gt.GenerateContentResponse.model_validate_json(await r.read())
        async with http.post(f"{url}:generateContent", json=req) as r:
            resp = gt.GenerateContentResponse.model_validate_json(await r.read())
            assert resp.function_calls and resp.function_calls[0].name == "f"
        async with http.post(f"{url}:streamGenerateContent?alt=sse", json={"contents": req["contents"]}) as r:
            assert r.headers["content-type"].startswith("text/event-stream")
            events = [e for e in (await r.read()).split(b"\r\n\r\n") if e]
            for e in events:
                assert e.startswith(b"data: ")
                gt.GenerateContentResponse.model_validate_json(e[6:])
        async with http.post(f"{url}:streamGenerateContent", json={"contents": req["contents"]}) as r:
            array = await r.json()
            assert len(array) == len(events)
            for item in array:
                gt.GenerateContentResponse.model_validate(item)
        blocked = {"contents": [{"role": "user", "parts": [{"text": "[[fault:blocked]]"}]}]}
        async with http.post(f"{url}:generateContent", json=blocked) as r:
            resp = gt.GenerateContentResponse.model_validate_json(await r.read())
            assert resp.prompt_feedback is not None and resp.prompt_feedback.block_reason == gt.BlockedReason.SAFETY
        embed = {"requests": [{"model": f"models/{MODEL}", "content": {"parts": [{"text": "x"}]}}]}
        async with http.post(f"{url}:batchEmbedContents", json=embed) as r:
            assert len(gt.EmbedContentResponse.model_validate_json(await r.read()).embeddings[0].values) == 768
        async with http.get(f"{sim.base}/v1beta/models") as r:
            for m in (await r.json())["models"]:
                sdk_fields = genai_models._Model_from_mldev(m)
                sdk_fields.pop("tuned_model_info")  # the converter copies the whole item there
                gt.Model.model_validate(sdk_fields)
        async with http.post(f"{url}:generateContent", json={"contents": req["contents"], "bogus": 1}) as r:
            assert r.status == 400 and (await r.json())["error"]["status"] == "INVALID_ARGUMENT"


def test_official_google_genai_client_against_the_simulator(sim: Sim) -> None:
    client = genai.Client(api_key=KEY, http_options=gt.HttpOptions(base_url=sim.base))
    try:
        config = gt.GenerateContentConfig(system_instruction="be brief", max_output_tokens=200)
        resp = client.models.generate_content(model=MODEL, contents="[[echo]]hello sdk", config=config)
        assert resp.text == "hello sdk" and resp.usage_metadata and resp.usage_metadata.total_token_count
        streamed = "".join(c.text or "" for c in client.models.generate_content_stream(model=MODEL, contents="[[echo]]hello sdk"))
        assert streamed == "hello sdk"
        assert {m.name for m in client.models.list()} >= {f"models/{MODEL}"}
        emb = client.models.embed_content(model=EMBED, contents=["one", "two"])
        assert emb.embeddings is not None and len(emb.embeddings) == 2
    finally:
        client.close()


# ----------------------------------------------------------------------------- end to end


def test_gateway_end_to_end_with_the_openai_sdk(sim: Sim, tmp_path: Path) -> None:
    env = {"GEMINI_SIM_KEY": KEY}
    config = {
        "privacy": {"default_level": "PUBLIC"},
        "deployments": [{"name": "gemini-a", "provider": "gemini", "base_url": f"{sim.base}/v1beta", "model": MODEL,
                         "api_key": "env:GEMINI_SIM_KEY", "location": "cloud", "residency": "EU"}],
        "model_groups": {"gem": ["gemini-a"]},
    }
    gw = start_gateway(tmp_path, config, env=env)
    try:
        client = openai.OpenAI(base_url=gw.url, api_key=MASTER_KEY, max_retries=0, timeout=20)
        msgs: Any = [{"role": "system", "content": "be kind"}, {"role": "user", "content": "[[echo]]Salam, dünya!"}]
        done = client.chat.completions.create(model="gem", messages=msgs)
        assert done.choices[0].message.content == "Salam, dünya!" and done.usage and done.usage.total_tokens > 0
        pieces = client.chat.completions.create(model="gem", messages=msgs, stream=True, stream_options={"include_usage": True})
        chunks = list(pieces)
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Salam, dünya!"
        assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0
        assert sim.stats()["last_request"]["systemInstruction"] == {"parts": [{"text": "be kind"}]}
        client.close()
    finally:
        gw.stop()
