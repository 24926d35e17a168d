"""The detector held to issue 4's quality targets on the labelled evaluation set
(tests/privacy/data/pii_eval.jsonl: 741 texts in English, Azerbaijani, Russian and Turkish, a
third of them hard negatives; built independently of the detector). The set is split by id into
a DEV half (the only texts looked at while tuning the detector) and a TEST half (never looked at);
the targets must hold on the held-out TEST half and on the whole set."""

from __future__ import annotations

import zlib
from pathlib import Path

import pytest

from tiergate.privacy.detector import default_detector
from tiergate.privacy.entities import ENTITY_TYPES, STRUCTURED_TYPES
from tiergate.privacy.evaluate import Report, Sample, load_dataset, score

SET = Path(__file__).parent / "data" / "pii_eval.jsonl"


def _half(name: str) -> list[Sample]:
    samples = load_dataset(SET)
    if name == "full":
        return samples
    want = 0 if name == "dev" else 1
    return [s for s in samples if zlib.crc32(s.id.encode()) % 2 == want]


@pytest.fixture(scope="module", params=["test", "full"])
def report(request: pytest.FixtureRequest) -> Report:
    return score(_half(request.param), default_detector().scan)


def test_structured_identifiers_each_reach_097_precision_and_recall(report: Report) -> None:
    weak = {
        t: (report.per_type[t].precision, report.per_type[t].recall)
        for t in STRUCTURED_TYPES
        if t in report.per_type
        and ((report.per_type[t].precision or 0) < 0.97 or (report.per_type[t].recall or 0) < 0.97)
    }
    assert not weak, f"below 0.97 precision/recall: {weak}"


@pytest.mark.parametrize("kind", ["PERSON", "ADDRESS", "DATE_OF_BIRTH"])
def test_contextual_types_reach_085_f1(report: Report, kind: str) -> None:
    assert (report.per_type[kind].f1 or 0) >= 0.85, report.per_type[kind].to_dict()


def test_leak_rate_at_most_3_percent(report: Report) -> None:
    assert (report.leak_rate or 0) <= 0.03, f"leaking texts: {report.leaked_ids[:20]}"


def test_every_type_is_evaluated(report: Report) -> None:
    assert set(ENTITY_TYPES) <= set(report.per_type)
