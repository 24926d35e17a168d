"""The native Amazon Bedrock adapter (Converse / ConverseStream / InvokeModel) against its
simulated upstream, over real sockets.

The simulator recomputes every request's SigV4 signature with botocore and checks each body
against botocore's service model, so a signing or field-name mistake of the adapter fails here.
Its answers are checked the other way round: parsed by a real botocore client. Credentials come
from environment variables; the instance-metadata lookup is disabled, so nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import openai
import pytest
from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from tests.support import MASTER_KEY, Sim, deployment, start_gateway, start_sim
from tiergate.config.errors import ConfigError
from tiergate.config.models import Deployment
from tiergate.errors import (
    InvalidRequestError,
    UpstreamConnectionError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamStatusError,
    UpstreamTimeoutError,
)
from tiergate.providers.bedrock import (
    BedrockProvider,
    ConverseStreamDecoder,
    aws_status_error,
    converse_request,
)
from tiergate.simulator.formats.bedrock import (
    encode_frame,
    event_frame,
    exception_frame,
    service_model_errors,
)

MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
ARN = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-haiku-20240307-v1:0"
TITAN = "amazon.titan-embed-text-v2:0"
COHERE = "cohere.embed-multilingual-v3"
ACCESS_KEY = "AKIASIMULATEDKEY0001"
SECRET = "sim+Secret/Key0123456789abcdefNEVERecho"
API_KEY = "ABSKsimulatedBedrockApiKey0123456789"
REGION = "eu-central-1"
PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
WEATHER: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city"],
        },
    },
}
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": ACCESS_KEY,
    "AWS_SECRET_ACCESS_KEY": SECRET,
    "AWS_REGION": REGION,
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": "/nonexistent/tiergate-test/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/tiergate-test/aws-credentials",
}


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module", autouse=True)
def aws_env() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION",
                     "AWS_BEARER_TOKEN_BEDROCK", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                     "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN"):
            mp.delenv(name, raising=False)
        for name, value in AWS_ENV.items():
            mp.setenv(name, value)
        yield


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory, aws_env: None) -> Iterator[Sim]:
    tmp = tmp_path_factory.mktemp("bedrock")
    s = start_sim(
        tmp, "cloud", "--api-key", f"{ACCESS_KEY}:{SECRET}", "--model", MODEL, "--model", TITAN,
        "--model", COHERE, "--hang-s", "5", fmt="bedrock",
    )
    yield s
    s.stop()


@asynccontextmanager
async def adapter(sim: Sim, model: str = MODEL, **extra: Any) -> AsyncIterator[BedrockProvider]:
    fields: dict[str, Any] = {"region": REGION, "timeout_s": 10.0, **extra}
    d = Deployment(name="bedrock-test", provider="bedrock", base_url=sim.base, model=model, location="cloud", **fields)
    p = BedrockProvider(d, api_key=fields.get("api_key"))
    await p.start()
    try:
        yield p
    finally:
        await p.close()


@pytest.fixture
async def bp(sim: Sim) -> AsyncIterator[BedrockProvider]:
    async with adapter(sim) as p:
        yield p


def body(messages: list[dict[str, Any]] | str, **extra: Any) -> dict[str, Any]:
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    return {"model": extra.pop("model", MODEL), "messages": messages, **extra}


def stream_body(messages: list[dict[str, Any]] | str, **extra: Any) -> dict[str, Any]:
    return body(messages, stream=True, stream_options={"include_usage": True}, **extra)


async def chat(p: BedrockProvider, messages: list[dict[str, Any]] | str, **extra: Any) -> dict[str, Any]:
    data = (await p.chat(body(messages, **extra))).json()
    ChatCompletion.model_validate(data)
    return data


async def stream(p: BedrockProvider, messages: list[dict[str, Any]] | str, **extra: Any) -> list[dict[str, Any]]:
    s = await p.open_stream(stream_body(messages, **extra))
    chunks: list[dict[str, Any]] = []
    try:
        async for batch in s:
            assert batch
            for ev in batch:
                ChatCompletionChunk.model_validate(ev.data)
                chunks.append(ev.data)
    finally:
        await s.aclose()
    return chunks


def text_of(chunks: list[dict[str, Any]]) -> str:
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


def finish_of(chunks: list[dict[str, Any]]) -> list[str]:
    return [c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]


def sent(sim: Sim, operation: str = "Converse", model: str = MODEL) -> dict[str, Any]:
    """What the upstream received, checked against botocore's service model."""
    last: dict[str, Any] = sim.stats()["last_request"]
    assert service_model_errors(operation, {**last, "modelId": model}) is None
    return last


# --------------------------------------------------------------------------- event-stream frames


def test_simulator_frames_round_trip_through_botocore_decoder() -> None:
    from botocore.eventstream import EventStreamBuffer

    frames = [
        event_frame("messageStart", {"role": "assistant"}),
        event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Salam, dünya ə"}}),
        exception_frame("throttlingException", "slow down"),
    ]
    data = b"".join(frames)
    buf = EventStreamBuffer()
    decoded = []
    for i in range(len(data)):  # split at every byte
        buf.add_data(data[i : i + 1])
        decoded += list(buf)
    assert [m.headers for m in decoded] == [
        {":event-type": "messageStart", ":content-type": "application/json", ":message-type": "event"},
        {":event-type": "contentBlockDelta", ":content-type": "application/json", ":message-type": "event"},
        {":exception-type": "throttlingException", ":content-type": "application/json", ":message-type": "exception"},
    ]
    assert json.loads(decoded[1].payload)["delta"] == {"text": "Salam, dünya ə"}
    assert json.loads(decoded[2].payload) == {"message": "slow down"}


def _answer_frames(text_pieces: list[str]) -> bytes:
    frames = [event_frame("messageStart", {"role": "assistant"})]
    frames += [event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": t}}) for t in text_pieces]
    frames += [
        event_frame("contentBlockStop", {"contentBlockIndex": 0}),
        event_frame("messageStop", {"stopReason": "max_tokens"}),
        event_frame("metadata", {"usage": {"inputTokens": 3, "outputTokens": 5, "totalTokens": 8}, "metrics": {"latencyMs": 1}}),
    ]
    return b"".join(frames)


def test_decoder_handles_frames_split_at_every_byte() -> None:
    data = _answer_frames(["Hel", "lo ", "wörld"])
    whole = ConverseStreamDecoder(MODEL, "d")
    events, error = whole.feed(data)
    assert error is None and whole.done
    split = ConverseStreamDecoder(MODEL, "d")
    pieces = []
    for i in range(len(data)):
        got, error = split.feed(data[i : i + 1])
        assert error is None
        pieces += got
    assert [e.data["choices"] for e in pieces] == [e.data["choices"] for e in events]
    assert text_of([e.data for e in pieces]) == "Hello wörld"
    assert finish_of([e.data for e in pieces]) == ["length"]
    assert pieces[-1].data["usage"] == {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}


@pytest.mark.parametrize(
    ("kind", "status"),
    [("throttlingException", 429), ("serviceUnavailableException", 503), ("modelStreamErrorException", 502),
     ("internalServerException", 502), ("validationException", 400)],
)
def test_decoder_exception_frames_map_to_statuses(kind: str, status: int) -> None:
    data = event_frame("messageStart", {"role": "assistant"}) + event_frame(
        "contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "partial"}}
    ) + exception_frame(kind, "went wrong")
    events, error = ConverseStreamDecoder(MODEL, "d").feed(data)
    assert text_of([e.data for e in events]) == "partial"  # what came before the error still counts
    assert isinstance(error, UpstreamStatusError) and error.status == status and kind in error.message


def test_decoder_refuses_corrupt_and_cut_frames() -> None:
    data = bytearray(_answer_frames(["abc"]))
    data[20] ^= 0xFF  # inside the first frame: its CRC no longer matches
    _, error = ConverseStreamDecoder(MODEL, "d").feed(bytes(data))
    assert isinstance(error, UpstreamProtocolError)
    cut = ConverseStreamDecoder(MODEL, "d")
    frame = encode_frame({":event-type": "messageStart", ":message-type": "event"}, b'{"role":"assistant"}')
    assert cut.feed(frame + frame[:7])[1] is None
    assert isinstance(cut.end_error(), UpstreamProtocolError)  # half a frame at end of body
    no_stop = ConverseStreamDecoder(MODEL, "d")
    no_stop.feed(frame)
    assert "messageStop" in str(no_stop.end_error())


# --------------------------------------------------------------------------- request translation


def test_tool_choice_and_inference_mapping() -> None:
    base = body("hi", tools=[WEATHER], max_tokens=7, temperature=0.3, top_p=0.8, stop="END")
    req, json_mode = converse_request(base, "d")
    assert not json_mode
    assert req["inferenceConfig"] == {"maxTokens": 7, "temperature": 0.3, "topP": 0.8, "stopSequences": ["END"]}
    assert req["toolConfig"]["tools"] == [{"toolSpec": {
        "name": "get_weather", "description": "Weather for a city",
        "inputSchema": {"json": WEATHER["function"]["parameters"]}}}]
    assert "toolChoice" not in req["toolConfig"]
    choices = {"auto": {"auto": {}}, "required": {"any": {}},
               json.dumps({"type": "function", "function": {"name": "get_weather"}}): {"tool": {"name": "get_weather"}}}
    for choice, expected in choices.items():
        value = json.loads(choice) if choice.startswith("{") else choice
        assert converse_request({**base, "tool_choice": value}, "d")[0]["toolConfig"]["toolChoice"] == expected
    assert "toolConfig" not in converse_request({**base, "tool_choice": "none"}, "d")[0]
    assert service_model_errors("Converse", {**req, "modelId": MODEL}) is None


def test_requests_bedrock_cannot_express_are_refused() -> None:
    with pytest.raises(InvalidRequestError) as n:
        converse_request(body("hi", n=2), "d")
    assert n.value.param == "n"
    remote = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}]
    with pytest.raises(InvalidRequestError) as image:
        converse_request(body(remote), "d")
    assert image.value.param == "messages" and "data: URL" in image.value.message
    with pytest.raises(InvalidRequestError) as mixed:
        converse_request(body("hi", tools=[WEATHER], response_format={"type": "json_object"}), "d")
    assert mixed.value.param == "response_format"


# --------------------------------------------------------------------------- chat


async def test_plain_chat_is_signed_and_well_formed(bp: BedrockProvider, sim: Sim) -> None:
    data = await chat(bp, "Tell me about privacy tiers.")
    choice = data["choices"][0]
    assert choice["finish_reason"] == "stop" and choice["message"]["content"]
    assert data["model"] == MODEL and data["usage"]["total_tokens"] > 0
    assert sent(sim) == {"messages": [{"role": "user", "content": [{"text": "Tell me about privacy tiers."}]}]}
    headers = {k.lower(): v for k, v in sim.stats()["last_headers"].items()}
    assert headers["authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/")
    assert f"/{REGION}/bedrock/aws4_request" in headers["authorization"]
    assert SECRET not in json.dumps(headers)


async def test_multi_turn_with_system_prompt(bp: BedrockProvider, sim: Sim) -> None:
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "developer", "content": "Answer in English."},
        {"role": "user", "content": "First question"},
        {"role": "assistant", "content": "First answer"},
        {"role": "user", "content": "Second"},
        {"role": "user", "content": [{"type": "text", "text": "question"}]},
    ]
    data = await chat(bp, messages, max_completion_tokens=200, temperature=0.2)
    assert data["choices"][0]["message"]["content"]
    last = sent(sim)
    assert last["system"] == [{"text": "You are terse."}, {"text": "Answer in English."}]
    assert last["messages"] == [
        {"role": "user", "content": [{"text": "First question"}]},
        {"role": "assistant", "content": [{"text": "First answer"}]},
        {"role": "user", "content": [{"text": "Second"}, {"text": "question"}]},  # merged: roles alternate
    ]
    assert last["inferenceConfig"] == {"maxTokens": 200, "temperature": 0.2}


async def test_stream_reassembles_to_the_plain_answer(bp: BedrockProvider, sim: Sim) -> None:
    plain = await chat(bp, "Stream this please")
    chunks = await stream(bp, "Stream this please")
    assert text_of(chunks) == plain["choices"][0]["message"]["content"]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert finish_of(chunks) == ["stop"]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"  # finish before the usage chunk
    sent(sim, "ConverseStream")


async def test_model_id_with_colon_and_slash_is_signed_as_sent(sim: Sim) -> None:
    async with adapter(sim, ARN) as p:
        data = await chat(p, "via an inference profile", model=ARN)
        chunks = await stream(p, "via an inference profile", model=ARN)
    assert data["model"] == ARN and text_of(chunks) == data["choices"][0]["message"]["content"]
    sent(sim, "ConverseStream", ARN)


async def test_tool_call_round_trip(bp: BedrockProvider, sim: Sim) -> None:
    question = [{"role": "user", "content": "Weather in Baku?"}]
    first = await chat(bp, question, tools=[WEATHER], tool_choice="auto")
    choice = first["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    call = choice["message"]["tool_calls"][0]
    assert call["type"] == "function" and call["function"]["name"] == "get_weather"
    args = json.loads(call["function"]["arguments"])
    assert isinstance(args, dict) and "city" in args
    assert sent(sim)["toolConfig"]["toolChoice"] == {"auto": {}}

    follow = question + [choice["message"], {"role": "tool", "tool_call_id": call["id"], "content": "Sunny, 24C"}]
    second = await chat(bp, follow, tools=[WEATHER])
    assert second["choices"][0]["message"]["content"] == "Tool result: Sunny, 24C"
    assert second["choices"][0]["finish_reason"] == "stop"
    turns = sent(sim)["messages"]
    assert turns[1] == {"role": "assistant", "content": [
        {"toolUse": {"toolUseId": call["id"], "name": "get_weather", "input": args}}]}
    assert turns[2] == {"role": "user", "content": [
        {"toolResult": {"toolUseId": call["id"], "content": [{"text": "Sunny, 24C"}]}}]}


async def test_parallel_tool_results_share_one_user_turn(bp: BedrockProvider, sim: Sim) -> None:
    calls = [{"id": f"call_{i}", "type": "function", "function": {"name": "get_weather", "arguments": json.dumps({"city": c})}}
             for i, c in enumerate(("Baku", "Ganja"))]
    messages = [
        {"role": "user", "content": "Weather in Baku and Ganja?"},
        {"role": "assistant", "content": None, "tool_calls": calls},
        {"role": "tool", "tool_call_id": "call_0", "content": "Sunny"},
        {"role": "tool", "tool_call_id": "call_1", "content": "Rainy"},
        {"role": "user", "content": "Summarise."},
    ]
    data = await chat(bp, messages, tools=[WEATHER])
    assert data["choices"][0]["finish_reason"] == "tool_calls"
    turns = sent(sim)["messages"]
    assert [t["role"] for t in turns] == ["user", "assistant", "user"]
    assert turns[2]["content"] == [
        {"toolResult": {"toolUseId": "call_0", "content": [{"text": "Sunny"}]}},
        {"toolResult": {"toolUseId": "call_1", "content": [{"text": "Rainy"}]}},
        {"text": "Summarise."},
    ]


async def test_streamed_tool_call(bp: BedrockProvider) -> None:
    plain = await chat(bp, "Weather?", tools=[WEATHER], tool_choice="required")
    chunks = await stream(bp, "Weather?", tools=[WEATHER], tool_choice="required")
    calls = [tc for c in chunks if c["choices"] for tc in c["choices"][0]["delta"].get("tool_calls") or []]
    assert calls[0]["id"].startswith("tooluse_") and calls[0]["function"]["name"] == "get_weather"
    arguments = "".join(tc["function"]["arguments"] for tc in calls)
    assert arguments == plain["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
    assert {tc["index"] for tc in calls} == {0}
    assert finish_of(chunks) == ["tool_calls"]


async def test_image_data_url_reaches_upstream_as_bytes(bp: BedrockProvider, sim: Sim) -> None:
    parts = [{"type": "text", "text": "What is this?"},
             {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]
    data = await chat(bp, [{"role": "user", "content": parts}])
    assert data["choices"][0]["message"]["content"].startswith("[1 image received]")
    assert sent(sim)["messages"][0]["content"] == [
        {"text": "What is this?"}, {"image": {"format": "png", "source": {"bytes": PNG}}}]


async def test_json_mode_through_a_forced_tool(bp: BedrockProvider, sim: Sim) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}, "temp": {"type": "number"}},
              "required": ["city", "temp"]}
    fmt = {"type": "json_schema", "json_schema": {"name": "weather", "schema": schema, "strict": True}}
    data = await chat(bp, "Weather as JSON", response_format=fmt)
    choice = data["choices"][0]
    assert choice["finish_reason"] == "stop" and "tool_calls" not in choice["message"]
    assert set(json.loads(choice["message"]["content"])) == {"city", "temp"}
    tool_config = sent(sim)["toolConfig"]
    assert tool_config["toolChoice"] == {"tool": {"name": "json_response"}}
    assert tool_config["tools"][0]["toolSpec"]["inputSchema"] == {"json": schema}
    chunks = await stream(bp, "Weather as JSON", response_format=fmt)
    assert text_of(chunks) == choice["message"]["content"] and finish_of(chunks) == ["stop"]
    obj = await chat(bp, "Any object", response_format={"type": "json_object"})
    assert isinstance(json.loads(obj["choices"][0]["message"]["content"]), dict)


async def test_guardrail_block_is_content_filter(bp: BedrockProvider) -> None:
    data = await chat(bp, "[[fault:blocked]] forbidden")
    assert data["choices"][0]["finish_reason"] == "content_filter"
    assert finish_of(await stream(bp, "[[fault:blocked]] forbidden")) == ["content_filter"]


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("streamed", [False, True])
@pytest.mark.parametrize(
    ("kind", "status", "code", "retryable"),
    [("429", 429, "upstream_rate_limited", True), ("503", 503, "upstream_overloaded", True),
     ("500", 502, "upstream_error", True), ("401", 401, "upstream_auth_error", True),
     ("400", 400, "upstream_rejected", False)],
)
async def test_http_errors_map_to_gateway_statuses(
    bp: BedrockProvider, kind: str, status: int, code: str, retryable: bool, streamed: bool
) -> None:
    with pytest.raises(UpstreamStatusError) as exc:
        if streamed:
            await bp.open_stream(stream_body(f"[[fault:{kind}]] hi"))
        else:
            await bp.chat(body(f"[[fault:{kind}]] hi"))
    err = exc.value
    assert (err.status, err.code, err.retryable) == (status, code, retryable)
    assert SECRET not in err.message and ACCESS_KEY not in err.message
    if kind == "429":
        assert "ThrottlingException" in err.message  # Bedrock sends no retry hint; none is invented


@pytest.mark.parametrize(
    ("status", "error_type", "payload", "cls", "gateway_status", "retryable"),
    [(408, "ModelTimeoutException", {"message": "model took too long"}, UpstreamTimeoutError, 504, True),
     (424, "ModelErrorException", {"message": "model failed"}, UpstreamStatusError, 502, True),
     (403, "AccessDeniedException", {"Message": f"no access for {ACCESS_KEY}"}, UpstreamStatusError, 401, True),
     (429, "ModelNotReadyException", {"message": "warming up"}, UpstreamStatusError, 429, True),
     (404, "ResourceNotFoundException", {"message": "no such model"}, UpstreamStatusError, 404, False)],
)
def test_aws_error_types_map_to_gateway_errors(
    status: int, error_type: str, payload: dict[str, str], cls: type, gateway_status: int, retryable: bool
) -> None:
    headers = {"x-amzn-ErrorType": f"{error_type}:http://internal.amazon.com/coral/com.amazon.bedrock/"}
    err = aws_status_error("d", status, json.dumps(payload).encode(), headers)
    assert type(err) is cls and (err.status, err.retryable) == (gateway_status, retryable)
    assert error_type in err.message
    if status == 403:
        assert ACCESS_KEY not in err.message  # never the upstream's words for auth errors
    else:
        assert next(iter(payload.values())) in err.message


@pytest.mark.parametrize(
    ("env", "upstream_kind"),
    [({"AWS_SECRET_ACCESS_KEY": "wrong+Secret/123"}, "InvalidSignatureException"),
     ({"AWS_ACCESS_KEY_ID": "AKIAUNKNOWNKEY999"}, "UnrecognizedClientException")],
)
async def test_refused_credentials_are_upstream_auth_errors(
    sim: Sim, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], upstream_kind: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    async with adapter(sim) as p:
        with pytest.raises(UpstreamStatusError) as exc:
            await p.chat(body("hi"))
        health = await p.health()
    assert exc.value.status == 401 and exc.value.code == "upstream_auth_error"
    assert upstream_kind in exc.value.message and "wrong+Secret" not in exc.value.message
    assert not health.ok


@pytest.mark.parametrize("streamed", [False, True])
async def test_timeout_reset_and_malformed(sim: Sim, streamed: bool) -> None:
    async def run(p: BedrockProvider, text: str) -> None:
        if streamed:
            await stream(p, text)
        else:
            await p.chat(body(text))

    async with adapter(sim, timeout_s=0.5) as p:
        with pytest.raises(UpstreamTimeoutError):
            await run(p, "[[fault:timeout]]")
        with pytest.raises(UpstreamConnectionError):
            await run(p, "[[fault:reset]]")
        with pytest.raises(UpstreamProtocolError):
            await run(p, "[[fault:malformed]]")
        with pytest.raises(UpstreamProtocolError):
            await run(p, "[[fault:truncate]]")


async def test_midstream_error_raises_after_first_content(bp: BedrockProvider) -> None:
    s = await bp.open_stream(stream_body("[[fault:midstream_error]] tell me"))
    seen = ""
    with pytest.raises(UpstreamError) as exc:
        async for batch in s:
            seen += text_of([e.data for e in batch])
    await s.aclose()
    assert seen  # content arrived before the exception frame
    assert exc.value.status == 502 and "modelStreamErrorException" in exc.value.message


async def test_trickled_stream_reassembles(bp: BedrockProvider) -> None:
    prompt = "[[fault:trickle]] one byte at a time"
    chunks = await stream(bp, prompt)
    assert text_of(chunks) == (await chat(bp, prompt))["choices"][0]["message"]["content"]
    assert finish_of(chunks) == ["stop"] and chunks[-1]["usage"]["total_tokens"] > 0


# --------------------------------------------------------------------------- models, embeddings


async def test_list_models_and_health(bp: BedrockProvider, sim: Sim) -> None:
    assert await bp.list_models() == [MODEL, TITAN, COHERE]
    health = await bp.health()
    assert health.ok and MODEL in health.models
    assert sim.stats()["last_headers"]["Authorization"].startswith("AWS4-HMAC-SHA256 ")


async def test_titan_and_cohere_embeddings(sim: Sim) -> None:
    async with adapter(sim, TITAN) as p:
        out = await p.embed({"model": TITAN, "input": ["one", "two", "six"], "dimensions": 256})
        assert sim.stats()["last_request"]["normalize"] is True
        single = await p.embed({"model": TITAN, "input": "one"})
    CreateEmbeddingResponse.model_validate(out)
    vectors = [d["embedding"] for d in out["data"]]
    assert [len(v) for v in vectors] == [256] * 3 and len({tuple(v) for v in vectors}) == 3
    assert out["usage"]["prompt_tokens"] == 3 and len(single["data"][0]["embedding"]) == 1024
    async with adapter(sim, COHERE) as p:
        cohere = await p.embed({"model": COHERE, "input": ["alpha", "beta"]})
        assert sim.stats()["last_request"] == {"texts": ["alpha", "beta"], "input_type": "search_document"}
        with pytest.raises(InvalidRequestError) as exc:
            await p.embed({"model": "meta.llama3-8b-instruct-v1:0", "input": "x"})
    CreateEmbeddingResponse.model_validate(cohere)
    assert len(cohere["data"]) == 2 and cohere["usage"]["prompt_tokens"] > 0
    assert exc.value.param == "model"


# --------------------------------------------------------------------------- configuration


async def test_region_and_credentials_come_from_the_chain(sim: Sim, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "ap-south-1")
    d = Deployment(name="no-region-set", provider="bedrock", model=MODEL, location="cloud")
    p = BedrockProvider(d)
    await p.start()
    assert p.region == "ap-south-1" and p.endpoint == "https://bedrock-runtime.ap-south-1.amazonaws.com"
    await p.close()
    monkeypatch.delenv("AWS_REGION")
    with pytest.raises(ConfigError, match="no AWS region"):
        await BedrockProvider(d).start()


async def test_missing_credentials_name_the_chain(sim: Sim, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    async with adapter(sim) as p:
        with pytest.raises(UpstreamStatusError) as exc:
            await p.chat(body("hi"))
        health = await p.health()
    assert exc.value.code == "upstream_auth_error"
    assert "credential chain" in exc.value.message and "AWS_ACCESS_KEY_ID" in exc.value.message
    assert not health.ok and "credential chain" in (health.error or "")


async def test_bedrock_api_key_is_a_bearer_token(tmp_path: Any) -> None:
    keyed = start_sim(tmp_path, "cloud", "--api-key", API_KEY, "--model", MODEL, fmt="bedrock")
    try:
        async with adapter(keyed, api_key=API_KEY) as p:
            assert (await chat(p, "hello"))["choices"][0]["message"]["content"]
            assert keyed.stats()["last_headers"]["Authorization"] == f"Bearer {API_KEY}"
        async with adapter(keyed, api_key="ABSKwrongKey") as p:
            with pytest.raises(UpstreamStatusError) as exc:
                await p.chat(body("hello"))
        assert exc.value.code == "upstream_auth_error" and "ABSKwrongKey" not in exc.value.message
    finally:
        keyed.stop()


# --------------------------------------------------------------------------- simulator fidelity (botocore)


def _signed(sim: Sim, sign_path: str, send_path: str, signed_body: bytes, sent_body: bytes) -> tuple[int, dict[str, str], bytes]:
    """A request signed by botocore itself for (sign_path, signed_body), sent as (send_path, sent_body)."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    req = AWSRequest(method="POST", url=f"{sim.base}{sign_path}", data=signed_body, headers={"Content-Type": "application/json"})
    SigV4Auth(Credentials(ACCESS_KEY, SECRET), "bedrock", REGION).add_auth(req)
    http = urllib.request.Request(f"{sim.base}{send_path}", data=sent_body, method="POST", headers=dict(req.headers.items()))
    try:
        with urllib.request.urlopen(http, timeout=10) as r:  # noqa: S310 - loopback
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def test_simulator_verifies_signature_over_exact_bytes_and_path(sim: Sim) -> None:
    from botocore.parsers import create_parser

    from tiergate.simulator.formats.bedrock import _operation

    shape = _operation("bedrock-runtime", "Converse").output_shape

    def parse(status: int, headers: dict[str, str], raw: bytes) -> dict[str, Any]:
        return create_parser("rest-json").parse({"status_code": status, "headers": headers, "body": raw}, shape)

    path = "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"
    good = json.dumps({"messages": [{"role": "user", "content": [{"text": "hi"}]}]}).encode()
    status, headers, raw = _signed(sim, path, path, good, good)
    parsed = parse(status, headers, raw)
    assert status == 200 and parsed["output"]["message"]["content"][0]["text"]
    assert parsed["usage"]["totalTokens"] > 0 and parsed["stopReason"] == "end_turn"
    status, headers, raw = _signed(sim, path, path, good, good.replace(b"hi", b"ho"))
    assert status == 403 and parse(status, headers, raw)["Error"]["Code"] == "InvalidSignatureException"
    # The classic bug: signing the decoded model id while sending it encoded.
    status, headers, raw = _signed(sim, "/model/anthropic.claude-3-haiku-20240307-v1:0/converse", path, good, good)
    assert status == 403 and parse(status, headers, raw)["Error"]["Code"] == "InvalidSignatureException"


def test_real_botocore_client_against_simulator(sim: Sim) -> None:
    import botocore.session
    from botocore.config import Config
    from botocore.exceptions import EventStreamError

    session = botocore.session.get_session()
    kwargs: dict[str, Any] = {
        "endpoint_url": sim.base, "region_name": REGION, "aws_access_key_id": ACCESS_KEY,
        "aws_secret_access_key": SECRET, "config": Config(retries={"total_max_attempts": 1}),
    }
    runtime = session.create_client("bedrock-runtime", **kwargs)
    messages = [{"role": "user", "content": [{"text": "Hello from botocore"}]}]
    out = runtime.converse(modelId=MODEL, messages=messages, system=[{"text": "be kind"}])
    text = out["output"]["message"]["content"][0]["text"]
    assert out["stopReason"] == "end_turn" and out["usage"]["totalTokens"] > 0
    events = list(runtime.converse_stream(modelId=MODEL, messages=messages, system=[{"text": "be kind"}])["stream"])
    assert list(events[0]) == ["messageStart"] and "messageStop" in events[-2] and "metadata" in events[-1]
    assert "".join(e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e) == text
    tool = {"toolSpec": {"name": "get_weather", "inputSchema": {"json": WEATHER["function"]["parameters"]}}}
    used = runtime.converse(modelId=MODEL, messages=messages, toolConfig={"tools": [tool]})
    assert used["stopReason"] == "tool_use" and used["output"]["message"]["content"][0]["toolUse"]["input"]["city"]
    with pytest.raises(runtime.exceptions.ThrottlingException):
        runtime.converse(modelId=MODEL, messages=[{"role": "user", "content": [{"text": "[[fault:429]]"}]}])
    broken = runtime.converse_stream(modelId=MODEL, messages=[{"role": "user", "content": [{"text": "[[fault:midstream_error]]"}]}])
    with pytest.raises(EventStreamError) as exc:
        list(broken["stream"])
    assert exc.value.response["Error"]["Code"] == "modelStreamErrorException"
    control = session.create_client("bedrock", **kwargs)
    assert [m["modelId"] for m in control.list_foundation_models()["modelSummaries"]] == [MODEL, TITAN, COHERE]


# --------------------------------------------------------------------------- through the gateway


@pytest.fixture(scope="module")
def gateway(sim: Sim, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    tmp = tmp_path_factory.mktemp("bedrock-gw")
    dep = deployment("bedrock-cloud", sim.base, "cloud", provider="bedrock", base_url=sim.base, model=MODEL, region=REGION)
    gw = start_gateway(tmp, {"deployments": [dep], "model_groups": {"claude": ["bedrock-cloud"]}}, env=AWS_ENV)
    yield gw
    gw.stop()


def test_openai_sdk_through_gateway(gateway: Any, sim: Sim) -> None:
    client = openai.OpenAI(base_url=gateway.url, api_key=MASTER_KEY, max_retries=0)
    messages: list[Any] = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello gateway"}]
    r = client.chat.completions.create(model="claude", messages=messages)
    text = r.choices[0].message.content
    assert text and r.choices[0].finish_reason == "stop" and r.usage and r.usage.total_tokens > 0
    assert sent(sim)["system"] == [{"text": "Be brief."}]
    chunks = list(client.chat.completions.create(model="claude", messages=messages, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text
    client.close()
