"""Score a PII detector against a labelled set (`tests/privacy/data/pii_eval.jsonl`).

    python -m tiergate.privacy.evaluate tests/privacy/data/pii_eval.jsonl [--json]

Matching. A predicted span matches a gold span of the same type when their overlap is at least
50 % of the longer of the two: boundary slips (a trailing period, a `+` left out, a patronymic cut
off) still count, a span twice too long or a fragment does not. Matching is one-to-one per text
and type, largest overlaps first; unmatched predictions are false positives, unmatched gold spans
false negatives. Precision, recall and F1 are per type, then micro-averaged (counts summed) over
the structured identifiers (`STRUCTURED_TYPES`), over the context types (PERSON, ADDRESS,
DATE_OF_BIRTH), and over all.

Leak rate. What matters for privacy is whether a value would leave unprotected, not whether it
was given the right type: a card number redacted as a phone number is still redacted. So a gold
entity is *covered* when the union of ALL predicted spans, of any type, covers at least 50 % of
its characters, and the leak rate is the share of texts holding at least one gold entity that
have at least one uncovered entity. A type confusion therefore costs precision and recall but
not leak rate. (`entity_leak_rate` is the same per entity.)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tiergate.privacy.entities import ENTITY_TYPES, STRUCTURED_TYPES, Entity

CONTEXT_TYPES: frozenset[str] = frozenset({"PERSON", "ADDRESS", "DATE_OF_BIRTH"})
MIN_OVERLAP = 0.5

Predict = Callable[[str], Sequence[Entity]]


@dataclass(frozen=True, slots=True)
class Span:
    type: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Sample:
    id: str
    lang: str
    domain: str
    text: str
    entities: tuple[Span, ...]


def load_dataset(path: str | Path) -> list[Sample]:
    """Read the JSON-lines set; blank lines are skipped."""
    samples = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            row = json.loads(line)
            spans = tuple(Span(e["type"], e["start"], e["end"]) for e in row.get("entities", ()))
            samples.append(Sample(row["id"], row.get("lang", ""), row.get("domain", ""), row["text"], spans))
    return samples


# --------------------------------------------------------------------------------------------
# Counting
# --------------------------------------------------------------------------------------------


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


@dataclass(slots=True)
class Counts:
    """TP/FP/FN of one type (or a micro average); None where a ratio has no denominator."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float | None:
        return _ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float | None:
        return _ratio(self.tp, self.tp + self.fn)

    @property
    def f1(self) -> float | None:
        if self.tp + self.fp + self.fn == 0:
            return None
        return 2 * self.tp / (2 * self.tp + self.fp + self.fn)

    def add(self, other: Counts) -> None:
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn

    def to_dict(self) -> dict[str, object]:
        def r(x: float | None) -> float | None:
            return None if x is None else round(x, 4)

        return {"tp": self.tp, "fp": self.fp, "fn": self.fn, "precision": r(self.precision),
                "recall": r(self.recall), "f1": r(self.f1)}


def overlap(a_start: int, a_end: int, b_start: int, b_end: int) -> int:
    return max(0, min(a_end, b_end) - max(a_start, b_start))


def spans_match(pred: Span | Entity, gold: Span | Entity) -> bool:
    """Same type and an overlap of at least half of the longer span."""
    if pred.type != gold.type:
        return False
    longer = max(pred.end - pred.start, gold.end - gold.start)
    return longer > 0 and overlap(pred.start, pred.end, gold.start, gold.end) >= MIN_OVERLAP * longer


def match_counts(gold: Iterable[Span], predicted: Iterable[Span | Entity]) -> dict[str, Counts]:
    """Per-type counts for one text: one-to-one matching, largest overlaps first."""
    gold, predicted = list(gold), list(predicted)
    pairs = [
        (overlap(p.start, p.end, g.start, g.end), pi, gi)
        for pi, p in enumerate(predicted)
        for gi, g in enumerate(gold)
        if spans_match(p, g)
    ]
    used_p: set[int] = set()
    used_g: set[int] = set()
    for _ov, pi, gi in sorted(pairs, key=lambda t: (-t[0], t[1], t[2])):
        if pi not in used_p and gi not in used_g:
            used_p.add(pi)
            used_g.add(gi)
    counts: dict[str, Counts] = {}
    for gi, g in enumerate(gold):
        c = counts.setdefault(g.type, Counts())
        if gi in used_g:
            c.tp += 1
        else:
            c.fn += 1
    for pi, p in enumerate(predicted):
        if pi not in used_p:
            counts.setdefault(p.type, Counts()).fp += 1
    return counts


def covered(gold: Span, predicted: Iterable[Span | Entity]) -> bool:
    """Whether predicted spans of any type, together, cover ≥ 50 % of the gold span's characters."""
    length = gold.end - gold.start
    if length <= 0:
        return True
    hit = bytearray(length)
    for p in predicted:
        for i in range(max(p.start, gold.start), min(p.end, gold.end)):
            hit[i - gold.start] = 1
    return sum(hit) >= MIN_OVERLAP * length


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def _micro(per_type: dict[str, Counts], types: Iterable[str]) -> Counts:
    total = Counts()
    for t in types:
        if t in per_type:
            total.add(per_type[t])
    return total


def _fmt(x: float | None) -> str:
    return "—" if x is None else f"{x:.3f}"


@dataclass(slots=True)
class Report:
    per_type: dict[str, Counts]
    n_texts: int
    texts_with_entities: int
    leaked_texts: int
    gold_entities: int
    leaked_entities: int
    seconds: float
    by_lang: dict[str, dict[str, object]] = field(default_factory=dict)
    leaked_ids: list[str] = field(default_factory=list)

    @property
    def structured(self) -> Counts:
        return _micro(self.per_type, sorted(STRUCTURED_TYPES))

    @property
    def contextual(self) -> Counts:
        return _micro(self.per_type, sorted(CONTEXT_TYPES))

    @property
    def overall(self) -> Counts:
        return _micro(self.per_type, ENTITY_TYPES)

    @property
    def leak_rate(self) -> float | None:
        return _ratio(self.leaked_texts, self.texts_with_entities)

    @property
    def entity_leak_rate(self) -> float | None:
        return _ratio(self.leaked_entities, self.gold_entities)

    @property
    def texts_per_second(self) -> float | None:
        return self.n_texts / self.seconds if self.seconds > 0 else None

    def to_dict(self) -> dict[str, object]:
        extra = sorted(t for t in self.per_type if t not in ENTITY_TYPES)
        return {
            "n_texts": self.n_texts,
            "texts_with_entities": self.texts_with_entities,
            "gold_entities": self.gold_entities,
            "leaked_texts": self.leaked_texts,
            "leak_rate": None if self.leak_rate is None else round(self.leak_rate, 4),
            "leaked_entities": self.leaked_entities,
            "entity_leak_rate": None if self.entity_leak_rate is None else round(self.entity_leak_rate, 4),
            "seconds": round(self.seconds, 4),
            "texts_per_second": None if self.texts_per_second is None else round(self.texts_per_second, 1),
            "micro": {"structured": self.structured.to_dict(), "person_address_dob": self.contextual.to_dict(),
                      "all": self.overall.to_dict()},
            "per_type": {t: self.per_type.get(t, Counts()).to_dict() for t in (*ENTITY_TYPES, *extra)},
            "by_lang": self.by_lang,
            "leaked_ids": self.leaked_ids,
        }

    def to_markdown(self, title: str = "PII detection") -> str:
        lines = [f"### {title}", "", "| type | TP | FP | FN | precision | recall | F1 |", "|---|---:|---:|---:|---:|---:|---:|"]
        rows = [(t, self.per_type.get(t, Counts())) for t in ENTITY_TYPES]
        rows += [(f"(other: {t})", c) for t, c in sorted(self.per_type.items()) if t not in ENTITY_TYPES]
        rows += [("**micro: structured**", self.structured), ("**micro: PERSON/ADDRESS/DOB**", self.contextual),
                 ("**micro: all**", self.overall)]
        for name, c in rows:
            lines.append(f"| {name} | {c.tp} | {c.fp} | {c.fn} | {_fmt(c.precision)} | {_fmt(c.recall)} | {_fmt(c.f1)} |")
        lines += [
            "",
            f"Leak rate: {_fmt(self.leak_rate)} ({self.leaked_texts} of {self.texts_with_entities} texts with personal "
            f"data keep at least one entity < 50 % covered by any predicted span; per entity "
            f"{_fmt(self.entity_leak_rate)}, {self.leaked_entities} of {self.gold_entities}).",
            f"Texts: {self.n_texts}; time {self.seconds:.3f} s"
            + (f" ({self.texts_per_second:,.0f} texts/s)." if self.texts_per_second else "."),
        ]
        if self.by_lang:
            lines += ["", "| lang | texts | micro P | micro R | micro F1 | leak rate |", "|---|---:|---:|---:|---:|---:|"]
            for lang, d in sorted(self.by_lang.items()):
                m = d["micro"]
                lines.append(f"| {lang} | {d['n_texts']} | {_fmt(m['precision'])} | {_fmt(m['recall'])} | "
                             f"{_fmt(m['f1'])} | {_fmt(d['leak_rate'])} |")
        return "\n".join(lines) + "\n"


@dataclass(slots=True)
class _Tally:
    per_type: dict[str, Counts] = field(default_factory=dict)
    n_texts: int = 0
    with_entities: int = 0
    leaked_texts: int = 0
    gold: int = 0
    leaked: int = 0

    def add(self, sample: Sample, predicted: Sequence[Span | Entity]) -> bool:
        """Count one text; True when it leaks."""
        self.n_texts += 1
        for t, c in match_counts(sample.entities, predicted).items():
            self.per_type.setdefault(t, Counts()).add(c)
        if not sample.entities:
            return False
        self.with_entities += 1
        self.gold += len(sample.entities)
        uncovered = sum(1 for g in sample.entities if not covered(g, predicted))
        self.leaked += uncovered
        self.leaked_texts += bool(uncovered)
        return bool(uncovered)


def score(dataset: Iterable[Sample], predict: Predict) -> Report:
    """Run `predict` on every text and score it; `seconds` is the time spent inside `predict`."""
    total = _Tally()
    langs: dict[str, _Tally] = {}
    leaked_ids: list[str] = []
    seconds = 0.0
    for sample in dataset:
        t0 = time.perf_counter()
        predicted = list(predict(sample.text))
        seconds += time.perf_counter() - t0
        if total.add(sample, predicted):
            leaked_ids.append(sample.id)
        langs.setdefault(sample.lang, _Tally()).add(sample, predicted)
    by_lang = {
        lang: {"n_texts": t.n_texts, "micro": _micro(t.per_type, ENTITY_TYPES).to_dict(),
               "leak_rate": _ratio(t.leaked_texts, t.with_entities)}
        for lang, t in langs.items()
    }
    return Report(total.per_type, total.n_texts, total.with_entities, total.leaked_texts, total.gold,
                  total.leaked, seconds, by_lang, leaked_ids)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tiergate.privacy.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--json", action="store_true", help="print the report as JSON instead of markdown")
    args = parser.parse_args(argv)
    from tiergate.privacy.detector import default_detector  # lazy: the detector is optional here

    report = score(load_dataset(args.dataset), default_detector().scan)
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.to_markdown("tiergate detector"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
