"""Exact keys (what changes them and what does not), partitions, and the cacheability rules."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tiergate.cache.keys import (
    cacheable,
    canonical,
    exact_key,
    last_user_text,
    partition,
    partition_level,
    plan,
    semantic_parts,
    tenant,
)
from tiergate.privacy.levels import PrivacyLevel

from .conftest import chat, config


def key(body: dict[str, Any], group: str = "faq") -> str:
    return exact_key(group, body)


BASE = chat("Hello there")


@pytest.mark.parametrize(
    "change",
    [
        {"user": "someone-else"},
        {"metadata": {"privacy": "PUBLIC", "trace": "x"}},
        {"stream": True},
        {"stream_options": {"include_usage": True}},
        {"store": True},
        {"service_tier": "flex"},
        {"prompt_cache_key": "abc"},
        {"safety_identifier": "u-1"},
        {"model": "faq-alias"},
        {"temperature": 0.0},
        {"n": 1},
        {"top_p": 1},
        {"top_p": 1.0},
        {"presence_penalty": 0},
        {"frequency_penalty": 0.0},
        {"logprobs": False},
        {"stop": []},
        {"logit_bias": {}},
        {"tools": []},
        {"tool_choice": "none"},
        {"parallel_tool_calls": True},
        {"seed": None},
        {"max_tokens": None},
    ],
)
def test_key_ignores_what_does_not_change_the_answer(change: dict[str, Any]) -> None:
    assert key({**BASE, **change}) == key(BASE)


@pytest.mark.parametrize(
    "change",
    [
        {"temperature": 0.5},
        {"top_p": 0.9},
        {"max_tokens": 10},
        {"max_completion_tokens": 10},
        {"stop": ["\n"]},
        {"seed": 7},
        {"n": 2},
        {"presence_penalty": 0.5},
        {"frequency_penalty": 0.1},
        {"logit_bias": {"50256": -100}},
        {"logprobs": True},
        {"top_logprobs": 3},
        {"reasoning_effort": "low"},
        {"response_format": {"type": "json_object"}},
        {"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]},
        {"tool_choice": "required"},
        {"parallel_tool_calls": False},
        {"some_future_parameter": 1},
    ],
)
def test_key_changes_with_what_changes_the_answer(change: dict[str, Any]) -> None:
    assert key({**BASE, **change}) != key(BASE)


def test_key_changes_with_messages_and_group() -> None:
    assert key(chat("Hello there!")) != key(BASE)
    assert key(BASE, "other-group") != key(BASE)
    sys_changed = copy.deepcopy(BASE)
    sys_changed["messages"][0]["content"] = "You are terse."
    assert key(sys_changed) != key(BASE)
    named = copy.deepcopy(BASE)
    named["messages"][1]["name"] = "alice"
    assert key(named) != key(BASE)
    developer = copy.deepcopy(BASE)
    developer["messages"][0]["role"] = "developer"
    assert key(developer) != key(BASE)


def test_equivalent_spellings_share_a_key() -> None:
    parts = copy.deepcopy(BASE)
    parts["messages"][1]["content"] = [{"type": "text", "text": "Hello there"}]
    assert key(parts) == key(BASE)
    assert key({**BASE, "stop": "\n"}) == key({**BASE, "stop": ["\n"]})
    assert key({**BASE, "max_tokens": 50}) == key({**BASE, "max_completion_tokens": 50})
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    assert key({**BASE, "tools": tools, "tool_choice": "auto"}) == key({**BASE, "tools": tools})
    nulls = copy.deepcopy(BASE)
    nulls["messages"][1]["name"] = None
    assert key(nulls) == key(BASE)


def test_tool_call_ids_do_not_change_the_key_but_their_links_do() -> None:
    def convo(call_id: str, result_id: str, args: str = '{"city":"Paris"}') -> dict[str, Any]:
        return chat(
            "x",
            messages=[
                {"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "content": None, "tool_calls": [
                    {"id": call_id, "type": "function", "function": {"name": "weather", "arguments": args}}]},
                {"role": "tool", "tool_call_id": result_id, "content": "21C"},
            ],
        )

    assert key(convo("call_A1", "call_A1")) == key(convo("call_zz9", "call_zz9"))
    assert key(convo("call_A1", "call_A1")) != key(convo("call_A1", "call_other"))
    assert key(convo("call_A1", "call_A1")) != key(convo("call_A1", "call_A1", '{"city":"Rome"}'))


def test_nested_key_order_is_kept() -> None:
    """A JSON schema's property order is the order the model writes them: not normalised away."""
    schema_ab = {"type": "json_schema", "json_schema": {"name": "s", "schema": {"properties": {"a": {}, "b": {}}}}}
    schema_ba = {"type": "json_schema", "json_schema": {"name": "s", "schema": {"properties": {"b": {}, "a": {}}}}}
    assert key({**BASE, "response_format": schema_ab}) != key({**BASE, "response_format": schema_ba})
    # ...while top-level field order does not matter.
    reordered = dict(reversed(list(BASE.items())))
    assert key(reordered) == key(BASE)


def test_key_is_hex_sha256_and_canonical_has_the_group() -> None:
    k = key(BASE)
    assert len(k) == 64 and int(k, 16) >= 0
    c = canonical("faq", {**BASE, "model": "alias"})
    assert c["model"] == "faq" and "user" not in c


def test_embeddings_bodies_have_keys() -> None:
    e = {"model": "emb", "input": ["a", "b"]}
    assert exact_key("emb", e) != exact_key("emb", {**e, "input": ["a", "c"]})
    assert exact_key("emb", e) != exact_key("emb", {**e, "dimensions": 256})
    assert exact_key("emb", e) == exact_key("emb", {**e, "user": "x"})


# ---------------------------------------------------------------------------- partitions


def test_partition_names() -> None:
    assert partition("team:research", "PUBLIC") == "team:research|PUBLIC"
    assert partition("key:key_1", PrivacyLevel.SENSITIVE) == "key:key_1|SENSITIVE"
    assert partition(None, "public") == "-|PUBLIC"
    assert partition("team:a|b", "PRIVATE") == "team:a%7Cb|PRIVATE"
    assert partition("team:research", "PUBLIC") != partition("team:research", "SENSITIVE")
    assert partition_level("team:research|SENSITIVE") is PrivacyLevel.SENSITIVE
    with pytest.raises(ValueError):
        partition("t", "TOP-SECRET")


def test_tenant() -> None:
    assert tenant("team", "key_1", "research") == "team:research"
    assert tenant("team", "key_1", None) == "key:key_1"
    assert tenant("key", "key_1", "research") == "key:key_1"
    assert tenant("team", None, None) is None


# ---------------------------------------------------------------------------- rules


def test_rules_temperature() -> None:
    cfg = config()
    assert cacheable(chat(), "PUBLIC", cfg) == (True, "")
    ok, why = cacheable(chat(temperature=0.7), "PUBLIC", cfg)
    assert not ok and "temperature" in why
    no_temp = chat()
    del no_temp["temperature"]
    assert not cacheable(no_temp, "PUBLIC", cfg)[0]  # absent = the provider default, 1
    assert cacheable(chat(temperature=0.7), "PUBLIC", config(cache_nonzero_temperature=True))[0]
    assert cacheable({"model": "emb", "input": "x"}, "PUBLIC", cfg, kind="embeddings")[0]


def test_rules_private_and_disabled() -> None:
    assert not cacheable(chat(), "PRIVATE", config())[0]
    assert cacheable(chat(), "PRIVATE", config(private=True))[0]
    assert cacheable(chat(), "SENSITIVE", config())[0]
    ok, why = cacheable(chat(), "PUBLIC", config().model_copy(update={"enabled": False}))
    assert not ok and why == "cache disabled"


def test_rules_request_headers() -> None:
    cfg = config()
    p = plan(cfg, chat(), "PUBLIC", {"x-tiergate-cache": "bypass"})
    assert (p.lookup, p.store, p.status) == (False, False, "bypass")
    p = plan(cfg, chat(), "PUBLIC", {"X-Tiergate-Cache": "refresh"})
    assert (p.lookup, p.store, p.status) == (False, True, "bypass")
    p = plan(cfg, chat(), "PUBLIC", {"Cache-Control": "no-cache"})
    assert (p.lookup, p.store) == (False, True)
    p = plan(cfg, chat(), "PUBLIC", {"cache-control": "max-age=0"})
    assert (p.lookup, p.store) == (False, True)
    p = plan(cfg, chat(), "PUBLIC", {"Cache-Control": "no-store"})
    assert (p.lookup, p.store) == (True, False)
    p = plan(cfg, chat(), "PUBLIC", {"x-tiergate-cache": "semantic"})
    assert (p.lookup, p.store, p.semantic, p.status) == (True, True, True, "")
    assert plan(cfg, chat(), "PUBLIC", {"x-tiergate-cache": "exact"}).semantic is False
    assert plan(cfg, chat(), "PUBLIC", {}).semantic is None
    assert cacheable(chat(), "PUBLIC", cfg, {"x-tiergate-cache": "bypass"})[0] is False


def test_rules_with_case_insensitive_multidict() -> None:
    from multidict import CIMultiDict

    p = plan(config(), chat(), "PUBLIC", CIMultiDict({"CACHE-CONTROL": "No-Cache"}))
    assert not p.lookup and p.store


# ---------------------------------------------------------------------------- semantic parts


def test_semantic_parts_compare_only_the_last_user_question() -> None:
    a = semantic_parts("faq", chat("How do I reset my password?"))
    b = semantic_parts("faq", chat("How can I reset my password?"))
    assert a is not None and b is not None
    assert a[0] == "How do I reset my password?"
    assert a[1] == b[1]  # same context
    other_system = chat("How can I reset my password?")
    other_system["messages"][0]["content"] = "Answer in French."
    c = semantic_parts("faq", other_system)
    assert c is not None and c[1] != a[1]
    assert semantic_parts("faq", chat("x", max_tokens=5))[1] != a[1]  # type: ignore[index]
    assert semantic_parts("other", chat("How do I reset my password?"))[1] != a[1]  # type: ignore[index]


def test_semantic_parts_none_for_non_questions() -> None:
    tool_last = chat("x")
    tool_last["messages"].append({"role": "tool", "tool_call_id": "c", "content": "42"})
    assert semantic_parts("faq", tool_last) is None
    image = chat("x")
    image["messages"][-1]["content"] = [
        {"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": "data:..."}}]
    assert semantic_parts("faq", image) is None
    assert last_user_text({"messages": []}) is None
    parts = chat("x")
    parts["messages"][-1]["content"] = [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
    assert last_user_text(parts) == "a\nb"
