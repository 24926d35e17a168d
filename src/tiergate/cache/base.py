"""What every cache backend stores and answers: entries, semantic records and statistics.

A backend keeps answers by (partition, exact key) with an expiry, counts hits/misses/saved cost
per partition, and keeps the semantic cache's vectors so that other processes can load them
(`sem_since`, incrementally by cursor). Backends raise on failure; `ResponseCache` turns every
failure into a miss plus a counted error, so a backend never fails a request.

Money is counted in integer nano-dollars (as the budget counters do).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal, Protocol

NANO_PER_USD = 1_000_000_000

StatField = Literal["hits", "semantic_hits", "misses"]


def to_nano(usd: Decimal | float | int) -> int:
    return int((Decimal(str(usd)) * NANO_PER_USD).to_integral_value())


def to_usd(nano: int) -> Decimal:
    return Decimal(nano) / NANO_PER_USD


@dataclass(slots=True)
class Entry:
    """One cached answer: the response body as the upstream's answer was sent to the client."""

    response: bytes
    group: str
    created_at: float
    expires_at: float
    cost_nano: int  # what producing the answer cost: what a hit saves


@dataclass(slots=True)
class SemRecord:
    """A semantic-cache vector: it points at the exact entry `key` of the same partition."""

    key: str
    bucket: str  # hash of the request's context and the question's guard (numbers, entities...)
    tail: str  # hash of what the embedding did not see of the question ("" if nothing)
    vector: bytes  # float16, L2-normalised
    expires_at: float


@dataclass(slots=True)
class PartitionStats:
    partition: str
    entries: int = 0
    hits: int = 0
    semantic_hits: int = 0
    misses: int = 0
    stores: int = 0
    saved_nano: int = 0

    @property
    def saved_usd(self) -> Decimal:
        return to_usd(self.saved_nano)

    @property
    def lookups(self) -> int:
        return self.hits + self.semantic_hits + self.misses

    def add(self, other: PartitionStats) -> None:
        self.entries += other.entries
        self.hits += other.hits
        self.semantic_hits += other.semantic_hits
        self.misses += other.misses
        self.stores += other.stores
        self.saved_nano += other.saved_nano

    def to_dict(self) -> dict[str, object]:
        lookups = self.lookups
        return {
            "partition": self.partition,
            "entries": self.entries,
            "hits": self.hits,
            "semantic_hits": self.semantic_hits,
            "misses": self.misses,
            "stores": self.stores,
            "hit_rate": round((self.hits + self.semantic_hits) / lookups, 4) if lookups else None,
            "saved_usd": str(self.saved_usd.normalize()) if self.saved_nano else "0",
        }


@dataclass(slots=True)
class CacheStats:
    backend: str
    partitions: list[PartitionStats] = field(default_factory=list)
    errors: int = 0  # backend failures seen by this process (each served as a miss)
    semantic_index_entries: int = 0  # vectors in this process's indexes
    unavailable: str | None = None  # why the backend's statistics could not be read

    def totals(self) -> PartitionStats:
        total = PartitionStats("*")
        for p in self.partitions:
            total.add(p)
        return total

    def to_dict(self) -> dict[str, object]:
        return {
            "backend": self.backend,
            "errors": self.errors,
            "semantic_index_entries": self.semantic_index_entries,
            "unavailable": self.unavailable,
            "totals": self.totals().to_dict(),
            "partitions": [p.to_dict() for p in sorted(self.partitions, key=lambda p: p.partition)],
        }


class Backend(Protocol):
    """Storage of answers and semantic records. Methods raise on failure (see module docstring)."""

    name: str
    # Whether `sem_since` returns records other processes stored (SQLite file, Redis).
    shares_semantic: bool

    async def get(self, partition: str, key: str, now: float, *, count: bool = True) -> Entry | None:
        """The live entry or None; with `count`, a hit (and its saved cost) or a miss is counted
        and a hit refreshes the entry's place in the LRU order."""
        ...

    async def put(self, partition: str, key: str, entry: Entry, now: float) -> None:
        """Store (or replace) an entry; it expires at `entry.expires_at`. Evicts the least
        recently used entries beyond the backend's bound."""
        ...

    async def record(self, partition: str, what: StatField, saved_nano: int = 0) -> None:
        """Count a lookup outcome decided outside `get` (semantic hits, misses after both)."""
        ...

    async def sem_add(self, partition: str, space: str, rec: SemRecord) -> None:
        ...

    async def sem_since(self, partition: str, space: str, cursor: str, now: float) -> tuple[list[SemRecord], str]:
        """Unexpired records of (partition, space) stored after `cursor` ("" for all), and the
        cursor to pass next time."""
        ...

    async def stats(self, partition: str | None, now: float) -> list[PartitionStats]:
        ...

    async def clear(self, partition: str | None) -> int:
        """Delete the entries (and semantic records) of one partition or all; returns how many
        entries were deleted. Counters are kept."""
        ...

    async def close(self) -> None:
        ...
