"""The official `anthropic` SDK against a running gateway (real process, real sockets) routed to
simulated OpenAI-format upstreams: `/v1/messages` reaches the same pipeline (privacy, routing,
receipts) as the OpenAI route, and answers in Anthropic's wire format."""

from __future__ import annotations

import base64
import json
import urllib.request
from typing import Any, Iterator

import anthropic
import pytest
from anthropic import Anthropic, AsyncAnthropic
from anthropic.types import ErrorResponse, Message, RawMessageStreamEvent
from pydantic import TypeAdapter

from tests.support import (
    MASTER_KEY,
    GatewayProc,
    Sim,
    deployment,
    http_json,
    start_gateway,
    start_sim,
)

EVENT = TypeAdapter(RawMessageStreamEvent)
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 24).decode()
WEATHER = {
    "name": "get_weather",
    "description": "Current weather of a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
ECHO = "[[echo]]Salam! Mənim adım Əliyevdir, the gateway keeps PRIVATE data on the premises."


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("anthropic")
    sims: dict[str, Sim] = {}
    gw: GatewayProc | None = None
    try:
        sims["local"] = start_sim(tmp, "local")
        sims["cloud"] = start_sim(tmp, "cloud")
        sims["bad429"] = start_sim(tmp, "cloud", "--fault", "429")
        gw = start_gateway(tmp, {
            "privacy": {"default_level": "PUBLIC"},
            "deployments": [
                deployment("local-a", sims["local"], "local"),
                deployment("cloud-a", sims["cloud"], "cloud"),
                deployment("bad-429", sims["bad429"], "cloud"),
            ],
            "model_groups": {
                "assistant": ["local-a"],
                "cloud-first": ["cloud-a", "local-a"],
                "cloud-only": ["cloud-a"],
                "all-429": ["bad-429"],
            },
        })
        yield {"gw": gw, "sims": sims}
    finally:
        if gw is not None:
            gw.stop()
        for s in sims.values():
            s.stop()


@pytest.fixture
def gw(world: dict[str, Any]) -> GatewayProc:
    return world["gw"]


@pytest.fixture
def sims(world: dict[str, Any]) -> dict[str, Sim]:
    for s in world["sims"].values():
        s.reset()
    return world["sims"]


@pytest.fixture
def client(gw: GatewayProc) -> Iterator[Anthropic]:
    c = Anthropic(base_url=gw.base, api_key=MASTER_KEY, max_retries=0, timeout=20)
    yield c
    c.close()


def _user(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


def _create(client: Anthropic, **kw: Any) -> tuple[Message, dict[str, str]]:
    """A non-streamed answer, validated as Anthropic's wire format from the raw JSON."""
    kw.setdefault("max_tokens", 256)
    raw = client.messages.with_raw_response.create(**kw)
    wire = Message.model_validate(raw.http_response.json())
    assert raw.parse().id == wire.id
    return wire, dict(raw.headers)


def _raw_stream(gw: GatewayProc, body: dict[str, Any], headers: dict[str, str] | None = None) -> tuple[list[tuple[str, dict[str, Any]]], dict[str, str]]:
    """Every SSE event of a streamed answer, each validated against the SDK's event models."""
    req = urllib.request.Request(
        f"{gw.base}/v1/messages", data=json.dumps({**body, "stream": True}).encode(), method="POST",
        headers={"content-type": "application/json", "x-api-key": MASTER_KEY, **(headers or {})},
    )
    with urllib.request.urlopen(req, timeout=20) as r:  # noqa: S310 - loopback
        raw, got = r.read().decode(), dict(r.headers)
    events = []
    for frame in raw.split("\n\n"):
        if not frame:
            continue
        name_line, data_line = frame.split("\n")
        name, data = name_line.removeprefix("event: "), json.loads(data_line.removeprefix("data: "))
        assert data["type"] == name
        if name == "error":
            ErrorResponse.model_validate(data)
        elif name != "ping":
            EVENT.validate_python(data)
        events.append((name, data))
    return events, got


# ---------------------------------------------------------------- messages
def test_create_answers_in_anthropic_format_with_receipt(client: Anthropic, sims: dict[str, Sim]) -> None:
    msg, headers = _create(client, model="assistant", messages=_user(ECHO))
    assert msg.model == "assistant"
    assert msg.id.startswith("msg_")
    assert [b.type for b in msg.content] == ["text"]
    assert msg.content[0].text == ECHO.removeprefix("[[echo]]")  # type: ignore[union-attr]
    assert msg.stop_reason == "end_turn" and msg.stop_sequence is None
    assert msg.usage.input_tokens > 0 and msg.usage.output_tokens > 0
    assert headers["x-tiergate-deployment"] == "local-a"
    assert headers["x-tiergate-location"] == "local"
    assert headers["request-id"] == headers["x-request-id"]
    assert sims["local"].stats()["last_request"]["max_tokens"] == 256


async def test_async_create(gw: GatewayProc, sims: dict[str, Sim]) -> None:
    async with AsyncAnthropic(base_url=gw.base, api_key=MASTER_KEY, max_retries=0, timeout=20) as c:
        msg = await c.messages.create(model="assistant", max_tokens=64, messages=_user("[[echo]]async hello"))
    assert msg.content[0].text == "async hello"  # type: ignore[union-attr]
    assert sims["local"].stats()["chat_requests"] == 1


def test_stream_matches_the_plain_answer(client: Anthropic, gw: GatewayProc, sims: dict[str, Sim]) -> None:
    plain, _ = _create(client, model="assistant", messages=_user(ECHO))
    with client.messages.stream(model="assistant", max_tokens=256, messages=_user(ECHO)) as stream:
        texts = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(texts) > 1  # really streamed, piece by piece
    assert final.content[0].text == plain.content[0].text  # type: ignore[union-attr]
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == plain.usage.output_tokens

    events, headers = _raw_stream(gw, {"model": "assistant", "max_tokens": 256, "messages": _user(ECHO)})
    names = [n for n, _ in events]
    assert names[:3] == ["message_start", "ping", "content_block_start"]
    assert set(names[3:-3]) == {"content_block_delta"}
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert headers["x-tiergate-deployment"] == "local-a" and headers["request-id"].startswith("req_")
    assert events[-2][1]["usage"]["input_tokens"] == plain.usage.input_tokens  # corrected at the end


def test_tool_use_round_trip(client: Anthropic, sims: dict[str, Sim]) -> None:
    question = _user("What is the weather in Baku?")
    first, _ = _create(client, model="assistant", messages=question, tools=[WEATHER],
                       tool_choice={"type": "any"})
    assert first.stop_reason == "tool_use"
    call = first.content[-1]
    assert call.type == "tool_use" and call.name == "get_weather"
    assert call.input == {"city": "value"}  # parsed JSON object, not a string
    upstream = sims["local"].stats()["last_request"]
    assert upstream["tool_choice"] == "required"
    assert upstream["tools"][0]["function"]["parameters"] == WEATHER["input_schema"]

    follow_up = [
        *question,
        # the blocks as SDK users send them back: model_dump() keeps the null fields
        {"role": "assistant", "content": [b.model_dump() for b in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "22C, sunny"}]},
    ]
    second, _ = _create(client, model="assistant", messages=follow_up, tools=[WEATHER])
    assert second.stop_reason == "end_turn"
    assert second.content[0].text == "Tool result: 22C, sunny"  # type: ignore[union-attr]
    sent = sims["local"].stats()["last_request"]["messages"]
    assert sent[1]["tool_calls"][0]["id"] == call.id
    assert json.loads(sent[1]["tool_calls"][0]["function"]["arguments"]) == {"city": "value"}
    assert sent[2] == {"role": "tool", "tool_call_id": call.id, "content": "22C, sunny"}

    with client.messages.stream(model="assistant", max_tokens=64, messages=question, tools=[WEATHER],
                                tool_choice={"type": "tool", "name": "get_weather"}) as stream:
        streamed = stream.get_final_message()
    assert streamed.stop_reason == "tool_use"
    assert streamed.content[-1].input == {"city": "value"}  # type: ignore[union-attr]


def test_image_arrives_upstream_as_data_url(client: Anthropic, sims: dict[str, Sim]) -> None:
    content = [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "text", "text": "Describe this."},
    ]
    msg, _ = _create(client, model="assistant", messages=[{"role": "user", "content": content}])
    assert msg.content[0].text.startswith("[1 image received]")  # type: ignore[union-attr]
    part = sims["local"].stats()["last_request"]["messages"][0]["content"][0]
    assert part == {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}


def test_system_prompt_and_stop_sequences(client: Anthropic, sims: dict[str, Sim]) -> None:
    msg, _ = _create(client, model="assistant", system="Be brief.", stop_sequences=["STOP"],
                     messages=_user("[[echo]]alpha beta STOP gamma"))
    assert msg.content[0].text == "alpha beta "  # type: ignore[union-attr]
    upstream = sims["local"].stats()["last_request"]
    assert upstream["messages"][0] == {"role": "system", "content": "Be brief."}
    assert upstream["stop"] == ["STOP"]


def test_count_tokens_is_local(client: Anthropic, sims: dict[str, Sim]) -> None:
    count = client.messages.count_tokens(model="assistant", system="x" * 40, messages=_user("y" * 400))
    assert count.input_tokens == 110  # the gateway's local estimate: about 4 characters a token
    assert all(s.stats()["requests"] == 0 for s in sims.values())
    with pytest.raises(anthropic.NotFoundError):
        client.messages.count_tokens(model="nope", messages=_user("hi"))


def test_explain_returns_the_decision_without_calling_upstream(gw: GatewayProc, sims: dict[str, Sim]) -> None:
    status, body, headers = http_json(
        "POST", f"{gw.base}/v1/messages",
        {"model": "cloud-first", "max_tokens": 8, "messages": _user("hi")},
        headers={"x-api-key": MASTER_KEY, "x-tiergate-explain": "true", "x-tiergate-privacy": "PRIVATE"},
    )
    assert status == 200 and body["upstream_called"] is False
    assert body["order"] == ["local-a"] and body["privacy"]["level"] == "PRIVATE"
    assert all(s.stats()["chat_requests"] == 0 for s in sims.values())


# ---------------------------------------------------------------- errors
def test_bad_request_names_the_field(client: Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as info:
        client.messages.create(model="assistant", max_tokens=anthropic.omit, messages=_user("hi"))  # type: ignore[call-overload]
    body = ErrorResponse.model_validate(info.value.body)
    assert body.error.type == "invalid_request_error"
    assert body.error.message.startswith("max_tokens: ")
    assert info.value.request_id and info.value.request_id.startswith("req_")

    document = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "x"}}
    with pytest.raises(anthropic.BadRequestError, match="messages.0.content.1.type: document blocks"):
        client.messages.create(model="assistant", max_tokens=8, messages=[
            {"role": "user", "content": [{"type": "text", "text": "read"}, document]}])


def test_authentication(gw: GatewayProc) -> None:
    with Anthropic(base_url=gw.base, api_key="wrong-key", max_retries=0) as c:
        with pytest.raises(anthropic.AuthenticationError) as info:
            c.messages.create(model="assistant", max_tokens=8, messages=_user("hi"))
    assert ErrorResponse.model_validate(info.value.body).error.type == "authentication_error"
    body = {"model": "assistant", "max_tokens": 8, "messages": _user("hi")}
    status, missing, headers = http_json("POST", f"{gw.base}/v1/messages", {"messages": "not even valid"})
    assert status == 401 and missing["error"]["type"] == "authentication_error"  # auth before validation
    assert headers["request-id"] == headers["x-request-id"]
    status, ok, _ = http_json("POST", f"{gw.base}/v1/messages", body, headers={"authorization": f"Bearer {MASTER_KEY}"})
    assert status == 200 and ok["type"] == "message"


def test_unknown_model_is_404(client: Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as info:
        client.messages.create(model="claude-nope", max_tokens=8, messages=_user("hi"))
    error = ErrorResponse.model_validate(info.value.body).error
    assert error.type == "not_found_error" and "known models" in error.message


def test_upstream_rate_limit_keeps_retry_after(client: Anthropic) -> None:
    with pytest.raises(anthropic.RateLimitError) as info:
        client.messages.create(model="all-429", max_tokens=8, messages=_user("hi"))
    assert info.value.response.headers["retry-after"] == "1"
    assert ErrorResponse.model_validate(info.value.body).error.type == "rate_limit_error"


def test_midstream_failure_is_an_error_event(client: Anthropic, gw: GatewayProc) -> None:
    prompt = _user("[[fault:truncate]] tell me a long story")
    with pytest.raises(anthropic.APIStatusError) as info:
        with client.messages.stream(model="assistant", max_tokens=256, messages=prompt) as stream:
            stream.get_final_message()
    assert ErrorResponse.model_validate(info.value.body).error.type == "api_error"

    events, _ = _raw_stream(gw, {"model": "assistant", "max_tokens": 256, "messages": prompt})
    names = [n for n, _ in events]
    assert names[0] == "message_start" and names[-1] == "error"
    assert "message_stop" not in names  # never ends as if the answer were complete


# ---------------------------------------------------------------- privacy
def test_public_request_may_go_to_cloud(client: Anthropic, sims: dict[str, Sim]) -> None:
    _, headers = _create(client, model="cloud-first", messages=_user("hello"))
    assert headers["x-tiergate-deployment"] == "cloud-a"
    assert sims["cloud"].stats()["chat_requests"] == 1


@pytest.mark.parametrize("how", ["header", "metadata"])
def test_private_request_stays_local(client: Anthropic, sims: dict[str, Sim], how: str) -> None:
    kw: dict[str, Any] = (
        {"extra_headers": {"x-tiergate-privacy": "PRIVATE"}} if how == "header"
        else {"metadata": {"user_id": "u-1", "privacy": "PRIVATE"}}
    )
    msg, headers = _create(client, model="cloud-first", messages=_user("[[echo]]my IBAN"), **kw)
    assert headers["x-tiergate-deployment"] == "local-a"
    assert headers["x-tiergate-privacy"] == "PRIVATE"
    assert msg.content[0].text == "my IBAN"  # type: ignore[union-attr]
    with client.messages.stream(model="cloud-first", max_tokens=32, messages=_user("my IBAN"), **kw) as stream:
        stream.get_final_message()
        assert stream.response.headers["x-tiergate-deployment"] == "local-a"
    assert sims["cloud"].stats()["chat_requests"] == 0
    assert sims["local"].stats()["chat_requests"] == 2
    if how == "metadata":  # tiergate's own key stays in the gateway; the user id goes on
        upstream = sims["local"].stats()["last_request"]
        assert "metadata" not in upstream and upstream["user"] == "u-1"


def test_private_request_without_a_local_deployment_is_refused(client: Anthropic, sims: dict[str, Sim]) -> None:
    with pytest.raises(anthropic.PermissionDeniedError) as info:
        client.messages.create(model="cloud-only", max_tokens=8, messages=_user("my IBAN"),
                               metadata={"privacy": "PRIVATE"})  # type: ignore[typeddict-unknown-key]
    error = ErrorResponse.model_validate(info.value.body).error
    assert error.type == "permission_error" and "Nothing was sent upstream" in error.message
    with pytest.raises(anthropic.PermissionDeniedError):
        with client.messages.stream(model="cloud-only", max_tokens=8, messages=_user("my IBAN"),
                                    extra_headers={"x-tiergate-privacy": "PRIVATE"}) as stream:
            stream.get_final_message()
    assert sims["cloud"].stats()["requests"] == 0
