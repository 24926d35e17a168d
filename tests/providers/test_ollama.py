"""The native Ollama adapter against the simulated Ollama (a real process, real sockets), the
simulator against the official `ollama` SDK's types and client, and the whole path through a
real gateway process with the `openai` SDK.

Wire shapes are checked with the SDKs' own pydantic types. Ollama's types accept unknown keys,
so `assert_known` also requires every key sent or returned to be a field the SDK declares: a
misspelled field (`image` for `images`, `tool_call` for `tool_calls`) fails.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import ollama
import openai
import pytest
from ollama._types import ChatRequest, EmbedRequest, Image, Message, Options, Tool
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from pydantic import BaseModel

from tests.support import MASTER_KEY, GatewayProc, Sim, deployment, free_port, start_gateway, start_sim
from tiergate.config.models import Deployment
from tiergate.errors import (
    InvalidRequestError,
    UpstreamConnectionError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamStatusError,
    UpstreamTimeoutError,
)
from tiergate.providers.ollama import NDJSONParser, OllamaProvider, base_url, chat_result

MODEL = "llama3.2:3b"
KEY = "sk-ollama-proxy-SECRET-4242"
PNG_B64 = base64.b64encode(b"\x89PNG\r\n\x1a\n-simulated-image-bytes").decode()
WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city", "days"],
        },
    },
}
LOOKUP_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {"name": "lookup", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}},
}


# --------------------------------------------------------------------------- fixtures / helpers


@pytest.fixture(scope="module")
def tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ollama")


@pytest.fixture(scope="module")
def sim(tmp: Path) -> Iterator[Sim]:
    s = start_sim(tmp, "local", "--model", MODEL, "--model", "nomic-embed-text:latest", "--hang-s", "5", fmt="ollama")
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def keyed_sim(tmp: Path) -> Iterator[Sim]:
    s = start_sim(tmp, "local", "--model", MODEL, "--api-key", KEY, fmt="ollama")
    try:
        yield s
    finally:
        s.stop()


@asynccontextmanager
async def adapter(base: str, key: str | None = None, **extra: Any) -> AsyncIterator[OllamaProvider]:
    dep = Deployment(name="oll-a", provider="ollama", base_url=base, model=MODEL, location="local", **extra)
    provider = OllamaProvider(dep, api_key=key)
    await provider.start()
    try:
        yield provider
    finally:
        await provider.close()


def user(text: str) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": text}]}


async def chat(provider: OllamaProvider, body: dict[str, Any]) -> dict[str, Any]:
    result = await provider.chat(body)
    data = result.json()
    ChatCompletion.model_validate(data)
    assert json.loads(result.raw) == data
    return data


async def stream(provider: OllamaProvider, body: dict[str, Any]) -> tuple[list[dict[str, Any]], int]:
    """The chunks of a streamed answer (each checked with the SDK's type) and the batch count."""
    opened = await provider.open_stream({**body, "stream": True, "stream_options": {"include_usage": True}})
    chunks: list[dict[str, Any]] = []
    batches = 0
    try:
        async with asyncio.timeout(15):
            async for batch in opened:
                assert batch, "a batch is never empty"
                batches += 1
                chunks += [ev.data for ev in batch]
    finally:
        await opened.aclose()
    for c in chunks:
        ChatCompletionChunk.model_validate(c)
    return chunks, batches


def streamed_text(chunks: list[dict[str, Any]]) -> str:
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


def last_request(sim: Sim) -> dict[str, Any]:
    body = sim.stats()["last_request"]
    assert_chat_request(body)
    return body


def assert_known(cls: type[BaseModel], data: dict[str, Any]) -> None:
    """Valid for the SDK type, and no key the type does not declare."""
    cls.model_validate(data)
    names = set(cls.model_fields) | {f.alias for f in cls.model_fields.values() if f.alias}
    unknown = set(data) - names
    assert not unknown, f"{cls.__name__} has no field(s) {sorted(unknown)}"


def assert_chat_request(body: dict[str, Any]) -> None:
    """What the adapter sent, checked with the `ollama` SDK's request types, field by field."""
    assert_known(ChatRequest, body)
    for msg in body["messages"]:
        images = msg.get("images")
        assert_known(Message, {**msg, "images": [Image(value=x) for x in images]} if images else msg)
        for x in images or ():
            assert base64.b64decode(x, validate=True)
        for call in msg.get("tool_calls") or ():
            assert_known(Message.ToolCall, call)
            assert_known(Message.ToolCall.Function, call["function"])
    for tool in body.get("tools") or ():
        assert_known(Tool, tool)
        assert_known(Tool.Function, tool["function"])
    if "options" in body:
        assert_known(Options, body["options"])


def test_assert_known_catches_a_misspelled_field() -> None:
    with pytest.raises(AssertionError, match="image"):
        assert_chat_request({"model": MODEL, "messages": [{"role": "user", "content": "x", "image": [PNG_B64]}]})
    with pytest.raises(AssertionError, match="num_tokens"):
        assert_chat_request({"model": MODEL, "messages": [], "options": {"num_tokens": 5}})


# --------------------------------------------------------------------------- requests and answers


async def test_plain_chat(sim: Sim) -> None:
    async with adapter(sim.base) as p:
        data = await chat(p, user("Tell me about privacy tiers."))
    choice = data["choices"][0]
    assert choice["finish_reason"] == "stop"
    assert choice["message"]["role"] == "assistant" and len(choice["message"]["content"]) > 20
    assert data["model"] == MODEL
    assert data["usage"]["completion_tokens"] > 0 and data["usage"]["total_tokens"] == (
        data["usage"]["prompt_tokens"] + data["usage"]["completion_tokens"]
    )
    sent = last_request(sim)
    assert sent["stream"] is False and sent["model"] == MODEL
    assert sim.stats()["last_headers"]["User-Agent"].startswith("tiergate/")


async def test_multi_turn_with_system_prompt_options_and_keep_alive(sim: Sim) -> None:
    body = {
        "model": MODEL,
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "First question"},
            {"role": "assistant", "content": "First answer"},
            {"role": "developer", "content": [{"type": "text", "text": "Answer in English."}]},
            {"role": "user", "content": [{"type": "text", "text": "[[echo]]Second"}, {"type": "text", "text": "question"}]},
        ],
        "temperature": 0.7, "top_p": 0.9, "seed": 7, "stop": "STOP", "max_tokens": 99,
    }
    async with adapter(sim.base, options={"num_ctx": 8192, "temperature": 0.1}, keep_alive="-1") as p:
        data = await chat(p, body)
    assert data["choices"][0]["message"]["content"] == "Second\nquestion"
    sent = last_request(sim)
    assert [(m["role"], m["content"]) for m in sent["messages"]] == [
        ("system", "You are terse."), ("user", "First question"), ("assistant", "First answer"),
        ("system", "Answer in English."), ("user", "[[echo]]Second\nquestion"),
    ]
    # deployment options win over the request's; "-1" goes as a number (a Go duration needs a unit)
    assert sent["options"] == {"temperature": 0.1, "top_p": 0.9, "seed": 7, "stop": ["STOP"], "num_predict": 99, "num_ctx": 8192}
    assert sent["keep_alive"] == -1
    async with adapter(sim.base, keep_alive="10m") as p:
        await chat(p, {**user("hi"), "max_completion_tokens": 5, "max_tokens": 50})
    sent = last_request(sim)
    assert sent["keep_alive"] == "10m" and sent["options"] == {"num_predict": 5}


async def test_max_tokens_cut_maps_to_length(sim: Sim) -> None:
    async with adapter(sim.base) as p:
        data = await chat(p, {**user("Write a lot"), "max_tokens": 2})
        chunks, _ = await stream(p, {**user("Write a lot"), "max_tokens": 2})
    assert data["choices"][0]["finish_reason"] == "length"
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]] == ["length"]


async def test_stream_reassembles_to_the_plain_answer_with_usage(sim: Sim) -> None:
    prompt = user("Explain streaming in one paragraph.")
    async with adapter(sim.base) as p:
        plain = await chat(p, prompt)
        chunks, _ = await stream(p, prompt)
    assert last_request(sim)["stream"] is True
    assert streamed_text(chunks) == plain["choices"][0]["message"]["content"]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    finish = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert len(finish) == 1 and finish[0]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == plain["usage"]
    assert chunks.index(finish[0]) < len(chunks) - 1
    assert len({c["id"] for c in chunks}) == 1


async def test_tool_call_round_trip(sim: Sim) -> None:
    ask = {**user("Weather in Baku?"), "tools": [WEATHER_TOOL, LOOKUP_TOOL]}
    async with adapter(sim.base) as p:
        data = await chat(p, ask)
        choice = data["choices"][0]
        assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
        [call] = choice["message"]["tool_calls"]
        assert call["function"]["name"] == "get_weather" and call["id"].startswith("call_")
        assert json.loads(call["function"]["arguments"]) == {"city": "value", "days": 1}
        assert last_request(sim)["tools"] == [WEATHER_TOOL, LOOKUP_TOOL]

        follow = {**ask, "messages": [
            *ask["messages"],
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": call["id"], "content": "22C and sunny"},
        ]}
        answer = await chat(p, follow)
    assert answer["choices"][0]["message"]["content"] == "Tool result: 22C and sunny"
    assert answer["choices"][0]["finish_reason"] == "stop"
    sent = last_request(sim)["messages"]
    assert sent[1] == {"role": "assistant", "content": "", "tool_calls": [
        {"function": {"name": "get_weather", "arguments": {"city": "value", "days": 1}}}]}
    assert sent[2] == {"role": "tool", "content": "22C and sunny", "tool_name": "get_weather"}


async def test_streamed_tool_call(sim: Sim) -> None:
    async with adapter(sim.base) as p:
        chunks, _ = await stream(p, {**user("Weather?"), "tools": [WEATHER_TOOL]})
    calls = [tc for c in chunks if c["choices"] for tc in c["choices"][0]["delta"].get("tool_calls") or ()]
    assert len(calls) == 1 and calls[0]["index"] == 0 and calls[0]["id"].startswith("call_")
    assert calls[0]["function"]["name"] == "get_weather"
    assert json.loads(calls[0]["function"]["arguments"]) == {"city": "value", "days": 1}
    finish = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert finish == ["tool_calls"] and chunks[-1]["usage"]["completion_tokens"] > 0


async def test_tool_choice_none_omits_tools_and_named_sends_only_that_tool(sim: Sim) -> None:
    async with adapter(sim.base) as p:
        data = await chat(p, {**user("Hello"), "tools": [WEATHER_TOOL], "tool_choice": "none"})
        assert data["choices"][0]["finish_reason"] == "stop"
        assert "tools" not in last_request(sim)
        choice = {"type": "function", "function": {"name": "lookup"}}
        data = await chat(p, {**user("Find it"), "tools": [WEATHER_TOOL, LOOKUP_TOOL], "tool_choice": choice})
    assert last_request(sim)["tools"] == [LOOKUP_TOOL]
    assert data["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "lookup"


async def test_data_url_image_goes_upstream_as_base64(sim: Sim) -> None:
    parts = [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
    ]
    async with adapter(sim.base) as p:
        data = await chat(p, {"model": MODEL, "messages": [{"role": "user", "content": parts}]})
    assert data["choices"][0]["message"]["content"].startswith("[1 image received]")
    assert last_request(sim)["messages"] == [{"role": "user", "content": "What is in this picture?", "images": [PNG_B64]}]


async def test_remote_image_url_and_n_are_refused_before_any_upstream_call(sim: Sim) -> None:
    before = sim.stats()["chat_requests"]
    remote = [{"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]
    async with adapter(sim.base) as p:
        with pytest.raises(InvalidRequestError, match="inline") as exc:
            await p.chat({"model": MODEL, "messages": [{"role": "user", "content": remote}]})
        assert exc.value.param == "messages" and exc.value.status == 400
        with pytest.raises(InvalidRequestError) as exc:
            await p.open_stream({**user("hi"), "n": 2, "stream": True})
        assert exc.value.param == "n"
    assert sim.stats()["chat_requests"] == before


async def test_json_mode_and_structured_output(sim: Sim) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
              "required": ["city", "population"]}
    async with adapter(sim.base) as p:
        data = await chat(p, {**user("Describe Baku"), "response_format": {"type": "json_object"}})
        assert last_request(sim)["format"] == "json"
        assert isinstance(json.loads(data["choices"][0]["message"]["content"]), dict)
        rf = {"type": "json_schema", "json_schema": {"name": "city", "schema": schema, "strict": True}}
        data = await chat(p, {**user("Describe Baku"), "response_format": rf})
    assert last_request(sim)["format"] == schema
    assert set(json.loads(data["choices"][0]["message"]["content"])) == {"city", "population"}


def test_thinking_is_dropped_and_done_reason_mapped() -> None:
    data = {"model": MODEL, "message": {"role": "assistant", "content": "42", "thinking": "SECRET-REASONING"},
            "done": True, "done_reason": "length", "prompt_eval_count": 3, "eval_count": 2}
    result = chat_result(data, MODEL, "oll-a")
    ChatCompletion.model_validate(result.json())
    assert b"SECRET-REASONING" not in result.raw
    assert result.json()["choices"][0]["finish_reason"] == "length"
    assert result.json()["usage"] == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("fault", "status", "code", "retryable"),
    [
        ("429", 429, "upstream_rate_limited", True),
        ("503", 503, "upstream_overloaded", True),
        ("500", 502, "upstream_error", True),
        ("400", 400, "upstream_rejected", False),
        ("401", 401, "upstream_auth_error", True),
    ],
)
@pytest.mark.parametrize("streamed", [False, True])
async def test_status_faults_map_to_gateway_errors(sim: Sim, fault: str, status: int, code: str, retryable: bool, streamed: bool) -> None:
    body = user(f"[[fault:{fault}]] hello")
    async with adapter(sim.base, key=KEY) as p:
        with pytest.raises(UpstreamStatusError) as exc:
            await (stream(p, body) if streamed else p.chat(body))
    err = exc.value
    assert (err.status, err.code, err.retryable) == (status, code, retryable)
    assert KEY not in err.message and KEY not in json.dumps(err.to_dict())
    if fault == "429":
        assert err.retry_after == 1.0 and err.headers["retry-after"] == "1"
    if fault == "401":
        assert "unauthorized" not in err.message  # upstream words are not echoed for auth errors


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ("timeout", UpstreamTimeoutError),
        ("reset", UpstreamConnectionError),
        ("malformed", UpstreamProtocolError),
        ("truncate", UpstreamProtocolError),
    ],
)
@pytest.mark.parametrize("streamed", [False, True])
async def test_transport_faults(sim: Sim, fault: str, error: type[UpstreamError], streamed: bool) -> None:
    body = user(f"[[fault:{fault}]] hello")
    async with adapter(sim.base, timeout_s=0.5) as p:
        with pytest.raises(error) as exc:
            await asyncio.wait_for(stream(p, body) if streamed else p.chat(body), 10)
    assert exc.value.retryable


async def test_missing_model_is_404_naming_it_and_falls_back(sim: Sim) -> None:
    async with adapter(sim.base) as p:
        for call in (p.chat, lambda b: stream(p, b)):
            with pytest.raises(UpstreamStatusError) as exc:
                await call({**user("hi"), "model": "mistral:7b"})
            err = exc.value
            assert (err.status, err.code) == (404, "upstream_rejected")
            assert "mistral:7b" in err.message and "ollama pull mistral:7b" in err.message
            assert err.retryable  # another deployment of the group may have the model


async def test_error_line_mid_stream_raises_after_the_first_content(sim: Sim) -> None:
    async with adapter(sim.base) as p:
        opened = await p.open_stream({**user("[[fault:midstream_error]] Tell me a story"), "stream": True})
        seen: list[dict[str, Any]] = []
        try:
            with pytest.raises(UpstreamProtocolError, match="mid-stream"):
                async with asyncio.timeout(10):
                    async for batch in opened:
                        seen += [ev.data for ev in batch]
        finally:
            await opened.aclose()
    assert streamed_text(seen)  # content arrived before the error
    assert not any(c["choices"] and c["choices"][0]["finish_reason"] for c in seen)


async def test_trickled_stream_reassembles_to_the_same_text(sim: Sim) -> None:
    text = "[[fault:trickle]] Rivers carry silt: ə ğ ı ö ü ş ç — Привет, как дела? 🚀 and more words here."
    async with adapter(sim.base) as p:
        chunks, batches = await stream(p, user(f"[[echo]]{text}"))
        plain = await chat(p, user(f"[[echo]]{text}"))
    assert streamed_text(chunks) == text == plain["choices"][0]["message"]["content"]
    assert batches > 1  # split reads (every split point is covered by the NDJSON parser test)
    assert chunks[-1]["usage"]["completion_tokens"] > 0


@pytest.mark.parametrize("split", [1, 2, 3, 7, 64])
def test_ndjson_parser_keeps_incomplete_tails(split: int) -> None:
    lines = [json.dumps({"message": {"content": f"piece {i} ə"}, "done": False}).encode() for i in range(5)]
    body = b"\n".join(lines) + b"\n\n" + lines[0]  # a blank line, and a last line without newline
    parser = NDJSONParser()
    out: list[bytes] = []
    for i in range(0, len(body), split):
        out += parser.feed(body[i : i + split])
    out += parser.finish()
    assert out == [*lines, lines[0]]


# --------------------------------------------------------------------------- models, embeddings, auth


def test_base_url_normalisation() -> None:
    assert base_url("") == "http://127.0.0.1:11434"
    assert base_url("http://gpu-box:11434/v1") == "http://gpu-box:11434"
    assert base_url("http://gpu-box:11434/api/") == "http://gpu-box:11434"
    assert base_url("https://proxy.example/ollama") == "https://proxy.example/ollama"


async def test_list_models_and_health(sim: Sim) -> None:
    async with adapter(f"{sim.base}/v1") as p:
        assert await p.list_models() == [MODEL, "nomic-embed-text:latest"]
        health = await p.health()
    assert health.ok and health.models == [MODEL, "nomic-embed-text:latest"]
    async with adapter(f"http://127.0.0.1:{free_port()}", connect_timeout_s=1) as p:
        health = await p.health()
    assert not health.ok and health.error


async def test_embeddings(sim: Sim) -> None:
    async with adapter(sim.base, keep_alive="5m") as p:
        one = await p.embed({"model": "nomic-embed-text", "input": "hello"})
        many = await p.embed({"model": "nomic-embed-text", "input": ["hello", "world"], "dimensions": 64})
        with pytest.raises(InvalidRequestError) as exc:
            await p.embed({"model": "nomic-embed-text", "input": [[1, 2, 3]]})
    assert exc.value.param == "input"
    sent = sim.stats()["last_request"]
    assert_known(EmbedRequest, sent)
    assert sent == {"model": "nomic-embed-text", "input": ["hello", "world"], "truncate": True, "dimensions": 64, "keep_alive": "5m"}
    assert len(one["data"][0]["embedding"]) == 768 and one["model"] == "nomic-embed-text"
    assert [d["index"] for d in many["data"]] == [0, 1] and all(len(d["embedding"]) == 64 for d in many["data"])
    for d in many["data"]:
        assert math.isclose(math.fsum(v * v for v in d["embedding"]), 1.0, rel_tol=1e-9)
    assert many["data"][0]["embedding"] != many["data"][1]["embedding"]
    assert many["usage"]["prompt_tokens"] == many["usage"]["total_tokens"] > 0
    assert openai.types.CreateEmbeddingResponse.model_validate(many)


async def test_bearer_key_for_an_authenticating_proxy(keyed_sim: Sim) -> None:
    async with adapter(keyed_sim.base, key=KEY) as p:
        assert (await chat(p, user("hi")))["choices"][0]["message"]["content"]
    assert keyed_sim.stats()["last_headers"]["Authorization"] == f"Bearer {KEY}"
    async with adapter(keyed_sim.base, key="sk-wrong-key-777") as p:
        with pytest.raises(UpstreamStatusError) as exc:
            await p.chat(user("hi"))
        health = await p.health()
    assert (exc.value.status, exc.value.code) == (401, "upstream_auth_error")
    assert "sk-wrong-key-777" not in exc.value.message
    assert not health.ok


# --------------------------------------------------------------------------- the simulator vs the ollama SDK


async def test_simulator_answers_match_the_ollama_sdk_types(sim: Sim) -> None:
    from ollama import ChatResponse, EmbedResponse, ListResponse

    async with aiohttp.ClientSession() as s:
        async with s.post(f"{sim.base}/api/chat", json=user("no stream field: streams by default")) as r:
            assert r.status == 200 and r.content_type == "application/x-ndjson"
            lines = [json.loads(x) for x in (await r.read()).splitlines()]
        async with s.post(f"{sim.base}/api/chat", json={**user("Weather?"), "stream": False, "tools": [WEATHER_TOOL]}) as r:
            tool_answer = await r.json()
        async with s.get(f"{sim.base}/api/tags") as r:
            listing = await r.json()
        async with s.post(f"{sim.base}/api/embed", json={"model": MODEL, "input": "x", "dimensions": 8}) as r:
            embedded = await r.json()
        async with s.get(f"{sim.base}/api/version") as r:
            assert isinstance((await r.json())["version"], str)
        async with s.post(f"{sim.base}/api/chat", json={**user("hi"), "model": "nope"}) as r:
            assert r.status == 404 and await r.json() == {"error": 'model "nope" not found, try pulling it first'}
        async with s.post(f"{sim.base}/api/chat", json={**user("hi"), "keep_alive": "-1"}) as r:
            assert r.status == 400 and "missing unit" in (await r.json())["error"]
    assert len(lines) > 2 and [x["done"] for x in lines] == [False] * (len(lines) - 1) + [True]
    for line in [*lines, tool_answer]:
        assert_known(ChatResponse, line)
        assert_known(Message, line["message"])
    final = lines[-1]
    for field in ("done_reason", "total_duration", "load_duration", "prompt_eval_count", "prompt_eval_duration",
                  "eval_count", "eval_duration", "created_at", "model"):
        assert field in final
    [call] = tool_answer["message"]["tool_calls"]
    assert_known(Message.ToolCall, call)
    assert call["function"] == {"name": "get_weather", "arguments": {"city": "value", "days": 1}}
    ListResponse.model_validate(listing)
    for m in listing["models"]:
        assert {"name", "model", "modified_at", "size", "digest", "details"} <= set(m)
        assert_known(ListResponse.Model, {k: v for k, v in m.items() if k != "name"})
    assert_known(EmbedResponse, embedded)
    assert len(embedded["embeddings"][0]) == 8


def test_official_ollama_client_against_the_simulator(sim: Sim) -> None:
    client = ollama.Client(host=sim.base, timeout=10)
    try:
        _official_client_session(client)
    finally:
        client.close()


def _official_client_session(client: ollama.Client) -> None:
    answer = client.chat(model=MODEL, messages=[{"role": "user", "content": "[[echo]]Salam, dünya"}])
    assert answer.message.content == "Salam, dünya" and answer.done_reason == "stop"
    parts = list(client.chat(model=MODEL, messages=[{"role": "user", "content": "[[echo]]Salam, dünya"}], stream=True))
    assert "".join(p.message.content or "" for p in parts) == "Salam, dünya" and parts[-1].done
    assert parts[-1].eval_count == answer.eval_count
    vectors = client.embed(model=MODEL, input=["a", "b"], dimensions=16)
    assert [len(v) for v in vectors.embeddings] == [16, 16]
    assert [m.model for m in client.list().models] == [MODEL, "nomic-embed-text:latest"]
    with pytest.raises(ollama.ResponseError) as exc:
        client.chat(model="absent:1b", messages=[{"role": "user", "content": "hi"}])
    assert exc.value.status_code == 404


# --------------------------------------------------------------------------- through a real gateway


@pytest.fixture(scope="module")
def gateway(tmp: Path, sim: Sim) -> Iterator[GatewayProc]:
    config = {
        "privacy": {"default_level": "PUBLIC"},
        "deployments": [deployment("oll-gw", sim, "local", provider="ollama", base_url=sim.base, model=MODEL,
                                   options={"num_ctx": 4096})],
        "model_groups": {"local-ollama": ["oll-gw"]},
    }
    gw = start_gateway(tmp, config)
    try:
        yield gw
    finally:
        gw.stop()


def test_openai_sdk_through_the_gateway(gateway: GatewayProc, sim: Sim) -> None:
    with openai.OpenAI(base_url=gateway.url, api_key=MASTER_KEY, max_retries=0, timeout=15) as client:
        _chat_through_gateway(client, sim)


def _chat_through_gateway(client: openai.OpenAI, sim: Sim) -> None:
    messages: Any = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "[[echo]]Hello via Ollama"}]
    done = client.chat.completions.create(model="local-ollama", messages=messages)
    assert done.choices[0].message.content == "Hello via Ollama" and done.usage and done.usage.completion_tokens > 0
    sent = last_request(sim)
    assert sent["options"] == {"num_ctx": 4096} and sent["messages"][0] == {"role": "system", "content": "Be brief."}
    pieces = client.chat.completions.create(model="local-ollama", messages=messages, stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in pieces if c.choices)
    assert text == "Hello via Ollama"
    assert last_request(sim)["stream"] is True
