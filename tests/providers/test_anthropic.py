"""The native Anthropic Messages adapter against the simulated Anthropic upstream, over real sockets.

Every canonical answer is checked with the `openai` SDK's types, every request the adapter sends
with the `anthropic` SDK's request types (unknown fields refused), and what the simulator returns
with the `anthropic` SDK's response and stream-event types; the official `anthropic` client is
also run against the simulator once, so the simulator itself is known to be faithful.
"""

from __future__ import annotations

import collections.abc
from pathlib import Path
from typing import Any, Iterator

import aiohttp
import anthropic
import orjson
import pytest
from anthropic.types import Message, ModelInfo, RawMessageStreamEvent
from anthropic.types.message_create_params import (
    MessageCreateParamsNonStreaming,
    MessageCreateParamsStreaming,
)
from anthropic.types.shared import ErrorResponse
from openai import OpenAI
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from pydantic import BaseModel, ConfigDict, TypeAdapter

from tests.support import MASTER_KEY, Sim, deployment, start_gateway, start_sim
from tiergate.config.models import Deployment
from tiergate.errors import (
    InvalidRequestError,
    UpstreamConnectionError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamStatusError,
    UpstreamTimeoutError,
)
from tiergate.providers.anthropic import AnthropicProvider, api_root, split_messages

MODEL = "claude-sim-1"
SIM_KEY = "sk-ant-sim-secret-0123456789"
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


# --------------------------------------------------------------------------- fixtures and checks


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    s = start_sim(tmp_path_factory.mktemp("anthropic"), "cloud", "--model", MODEL, "--api-key", SIM_KEY,
                  "--hang-s", "5", fmt="anthropic")
    yield s
    s.stop()


def _deployment(sim: Sim, **extra: Any) -> Deployment:
    fields = {"name": "claude", "provider": "anthropic", "base_url": sim.base, "model": MODEL,
              "location": "cloud", "residency": "US", "timeout_s": 5, **extra}
    return Deployment(**fields)


@pytest.fixture
async def provider(sim: Sim) -> collections.abc.AsyncIterator[AnthropicProvider]:
    sim.reset()
    p = AnthropicProvider(_deployment(sim), api_key=SIM_KEY)
    await p.start()
    yield p
    await p.close()


class _SentPlain(BaseModel):
    model_config = ConfigDict(extra="forbid")  # reaches the nested TypedDicts: a misnamed field fails
    body: MessageCreateParamsNonStreaming


class _SentStreamed(BaseModel):
    model_config = ConfigDict(extra="forbid")
    body: MessageCreateParamsStreaming


def _drain(value: Any) -> None:
    """pydantic validates `Iterable` fields lazily: consume them so every nested block is checked."""
    if isinstance(value, dict):
        for v in value.values():
            _drain(v)
    elif isinstance(value, list):
        for v in value:
            _drain(v)
    elif isinstance(value, collections.abc.Iterator):
        for v in list(value):
            _drain(v)


# API version 2023-06-01 fields that the SDK's types (written for 2026-10-21) no longer declare.
_SAMPLING = ("temperature", "top_p")


def sent(sim: Sim) -> dict[str, Any]:
    """What the upstream received, checked against the anthropic SDK's request types."""
    stats = sim.stats()
    body = stats["last_request"]
    typed = {k: v for k, v in body.items() if k not in _SAMPLING}
    model = (_SentStreamed if body.get("stream") else _SentPlain).model_validate({"body": typed})
    _drain(model.body)
    headers = {k.lower(): v for k, v in stats["last_headers"].items()}
    assert headers["x-api-key"] == SIM_KEY and headers["anthropic-version"] == "2023-06-01"
    return body


def _body(messages: list[dict[str, Any]] | str, **extra: Any) -> dict[str, Any]:
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    return {"model": MODEL, "messages": messages, **extra}


async def chat(p: AnthropicProvider, messages: list[dict[str, Any]] | str, **extra: Any) -> dict[str, Any]:
    data = (await p.chat(_body(messages, **extra))).json()
    ChatCompletion.model_validate(data)
    return data


async def stream(p: AnthropicProvider, messages: list[dict[str, Any]] | str,
                 **extra: Any) -> tuple[list[dict[str, Any]], int]:
    """(every chunk, checked with the openai SDK's type; the number of batches)."""
    body = _body(messages, stream=True, stream_options={"include_usage": True}, **extra)
    s = await p.open_stream(body)
    chunks: list[dict[str, Any]] = []
    batches = 0
    try:
        async for batch in s:
            assert batch, "a batch is never empty"
            batches += 1
            for ev in batch:
                ChatCompletionChunk.model_validate(ev.data)
                chunks.append(ev.data)
    finally:
        await s.aclose()
    return chunks, batches


def text_of(chunks: list[dict[str, Any]]) -> str:
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


def finish_of(chunks: list[dict[str, Any]]) -> str:
    """The finish reason; asserts the usage-only chunk comes last, right after it."""
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0
    reasons = [c["choices"][0]["finish_reason"] for c in chunks[:-1]]
    assert reasons[-1] is not None and all(r is None for r in reasons[:-1])
    return str(reasons[-1])


# --------------------------------------------------------------------------- chat


async def test_plain_chat_sends_a_native_request(provider: AnthropicProvider, sim: Sim) -> None:
    data = await chat(provider, "Hello there", max_tokens=200, temperature=1.7, top_p=0.9,
                      user="user-42", seed=7, logprobs=False)
    choice = data["choices"][0]
    assert choice["finish_reason"] == "stop" and choice["message"]["content"]
    assert data["usage"]["prompt_tokens"] > 0 and data["usage"]["completion_tokens"] > 0
    req = sent(sim)  # seed / logprobs are OpenAI-only: the strict check refuses any extra field
    assert req["max_tokens"] == 200 and req["temperature"] == 1.0
    assert "top_p" not in req  # current Claude models refuse temperature and top_p together
    assert req["metadata"] == {"user_id": "user-42"}
    assert req["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Hello there"}]}]


async def test_max_tokens_defaults_and_stop_sequences(provider: AnthropicProvider, sim: Sim) -> None:
    full = (await chat(provider, "stop test"))["choices"][0]["message"]["content"]
    assert sent(sim)["max_tokens"] == 4096
    word = full.split()[3]
    data = await chat(provider, "stop test", stop=word)
    assert sent(sim)["stop_sequences"] == [word]
    assert data["choices"][0]["message"]["content"] == full[: full.index(word)]
    assert data["choices"][0]["finish_reason"] == "stop"
    capped = await chat(provider, "stop test", max_completion_tokens=3)
    assert sent(sim)["max_tokens"] == 3 and capped["choices"][0]["finish_reason"] == "length"


async def test_system_prompt_and_turns(provider: AnthropicProvider, sim: Sim) -> None:
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "developer", "content": [{"type": "text", "text": "Answer in English."}]},
        {"role": "user", "content": "First question"},
        {"role": "assistant", "content": "First answer"},
        {"role": "user", "content": "Second"},
        {"role": "user", "content": [{"type": "text", "text": "[[echo]]part two"}]},
    ]
    data = await chat(provider, messages)
    assert data["choices"][0]["message"]["content"] == "Second\npart two"  # one merged user turn
    req = sent(sim)
    assert req["system"] == [{"type": "text", "text": "You are terse."},
                             {"type": "text", "text": "Answer in English."}]
    assert [m["role"] for m in req["messages"]] == ["user", "assistant", "user"]  # merged: alternation
    assert req["messages"][1]["content"] == [{"type": "text", "text": "First answer"}]
    assert req["messages"][2]["content"] == [{"type": "text", "text": "Second"},
                                             {"type": "text", "text": "[[echo]]part two"}]
    await chat(provider, [{"role": "system", "content": "Only one."}, {"role": "user", "content": "hi"}])
    assert sent(sim)["system"] == "Only one."


async def test_stream_reassembles_to_the_plain_answer(provider: AnthropicProvider, sim: Sim) -> None:
    plain = await chat(provider, "Tell me about rivers")
    chunks, _ = await stream(provider, "Tell me about rivers")
    assert sent(sim)["stream"] is True
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert text_of(chunks) == plain["choices"][0]["message"]["content"]
    assert finish_of(chunks) == "stop"
    assert chunks[-1]["usage"] == plain["usage"]


# --------------------------------------------------------------------------- tools


async def test_tool_call_round_trip(provider: AnthropicProvider, sim: Sim) -> None:
    data = await chat(provider, "Weather in Baku?", tools=[WEATHER])
    choice = data["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    call = choice["message"]["tool_calls"][0]
    assert call["function"]["name"] == "get_weather" and call["id"].startswith("toolu_")
    assert orjson.loads(call["function"]["arguments"]) == {"city": "value"}
    req = sent(sim)
    assert req["tools"] == [{"name": "get_weather", "description": "Current weather of a city",
                             "input_schema": WEATHER["function"]["parameters"]}]
    assert "tool_choice" not in req  # Anthropic's default is auto

    follow = [
        {"role": "user", "content": "Weather in Baku?"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": "22C and sunny"},
    ]
    answer = await chat(provider, follow, tools=[WEATHER])
    assert answer["choices"][0]["finish_reason"] == "stop"
    assert answer["choices"][0]["message"]["content"] == "Tool result: 22C and sunny"
    req = sent(sim)
    assert req["messages"][1] == {"role": "assistant", "content": [
        {"type": "tool_use", "id": call["id"], "name": "get_weather", "input": {"city": "value"}}]}
    assert req["messages"][2] == {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": call["id"], "content": "22C and sunny"}]}


async def test_parallel_tool_results_share_one_user_turn(provider: AnthropicProvider, sim: Sim) -> None:
    calls = [{"id": f"toolu_{i}", "type": "function",
              "function": {"name": "get_weather", "arguments": f'{{"city": "c{i}"}}'}} for i in (1, 2)]
    messages = [
        {"role": "user", "content": "Two cities"},
        {"role": "assistant", "content": "Checking both.", "tool_calls": calls},
        {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "toolu_2", "content": [{"type": "text", "text": "rainy"}]},
        {"role": "user", "content": "Summarise"},
    ]
    await chat(provider, messages, tools=[WEATHER], tool_choice="none")
    req = sent(sim)
    assert [m["role"] for m in req["messages"]] == ["user", "assistant", "user"]
    assert [b["type"] for b in req["messages"][1]["content"]] == ["text", "tool_use", "tool_use"]
    assert req["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"},
        {"type": "tool_result", "tool_use_id": "toolu_2", "content": "rainy"},
        {"type": "text", "text": "Summarise"},
    ]
    assert req["tool_choice"] == {"type": "none"}


def test_tool_results_go_first_in_their_user_turn() -> None:
    call = {"id": "toolu_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    _, turns = split_messages([
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "user", "content": "and hurry"},
        {"role": "tool", "tool_call_id": "toolu_1", "content": "done"},
    ], "claude")
    assert [b["type"] for b in turns[2]["content"]] == ["tool_result", "text"]


@pytest.mark.parametrize(("choice", "parallel", "expected"), [
    ("required", None, {"type": "any"}),
    ("auto", False, {"type": "auto", "disable_parallel_tool_use": True}),
    (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
    ({"type": "function", "function": {"name": "get_weather"}}, None, {"type": "tool", "name": "get_weather"}),
])
async def test_tool_choice_mapping(provider: AnthropicProvider, sim: Sim, choice: Any, parallel: Any,
                                   expected: dict[str, Any]) -> None:
    extra = {k: v for k, v in (("tool_choice", choice), ("parallel_tool_calls", parallel)) if v is not None}
    data = await chat(provider, "Weather?", tools=[WEATHER], **extra)
    assert data["choices"][0]["finish_reason"] == "tool_calls"
    assert sent(sim)["tool_choice"] == expected


async def test_streamed_tool_call(provider: AnthropicProvider, sim: Sim) -> None:
    plain = (await chat(provider, "Weather in Baku?", tools=[WEATHER]))["choices"][0]["message"]
    chunks, _ = await stream(provider, "Weather in Baku?", tools=[WEATHER])
    deltas = [tc for c in chunks if c["choices"] for tc in c["choices"][0]["delta"].get("tool_calls") or ()]
    assert deltas[0]["id"] == plain["tool_calls"][0]["id"] and deltas[0]["function"]["name"] == "get_weather"
    assert all(d["index"] == 0 for d in deltas)
    arguments = "".join(d["function"].get("arguments") or "" for d in deltas)
    assert orjson.loads(arguments) == orjson.loads(plain["tool_calls"][0]["function"]["arguments"])
    assert len(deltas) > 2  # the arguments arrived in pieces
    assert finish_of(chunks) == "tool_calls"


# --------------------------------------------------------------------------- images and JSON mode


async def test_image_inputs(provider: AnthropicProvider, sim: Sim) -> None:
    parts = [{"type": "text", "text": "What is this?"},
             {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
             {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}]
    data = await chat(provider, [{"role": "user", "content": parts}])
    assert data["choices"][0]["message"]["content"].startswith("[2 images received]")
    assert sent(sim)["messages"][0]["content"] == [
        {"type": "text", "text": "What is this?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    ]
    bmp = [{"type": "image_url", "image_url": {"url": f"data:image/bmp;base64,{PNG}"}}]
    with pytest.raises(InvalidRequestError) as info:
        await provider.chat(_body([{"role": "user", "content": bmp}]))
    assert "image/bmp" in info.value.message


async def test_json_schema_mode(provider: AnthropicProvider, sim: Sim) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}, "temp": {"type": "number"}},
              "required": ["city", "temp"]}
    fmt = {"type": "json_schema", "json_schema": {"name": "weather", "schema": schema, "strict": True}}
    data = await chat(provider, "Report", response_format=fmt)
    choice = data["choices"][0]
    assert choice["finish_reason"] == "stop" and "tool_calls" not in choice["message"]
    assert orjson.loads(choice["message"]["content"]) == {"city": "value", "temp": 1}
    req = sent(sim)
    assert req["tool_choice"] == {"type": "tool", "name": "weather"}
    assert [(t["name"], t["input_schema"]) for t in req["tools"]] == [("weather", schema)]
    chunks, _ = await stream(provider, "Report", response_format=fmt)
    assert orjson.loads(text_of(chunks)) == {"city": "value", "temp": 1}
    assert finish_of(chunks) == "stop"


async def test_json_object_mode(provider: AnthropicProvider, sim: Sim) -> None:
    data = await chat(provider, "Anything", response_format={"type": "json_object"})
    assert isinstance(orjson.loads(data["choices"][0]["message"]["content"]), dict)
    assert sent(sim)["tool_choice"] == {"type": "tool", "name": "json_response"}


async def test_n_above_one_is_refused_before_any_call(provider: AnthropicProvider, sim: Sim) -> None:
    with pytest.raises(InvalidRequestError) as info:
        await provider.chat(_body("hi", n=2))
    assert info.value.param == "n" and info.value.status == 400
    assert sim.stats()["chat_requests"] == 0


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(("fault", "status", "upstream", "retryable"), [
    ("429", 429, 429, True),
    ("503", 503, 529, True),
    ("500", 502, 500, True),
    ("400", 400, 400, False),
    ("401", 401, 401, True),
])
@pytest.mark.parametrize("streamed", [False, True])
async def test_http_errors(provider: AnthropicProvider, fault: str, status: int, upstream: int,
                           retryable: bool, streamed: bool) -> None:
    body = _body(f"hi [[fault:{fault}]]", stream=streamed)
    with pytest.raises(UpstreamStatusError) as info:
        if streamed:
            await provider.open_stream(body)
        else:
            await provider.chat(body)
    err = info.value
    assert (err.status, err.upstream_status, err.retryable) == (status, upstream, retryable)
    if fault == "429":
        assert err.retry_after == 1.0 and err.headers["retry-after"] == "1"
    if fault == "401":
        assert err.code == "upstream_auth_error"
    if fault in ("400", "500"):
        assert ("Invalid request" if fault == "400" else "Internal server error") in err.message


async def test_wrong_key_is_an_auth_error_that_hides_the_key(sim: Sim) -> None:
    wrong = "sk-ant-WRONG-key-987654321"
    p = AnthropicProvider(_deployment(sim), api_key=wrong)
    await p.start()
    try:
        with pytest.raises(UpstreamStatusError) as info:
            await p.chat(_body("hi"))
        health = await p.health()
    finally:
        await p.close()
    assert info.value.status == 401 and info.value.code == "upstream_auth_error"
    assert wrong not in info.value.message and SIM_KEY not in info.value.message
    assert not health.ok and wrong not in (health.error or "")


@pytest.mark.parametrize(("fault", "streamed", "error"), [
    ("timeout", False, UpstreamTimeoutError),
    ("reset", False, UpstreamConnectionError),
    ("reset", True, UpstreamConnectionError),
    ("malformed", False, UpstreamProtocolError),
    ("malformed", True, UpstreamProtocolError),
    ("truncate", False, UpstreamProtocolError),
    ("truncate", True, UpstreamProtocolError),
])
async def test_transport_faults(sim: Sim, fault: str, streamed: bool, error: type[UpstreamError]) -> None:
    p = AnthropicProvider(_deployment(sim, timeout_s=0.5), api_key=SIM_KEY)
    await p.start()
    try:
        with pytest.raises(error):
            if streamed:
                await stream(p, f"hi [[fault:{fault}]]")
            else:
                await p.chat(_body(f"hi [[fault:{fault}]]"))
    finally:
        await p.close()


async def test_error_in_the_middle_of_a_stream(provider: AnthropicProvider) -> None:
    s = await provider.open_stream(_body("Tell me [[fault:midstream_error]]", stream=True))
    received: list[dict[str, Any]] = []
    with pytest.raises(UpstreamStatusError) as info:
        async for batch in s:
            received += [ev.data for ev in batch]
    await s.aclose()
    assert text_of(received)  # the first content arrived before the error
    assert info.value.status == 503 and "overloaded_error" in info.value.message


async def test_trickled_stream_reassembles(provider: AnthropicProvider) -> None:
    plain = await chat(provider, "Tell me about harbors [[fault:trickle]]")  # same prompt, not trickled
    chunks, batches = await stream(provider, "Tell me about harbors [[fault:trickle]]")
    assert text_of(chunks) == plain["choices"][0]["message"]["content"]
    assert finish_of(chunks) == "stop" and batches > 5


async def test_refusal_is_content_filter(provider: AnthropicProvider) -> None:
    data = await chat(provider, "hi [[fault:blocked]]")
    assert data["choices"][0]["finish_reason"] == "content_filter"
    chunks, _ = await stream(provider, "hi [[fault:blocked]]")
    assert finish_of(chunks) == "content_filter" and text_of(chunks) == ""


# --------------------------------------------------------------------------- models, urls


async def test_list_models_and_health(provider: AnthropicProvider, sim: Sim) -> None:
    assert await provider.list_models() == [MODEL]
    assert sim.stats()["last_headers"]["x-api-key"] == SIM_KEY
    health = await provider.health()
    assert health.ok and health.models == [MODEL]


async def test_embeddings_are_not_served(provider: AnthropicProvider) -> None:
    with pytest.raises(UpstreamError, match="does not serve embeddings"):
        await provider.embed({"model": MODEL, "input": "x"})


async def test_top_p_alone_is_sent(provider: AnthropicProvider, sim: Sim) -> None:
    await chat(provider, "hi", top_p=0.5)
    assert sent(sim)["top_p"] == 0.5


async def test_base_url_with_v1_and_a_newer_api_version(sim: Sim) -> None:
    """API version 2026-10-21 refuses the sampling parameters: they are not sent."""
    p = AnthropicProvider(_deployment(sim, base_url=f"{sim.base}/v1", api_version="2026-10-21"), api_key=SIM_KEY)
    await p.start()
    try:
        data = (await p.chat(_body("hi", temperature=0.2, top_p=0.3))).json()
    finally:
        await p.close()
    assert data["choices"][0]["finish_reason"] == "stop"
    stats = sim.stats()
    assert stats["last_headers"]["anthropic-version"] == "2026-10-21"
    assert not set(_SAMPLING) & set(stats["last_request"])


def test_api_root() -> None:
    assert api_root("") == "https://api.anthropic.com"
    assert api_root("https://proxy.example/anthropic/v1") == "https://proxy.example/anthropic"
    assert api_root("http://127.0.0.1:9000") == "http://127.0.0.1:9000"


# --------------------------------------------------------------------------- the simulator itself


async def _raw(sim: Sim, body: dict[str, Any], headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    base = {"x-api-key": SIM_KEY, "anthropic-version": "2023-06-01", "content-type": "application/json"}
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{sim.base}/v1/messages", data=orjson.dumps(body),
                          headers={**base, **(headers or {})}) as resp:
            return resp.status, await resp.read()


async def test_simulator_answers_match_the_sdk_types(sim: Sim) -> None:
    body = {"model": MODEL, "max_tokens": 100, "tools": [{"name": "t", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "none"}, "messages": [{"role": "user", "content": "hi"}]}
    status, raw = await _raw(sim, body)
    assert status == 200
    msg = Message.model_validate(orjson.loads(raw))
    assert msg.id.startswith("msg_") and msg.stop_reason == "end_turn" and msg.content[0].type == "text"

    status, raw = await _raw(sim, {**body, "stream": True, "tool_choice": {"type": "any"}})
    events = [block.split(b"\n", 1) for block in raw.strip().split(b"\n\n")]
    names = [e[0].removeprefix(b"event: ").decode() for e in events]
    assert names[:3] == ["message_start", "ping", "content_block_start"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    adapter = TypeAdapter(RawMessageStreamEvent)
    for name, (_, data) in zip(names, events):
        payload = orjson.loads(data.removeprefix(b"data: "))
        assert payload["type"] == name
        if name != "ping":
            adapter.validate_python(payload)
    assert orjson.loads(events[2][1][6:])["content_block"]["type"] == "tool_use"

    status, raw = await _raw(sim, {**body, "stream": True, "messages": [
        {"role": "user", "content": "long [[fault:midstream_error]]"}]})
    last = raw.strip().split(b"\n\n")[-1].split(b"\n")
    assert last[0] == b"event: error"
    assert ErrorResponse.model_validate(orjson.loads(last[1][6:])).error.type == "overloaded_error"


@pytest.mark.parametrize(("change", "status", "kind", "words"), [
    ({"max_tokens": None}, 400, "invalid_request_error", "max_tokens"),
    ({"stop": ["x"]}, 400, "invalid_request_error", "stop: Extra inputs"),
    ({"messages": [{"role": "system", "content": "x"}]}, 400, "invalid_request_error", "role"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": ""}]}]}, 400,
     "invalid_request_error", "non-empty"),
    ({"messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_x"}]}]},
     400, "invalid_request_error", "tool_use_id"),
    ({"headers": {"anthropic-version": ""}}, 400, "invalid_request_error", "anthropic-version"),
    ({"headers": {"x-api-key": "nope"}}, 401, "authentication_error", "x-api-key"),
    ({"temperature": 0.5, "headers": {"anthropic-version": "2026-10-21"}}, 400, "invalid_request_error",
     "temperature"),
    ({"messages": [{"role": "user", "content": "[[fault:503]]"}]}, 529, "overloaded_error", "Overloaded"),
])
async def test_simulator_refuses_like_the_api(sim: Sim, change: dict[str, Any], status: int, kind: str,
                                              words: str) -> None:
    body = {"model": MODEL, "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    headers = change.pop("headers", None)
    body = {k: v for k, v in {**body, **change}.items() if v is not None}
    got, raw = await _raw(sim, body, headers)
    err = ErrorResponse.model_validate(orjson.loads(raw))
    assert got == status and err.error.type == kind and words in err.error.message


def test_official_sdk_against_the_simulator(sim: Sim) -> None:
    client = anthropic.Anthropic(api_key=SIM_KEY, base_url=sim.base, max_retries=0)
    try:
        msg = client.messages.create(model=MODEL, max_tokens=100, system="Be brief.",
                                     messages=[{"role": "user", "content": "[[echo]]hello sdk"}])
        assert msg.content[0].type == "text" and msg.content[0].text == "hello sdk"
        with client.messages.stream(model=MODEL, max_tokens=100,
                                    messages=[{"role": "user", "content": "[[echo]]hello stream"}]) as s:
            assert "".join(s.text_stream) == "hello stream"
            final = s.get_final_message()
        assert final.stop_reason == "end_turn" and final.usage.output_tokens > 0
        tool = client.messages.create(
            model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "x"}],
            tools=[{"name": "get_weather", "input_schema": WEATHER["function"]["parameters"]}])
        assert tool.stop_reason == "tool_use" and tool.content[0].type == "tool_use"
        assert tool.content[0].input == {"city": "value"}
        models = list(client.models.list())
        assert [m.id for m in models] == [MODEL]
        ModelInfo.model_validate(models[0].model_dump())
        with pytest.raises(anthropic.RateLimitError):
            client.messages.create(model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "[[fault:429]]"}])
    finally:
        client.close()


# --------------------------------------------------------------------------- through a real gateway


def test_through_the_gateway(sim: Sim, tmp_path: Path) -> None:
    sim.reset()
    config = {
        "privacy": {"default_level": "PUBLIC"},
        "deployments": [deployment("claude", sim, "cloud", provider="anthropic", base_url=sim.base,
                                   model=MODEL, api_key="env:TG_TEST_ANTHROPIC_KEY")],
        "model_groups": {"claude": ["claude"]},
    }
    gw = start_gateway(tmp_path, config, env={"TG_TEST_ANTHROPIC_KEY": SIM_KEY})
    client = OpenAI(base_url=gw.url, api_key=MASTER_KEY, max_retries=0, timeout=20)
    try:
        done = client.chat.completions.create(
            model="claude", messages=[{"role": "system", "content": "Be brief."},
                                      {"role": "user", "content": "[[echo]]via the gateway"}])
        assert done.choices[0].message.content == "via the gateway"
        assert done.choices[0].finish_reason == "stop" and done.usage and done.usage.prompt_tokens > 0
        assert sent(sim)["system"] == "Be brief."
        parts = client.chat.completions.create(
            model="claude", stream=True, messages=[{"role": "user", "content": "[[echo]]streamed reply"}])
        chunks = list(parts)
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "streamed reply"
        assert sent(sim)["stream"] is True
    finally:
        client.close()
        gw.stop()
