"""The detector's vocabulary: entity types and the spans it returns.

Offsets are Python string offsets (code points), `end` exclusive, so `text[e.start:e.end]` is the
detected value. `reason` says why a span matched (pattern, validator, context word) for
`tiergate privacy scan --explain` and `x-tiergate-explain`; it never contains the value itself.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Every built-in entity type, with exactly these names.
ENTITY_TYPES: tuple[str, ...] = (
    "EMAIL",
    "PHONE",
    "CREDIT_CARD",
    "IBAN",
    "IP_ADDRESS",
    "PERSON",
    "ADDRESS",
    "DATE_OF_BIRTH",
    "AZ_FIN",
    "AZ_VOEN",
    "AZ_ID_CARD",
    "PASSPORT",
    "US_SSN",
    "TR_TCKN",
    "RU_INN",
    "RU_SNILS",
    "SECRET",
)

#: Types whose recall/precision the evaluation holds to the structured-identifier targets.
STRUCTURED_TYPES: frozenset[str] = frozenset(ENTITY_TYPES) - {"PERSON", "ADDRESS", "DATE_OF_BIRTH"}


@dataclass(frozen=True, slots=True)
class Entity:
    type: str
    start: int
    end: int
    score: float
    reason: str = ""

    def to_dict(self) -> dict[str, object]:
        return {"type": self.type, "start": self.start, "end": self.end, "score": round(self.score, 3)}
