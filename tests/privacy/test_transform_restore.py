"""Pseudonymisation and restoration: consistent placeholders across the whole request, restored
answers (also split across streamed chunks, also inside tool-call arguments), and the policy's
level and transform decisions."""

from __future__ import annotations

import re

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tiergate.config.models import PrivacyConfig
from tiergate.privacy.entities import Entity
from tiergate.privacy.levels import PrivacyLevel
from tiergate.privacy.policy import PrivacyEngine
from tiergate.privacy.restoration import StreamRestoration, restore_result
from tiergate.privacy.restore import Restorer, StreamRestorer
from tiergate.providers.canonical import ChunkFactory, completion_result


class RegexDetector:
    """A test double for the detector: a few fixed patterns, so these tests exercise the policy,
    transform and restore code only (the real detector has its own tests)."""

    PATTERNS = {
        "EMAIL": re.compile(r"[\w.]+@[\w.]+\.\w+"),
        "PERSON": re.compile(r"Rəşad Əliyev|Ayşe Yılmaz|Иван Петров"),
        "AZ_FIN": re.compile(r"\b5ZJ8K2L\b"),
        "SECRET": re.compile(r"sk-[A-Za-z0-9]{20,}"),
    }

    def scan(self, text: str) -> list[Entity]:
        found = [Entity(t, m.start(), m.end(), 0.99, "test pattern") for t, p in self.PATTERNS.items() for m in p.finditer(text)]
        return sorted(found, key=lambda e: e.start)


def engine(**cfg: object) -> PrivacyEngine:
    return PrivacyEngine(PrivacyConfig(**cfg), detector=RegexDetector())  # type: ignore[arg-type]


BODY = {
    "model": "m",
    "messages": [
        {"role": "system", "content": "You help Rəşad Əliyev (rashad@bank.az)."},
        {"role": "user", "content": [{"type": "text", "text": "Write to rashad@bank.az and Ayşe Yılmaz."}]},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function", "function": {
            "name": "send", "arguments": orjson.dumps({"to": "rashad@bank.az", "cc": ["Ayşe Yılmaz"]}).decode()}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "sent to Rəşad Əliyev"},
    ],
}


async def test_same_value_same_placeholder_everywhere_and_nothing_left() -> None:
    e = engine()
    insp = await e.inspect(BODY)
    assert insp.level == PrivacyLevel.PUBLIC and insp.transforms == {"pseudonymize"}
    out, restorer, rewritten = e.transform(BODY, insp)
    text = orjson.dumps(out).decode()
    for value in ("Rəşad Əliyev", "rashad@bank.az", "Ayşe Yılmaz"):
        assert value not in text
    assert out["messages"][0]["content"] == "You help [PERSON_1] ([EMAIL_1])."
    assert out["messages"][1]["content"][0]["text"] == "Write to [EMAIL_1] and [PERSON_2]."
    args = orjson.loads(out["messages"][2]["tool_calls"][0]["function"]["arguments"])
    assert args == {"to": "[EMAIL_1]", "cc": ["[PERSON_2]"]}
    assert out["messages"][3]["content"] == "sent to [PERSON_1]"
    assert rewritten == {"pseudonymize": 7}  # 2 + 2 + 2 (tool arguments) + 1
    assert restorer.mapping == {"[PERSON_1]": "Rəşad Əliyev", "[EMAIL_1]": "rashad@bank.az", "[PERSON_2]": "Ayşe Yılmaz"}
    assert BODY["messages"][0]["content"] == "You help Rəşad Əliyev (rashad@bank.az)."  # original untouched


async def test_levels_from_detection_and_blocking() -> None:
    e = engine()
    assert (await e.inspect({"messages": [{"role": "user", "content": "FIN 5ZJ8K2L"}]})).level == PrivacyLevel.SENSITIVE
    secret = await e.inspect({"messages": [{"role": "user", "content": "key sk-abcdefghijklmnopqrstuvwx"}]})
    assert secret.level == PrivacyLevel.PRIVATE and "SECRET" in secret.reason
    blocked = await engine(actions={"AZ_FIN": "block"}).inspect({"messages": [{"role": "user", "content": "5ZJ8K2L"}]})
    assert blocked.blocked == ("AZ_FIN",)
    redact = engine(actions={"EMAIL": "redact"})
    insp = await redact.inspect({"messages": [{"role": "user", "content": "a@b.az then a@b.az"}]})
    out, restorer, _ = redact.transform({"messages": [{"role": "user", "content": "a@b.az then a@b.az"}]}, insp)
    assert out["messages"][0]["content"] == "[EMAIL] then [EMAIL]" and restorer.mapping == {}
    assert engine().applies_to("cloud", insp) and not engine().applies_to("local", insp)


async def test_detector_failure_fails_closed() -> None:
    class Broken:
        def scan(self, text: str) -> list[Entity]:
            raise RuntimeError("regex engine exploded")

    e = PrivacyEngine(PrivacyConfig(), detector=Broken())
    insp = await e.inspect({"messages": [{"role": "user", "content": "anything"}]})
    assert insp.level == PrivacyLevel.PRIVATE and insp.failed and "fail closed" in insp.reason


def test_restore_tolerates_case_and_punctuation_changes() -> None:
    r = Restorer({"[PERSON_1]": "Rəşad", "[EMAIL_1]": "r@x.az", "[DATE_OF_BIRTH_1]": "12.03.1985"})
    got = r.restore("[person_1] <EMAIL_1> (Person 1) PERSON_1, [DATE_OF_BIRTH 1]; PERSON_2 stays; Personal stays")
    assert got == "Rəşad r@x.az Rəşad Rəşad, 12.03.1985; PERSON_2 stays; Personal stays"
    assert r.restore('{"n": "[PERSON_1]"}', lambda v: orjson.dumps(v).decode()[1:-1]) == '{"n": "Rəşad"}'


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=9), min_size=1, max_size=40))
def test_streamed_restoration_equals_whole_restoration(cuts: list[int]) -> None:
    """However the text is split into chunks, the streamed output equals restoring the whole."""
    r = Restorer({"[PERSON_1]": "Rəşad Əliyev", "[EMAIL_12]": "a@b.az", "[PERSON_2]": "Ayşe"})
    text = "Salam [PERSON_1]! Mail [email_12] or <PERSON_2>, PERSON_1 and [PERSON 2]. [PERS] PERSONAL [PERSON_3]"
    pieces, pos = [], 0
    for c in cuts:
        if pos >= len(text):
            break
        pieces.append(text[pos : pos + c])
        pos += c
    pieces.append(text[pos:])
    sr = StreamRestorer(r)
    out = "".join(sr.feed(p) for p in pieces) + sr.flush()
    assert out == r.restore(text)
    assert "Rəşad Əliyev" in out and "a@b.az" in out and "[PERSON_3]" in out


def test_stream_restoration_of_chunks_and_tool_arguments() -> None:
    r = Restorer({"[PERSON_1]": 'Rəşad "R" Əliyev'})
    chunks = ChunkFactory("m")
    events = [chunks.role(), chunks.content("Hi [PERS"), chunks.content("ON_1], ok"), chunks.tool_call_start(0, "c", "f"),
              chunks.tool_call_arguments(0, '{"who": "[PERSON'), chunks.tool_call_arguments(0, '_1]"}'), chunks.finish("stop")]
    out = StreamRestoration(r).batch(events)
    text = "".join(ev.data["choices"][0]["delta"].get("content") or "" for ev in out)
    assert text == 'Hi Rəşad "R" Əliyev, ok'
    args = "".join(tc["function"].get("arguments") or "" for ev in out for tc in ev.data["choices"][0]["delta"].get("tool_calls") or [])
    assert orjson.loads(args) == {"who": 'Rəşad "R" Əliyev'}  # JSON-escaped inside arguments


def test_restore_whole_answer() -> None:
    r = Restorer({"[EMAIL_1]": "a@b.az"})
    result = completion_result(model="m", message={"role": "assistant", "content": "mail [EMAIL_1]", "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": '{"to": "[EMAIL_1]"}'}}]},
        finish_reason="stop", usage=None)
    plain = completion_result(model="m", message={"role": "assistant", "content": "no placeholder here"},
                              finish_reason="stop", usage=None)
    assert restore_result(plain, r) is plain  # nothing to restore: not parsed, not re-serialised
    data = orjson.loads(restore_result(result, r).raw)
    assert data["choices"][0]["message"]["content"] == "mail a@b.az"
    assert orjson.loads(data["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]) == {"to": "a@b.az"}


@pytest.mark.parametrize("actions", [{"NOT_A_TYPE": "redact"}])
def test_config_rejects_unknown_entity_types(actions: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="unknown entity types"):
        PrivacyConfig(actions=actions)  # type: ignore[arg-type]
