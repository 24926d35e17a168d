"""Request validation names the wrong field and keeps unknown fields for the upstream."""

from __future__ import annotations

import pytest

from tiergate.errors import InvalidRequestError
from tiergate.request import parse_chat_request


def test_valid_body_keeps_extras_and_strips_tiergate_metadata() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "top_k": 3,
            "metadata": {"privacy": "high", "constraints": {"max_cost": 0.1}, "trace": "t1"}}
    req = parse_chat_request(body)
    assert req.body["top_k"] == 3 and req.body["metadata"] == {"trace": "t1"}
    assert req.declared_privacy == "high" and req.constraints == {"max_cost": 0.1}
    assert body["metadata"]["privacy"] == "high"  # the caller's dict is not mutated


def test_stream_flags() -> None:
    req = parse_chat_request({"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": True,
                              "stream_options": {"include_usage": True}})
    assert req.stream and req.include_usage


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ([], None),
        ({"model": "", "messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": "m", "messages": "hello"}, "messages"),
        ({"model": "m", "messages": [{"content": "x"}]}, "messages[0].role"),
        ({"model": "m", "messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        ({"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function", "function": {}}]}, "tools[0].function.name"),
        ({"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}, "stream"),
        ({"model": "m", "messages": [{"role": "user", "content": "x"}], "response_format": {"type": "xml"}}, "response_format.type"),
    ],
)
def test_errors_name_the_field(body: object, param: str | None) -> None:
    with pytest.raises(InvalidRequestError) as e:
        parse_chat_request(body)
    assert e.value.param == param and e.value.status == 400
