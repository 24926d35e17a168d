"""The evaluation scorer on tiny hand-made cases, and the integrity of the labelled set.

The checksum validators below are written independently of build_eval.py on purpose: they check
the generator's output rather than reuse its code.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from tiergate.privacy.entities import ENTITY_TYPES, Entity
from tiergate.privacy.evaluate import Sample, Span, covered, load_dataset, match_counts, score, spans_match

DATA = Path(__file__).resolve().parent / "data" / "pii_eval.jsonl"


def E(type_: str, start: int, end: int) -> Entity:
    return Entity(type_, start, end, 0.9, "test")


def sample(text: str, *spans: tuple[str, int, int], lang: str = "en", id_: str = "s") -> Sample:
    return Sample(id_, lang, "test", text, tuple(Span(*s) for s in spans))


# --------------------------------------------------------------------------------------------
# Matching
# --------------------------------------------------------------------------------------------


def test_match_needs_same_type_and_half_of_the_longer_span() -> None:
    gold = Span("PHONE", 10, 20)
    assert spans_match(E("PHONE", 10, 20), gold)
    assert spans_match(E("PHONE", 11, 20), gold)  # 9 of 10
    assert spans_match(E("PHONE", 15, 25), gold)  # 5 of 10: exactly half counts
    assert not spans_match(E("PHONE", 16, 25), gold)  # 4 of 10
    assert not spans_match(E("PHONE", 0, 30), gold)  # 10 of the longer 30
    assert not spans_match(E("EMAIL", 10, 20), gold)


def test_one_to_one_matching_and_counts() -> None:
    gold = [Span("PERSON", 0, 10), Span("PERSON", 20, 30), Span("EMAIL", 40, 60)]
    pred = [E("PERSON", 0, 10), E("PERSON", 1, 9), E("PHONE", 40, 60), E("EMAIL", 70, 80)]
    counts = match_counts(gold, pred)
    assert (counts["PERSON"].tp, counts["PERSON"].fp, counts["PERSON"].fn) == (1, 1, 1)
    assert (counts["EMAIL"].tp, counts["EMAIL"].fp, counts["EMAIL"].fn) == (0, 1, 1)
    assert (counts["PHONE"].tp, counts["PHONE"].fp, counts["PHONE"].fn) == (0, 1, 0)


def test_largest_overlap_wins_the_gold_span() -> None:
    # two gold spans, one long prediction overlapping both; it must take the one it overlaps most
    gold = [Span("ADDRESS", 0, 10), Span("ADDRESS", 10, 14)]
    counts = match_counts(gold, [E("ADDRESS", 2, 14)])
    assert (counts["ADDRESS"].tp, counts["ADDRESS"].fp, counts["ADDRESS"].fn) == (1, 0, 1)


def test_coverage_uses_the_union_of_any_type() -> None:
    gold = Span("PERSON", 0, 10)
    assert covered(gold, [E("ADDRESS", 0, 3), E("PHONE", 3, 5)])  # 5 of 10, other types
    assert not covered(gold, [E("PERSON", 0, 4)])
    assert covered(gold, [E("SECRET", 0, 100)])  # a long span protects what it contains


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def test_score_counts_micro_averages_and_leak_rate() -> None:
    data = [
        sample("Card 4111111111111111 here", ("CREDIT_CARD", 5, 21), id_="a"),  # found
        sample("Call Ann at +994501234567", ("PERSON", 5, 8), ("PHONE", 12, 25), id_="b"),  # Ann missed -> leak
        sample("IBAN as phone GB82WEST12345698765432", ("IBAN", 14, 36), id_="c"),  # confusion, no leak
        sample("Order 12345 shipped", id_="d", lang="az"),  # hard negative with a false positive
    ]
    preds = {
        "a": [E("CREDIT_CARD", 5, 21)],
        "b": [E("PHONE", 12, 25)],
        "c": [E("PHONE", 14, 36)],
        "d": [E("PHONE", 6, 11)],
    }
    by_text = {s.text: preds[s.id] for s in data}
    report = score(data, lambda text: by_text[text])

    assert report.per_type["CREDIT_CARD"].tp == 1
    assert (report.per_type["PHONE"].tp, report.per_type["PHONE"].fp) == (1, 2)
    assert report.per_type["PERSON"].fn == 1 and report.per_type["IBAN"].fn == 1
    s = report.structured  # CREDIT_CARD, PHONE, IBAN
    assert (s.tp, s.fp, s.fn) == (2, 2, 1)
    assert report.contextual.recall == 0.0 and report.contextual.precision is None
    assert report.overall.f1 == pytest.approx(2 * 2 / (2 * 2 + 2 + 2))
    assert (report.texts_with_entities, report.leaked_texts, report.leaked_ids) == (3, 1, ["b"])
    assert report.leak_rate == pytest.approx(1 / 3)
    assert report.entity_leak_rate == pytest.approx(1 / 4)
    assert report.by_lang["az"]["n_texts"] == 1 and report.by_lang["az"]["leak_rate"] is None

    d = report.to_dict()
    assert d["per_type"]["PHONE"]["precision"] == pytest.approx(1 / 3, abs=1e-4)
    assert set(ENTITY_TYPES) <= set(d["per_type"])
    json.dumps(d)  # serialisable
    md = report.to_markdown("t")
    assert "| PHONE | 1 | 2 | 0 |" in md and "Leak rate: 0.333" in md


def test_predictions_of_unknown_types_are_reported_apart() -> None:
    data = [sample("x 2024-01-01 y", id_="a")]
    report = score(data, lambda _t: [E("DATE_TIME", 2, 12)])
    assert report.per_type["DATE_TIME"].fp == 1
    assert report.overall.fp == 0  # micro averages only cover ENTITY_TYPES
    assert "(other: DATE_TIME)" in report.to_markdown()


def test_empty_prediction_on_empty_set_is_not_a_division_by_zero() -> None:
    report = score([sample("nothing here")], lambda _t: [])
    assert report.leak_rate is None and report.overall.f1 is None
    assert "—" in report.to_markdown()


# --------------------------------------------------------------------------------------------
# Integrity of the labelled set
# --------------------------------------------------------------------------------------------


def _luhn(number: str) -> bool:
    digits = [int(c) for c in re.sub(r"[ -]", "", number)]
    total = sum(d if i % 2 == 0 else (d * 2 - 9 if d > 4 else d * 2) for i, d in enumerate(reversed(digits)))
    return 13 <= len(digits) <= 19 and total % 10 == 0


def _iban(value: str) -> bool:
    iban = value.replace(" ", "")
    moved = iban[4:] + iban[:4]
    return re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]{10,30}", iban) is not None and int(
        "".join(str(int(c, 36)) for c in moved)
    ) % 97 == 1


def _tckn(value: str) -> bool:
    if not re.fullmatch(r"[1-9]\d{10}", value):
        return False
    d = [int(c) for c in value]
    return (sum(d[0:9:2]) * 7 - sum(d[1:8:2])) % 10 == d[9] and sum(d[:10]) % 10 == d[10]


def _inn(value: str) -> bool:
    def check(digits: str, weights: list[int]) -> int:
        return sum(int(c) * w for c, w in zip(digits, weights)) % 11 % 10

    w12 = [3, 7, 2, 4, 10, 3, 5, 9, 4, 6, 8]
    if re.fullmatch(r"\d{10}", value):
        return check(value, [2, 4, 10, 3, 5, 9, 4, 6, 8]) == int(value[9])
    if re.fullmatch(r"\d{12}", value):
        return check(value, w12[1:]) == int(value[10]) and check(value, w12) == int(value[11])
    return False


def _snils(value: str) -> bool:
    digits = re.sub(r"[ -]", "", value)
    if not re.fullmatch(r"\d{11}", digits):
        return False
    s = sum(int(c) * (9 - i) for i, c in enumerate(digits[:9]))
    expected = s if s < 100 else (0 if s in (100, 101) else s % 101 % 100)
    return expected == int(digits[9:])


VALID = {"CREDIT_CARD": _luhn, "IBAN": _iban, "TR_TCKN": _tckn, "RU_INN": _inn, "RU_SNILS": _snils}


@pytest.fixture(scope="module")
def dataset() -> list[Sample]:
    return load_dataset(DATA)


def test_set_size_languages_and_negatives(dataset: list[Sample]) -> None:
    assert len(dataset) >= 600
    langs = Counter(s.lang for s in dataset)
    assert set(langs) == {"en", "az", "ru", "tr"} and min(langs.values()) >= 120, langs
    assert sum(not s.entities for s in dataset) >= 0.30 * len(dataset)
    assert len({s.id for s in dataset}) == len(dataset)
    assert len({s.text for s in dataset}) == len(dataset)


def test_every_type_is_well_represented(dataset: list[Sample]) -> None:
    types = Counter(e.type for s in dataset for e in s.entities)
    assert set(types) <= set(ENTITY_TYPES)
    missing = {t: types[t] for t in ENTITY_TYPES if types[t] < 15}
    assert not missing, missing


def test_spans_are_exact_and_checksums_valid(dataset: list[Sample]) -> None:
    for s in dataset:
        spans = sorted(s.entities, key=lambda e: e.start)
        for e in spans:
            value = s.text[e.start : e.end]
            assert 0 <= e.start < e.end <= len(s.text), s.id
            assert value and value == value.strip(), (s.id, value)
            check = VALID.get(e.type)
            assert check is None or check(value), (s.id, e.type, value)
        for a, b in zip(spans, spans[1:]):
            assert a.end <= b.start, (s.id, a, b)  # no overlapping gold spans


def test_main_scores_the_default_detector(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys) -> None:
    import types

    from tiergate.privacy import evaluate

    path = tmp_path / "set.jsonl"
    path.write_text(json.dumps({"id": "a", "lang": "en", "domain": "t", "text": "mail a@b.cd now",
                                "entities": [{"type": "EMAIL", "start": 5, "end": 11}]}) + "\n", encoding="utf-8")

    class FakeDetector:
        def scan(self, text: str) -> list[Entity]:
            return [E("EMAIL", text.index("a@"), text.index("a@") + 6)]

    fake = types.ModuleType("tiergate.privacy.detector")
    fake.default_detector = FakeDetector  # type: ignore[attr-defined]
    monkeypatch.setitem(__import__("sys").modules, "tiergate.privacy.detector", fake)
    assert evaluate.main([str(path)]) == 0
    assert "| EMAIL | 1 | 0 | 0 | 1.000 | 1.000 | 1.000 |" in capsys.readouterr().out
    assert evaluate.main([str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["leak_rate"] == 0.0


def test_set_is_what_the_generator_writes() -> None:
    """pii_eval.jsonl is reproducible: a fresh deterministic build gives the same bytes."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_eval", DATA.parent / "build_eval.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.ENTITY_TYPES == ENTITY_TYPES
    assert module.dump(module.build()) == DATA.read_text(encoding="utf-8"), "rerun tests/privacy/data/build_eval.py"
