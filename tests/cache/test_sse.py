"""Cached answers streamed as OpenAI SSE (checked with the openai SDK's own types and stream
reassembly, over HTTP), and streamed answers assembled for storing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiohttp import web
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from tiergate.cache.sse import DONE, StreamAssembler, sse_body, sse_events

TEXT = "The capital of France is Paris. " * 20 + "Ünïcödé ✓ and \"quotes\"\nnew line."


def completion(**message: Any) -> dict[str, Any]:
    msg = {"role": "assistant", "content": TEXT, **message}
    return {
        "id": "chatcmpl-123", "object": "chat.completion", "created": 1_800_000_000, "model": "gpt-x",
        "system_fingerprint": "fp_1",
        "choices": [{"index": 0, "message": msg, "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 50, "total_tokens": 60},
    }


TOOLS = completion(
    content=None,
    tool_calls=[
        {"id": "call_a", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Paris"}'}},
        {"id": "call_b", "type": "function", "function": {"name": "time", "arguments": '{"tz": "Europe/Paris"}'}},
    ],
)
TOOLS["choices"][0]["finish_reason"] = "tool_calls"


def events(body: bytes) -> list[bytes]:
    out = [e for e in body.split(b"\n\n") if e]
    assert all(e.startswith(b"data: ") for e in out)
    return [e[6:] for e in out]


def sdk_reassemble(body: bytes) -> ChatCompletion:
    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState()
    datas = events(body)
    assert datas[-1] == b"[DONE]"
    for data in datas[:-1]:
        state.handle_chunk(ChatCompletionChunk.model_validate_json(data))
    return state.get_final_completion()


@pytest.mark.parametrize("chunk_chars", [0, 1, 7, 100])
def test_content_stream_reassembles_exactly(chunk_chars: int) -> None:
    body = sse_body(orjson.dumps(completion()), chunk_chars=chunk_chars)
    assert body.endswith(DONE)
    final = sdk_reassemble(body)
    assert final.id == "chatcmpl-123" and final.model == "gpt-x" and final.system_fingerprint == "fp_1"
    assert final.choices[0].message.content == TEXT
    assert final.choices[0].message.role == "assistant"
    assert final.choices[0].finish_reason == "stop"
    assert final.usage is None  # no include_usage: no usage chunk
    chunks = [ChatCompletionChunk.model_validate_json(d) for d in events(body)[:-1]]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    if chunk_chars == 7:
        assert len(chunks) == 2 + -(-len(TEXT) // 7)


def test_tool_calls_reassemble_exactly() -> None:
    final = sdk_reassemble(sse_body(TOOLS))
    calls = final.choices[0].message.tool_calls
    assert calls is not None and [(c.id, c.function.name, c.function.arguments) for c in calls] == [
        ("call_a", "weather", '{"city": "Paris"}'),
        ("call_b", "time", '{"tz": "Europe/Paris"}'),
    ]
    assert final.choices[0].finish_reason == "tool_calls"
    assert not final.choices[0].message.content


def test_usage_chunk_when_asked() -> None:
    body = sse_body(completion(), include_usage=True)
    datas = events(body)
    chunks = [orjson.loads(d) for d in datas[:-1]]
    assert all("usage" in c for c in chunks)
    assert all(c["usage"] is None for c in chunks[:-1])
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == 60
    final = sdk_reassemble(body)
    assert final.usage is not None and final.usage.total_tokens == 60


def test_several_choices_refusal_and_logprobs() -> None:
    c = completion()
    lp = {"content": [{"token": "The", "logprob": -0.1, "bytes": [84, 104, 101], "top_logprobs": []}], "refusal": None}
    c["choices"][0]["logprobs"] = lp
    c["choices"].append({"index": 1, "message": {"role": "assistant", "content": None, "refusal": "I can't."},
                         "logprobs": None, "finish_reason": "stop"})
    final = sdk_reassemble(sse_body(c, chunk_chars=50))
    assert final.choices[0].message.content == TEXT
    assert final.choices[0].logprobs is not None and final.choices[0].logprobs.content is not None
    assert final.choices[0].logprobs.content[0].token == "The"
    assert final.choices[1].message.refusal == "I can't."


def test_new_id_and_created_for_the_replay() -> None:
    datas = events(sse_body(completion(), id="chatcmpl-new", created=42))
    first = orjson.loads(datas[0])
    assert first["id"] == "chatcmpl-new" and first["created"] == 42


@pytest.mark.parametrize("source", [completion(), TOOLS], ids=["content", "tools"])
def test_assembler_round_trip(source: dict[str, Any]) -> None:
    a = StreamAssembler()
    for data in events(sse_body(source, include_usage=True, chunk_chars=13)):
        a.feed_data(data)
    assert a.done and a.complete
    result = a.result()
    assert result is not None
    assert result == source
    ChatCompletion.model_validate(result)


def test_assembler_from_raw_bytes_split_anywhere() -> None:
    body = sse_body(completion(), chunk_chars=5)
    a = StreamAssembler()
    for i in range(0, len(body), 3):
        a.feed_bytes(body[i : i + 3])
    a.finish_bytes()
    expected = completion()
    del expected["usage"]  # not streamed without include_usage
    assert a.result() == expected
    assert orjson.loads(a.result_bytes() or b"") == expected


def test_assembler_refuses_incomplete_streams() -> None:
    datas = events(sse_body(completion(), chunk_chars=10))
    a = StreamAssembler()
    for data in datas[:-3]:  # broke off before the finish chunk
        a.feed_data(data)
    assert a.result() is None and a.result_bytes() is None
    b = StreamAssembler()
    b.feed_data(b"not json")
    assert b.failed and b.result() is None
    c = StreamAssembler()
    c.feed({"error": {"message": "upstream failed"}})
    assert c.result() is None


@pytest.fixture
async def sse_server() -> AsyncIterator[str]:
    """A loopback HTTP server answering every chat request with the cached answer as SSE."""

    async def handler(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "x-tiergate-cache": "hit"})
        await resp.prepare(request)
        for event in sse_events(TOOLS if body.get("tools") else completion(), include_usage=include_usage, chunk_chars=16):
            await resp.write(event)
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_post("/v1/chat/completions", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}/v1"
    await runner.cleanup()


async def test_openai_sdk_streams_a_cached_answer(sse_server: str) -> None:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=sse_server, api_key="test", max_retries=0)
    try:
        stream = await client.chat.completions.create(
            model="faq", messages=[{"role": "user", "content": "capital?"}], stream=True,
            stream_options={"include_usage": True},
        )
        state: ChatCompletionStreamState[Any] = ChatCompletionStreamState()
        pieces = []
        async for chunk in stream:
            state.handle_chunk(chunk)
            for ch in chunk.choices:
                if ch.delta.content:
                    pieces.append(ch.delta.content)
        final = state.get_final_completion()
        assert "".join(pieces) == TEXT == final.choices[0].message.content
        assert final.usage is not None and final.usage.total_tokens == 60

        tools = [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]
        async with client.chat.completions.stream(
            model="faq", messages=[{"role": "user", "content": "weather?"}], tools=tools,  # type: ignore[arg-type]
        ) as s:
            async for _ in s:
                pass
            done = await s.get_final_completion()
        calls = done.choices[0].message.tool_calls or []
        assert [(c.function.name, c.function.arguments) for c in calls] == [
            ("weather", '{"city": "Paris"}'), ("time", '{"tz": "Europe/Paris"}')]
    finally:
        await client.close()
