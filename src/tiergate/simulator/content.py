"""Deterministic reply content for the simulator.

Owns: reading request messages (text, image parts, fault triggers, echo
marker), the local token estimate (~4 chars per token, no tokenizer), the
deterministic word-list reply generator, tool-call argument synthesis from a
JSON schema, JSON-mode bodies, ``stop`` / ``max_tokens`` cutting and the split
of a reply into stream pieces.  Everything here is pure and cheap: the same
inputs always yield the same output, streaming or not.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson

ECHO_MARKER = "[[echo]]"
FAULT_PREFIX = "[[fault:"
_FAULT_RE = re.compile(r"\[\[fault:([a-z0-9_]+)(?::(\d+(?:\.\d+)?))?\]\]")
# Each piece is optional leading whitespace + up to 16 non-space chars; the
# second branch only matches trailing whitespace.  The pieces concatenate to
# exactly the input string.
_PIECE_RE = re.compile(r"\s*\S{1,16}|\s+")
_ARG_PIECE_CHARS = 8

_WORDS: tuple[str, ...] = (
    "privacy", "gateway", "tier", "local", "model", "sovereign", "cloud", "route",
    "request", "token", "stream", "policy", "secure", "data", "answer", "simulated",
    "upstream", "latency", "budget", "audit", "cache", "fallback", "healthy", "signal",
    "vector", "prompt", "context", "result", "careful", "quick", "steady", "bright",
    "river", "mountain", "garden", "lantern", "harbor", "meadow", "window", "compass",
    "orbit", "tunnel", "summit", "forest", "pixel", "kernel", "socket", "packet",
    "ledger", "anchor", "beacon", "canvas", "delta", "ember", "fabric", "glacier",
    "horizon", "island", "journey", "kettle", "lumen", "marble", "nectar", "opal",
)
_SENTENCE_WORDS = 8


@dataclass(slots=True)
class MessageScan:
    """What the simulator needs to know about a request's ``messages``."""

    prompt_chars: int
    fault: str | None  # e.g. "500" or "slow_first_byte:250"
    last_user_text: str
    last_user_images: int
    last_role: str
    last_text: str


class RequestError(ValueError):
    """A client error that maps to a 400 ``invalid_request_error``."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


def content_text(content: Any) -> tuple[str, int]:
    """Return (text, image count) of a message ``content`` (string or parts)."""
    if isinstance(content, str):
        return content, 0
    if content is None:
        return "", 0
    if not isinstance(content, list):
        raise RequestError("Invalid type for message content.", "messages")
    texts: list[str] = []
    images = 0
    for part in content:
        if not isinstance(part, dict):
            raise RequestError("Invalid content part.", "messages")
        kind = part.get("type")
        if kind == "text":
            texts.append(str(part.get("text", "")))
        elif kind in ("image_url", "input_image", "image"):
            images += 1
    return "\n".join(texts), images


def find_fault(text: str) -> str | None:
    """The first ``[[fault:KIND[:ARG]]]`` trigger in ``text`` as "KIND[:ARG]"."""
    if FAULT_PREFIX not in text:
        return None
    match = _FAULT_RE.search(text)
    if match is None:
        return None
    kind, arg = match.group(1), match.group(2)
    return kind if arg is None else f"{kind}:{arg}"


def scan_messages(messages: Any) -> MessageScan:
    """Single pass over ``messages``; raises :class:`RequestError` if malformed."""
    if not isinstance(messages, list) or not messages:
        raise RequestError("'messages' must be a non-empty array.", "messages")
    chars = 0
    fault: str | None = None
    user_text, user_images = "", 0
    last_role, last_text = "", ""
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict) or not isinstance(msg.get("role"), str):
            raise RequestError(f"Invalid message at messages[{i}].", f"messages.[{i}]")
        text, images = content_text(msg.get("content"))
        chars += len(text)
        if fault is None:
            fault = find_fault(text)
        last_role, last_text = msg["role"], text
        if last_role == "user":
            user_text, user_images = text, images
    return MessageScan(chars, fault, user_text, user_images, last_role, last_text)


def estimate_tokens(n_chars: int) -> int:
    """Local token estimate: ceil(chars / 4), at least 1."""
    return max(1, (n_chars + 3) // 4)


def reply_seed(profile: str, model: str, text: str, choice: int) -> int:
    """Stable 32-bit seed for one choice of a reply."""
    head = f"{profile}\x00{model}\x00{choice}\x00".encode()
    return zlib.crc32(text.encode("utf-8", "surrogatepass"), zlib.crc32(head))


@lru_cache(maxsize=16384)
def generated_text(seed: int, n_words: int) -> str:
    """A few deterministic sentences of ``n_words`` words from a fixed list."""
    x = seed or 0x9E3779B9
    sentences: list[str] = []
    words: list[str] = []
    for i in range(n_words):
        x = (x * 6364136223846793005 + 1442695040888963407) & 0xFFFFFFFFFFFFFFFF
        words.append(_WORDS[(x >> 33) % len(_WORDS)])
        if len(words) == _SENTENCE_WORDS or i == n_words - 1:
            sentences.append(" ".join(words).capitalize() + ".")
            words = []
    return " ".join(sentences)


def base_reply(scan: MessageScan, profile: str, model: str, n_words: int, choice: int) -> str:
    """The unformatted reply text of one choice (before JSON mode / stop / cap)."""
    if scan.last_role == "tool":
        return f"Tool result: {scan.last_text}"
    if ECHO_MARKER in scan.last_user_text:
        return scan.last_user_text.replace(ECHO_MARKER, "")
    text = generated_text(reply_seed(profile, model, scan.last_user_text, choice), n_words)
    if scan.last_user_images:
        noun = "image" if scan.last_user_images == 1 else "images"
        text = f"[{scan.last_user_images} {noun} received] {text}"
    return text


def schema_example(schema: Any, string_value: str = "value", depth: int = 0) -> Any:
    """A deterministic instance of a JSON schema (strings -> ``string_value``,
    numbers -> 1, booleans -> true, objects -> every property)."""
    if not isinstance(schema, dict) or depth > 8:
        return string_value
    if "const" in schema:
        return schema["const"]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    for key in ("anyOf", "oneOf", "allOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            return schema_example(options[0], string_value, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or (kind is None and "properties" in schema):
        props = schema.get("properties") or {}
        names = list(props) + [r for r in schema.get("required") or () if r not in props]
        return {n: schema_example(props.get(n), string_value, depth + 1) for n in names}
    if kind == "array":
        return [schema_example(schema.get("items"), string_value, depth + 1)]
    if kind in _SCALARS:
        return _SCALARS[kind]
    return string_value


_SCALARS: dict[str, Any] = {"integer": 1, "number": 1, "boolean": True, "null": None}


def json_reply(text: str, response_format: Any) -> str | None:
    """JSON-mode content for ``response_format``, or None if not JSON mode."""
    if not isinstance(response_format, dict):
        return None
    kind = response_format.get("type")
    if kind == "json_object":
        return orjson.dumps({"answer": text}).decode()
    if kind == "json_schema":
        spec = response_format.get("json_schema") or {}
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if isinstance(schema, dict) and (schema.get("properties") or schema.get("type") not in (None, "object")):
            return orjson.dumps(schema_example(schema, text)).decode()
        return orjson.dumps({"answer": text}).decode()
    return None


def apply_stop(text: str, stop: Any) -> str:
    """Cut ``text`` at the earliest occurrence of any stop string."""
    if stop is None:
        return text
    stops = [stop] if isinstance(stop, str) else stop
    if not isinstance(stops, list):
        raise RequestError("Invalid type for 'stop'.", "stop")
    cut = len(text)
    for s in stops:
        if not isinstance(s, str):
            raise RequestError("Invalid type for 'stop'.", "stop")
        if s:
            pos = text.find(s, 0, cut + len(s))
            if 0 <= pos < cut:
                cut = pos
    return text[:cut]


def apply_cap(text: str, max_tokens: int | None) -> tuple[str, bool]:
    """Cap ``text`` to ``max_tokens`` estimated tokens; returns (text, was_cut)."""
    if max_tokens is None or len(text) <= max_tokens * 4:
        return text, False
    return text[: max_tokens * 4], True


def select_tool(tools: Any, tool_choice: Any) -> dict[str, Any] | None:
    """The function definition to call, or None when the reply should be text."""
    if not tools or tool_choice == "none":
        return None
    if not isinstance(tools, list):
        raise RequestError("Invalid type for 'tools'.", "tools")
    functions = [t["function"] for t in tools if isinstance(t, dict) and isinstance(t.get("function"), dict)]
    if not functions:
        return None
    if isinstance(tool_choice, dict):
        wanted = (tool_choice.get("function") or {}).get("name")
        for fn in functions:
            if fn.get("name") == wanted:
                return fn
        raise RequestError(f"Tool choice '{wanted}' not found in 'tools' list.", "tool_choice")
    return functions[0]


def tool_arguments(function: dict[str, Any]) -> str:
    """Deterministic JSON ``arguments`` string for a function definition."""
    params = function.get("parameters")
    args = schema_example(params) if isinstance(params, dict) else {}
    if not isinstance(args, dict):
        args = {}
    return orjson.dumps(args).decode()


def tool_call_id(name: str, args: str, choice: int) -> str:
    """Stable, OpenAI-looking tool call id."""
    digest = zlib.crc32("\x00".join((name, args, str(choice))).encode())
    return f"call_sim{digest:08x}"


def stream_pieces(text: str) -> list[str]:
    """Split reply text into stream deltas that concatenate back to ``text``."""
    return _PIECE_RE.findall(text)


def argument_pieces(args: str) -> list[str]:
    """Split tool-call arguments over several deltas."""
    step = _ARG_PIECE_CHARS
    return [args[i : i + step] for i in range(0, len(args), step)] or [""]


def embedding_vector(text: str, dims: int) -> list[float]:
    """A deterministic unit vector for ``text`` (same text, same vector; different texts differ)."""
    seed = zlib.crc32(text.encode("utf-8"))
    values = []
    for i in range(dims):
        seed = (seed * 1103515245 + 12345 + i) & 0x7FFFFFFF
        values.append((seed / 0x7FFFFFFF) * 2.0 - 1.0)
    norm = sum(v * v for v in values) ** 0.5 or 1.0
    return [round(v / norm, 6) for v in values]
