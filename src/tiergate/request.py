"""Validation of inbound OpenAI chat requests into `ChatRequest`.

Pydantic checks the fields the gateway and upstreams rely on and names the wrong one in the
error; the client's body itself is kept as it came (unknown fields pass through). tiergate's own
hints (`metadata.privacy`, `metadata.constraints`) are taken out of the body before it goes
upstream.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import InvalidRequestError
from .types import ChatRequest

_TIERGATE_METADATA_KEYS = ("privacy", "constraints", "strategy", "auto_route")


class _Open(BaseModel):
    # strict: "stream": "yes" or "n": "2" are client bugs to report, not to coerce.
    model_config = ConfigDict(extra="allow", strict=True)


class _ContentPart(_Open):
    type: str


class _Function(_Open):
    name: str = Field(min_length=1)


class _ToolCall(_Open):
    id: str | None = None
    type: str | None = None
    function: _Function


class _Message(_Open):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[_ContentPart] | None = None
    name: str | None = None
    tool_calls: list[_ToolCall] | None = None
    tool_call_id: str | None = None


class _Tool(_Open):
    type: Literal["function"]
    function: _Function


class _StreamOptions(_Open):
    include_usage: bool | None = None


class _ResponseFormat(_Open):
    type: Literal["text", "json_object", "json_schema"]


class _ChatBody(_Open):
    model: str = Field(min_length=1)
    messages: list[_Message] = Field(min_length=1)
    stream: bool | None = None
    stream_options: _StreamOptions | None = None
    n: int | None = Field(None, ge=1, le=128)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    user: str | None = None
    tools: list[_Tool] | None = None
    tool_choice: str | dict[str, Any] | None = None
    response_format: _ResponseFormat | None = None
    metadata: dict[str, Any] | None = None


class _EmbeddingsBody(_Open):
    model: str = Field(min_length=1)
    input: str | list[str] | list[int] | list[list[int]]
    dimensions: int | None = Field(None, ge=1)
    encoding_format: Literal["float", "base64"] | None = None
    user: str | None = None
    metadata: dict[str, Any] | None = None


def _param(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in (
            "str", "list[_ContentPart]", "function-after", "literal", "list[str]", "list[int]",
            "list[list[int]]",
        ):
            continue  # union-branch markers pydantic adds; not part of the field path
        else:
            out += f".{part}" if out else str(part)
    return out


def _message(err: Any) -> str:
    kind = err["type"]
    if kind == "missing":
        return "is required"
    if kind == "literal_error":
        return f"must be one of {err['ctx']['expected']}"
    return str(err["msg"]).replace("Input should be", "must be").replace("String should", "must")


def _validate(schema: type[_Open], body: Any) -> None:
    if not isinstance(body, dict):
        raise InvalidRequestError("request body must be a JSON object", param=None)
    try:
        schema.model_validate(body)
    except ValidationError as exc:
        errs = exc.errors(include_url=False)
        # Prefer the shortest path: for a union (str | list) report the field, not each branch.
        first = min(errs, key=lambda e: len(e["loc"]))
        param = _param(first["loc"])
        raise InvalidRequestError(f"invalid request: '{param}' {_message(first)}", param=param) from None


def parse_embeddings_request(body: Any) -> ChatRequest:
    """Validate an OpenAI embeddings body (`input`: a string, strings, or token arrays).

    Raises:
        InvalidRequestError: naming the first wrong field in `param`.
    """
    _validate(_EmbeddingsBody, body)
    inputs = body["input"]
    if inputs == "" or inputs == [] or (isinstance(inputs, list) and any(x in ("", []) for x in inputs)):
        raise InvalidRequestError("invalid request: 'input' must not be empty", param="input")
    return _with_tiergate_metadata(body, stream=False)


def parse_chat_request(body: Any) -> ChatRequest:
    """Validate a decoded JSON body.

    Raises:
        InvalidRequestError: naming the first wrong field in `param`.
    """
    _validate(_ChatBody, body)
    return _with_tiergate_metadata(body, stream=bool(body.get("stream")))


def _with_tiergate_metadata(body: dict[str, Any], *, stream: bool) -> ChatRequest:
    """Take tiergate's own hints out of `metadata` (they never go upstream)."""
    declared: str | None = None
    source: str | None = None
    constraints: dict[str, Any] = {}
    meta = body.get("metadata")
    if isinstance(meta, dict) and any(k in meta for k in _TIERGATE_METADATA_KEYS):
        meta = dict(meta)
        if "privacy" in meta:
            declared, source = meta.pop("privacy"), "body metadata.privacy"
        c = meta.pop("constraints", None)
        if isinstance(c, dict):
            constraints = dict(c)
        if "strategy" in meta:
            constraints["strategy"] = meta.pop("strategy")
        if "auto_route" in meta:
            constraints["auto_route"] = meta.pop("auto_route") is True
        body = dict(body)
        if meta:
            body["metadata"] = meta
        else:
            body.pop("metadata")

    opts = body.get("stream_options")
    include_usage = bool(stream and isinstance(opts, dict) and opts.get("include_usage"))
    return ChatRequest(
        body=body,
        model=body["model"],
        stream=stream,
        include_usage=include_usage,
        declared_privacy=declared,
        privacy_source=source,
        constraints=constraints,
    )
