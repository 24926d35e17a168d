"""Cache keys, partitions and the rules for what may be cached.

The exact key is the SHA-256 of a canonical JSON of what changes the answer: the model group (not
the alias the client named), the messages, tools and every other body field except the ones
known not to (`user`, `metadata`, `stream`, `stream_options`, `store`, `service_tier`, prompt
cache hints, request ids). Unknown fields are kept: a field the gateway does not know may change
the answer, and keeping it only costs hit rate. Normalisation makes equivalent requests share a
key without ever merging different ones:

- top-level fields in a fixed order; values left as sent inside messages, tools and schemas (the
  order of a JSON schema's properties is the order the model writes them in);
- `null` fields dropped, and fields at their no-op value (`n: 1`, penalties 0, `top_p: 1`,
  `logprobs: false`, empty `stop`/`logit_bias`/`tools`, `parallel_tool_calls: true`,
  `tool_choice: "auto"` with tools or `"none"` without);
- whole-number floats at the top level written as integers (`temperature: 0.0` is `0`), `stop`
  as a list, `max_tokens` as `max_completion_tokens` (the same limit, renamed by OpenAI);
- a text-only content list of one part as a plain string, tool-call ids numbered by first
  appearance (they are random per answer and only link a call to its result).

A partition is `<tenant>|<LEVEL>`: an answer is only ever read back by the same tenant (team or
key) at the same effective privacy level.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from ..privacy.levels import PrivacyLevel, parse_level
from .config import CacheConfig

KEY_VERSION = b"tiergate-cache-v1\x00"

#: Body fields that never change the answer.
EXCLUDED_FIELDS: frozenset[str] = frozenset(
    {
        "model",  # replaced by the model group
        "user",
        "metadata",
        "stream",
        "stream_options",
        "store",
        "service_tier",
        "prompt_cache_key",
        "prompt_cache_retention",
        "safety_identifier",
        "request_id",
    }
)
# field -> values at which it does nothing (dropped, so `n: 1` and no `n` share a key).
_NO_OP: dict[str, tuple[Any, ...]] = {
    "n": (1,),
    "presence_penalty": (0,),
    "frequency_penalty": (0,),
    "top_p": (1,),
    "logprobs": (False,),
    "stop": ([],),
    "logit_bias": ({},),
    "tools": ([],),
    "parallel_tool_calls": (True,),
}
_CHAT_DEFAULT_TEMPERATURE = 1.0  # OpenAI's default when the field is absent


def _number(v: Any) -> Any:
    if type(v) is float and v.is_integer():
        return int(v)
    return v


def _message(m: Any, ids: dict[str, str]) -> Any:
    if not isinstance(m, dict):
        return m
    keys = m.keys()
    if len(keys) == 2 and "role" in m and type(m.get("content")) is str:
        return m  # the common message: nothing to normalise, nothing copied
    out: dict[str, Any] = {}
    for k, v in m.items():
        if v is None:
            continue
        if k == "content" and type(v) is list and len(v) == 1:
            part = v[0]
            if isinstance(part, dict) and part.get("type") == "text" and len(part) == 2:
                v = part.get("text")
        elif k == "tool_calls" and type(v) is list:
            if not v:
                continue
            calls = []
            for call in v:
                if isinstance(call, dict) and isinstance(call.get("id"), str):
                    call = {**call, "id": ids.setdefault(call["id"], f"call_{len(ids)}")}
                calls.append(call)
            v = calls
        elif k == "tool_call_id" and type(v) is str:
            v = ids.setdefault(v, f"call_{len(ids)}")
        elif k == "annotations" and v == []:
            continue
        out[k] = v
    return out


def canonical(group: str, body: Mapping[str, Any], *, skip_last_user_text: bool = False) -> dict[str, Any]:
    """The fields of `body` that change the answer, normalised (see the module docstring).

    With `skip_last_user_text` the last message's content is left out (the semantic cache's
    context: everything but the question)."""
    out: dict[str, Any] = {"model": group}
    fields = sorted(k for k in body if k not in EXCLUDED_FIELDS)
    has_tools = bool(body.get("tools"))
    for k in fields:
        v = body[k]
        if v is None:
            continue
        if k == "messages" and type(v) is list:
            ids: dict[str, str] = {}
            v = [_message(m, ids) for m in v]
            if skip_last_user_text and v and isinstance(v[-1], dict):
                v[-1] = {mk: mv for mk, mv in v[-1].items() if mk != "content"}
        elif k == "stop" and type(v) is str:
            v = [v]
        elif k == "tool_choice":
            if v == ("auto" if has_tools else "none"):
                continue
        else:
            v = _number(v)
            no_op = _NO_OP.get(k)
            if no_op is not None and any(v == x and type(v) is type(x) for x in no_op):
                continue
        if k == "max_tokens" and "max_completion_tokens" not in body:
            k = "max_completion_tokens"
        out[k] = v
    return out


def exact_key(group: str, body: Mapping[str, Any]) -> str:
    """The exact-cache key of a request in `group`: 64 hex digits."""
    return hashlib.sha256(KEY_VERSION + orjson.dumps(canonical(group, body))).hexdigest()


def last_user_text(body: Mapping[str, Any]) -> str | None:
    """The question the semantic cache compares: the last message's text when it is a user's
    text-only message, else None (tool results, images and assistant prefills are not
    compared by meaning)."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return None
    last = messages[-1]
    if not isinstance(last, dict) or last.get("role") != "user":
        return None
    content = last.get("content")
    if isinstance(content, str):
        return content or None
    if isinstance(content, list) and content:
        texts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                return None
            texts.append(part["text"])
        return "\n".join(texts) or None
    return None


def semantic_parts(group: str, body: Mapping[str, Any]) -> tuple[str, str] | None:
    """(question, context hash) of a request the semantic cache can compare, or None.

    The context is everything that changes the answer except the question's wording (system
    prompt, earlier turns, tools, sampling parameters): two requests are compared by meaning only
    when their contexts are identical."""
    text = last_user_text(body)
    if text is None:
        return None
    ctx = orjson.dumps(canonical(group, body, skip_last_user_text=True))
    return text, hashlib.sha256(KEY_VERSION + ctx).hexdigest()[:32]


# ---------------------------------------------------------------------------- partitions


def tenant(partition_by: Literal["team", "key"], key_id: str | None, team: str | None) -> str | None:
    """The tenant a request's answers belong to: `team:<name>` (a key without a team: its key)
    or `key:<id>`; None without authentication (one shared tenant)."""
    if partition_by == "team" and team:
        return f"team:{team}"
    return f"key:{key_id}" if key_id else None


def partition(tenant: str | None, privacy_level: str | PrivacyLevel) -> str:
    """`<tenant>|<LEVEL>`, e.g. `team:research|PUBLIC`; `-` is the tenant of unauthenticated use.

    Raises:
        ValueError: `privacy_level` names no level.
    """
    level = parse_level(privacy_level)
    t = "-" if not tenant else tenant.replace("%", "%25").replace("|", "%7C")
    return f"{t}|{level.name}"


def partition_level(part: str) -> PrivacyLevel:
    return parse_level(part.rsplit("|", 1)[-1])


# ---------------------------------------------------------------------------- rules


@dataclass(frozen=True, slots=True)
class CachePlan:
    """What the cache may do for one request.

    `status` is the `x-tiergate-cache` value when the cache is not looked up ("bypass"), or ""
    when it is (then the lookup decides: hit, semantic-hit or miss).
    """

    lookup: bool
    store: bool
    semantic: bool | None  # True: the request opted in; False: opted out; None: per config
    status: str
    reason: str


def _header(headers: Mapping[str, str] | None, name: str) -> str:
    if not headers:
        return ""
    v = headers.get(name)
    if v is None and not hasattr(headers, "getall"):  # a plain dict: look case-insensitively
        for k, hv in headers.items():
            if k.lower() == name:
                v = hv
                break
    return v or ""


def directives(headers: Mapping[str, str] | None) -> tuple[frozenset[str], frozenset[str]]:
    """The request's `Cache-Control` and `x-tiergate-cache` tokens, lower-cased."""
    cc = _header(headers, "cache-control")
    tg = _header(headers, "x-tiergate-cache")
    return _tokens(cc), _tokens(tg)


def _tokens(value: str) -> frozenset[str]:
    return frozenset(t.strip().lower() for t in value.split(",") if t.strip())


def plan(
    cfg: CacheConfig,
    body: Mapping[str, Any],
    level: str | PrivacyLevel,
    headers: Mapping[str, str] | None = None,
    *,
    kind: Literal["chat", "embeddings"] = "chat",
) -> CachePlan:
    """The cache rules for one request.

    - `x-tiergate-cache: bypass`: neither read nor written; `refresh` (and `Cache-Control:
      no-cache`, `max-age=0`): not read, the fresh answer stored; `Cache-Control: no-store`: not
      written; `x-tiergate-cache: semantic` / `exact`: opt in to / out of the semantic cache.
    - temperature above 0 (absent counts as the default, 1, for chat): not cached unless
      `cache_nonzero_temperature`;
    - PRIVATE: not cached unless `private`.
    """
    if not cfg.enabled:
        return CachePlan(False, False, None, "", "cache disabled")
    cc, tg = directives(headers) if headers else (frozenset(), frozenset())
    if "bypass" in tg:
        return CachePlan(False, False, None, "bypass", "x-tiergate-cache: bypass")
    lvl = parse_level(level)
    if lvl is PrivacyLevel.PRIVATE and not cfg.private:
        return CachePlan(False, False, None, "bypass", "PRIVATE requests are not cached (cache.private)")
    if kind == "chat" and not cfg.cache_nonzero_temperature:
        t = body.get("temperature")
        temperature = _CHAT_DEFAULT_TEMPERATURE if t is None else t
        if not isinstance(temperature, (int, float)) or temperature > 0:
            return CachePlan(
                False, False, None, "bypass",
                "temperature > 0 (or not set) is not cached (cache.cache_nonzero_temperature)",
            )
    semantic = True if "semantic" in tg else False if "exact" in tg else None
    store = "no-store" not in cc
    if "refresh" in tg or "no-cache" in cc or "max-age=0" in cc:
        return CachePlan(False, store, semantic, "bypass", "refresh requested")
    return CachePlan(True, store, semantic, "", "")


def cacheable(
    body: Mapping[str, Any],
    level: str | PrivacyLevel,
    cfg: CacheConfig,
    headers: Mapping[str, str] | None = None,
    *,
    kind: Literal["chat", "embeddings"] = "chat",
) -> tuple[bool, str]:
    """Whether the cache may be used at all for this request (read or write), and why not."""
    p = plan(cfg, body, level, headers, kind=kind)
    return (p.lookup or p.store), p.reason
