"""The Anthropic <-> canonical (OpenAI) translation, as pure functions: request bodies (checked
against the official SDK's own request types), answers and stream events (checked against the
SDK's response models), and Anthropic-style validation errors naming the field path."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest
from anthropic.types import ErrorResponse, Message, RawMessageStreamEvent
from anthropic.types.message_create_params import MessageCreateParamsNonStreaming
from pydantic import TypeAdapter

from tiergate.anthropic_messages import (
    StreamTranslator,
    error_body,
    error_type,
    message_id,
    stop_reason,
    to_anthropic_message,
    to_openai_request,
)
from tiergate.errors import InvalidRequestError
from tiergate.providers.canonical import ChunkFactory, completion_result
from tiergate.request import parse_chat_request
from tiergate.types import Usage

PARAMS = TypeAdapter(MessageCreateParamsNonStreaming)
EVENT = TypeAdapter(RawMessageStreamEvent)
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
WEATHER_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def _materialize(value: Any) -> Any:
    """Walk a TypeAdapter result: the SDK's `Iterable` fields validate lazily, on iteration."""
    if isinstance(value, dict):
        return {k: _materialize(v) for k, v in value.items()}
    if isinstance(value, (str, bytes)):
        return value
    if hasattr(value, "__iter__"):
        return [_materialize(v) for v in value]
    return value


def valid_params(body: dict[str, Any]) -> dict[str, Any]:
    """The fixture is a request the official SDK's types accept (all nested blocks included)."""
    return _materialize(PARAMS.validate_python(copy.deepcopy(body)))


def full_request() -> dict[str, Any]:
    return {
        "model": "assistant",
        "max_tokens": 256,
        "system": "You are terse.",
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "What is in this picture, and the weather?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
            ]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "The user wants weather.", "signature": "sig"},
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Baku"}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01", "content": "22C, sunny"},
                {"type": "text", "text": "Thanks. Anything else?"},
            ]},
        ],
        "stop_sequences": ["END"],
        "temperature": 0.2,
        "top_p": 0.9,
        "top_k": 40,
        "tools": [{"name": "get_weather", "description": "Weather now", "input_schema": WEATHER_SCHEMA}],
        "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
        "metadata": {"user_id": "user-7"},
    }


# ------------------------------------------------------------------ request translation
def test_full_request_translates_to_the_openai_body() -> None:
    body = full_request()
    valid_params(body)
    out = to_openai_request(body)
    assert out == {
        "model": "assistant",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": [
                {"type": "text", "text": "What is in this picture, and the weather?"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
            ]},
            {"role": "assistant", "content": "Let me check.", "tool_calls": [
                {"id": "toolu_01", "type": "function",
                 "function": {"name": "get_weather", "arguments": '{"city":"Baku"}'}},
            ]},
            {"role": "tool", "tool_call_id": "toolu_01", "content": "22C, sunny"},
            {"role": "user", "content": "Thanks. Anything else?"},
        ],
        "max_tokens": 256,
        "stop": ["END"],
        "temperature": 0.2,
        "top_p": 0.9,
        "tools": [{"type": "function", "function": {
            "name": "get_weather", "parameters": WEATHER_SCHEMA, "description": "Weather now"}}],
        "tool_choice": "auto",
        "parallel_tool_calls": False,
        "user": "user-7",
    }
    assert "top_k" not in out  # OpenAI has no top_k: dropped, not forwarded


def test_translated_body_passes_the_pipeline_validation_with_privacy_hints() -> None:
    body = full_request()
    body["metadata"] = {"user_id": "u", "privacy": "PRIVATE", "constraints": {"max_cost": 1}, "strategy": "cheapest"}
    body["stream"] = True
    req = parse_chat_request(to_openai_request(body))
    assert req.declared_privacy == "PRIVATE"
    assert req.constraints == {"max_cost": 1, "strategy": "cheapest"}
    assert req.stream and req.include_usage  # output_tokens come from the final usage chunk
    assert "metadata" not in req.body and req.body["user"] == "u"


def test_tool_results_become_tool_messages_before_the_rest_of_the_turn() -> None:
    body = {"model": "m", "max_tokens": 5, "messages": [
        {"role": "user", "content": "weather in Baku and Ganja?"},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "a", "name": "w", "input": {}},
            {"type": "tool_use", "id": "b", "name": "w", "input": {"city": "Ganja"}},
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "a", "is_error": True,
             "content": [{"type": "text", "text": "city unknown"}]},
            {"type": "tool_result", "tool_use_id": "b", "content": [
                {"type": "text", "text": "18C"}, {"type": "text", "text": "windy"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
            ]},
        ]},
    ]}
    valid_params(body)
    msgs = to_openai_request(body)["messages"]
    assert msgs[1] == {"role": "assistant", "content": None, "tool_calls": [
        {"id": "a", "type": "function", "function": {"name": "w", "arguments": "{}"}},
        {"id": "b", "type": "function", "function": {"name": "w", "arguments": '{"city":"Ganja"}'}},
    ]}
    assert msgs[2] == {"role": "tool", "tool_call_id": "a", "content": "Error: city unknown"}
    assert msgs[3] == {"role": "tool", "tool_call_id": "b", "content": "18C\nwindy"}
    # OpenAI tool messages carry text only: the result's image follows as user content.
    assert msgs[4] == {"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]}


def test_system_blocks_and_system_messages() -> None:
    body = {"model": "m", "max_tokens": 5,
            "system": [{"type": "text", "text": "Rule one."}, {"type": "text", "text": "Rule two."}],
            "messages": [{"role": "user", "content": "hi"},
                         {"role": "system", "content": "Answer in Azerbaijani."},
                         {"role": "user", "content": "again"}]}
    valid_params(body)
    assert to_openai_request(body)["messages"] == [
        {"role": "system", "content": "Rule one.\nRule two."},
        {"role": "user", "content": "hi"},
        {"role": "system", "content": "Answer in Azerbaijani."},
        {"role": "user", "content": "again"},
    ]


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, "auto"),
        ({"type": "any"}, "required"),
        ({"type": "none"}, "none"),
        ({"type": "tool", "name": "get_weather"}, {"type": "function", "function": {"name": "get_weather"}}),
    ],
)
def test_tool_choice(choice: dict[str, Any], expected: Any) -> None:
    body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}],
            "tools": [{"name": "get_weather", "input_schema": WEATHER_SCHEMA}], "tool_choice": choice}
    valid_params(body)
    out = to_openai_request(body)
    assert out["tool_choice"] == expected
    assert "parallel_tool_calls" not in out


def test_structured_output_maps_to_response_format() -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}}
    body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}],
            "output_config": {"effort": "low", "format": {"type": "json_schema", "schema": schema}}}
    valid_params(body)
    assert to_openai_request(body)["response_format"] == {
        "type": "json_schema", "json_schema": {"name": "output", "schema": schema}}


def test_optional_fields_sent_as_null_are_not_given() -> None:
    nulls = dict.fromkeys(("system", "stop_sequences", "temperature", "top_k", "tools", "tool_choice",
                           "metadata", "output_config", "stream"))
    body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}], **nulls}
    assert to_openai_request(body) == {"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 5}
    with pytest.raises(InvalidRequestError, match=r"^max_tokens: Input should be a valid integer"):
        to_openai_request({**body, "max_tokens": None})


def test_count_only_makes_max_tokens_optional() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
    assert "max_tokens" not in to_openai_request(body, count_only=True)
    with pytest.raises(InvalidRequestError, match=r"^max_tokens: Field required"):
        to_openai_request(body)


def _with(path: tuple[Any, ...], value: Any, *, delete: bool = False) -> dict[str, Any]:
    body = full_request()
    target: Any = body
    for key in path[:-1]:
        target = target[key]
    if delete:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return body


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        (_with(("max_tokens",), None, delete=True), "max_tokens", "Field required"),
        (_with(("max_tokens",), 0), "max_tokens", "greater than or equal to 1"),
        (_with(("max_tokens",), "100"), "max_tokens", "valid integer"),
        (_with(("model",), ""), "model", "at least 1 character"),
        (_with(("messages",), []), "messages", "at least 1 item"),
        (_with(("messages", 0, "content"), 7), "messages.0.content", "valid list"),
        (_with(("messages", 1, "role"), "robot"), "messages.1.role", "'user', 'assistant'"),
        (_with(("messages", 0, "content", 0, "type"), None), "messages.0.content.0.type", "valid string"),
        (_with(("messages", 0, "content", 1), {"type": "document", "source": {}}),
         "messages.0.content.1.type", "document blocks are not supported"),
        (_with(("messages", 0, "content", 1, "source", "media_type"), "image/tiff"),
         "messages.0.content.1.source.media_type", "image/png"),
        (_with(("messages", 0, "content", 1, "source"), {"type": "file", "file_id": "f"}),
         "messages.0.content.1.source.type", "not supported"),
        (_with(("messages", 1, "content", 2, "input"), "{}"), "messages.1.content.2.input", "object"),
        (_with(("messages", 2, "content", 0, "tool_use_id"), None, delete=True),
         "messages.2.content.0.tool_use_id", "Field required"),
        (_with(("temperature",), 1.5), "temperature", "between 0 and 1"),
        (_with(("stop_sequences",), ["ok", 3]), "stop_sequences.1", "valid string"),
        (_with(("tools", 0, "input_schema"), None, delete=True), "tools.0.input_schema", "Field required"),
        (_with(("tools", 0, "type"), "web_search_20250305"), "tools.0.type", "not supported"),
        (_with(("tool_choice",), {"type": "sometimes"}), "tool_choice.type", "'auto', 'any'"),
        (_with(("tool_choice",), {"type": "tool"}), "tool_choice.name", "Field required"),
        (_with(("metadata", "team"), "x"), "metadata.team", "Extra inputs are not permitted"),
        (_with(("frequency_penalty",), 1), "frequency_penalty", "Extra inputs are not permitted"),
        (_with(("stream",), "yes"), "stream", "valid boolean"),
    ],
)
def test_invalid_requests_name_the_field(body: dict[str, Any], param: str, words: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        to_openai_request(body)
    assert info.value.status == 400
    assert info.value.param == param
    assert info.value.message.startswith(f"{param}: ")
    assert words in info.value.message


def test_tool_choice_any_needs_tools() -> None:
    body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}],
            "tool_choice": {"type": "any"}}
    with pytest.raises(InvalidRequestError, match=r"^tool_choice: .*needs at least one tool"):
        to_openai_request(body)


@pytest.mark.parametrize("body", [None, [], "text", 3])
def test_body_must_be_an_object(body: Any) -> None:
    with pytest.raises(InvalidRequestError, match="JSON object"):
        to_openai_request(body)


# ------------------------------------------------------------------ answer translation
def _completion(message: dict[str, Any], finish: str, usage: Usage | None = Usage(12, 7, 19)) -> dict[str, Any]:
    return completion_result(model="upstream-id", message=message, finish_reason=finish, usage=usage).json()


def test_answer_with_text_and_tool_call() -> None:
    message = {"role": "assistant", "content": "Checking.", "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Baku"}'}}]}
    out = to_anthropic_message(_completion(message, "tool_calls"), model="assistant",
                               message_id="msg_1", request_body={"messages": []})
    parsed = Message.model_validate(out)
    assert parsed.model == "assistant" and parsed.id == "msg_1"
    assert [b.type for b in parsed.content] == ["text", "tool_use"]
    assert parsed.content[1].input == {"city": "Baku"}  # type: ignore[union-attr]
    assert parsed.content[1].id == "call_1"  # type: ignore[union-attr]
    assert parsed.stop_reason == "tool_use"
    assert (parsed.usage.input_tokens, parsed.usage.output_tokens) == (12, 7)


@pytest.mark.parametrize(
    ("finish", "tools", "expected"),
    [("stop", False, "end_turn"), ("length", False, "max_tokens"), ("tool_calls", True, "tool_use"),
     ("stop", True, "tool_use"), ("content_filter", False, "refusal"), (None, False, "end_turn")],
)
def test_stop_reasons(finish: str | None, tools: bool, expected: str) -> None:
    assert stop_reason(finish, tools) == expected


def test_answer_keeps_unparsable_tool_arguments_and_estimates_missing_usage() -> None:
    message = {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{not json"}},
        {"id": "d", "type": "function", "function": {"name": "g", "arguments": "[1, 2]"}}]}
    request = {"messages": [{"role": "user", "content": "x" * 40}]}
    out = to_anthropic_message(_completion(message, "tool_calls", usage=None), model="m",
                               message_id="msg_2", request_body=request)
    Message.model_validate(out)
    assert [b["input"] for b in out["content"]] == [{"raw_arguments": "{not json"}, {"value": [1, 2]}]
    assert out["usage"]["input_tokens"] == 10 and out["usage"]["output_tokens"] >= 1


def test_message_id_follows_the_request_id() -> None:
    assert message_id("req_01a2b3") == "msg_01a2b3"


# ------------------------------------------------------------------ stream translation
def _parse_sse(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for frame in raw.decode().split("\n\n"):
        if not frame:
            continue
        name_line, data_line = frame.split("\n")
        assert name_line.startswith("event: ") and data_line.startswith("data: ")
        out.append((name_line[7:], orjson.loads(data_line[6:])))
    return out


def _check_events(events: list[tuple[str, dict[str, Any]]]) -> None:
    for name, data in events:
        assert data["type"] == name
        if name not in ("ping", "error"):
            EVENT.validate_python(data)


def test_stream_text_then_tool_call() -> None:
    f = ChunkFactory("upstream-id")
    batches = [
        [f.role(), f.content("Let me "), f.content("check.")],
        [f.tool_call_start(0, "call_9", "get_weather", ""), f.tool_call_arguments(0, '{"ci')],
        [f.tool_call_arguments(0, 'ty":"Baku"}'), f.finish("tool_calls"), f.usage(Usage(30, 11, 41))],
    ]
    t = StreamTranslator(model="assistant", message_id="msg_3", input_tokens=25)
    raw = t.start() + b"".join(t.feed([ev.data for ev in batch]) for batch in batches) + t.finish()
    events = _parse_sse(raw)
    _check_events(events)
    assert [name for name, _ in events] == [
        "message_start", "ping",
        "content_block_start", "content_block_delta", "content_block_delta", "content_block_stop",
        "content_block_start", "content_block_delta", "content_block_delta", "content_block_stop",
        "message_delta", "message_stop",
    ]
    start = events[0][1]["message"]
    assert start["model"] == "assistant" and start["usage"]["input_tokens"] == 25  # the estimate
    assert events[2][1] == {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
    assert "".join(d["delta"]["text"] for n, d in events if d.get("index") == 0 and n == "content_block_delta") == "Let me check."
    assert events[6][1]["content_block"] == {"type": "tool_use", "id": "call_9", "name": "get_weather", "input": {}}
    args = "".join(d["delta"]["partial_json"] for n, d in events if d.get("index") == 1 and n == "content_block_delta")
    assert orjson.loads(args) == {"city": "Baku"}
    delta = events[-2][1]
    assert delta["delta"] == {"stop_reason": "tool_use", "stop_sequence": None}
    assert delta["usage"] == {"input_tokens": 30, "output_tokens": 11}  # corrected by the reported usage


def test_stream_without_usage_estimates_output_and_maps_length() -> None:
    f = ChunkFactory("u")
    t = StreamTranslator(model="m", message_id="msg_4", input_tokens=3)
    raw = t.start() + t.feed([f.content("x" * 40).data, f.finish("length").data]) + t.finish()
    events = _parse_sse(raw)
    _check_events(events)
    assert events[-2][1]["delta"]["stop_reason"] == "max_tokens"
    assert events[-2][1]["usage"] == {"input_tokens": 3, "output_tokens": 10}


def test_stream_with_no_content_still_ends_well_formed() -> None:
    f = ChunkFactory("u")
    t = StreamTranslator(model="m", message_id="msg_5", input_tokens=1)
    events = _parse_sse(t.start() + t.feed([f.role().data, f.finish("stop").data]) + t.finish())
    _check_events(events)
    assert [n for n, _ in events] == ["message_start", "ping", "message_delta", "message_stop"]


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize(
    ("status", "kind"),
    [(400, "invalid_request_error"), (401, "authentication_error"), (403, "permission_error"),
     (404, "not_found_error"), (413, "request_too_large"), (422, "invalid_request_error"),
     (429, "rate_limit_error"), (500, "api_error"), (502, "api_error"), (503, "overloaded_error"),
     (504, "timeout_error"), (409, "invalid_request_error"), (507, "api_error")],
)
def test_error_types(status: int, kind: str) -> None:
    assert error_type(status) == kind
    body = error_body(status, "boom", "req_1")
    assert body == {"type": "error", "error": {"type": kind, "message": "boom"}, "request_id": "req_1"}
    if kind != "request_too_large":  # a documented type the SDK's union does not list
        ErrorResponse.model_validate(body)
