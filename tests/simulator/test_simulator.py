"""Tests for the simulated upstream tier (tiergate.simulator), over real sockets.

Covers the OpenAI wire format through the official ``openai`` SDK (async and
sync clients), determinism (stream == non-stream), tools, n/stop/max_tokens,
JSON mode, images, ``[[echo]]`` round trips, every fault kind, auth, stats,
timing and the ``python -m tiergate.simulator`` entry point.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import openai
import pytest

from tiergate.simulator import (
    SimulatorConfig,
    SimulatorThread,
    build_app,
    start_simulator,
)

USER = [{"role": "user", "content": "Tell me about privacy tiers."}]
AZ_RU = "Azərbaycan: ə ğ ı ö ü ş ç Ə Ğ İ Ö Ü Ş Ç — Русский: Привет, как дела? Ёжик съел щётку. 🚀"
WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "days": {"type": "integer"},
                "metric": {"type": "boolean"},
                "unit": {"type": "string", "enum": ["c", "f"]},
            },
            "required": ["city", "days"],
        },
    },
}
OTHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {"name": "lookup", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}},
}


# --------------------------------------------------------------------------- helpers


@asynccontextmanager
async def simulator(**overrides: Any) -> AsyncIterator[int]:
    runner, port = await start_simulator(SimulatorConfig.fast(**overrides))
    try:
        yield port
    finally:
        await runner.cleanup()


@asynccontextmanager
async def client(port: int, **kwargs: Any) -> AsyncIterator[openai.AsyncOpenAI]:
    kwargs.setdefault("api_key", "sk-test")
    async with openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", max_retries=0, **kwargs) as c:
        yield c


@pytest.fixture
async def port() -> AsyncIterator[int]:
    async with simulator(hang_s=5.0) as p:
        yield p


@pytest.fixture
async def ai(port: int) -> AsyncIterator[openai.AsyncOpenAI]:
    async with client(port) as c:
        yield c


async def stats(port: int) -> dict[str, Any]:
    async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{port}/_sim/stats") as r:
        return await r.json()


async def collect_stream(ai: openai.AsyncOpenAI, **kwargs: Any) -> list[Any]:
    stream = await ai.chat.completions.create(stream=True, **kwargs)
    return [chunk async for chunk in stream]


def joined_text(chunks: list[Any], index: int = 0) -> str:
    return "".join(
        c.choices[0].delta.content or "" for c in chunks if c.choices and c.choices[0].index == index
    )


def say(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


# --------------------------------------------------------------------------- basics


async def test_health_models_and_unknown_route(port: int) -> None:
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{base}/health") as r:
            assert r.status == 200 and await r.json() == {"status": "ok"}
        async with s.get(f"{base}/v1/nope") as r:
            assert r.status == 404
            assert set((await r.json())["error"]) == {"message", "type", "param", "code"}
    async with client(port) as ai:
        models = await ai.models.list()
        assert [m.id for m in models.data] == ["llama3.2:3b", "qwen2.5:7b"]
        assert all(m.object == "model" and m.owned_by for m in models.data)


async def test_plain_chat_is_deterministic(ai: openai.AsyncOpenAI) -> None:
    first = await ai.chat.completions.create(model="any-model-name", messages=USER, seed=7)
    again = await ai.chat.completions.create(model="any-model-name", messages=USER)
    other = await ai.chat.completions.create(model="any-model-name", messages=say("something else"))
    assert first.object == "chat.completion" and first.model == "any-model-name"
    choice = first.choices[0]
    assert choice.finish_reason == "stop" and choice.message.role == "assistant"
    assert len(choice.message.content.split()) == 24
    assert choice.message.content == again.choices[0].message.content
    assert choice.message.content != other.choices[0].message.content
    usage = first.usage
    assert usage.prompt_tokens >= 1 and usage.completion_tokens == (len(choice.message.content) + 3) // 4
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


async def test_profile_changes_content_and_reply_tokens_configurable() -> None:
    async with simulator(profile="cloud", reply_tokens=5) as p, client(p) as ai:
        res = await ai.chat.completions.create(model="gpt-4o-mini", messages=USER)
        assert len(res.choices[0].message.content.split()) == 5
        assert [m.id for m in (await ai.models.list()).data] == ["gpt-4o-mini", "llama-4-maverick"]


async def test_stream_reassembles_to_non_stream(ai: openai.AsyncOpenAI) -> None:
    plain = await ai.chat.completions.create(model="m", messages=USER)
    chunks = await collect_stream(ai, model="m", messages=USER)
    assert len(chunks) > 5
    assert all(c.object == "chat.completion.chunk" and c.id == chunks[0].id for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert joined_text(chunks) == plain.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks)


async def test_stream_include_usage(ai: openai.AsyncOpenAI) -> None:
    plain = await ai.chat.completions.create(model="m", messages=USER)
    chunks = await collect_stream(ai, model="m", messages=USER, stream_options={"include_usage": True})
    *body, last = chunks
    assert last.choices == [] and last.usage == plain.usage
    assert all(c.usage is None and c.choices for c in body)


async def test_include_usage_wire_format_raw(port: int) -> None:
    payload = {"model": "m", "messages": USER, "stream": True, "stream_options": {"include_usage": True}}
    async with aiohttp.ClientSession() as s:
        async with s.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=payload) as r:
            assert r.headers["content-type"].startswith("text/event-stream")
            raw = (await r.read()).decode()
    events = raw.split("\n\n")
    assert events[-2:] == ["data: [DONE]", ""]
    datas = [json.loads(e.removeprefix("data: ")) for e in events[:-2]]
    assert all("usage" in d for d in datas)
    assert all(d["usage"] is None for d in datas[:-1]) and datas[-1]["choices"] == []


# --------------------------------------------------------------------------- request parameters


async def test_n_choices(ai: openai.AsyncOpenAI) -> None:
    single = await ai.chat.completions.create(model="m", messages=USER)
    res = await ai.chat.completions.create(model="m", messages=USER, n=2)
    assert [c.index for c in res.choices] == [0, 1]
    assert res.choices[0].message.content == single.choices[0].message.content
    assert res.choices[1].message.content != res.choices[0].message.content
    chunks = await collect_stream(ai, model="m", messages=USER, n=2)
    assert joined_text(chunks, 1) == res.choices[1].message.content
    assert joined_text(chunks, 0) == res.choices[0].message.content


async def test_stop_cuts_content(ai: openai.AsyncOpenAI) -> None:
    full = (await ai.chat.completions.create(model="m", messages=USER)).choices[0].message.content
    word = full.split()[5]
    expected = full[: full.index(word)]
    res = await ai.chat.completions.create(model="m", messages=USER, stop=[word, "zzz-never"])
    assert res.choices[0].message.content == expected and res.choices[0].finish_reason == "stop"
    res = await ai.chat.completions.create(model="m", messages=USER, stop=word)
    assert res.choices[0].message.content == expected
    assert joined_text(await collect_stream(ai, model="m", messages=USER, stop=word)) == expected


async def test_max_tokens_finish_length(ai: openai.AsyncOpenAI) -> None:
    full = (await ai.chat.completions.create(model="m", messages=USER)).choices[0].message.content
    res = await ai.chat.completions.create(model="m", messages=USER, max_tokens=3)
    assert res.choices[0].finish_reason == "length"
    assert res.choices[0].message.content == full[:12] and res.usage.completion_tokens == 3
    res = await ai.chat.completions.create(model="m", messages=USER, max_completion_tokens=2)
    assert res.choices[0].finish_reason == "length" and res.usage.completion_tokens == 2
    chunks = await collect_stream(ai, model="m", messages=USER, max_tokens=3)
    assert joined_text(chunks) == full[:12] and chunks[-1].choices[0].finish_reason == "length"


async def test_json_modes(ai: openai.AsyncOpenAI) -> None:
    res = await ai.chat.completions.create(model="m", messages=USER, response_format={"type": "json_object"})
    assert isinstance(json.loads(res.choices[0].message.content)["answer"], str)
    schema = {"type": "object", "properties": {"title": {"type": "string"}, "score": {"type": "number"}}}
    res = await ai.chat.completions.create(
        model="m",
        messages=USER,
        response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema}},
    )
    data = json.loads(res.choices[0].message.content)
    assert set(data) == {"title", "score"} and data["score"] == 1


async def test_image_parts_are_reported(ai: openai.AsyncOpenAI) -> None:
    parts = [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
    ]
    res = await ai.chat.completions.create(model="m", messages=[{"role": "user", "content": parts}])
    assert res.choices[0].message.content.startswith("[1 image received] ")


# --------------------------------------------------------------------------- echo


async def test_echo_unicode_round_trip(ai: openai.AsyncOpenAI) -> None:
    msgs = say(f"[[echo]]{AZ_RU}")
    res = await ai.chat.completions.create(model="m", messages=msgs)
    assert res.choices[0].message.content == AZ_RU
    assert joined_text(await collect_stream(ai, model="m", messages=msgs)) == AZ_RU
    parts = [{"type": "text", "text": "[[echo]]ə ğ ı"}, {"type": "text", "text": "Привет"}]
    res = await ai.chat.completions.create(model="m", messages=[{"role": "user", "content": parts}])
    assert res.choices[0].message.content == "ə ğ ı\nПривет"


async def test_echo_200kb_prompt_intact(ai: openai.AsyncOpenAI, port: int) -> None:
    big = (AZ_RU + "\n") * (200_000 // len(AZ_RU.encode()) + 1)
    assert len(big.encode()) >= 200_000
    res = await ai.chat.completions.create(model="m", messages=say("[[echo]]" + big))
    assert res.choices[0].message.content == big
    assert res.usage.prompt_tokens == (len(big) + len("[[echo]]") + 3) // 4
    payload = {"model": "m", "messages": say(big + "[[echo]]"), "stream": True}
    async with aiohttp.ClientSession() as s:
        async with s.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=payload) as r:
            raw = await r.read()
    events = raw.decode().split("\n\n")
    assert events[-2] == "data: [DONE]"
    deltas = [json.loads(e[6:])["choices"][0]["delta"].get("content") or "" for e in events[:-2]]
    assert "".join(deltas) == big


# --------------------------------------------------------------------------- tools


async def test_tool_call_round_trip(ai: openai.AsyncOpenAI) -> None:
    msgs: list[dict[str, Any]] = say("What's the weather in Baku?")
    res = await ai.chat.completions.create(model="m", messages=msgs, tools=[WEATHER_TOOL])
    choice = res.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    (call,) = choice.message.tool_calls
    assert call.type == "function" and call.function.name == "get_weather" and call.id.startswith("call_")
    assert json.loads(call.function.arguments) == {"city": "value", "days": 1, "metric": True, "unit": "c"}

    msgs += [
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "sunny, 24C"},
    ]
    res = await ai.chat.completions.create(model="m", messages=msgs, tools=[WEATHER_TOOL])
    assert res.choices[0].finish_reason == "stop"
    assert res.choices[0].message.content == "Tool result: sunny, 24C"


async def test_tool_choice_named_and_none(ai: openai.AsyncOpenAI) -> None:
    tools = [WEATHER_TOOL, OTHER_TOOL]
    named = {"type": "function", "function": {"name": "lookup"}}
    res = await ai.chat.completions.create(model="m", messages=USER, tools=tools, tool_choice=named)
    assert res.choices[0].message.tool_calls[0].function.name == "lookup"
    res = await ai.chat.completions.create(model="m", messages=USER, tools=tools, tool_choice="none")
    assert res.choices[0].message.tool_calls is None and res.choices[0].message.content


async def test_tool_call_streaming_deltas(ai: openai.AsyncOpenAI) -> None:
    plain = await ai.chat.completions.create(model="m", messages=USER, tools=[WEATHER_TOOL])
    chunks = await collect_stream(ai, model="m", messages=USER, tools=[WEATHER_TOOL])
    calls = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    first, *rest = calls
    assert first.index == 0 and first.id == plain.choices[0].message.tool_calls[0].id
    assert first.function.name == "get_weather" and first.type == "function"
    assert len(rest) >= 2 and all(tc.id is None and tc.function.name is None for tc in rest)
    args = "".join(tc.function.arguments or "" for tc in calls)
    assert args == plain.choices[0].message.tool_calls[0].function.arguments
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


# --------------------------------------------------------------------------- sync client


def test_sync_client_against_threaded_simulator() -> None:
    with SimulatorThread(SimulatorConfig.fast()) as sim:
        with openai.OpenAI(base_url=sim.base_url, api_key="sk-test", max_retries=0) as c:
            plain = c.chat.completions.create(model="m", messages=USER)
            stream = c.chat.completions.create(model="m", messages=USER, stream=True)
            text = "".join(ch.choices[0].delta.content or "" for ch in stream if ch.choices)
            assert text == plain.choices[0].message.content
            with pytest.raises(openai.RateLimitError):
                c.chat.completions.create(model="m", messages=say("[[fault:429]]"))


# --------------------------------------------------------------------------- errors and faults


@pytest.mark.parametrize(
    ("kind", "exc", "status"),
    [
        ("500", openai.InternalServerError, 500),
        ("503", openai.InternalServerError, 503),
        ("429", openai.RateLimitError, 429),
        ("400", openai.BadRequestError, 400),
        ("401", openai.AuthenticationError, 401),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
async def test_http_faults(ai: openai.AsyncOpenAI, kind: str, exc: type[Exception], status: int, stream: bool) -> None:
    with pytest.raises(exc) as info:
        await ai.chat.completions.create(model="m", messages=say(f"hi [[fault:{kind}]]"), stream=stream)
    err = info.value
    assert isinstance(err, openai.APIStatusError) and err.status_code == status
    assert set(err.body) >= {"message", "type", "param", "code"}  # type: ignore[arg-type]
    if kind == "429":
        assert err.response.headers["retry-after"] == "1"
        assert err.code == "rate_limit_exceeded"


async def test_fault_trigger_in_any_message(ai: openai.AsyncOpenAI) -> None:
    msgs = [{"role": "system", "content": "[[fault:503]]"}, *USER]
    with pytest.raises(openai.InternalServerError):
        await ai.chat.completions.create(model="m", messages=msgs)


@pytest.mark.parametrize("stream", [False, True])
async def test_reset_is_connection_error(ai: openai.AsyncOpenAI, stream: bool) -> None:
    with pytest.raises(openai.APIConnectionError):
        res = await ai.chat.completions.create(model="m", messages=say("[[fault:reset]]"), stream=stream)
        async for _ in res:  # type: ignore[union-attr]
            pass


async def test_reset_raw_gets_no_http_response(port: int) -> None:
    async with aiohttp.ClientSession() as s:
        with pytest.raises(aiohttp.ClientError):
            await s.post(f"http://127.0.0.1:{port}/v1/chat/completions", json={"model": "m", "messages": say("[[fault:reset]]")})


@pytest.mark.parametrize("stream", [False, True])
async def test_malformed_body(ai: openai.AsyncOpenAI, port: int, stream: bool) -> None:
    with pytest.raises((openai.APIError, ValueError)):
        res = await ai.chat.completions.create(model="m", messages=say("[[fault:malformed]]"), stream=stream)
        async for _ in res:  # type: ignore[union-attr]
            pass
    payload = {"model": "m", "messages": say("[[fault:malformed]]")}
    async with aiohttp.ClientSession() as s:
        async with s.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=payload) as r:
            assert r.status == 200 and r.content_type == "application/json"
            with pytest.raises(ValueError):
                json.loads(await r.read())


async def test_timeout_fault_with_short_client_timeout(port: int) -> None:
    started = time.monotonic()
    async with client(port, timeout=0.3) as ai:
        with pytest.raises(openai.APITimeoutError):
            await ai.chat.completions.create(model="m", messages=say("[[fault:timeout]]"))
    assert time.monotonic() - started < 2


async def test_hang_is_cancelled_on_server_stop() -> None:
    runner, p = await start_simulator(SimulatorConfig.fast(hang_s=30))
    async with aiohttp.ClientSession() as s:
        payload = {"model": "m", "messages": say("[[fault:timeout]]")}
        pending = asyncio.create_task(s.post(f"http://127.0.0.1:{p}/v1/chat/completions", json=payload))
        await asyncio.sleep(0.2)
        started = time.monotonic()
        await runner.cleanup()
        assert time.monotonic() - started < 1.5
        with pytest.raises(aiohttp.ClientError):
            await asyncio.wait_for(pending, 2)


async def test_slow_first_byte() -> None:
    async with simulator() as p, client(p) as ai:
        started = time.monotonic()
        res = await ai.chat.completions.create(model="m", messages=say("x [[fault:slow_first_byte:150]]"))
        assert time.monotonic() - started >= 0.15 and res.choices[0].message.content


async def test_truncated_stream_has_no_done(port: int) -> None:
    payload = {"model": "m", "messages": say("[[fault:truncate]]"), "stream": True}
    lines: list[bytes] = []
    async with aiohttp.ClientSession() as s:
        async with s.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=payload) as r:
            assert r.status == 200
            with pytest.raises(aiohttp.ClientPayloadError):
                async for line in r.content:
                    lines.append(line)
    data = [line for line in lines if line.startswith(b"data: ")]
    assert data and b"data: [DONE]\n" not in lines
    assert all(json.loads(line[6:])["object"] == "chat.completion.chunk" for line in data)


async def test_truncated_via_sdk_is_connection_error(ai: openai.AsyncOpenAI) -> None:
    received = []
    with pytest.raises(openai.APIConnectionError):
        async for chunk in await ai.chat.completions.create(model="m", messages=say("[[fault:truncate]]"), stream=True):
            received.append(chunk)
    assert received
    with pytest.raises(openai.APIConnectionError):
        await ai.chat.completions.create(model="m", messages=say("[[fault:truncate]]"))


async def test_config_fault_is_scoped_to_one_instance() -> None:
    async with simulator() as healthy, simulator(fault="503") as failing:
        async with client(healthy) as ok, client(failing) as bad:
            assert (await ok.chat.completions.create(model="m", messages=USER)).choices
            with pytest.raises(openai.InternalServerError):
                await bad.chat.completions.create(model="m", messages=USER)
        assert (await stats(failing))["chat_requests"] == 1


async def test_config_fault_rate() -> None:
    async with simulator(fault="500", fault_rate=0.5, seed=1) as p, client(p) as ai:
        outcomes = []
        for _ in range(30):
            try:
                await ai.chat.completions.create(model="m", messages=USER)
                outcomes.append(True)
            except openai.InternalServerError:
                outcomes.append(False)
        assert 3 < sum(outcomes) < 27
        assert (await stats(p))["faults"] == outcomes.count(False)


async def test_bad_requests(port: int) -> None:
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    async with aiohttp.ClientSession() as s:
        async with s.post(url, data=b"{not json", headers={"content-type": "application/json"}) as r:
            assert r.status == 400 and (await r.json())["error"]["type"] == "invalid_request_error"
        async with s.post(url, json={"model": "m"}) as r:
            assert r.status == 400 and (await r.json())["error"]["param"] == "messages"
    async with client(port) as ai:
        with pytest.raises(openai.BadRequestError):
            await ai.chat.completions.create(model="m", messages=USER, n=0)


async def test_api_key_required_when_configured() -> None:
    async with simulator(api_key="sk-sim") as p:
        async with client(p, api_key="wrong") as ai:
            with pytest.raises(openai.AuthenticationError) as info:
                await ai.chat.completions.create(model="m", messages=USER)
            assert info.value.code == "invalid_api_key"
            with pytest.raises(openai.AuthenticationError):
                await ai.models.list()
        async with client(p, api_key="sk-sim") as ai:
            assert (await ai.chat.completions.create(model="m", messages=USER)).choices
        async with aiohttp.ClientSession() as s:
            async with s.post(f"http://127.0.0.1:{p}/v1/chat/completions", json={"model": "m", "messages": USER}) as r:
                assert r.status == 401


# --------------------------------------------------------------------------- stats


async def test_stats_count_and_reset(ai: openai.AsyncOpenAI, port: int) -> None:
    empty = await stats(port)
    assert empty["requests"] == 0 and empty["last_request"] is None
    await ai.chat.completions.create(model="m", messages=USER)
    with pytest.raises(openai.InternalServerError):
        await ai.chat.completions.create(model="m", messages=say("[[fault:500]]"))
    await ai.models.list()
    s = await stats(port)
    assert s["requests"] == 3 and s["chat_requests"] == 2 and s["faults"] == 1
    assert s["last_request"]["messages"] == say("[[fault:500]]")
    assert s["last_headers"]["Authorization"] == "Bearer sk-test"
    async with aiohttp.ClientSession() as sess, sess.post(f"http://127.0.0.1:{port}/_sim/reset") as r:
        assert r.status == 200
    s = await stats(port)
    assert (s["requests"], s["chat_requests"], s["last_request"]) == (0, 0, None)


# --------------------------------------------------------------------------- timing


async def test_latency_and_pacing() -> None:
    cfg = SimulatorConfig(profile="local", latency_ms=80, ttft_ms=60, tokens_per_s=1000, reply_tokens=24)
    runner, p = await start_simulator(cfg)
    try:
        async with client(p) as ai:
            started = time.monotonic()
            res = await ai.chat.completions.create(model="m", messages=USER)
            tokens = res.usage.completion_tokens
            assert time.monotonic() - started >= 0.08 + tokens / 1000 - 0.005
            started = time.monotonic()
            stream = await ai.chat.completions.create(model="m", messages=USER, stream=True)
            arrivals = [time.monotonic() - started async for _ in stream]
            assert arrivals[0] >= 0.055
            assert arrivals[-1] - arrivals[0] >= tokens / 1000 * 0.8
    finally:
        await runner.cleanup()


# --------------------------------------------------------------------------- config & entry points


def test_invalid_config_rejected() -> None:
    with pytest.raises(ValueError):
        build_app(SimulatorConfig(profile="nope"))
    with pytest.raises(ValueError):
        build_app(SimulatorConfig(fault="explode"))
    with pytest.raises(ValueError):
        build_app(SimulatorConfig(fault_rate=2))


def test_python_m_entry_point_stops_on_sigterm() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tiergate.simulator", "--port", "0", "--fast", "--profile", "sovereign"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        match = re.search(r"profile=sovereign listening on http://127\.0\.0\.1:(\d+)/v1 \(SIMULATED upstream\)", line)
        assert match, line
        direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with direct.open(f"http://127.0.0.1:{match.group(1)}/v1/models", timeout=5) as r:
            assert json.load(r)["data"][0]["id"] == "llama-3.3-70b"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()  # type: ignore[union-attr]
        proc.stderr.close()  # type: ignore[union-attr]


# --------------------------------------------------------------------------- runtime controls


async def sim_config(port: int, body: Any = None) -> tuple[int, dict[str, Any]]:
    """POST (or GET, without a body) /_sim/config."""
    url = f"http://127.0.0.1:{port}/_sim/config"
    async with aiohttp.ClientSession() as s:
        if body is None:
            async with s.get(url) as r:
                return r.status, await r.json()
        async with s.post(url, json=body) as r:
            return r.status, await r.json()


async def test_config_changes_faults_of_the_running_instance(ai: openai.AsyncOpenAI, port: int) -> None:
    assert (await ai.chat.completions.create(model="m", messages=USER)).choices
    status, now = await sim_config(port, {"fault": "500"})
    assert status == 200 and now["fault"] == "500" and now["fault_rate"] == 1.0
    with pytest.raises(openai.InternalServerError):
        await ai.chat.completions.create(model="m", messages=USER)
    assert (await ai.models.list()).data  # the listing still answers unless fault_models
    await sim_config(port, {"fault_models": True})
    with pytest.raises(openai.InternalServerError):
        await ai.models.list()
    status, now = await sim_config(port, {"fault": None})
    assert status == 200 and now["fault"] is None and now["fault_models"] is True
    assert (await ai.chat.completions.create(model="m", messages=USER)).choices
    assert (await ai.models.list()).data
    assert (await sim_config(port))[1] == now  # GET reports the same settings


async def test_config_fault_rate_and_seed_are_reproducible(port: int) -> None:
    async with client(port) as ai:

        async def outcomes() -> list[bool]:
            out = []
            for _ in range(12):
                try:
                    await ai.chat.completions.create(model="m", messages=USER)
                    out.append(True)
                except openai.InternalServerError:
                    out.append(False)
            return out

        await sim_config(port, {"fault": "500", "fault_rate": 0.5, "seed": 7})
        first = await outcomes()
        await sim_config(port, {"seed": 7})
        assert await outcomes() == first
        assert 0 < first.count(False) < 12


async def test_config_changes_latency(ai: openai.AsyncOpenAI, port: int) -> None:
    await sim_config(port, {"latency_ms": 300})
    started = time.monotonic()
    await ai.chat.completions.create(model="m", messages=USER)
    assert time.monotonic() - started >= 0.29
    await sim_config(port, {"ttft_ms": 120})
    started = time.monotonic()
    stream = await ai.chat.completions.create(model="m", messages=USER, stream=True)
    arrivals = [time.monotonic() - started async for _ in stream]
    assert arrivals[0] >= 0.11
    status, now = await sim_config(port, {"latency_ms": 0, "ttft_ms": 0, "tokens_per_s": 0})
    assert status == 200 and (now["latency_ms"], now["ttft_ms"], now["tokens_per_s"]) == (0, 0, 0)
    started = time.monotonic()
    await ai.chat.completions.create(model="m", messages=USER)
    assert time.monotonic() - started < 0.2


@pytest.mark.parametrize(
    ("body", "word"),
    [
        ({"fault": "explode"}, "unknown fault"),
        ({"fault_rate": 2}, "fault_rate"),
        ({"fault_rate": "half"}, "fault_rate"),
        ({"latency_ms": -1}, "latency_ms"),
        ({"tokens_per_s": True}, "tokens_per_s"),
        ({"fault_models": "yes"}, "fault_models"),
        ({"seed": 1.5}, "seed"),
        ({"colour": "red"}, "colour"),
        ([1, 2], "JSON object"),
    ],
)
async def test_config_rejects_bad_settings_and_changes_nothing(port: int, body: Any, word: str) -> None:
    before = (await sim_config(port))[1]
    status, err = await sim_config(port, body)
    assert status == 400 and word in err["error"]["message"]
    assert (await sim_config(port))[1] == before


async def test_config_applies_to_other_wire_formats() -> None:
    runner, p = await start_simulator(SimulatorConfig.fast(format="anthropic"))
    try:
        status, now = await sim_config(p, {"fault": "500"})
        assert status == 200 and now["fault"] == "500"
        async with aiohttp.ClientSession() as s:
            body = {"model": "m", "max_tokens": 16, "messages": USER}
            async with s.post(f"http://127.0.0.1:{p}/v1/messages", json=body, headers={"x-api-key": "k", "anthropic-version": "2023-06-01"}) as r:
                assert r.status == 500
    finally:
        await runner.cleanup()


async def test_in_flight_counts_concurrent_chat_requests(port: int) -> None:
    await sim_config(port, {"latency_ms": 100})
    async with client(port) as ai:
        idle = await stats(port)
        assert (idle["in_flight"], idle["max_in_flight"]) == (0, 0)
        calls = [asyncio.create_task(ai.chat.completions.create(model="m", messages=USER)) for _ in range(5)]
        deadline = time.monotonic() + 2.0
        while (await stats(port))["in_flight"] < 5 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        busy = await stats(port)
        assert busy["in_flight"] == 5 and busy["max_in_flight"] == 5
        await asyncio.gather(*calls)
        await ai.models.list()  # not a chat request: not counted
        done = await stats(port)
        assert (done["in_flight"], done["max_in_flight"]) == (0, 5)
        await sim_config(port, {"fault": "500"})  # faulted answers leave the count too
        with pytest.raises(openai.InternalServerError):
            await ai.chat.completions.create(model="m", messages=USER)
        assert (await stats(port))["in_flight"] == 0
    async with aiohttp.ClientSession() as sess, sess.post(f"http://127.0.0.1:{port}/_sim/reset") as r:
        assert r.status == 200
    reset = await stats(port)
    assert (reset["in_flight"], reset["max_in_flight"]) == (0, 0)
