"""The texts of a chat request, and their redaction or reversible pseudonymisation.

The texts are every message's content (strings and text parts, the system prompt included) and
the string values inside assistant tool-call arguments (parsed as JSON, so a value reads the same
there as in prose). A pseudonym is consistent per request: the same value gets the same
placeholder in every message, tool argument and system prompt. The mapping exists only in memory,
for the request's lifetime.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

import orjson

from .entities import Entity

TextFn = Callable[[str], str]


def iter_texts(body: dict[str, Any]) -> Iterator[str]:
    """Every text of the request a detector must see (the same walk `map_texts` rewrites):
    chat messages, or an embeddings request's `input` strings."""
    inputs = body.get("input")
    if isinstance(inputs, str):
        yield inputs
    elif isinstance(inputs, list):
        yield from (x for x in inputs if isinstance(x, str))
    for message in body.get("messages") or ():
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        if isinstance(content, str):
            yield content
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    yield part["text"]
        for call in message.get("tool_calls") or ():
            args = (call.get("function") or {}).get("arguments") if isinstance(call, dict) else None
            if isinstance(args, str):
                yield from _json_strings(args)


def map_texts(body: dict[str, Any], fn: TextFn) -> dict[str, Any]:
    """A copy of `body` with `fn` applied to every text of `iter_texts` (the rest is shared)."""
    out = dict(body)
    inputs = body.get("input")
    if isinstance(inputs, str):
        out["input"] = fn(inputs)
    elif isinstance(inputs, list):
        out["input"] = [fn(x) if isinstance(x, str) else x for x in inputs]
    if "messages" not in body:
        return out
    messages = []
    for message in body.get("messages") or ():
        if not isinstance(message, dict):
            messages.append(message)
            continue
        m = dict(message)
        content = m.get("content")
        if isinstance(content, str):
            m["content"] = fn(content)
        elif isinstance(content, list):
            m["content"] = [
                {**p, "text": fn(p["text"])} if isinstance(p, dict) and isinstance(p.get("text"), str) else p
                for p in content
            ]
        if m.get("tool_calls"):
            m["tool_calls"] = [_map_call(call, fn) for call in m["tool_calls"]]
        messages.append(m)
    out["messages"] = messages
    return out


def _map_call(call: Any, fn: TextFn) -> Any:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("arguments"), str):
        return call
    return {**call, "function": {**function, "arguments": _map_json_strings(function["arguments"], fn)}}


def _json_strings(raw: str) -> Iterator[str]:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        yield raw  # not JSON: the raw text is what goes upstream
        return
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            yield v
        elif isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)


def _map_json_strings(raw: str, fn: TextFn) -> str:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return fn(raw)

    def walk(v: Any) -> Any:
        if isinstance(v, str):
            return fn(v)
        if isinstance(v, dict):
            return {k: walk(x) for k, x in v.items()}
        if isinstance(v, list):
            return [walk(x) for x in v]
        return v

    return orjson.dumps(walk(value)).decode()


class Pseudonymizer:
    """Rewrites detected values for one request: `[TYPE_n]` placeholders (reversible, the same
    value always the same placeholder) or `[TYPE]` redactions (irreversible)."""

    def __init__(self, entities_of: Callable[[str], list[Entity]], action_of: Callable[[str], str]) -> None:
        self._entities_of = entities_of
        self._action_of = action_of
        self.mapping: dict[str, str] = {}  # placeholder -> original value
        self._by_value: dict[tuple[str, str], str] = {}
        self._counts: dict[str, int] = {}
        self.rewritten: dict[str, int] = {}  # action -> number of values rewritten

    def __call__(self, text: str) -> str:
        spans = [e for e in self._entities_of(text) if self._action_of(e.type) in ("pseudonymize", "redact")]
        if not spans:
            return text
        out: list[str] = []
        pos = 0
        for e in spans:
            out.append(text[pos : e.start])
            out.append(self._replacement(e.type, text[e.start : e.end]))
            pos = e.end
        out.append(text[pos:])
        return "".join(out)

    def _replacement(self, kind: str, value: str) -> str:
        action = self._action_of(kind)
        self.rewritten[action] = self.rewritten.get(action, 0) + 1
        if action == "redact":
            return f"[{kind}]"
        key = (kind, value.strip())
        placeholder = self._by_value.get(key)
        if placeholder is None:
            n = self._counts.get(kind, 0) + 1
            self._counts[kind] = n
            placeholder = f"[{kind}_{n}]"
            self._by_value[key] = placeholder
            self.mapping[placeholder] = value
        return placeholder
