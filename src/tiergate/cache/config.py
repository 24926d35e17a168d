"""The response cache's configuration (`cache:` in tiergate.yaml).

Off by default, like the peers' caches (LiteLLM `cache: true`, Portkey/Helicone per-request
configuration): a gateway that silently answers from storage changes what clients get (a
temperature-0 "what time is it", an agent step whose tool has side effects) and keeps answers on
disk or in Redis, which a privacy-first gateway must not start doing unasked. Once enabled, only
answers that can be reused are stored: temperature 0 (unless `cache_nonzero_temperature`), not
PRIVATE (unless `private`), per tenant and privacy level.

This module imports nothing from `tiergate.config` (which embeds `CacheConfig` in `Settings`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SemanticConfig(_Frozen):
    """Reuse of an answer for a paraphrase of the question (see `tiergate.cache.semantic`)."""

    # Model groups whose cacheable requests all use the semantic cache; in other groups only
    # requests that opt in (`x-tiergate-cache: semantic`) do, when `allow_opt_in`.
    enabled_groups: tuple[str, ...] = ()
    allow_opt_in: bool = True
    # Cosine similarity of the two questions' embeddings at or above which an answer is reused.
    threshold: float = Field(0.92, gt=0, le=1)
    # "local": all-MiniLM-L6-v2 in this process (the `tiergate[semantic]` extra, no network); any
    # other value names the embeddings model group whose deployment the gateway calls.
    embedder: str = Field("local", min_length=1)
    model_path: str | None = None  # a sentence-transformers directory instead of the bundled model
    # Tokens of the question the local model embeds; any text past them must match exactly for a
    # hit. 64 tokens (about 45 English words) hold a whole question and keep a lookup under 15 ms
    # on a 2-core CPU; 128 (the model's training length) costs about 4 ms more per lookup.
    max_tokens: int = Field(64, ge=16, le=256)
    # bf16 matrix products where the CPU has them natively (avx512_bf16/amx), else fp32.
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    threads: int | None = Field(None, ge=1, le=256)  # torch threads (None: torch's default)
    # Besides numbers and detected entities (always), require the same proper nouns and the same
    # presence of a negation in both questions.
    strict_guard: bool = True
    # Entries per (partition, model group) index, oldest dropped first.
    max_index_entries: int = Field(100_000, ge=1)
    # Up to this many entries a context's vectors are searched exactly (one matrix product);
    # beyond it through an HNSW index (usearch).
    exact_search_limit: int = Field(4096, ge=1)
    # How often a process pulls the vectors other processes stored (Redis, SQLite backends).
    refresh_s: float = Field(1.0, ge=0)
    # A semantic lookup (embedding included) that takes longer is abandoned: a miss.
    timeout_ms: float = Field(250.0, gt=0)


class CacheConfig(_Frozen):
    """Exact (and optionally semantic) response caching, partitioned by tenant and privacy level."""

    enabled: bool = False
    backend: Literal["memory", "sqlite", "redis"] = "memory"
    sqlite_path: str = "data/tiergate-cache.db"  # its own file, not the request-log database
    # Entries in the whole backend (all partitions), least recently used dropped first.
    max_entries: int = Field(10_000, ge=1)
    max_entry_bytes: int = Field(1_048_576, ge=1)  # larger answers are not stored
    ttl_s: float = Field(3600.0, gt=0)
    group_ttl_s: dict[str, float] = Field(default_factory=dict)  # model group -> seconds
    # The tenant of a partition: the request's team (keys without a team: the key), or the key.
    partition_by: Literal["team", "key"] = "team"
    cache_nonzero_temperature: bool = False
    # PRIVATE answers are stored only with this set; they stay in PRIVATE partitions, which only
    # PRIVATE requests (answered by local deployments) read.
    private: bool = False
    semantic: SemanticConfig = SemanticConfig()

    @field_validator("group_ttl_s")
    @classmethod
    def _positive_ttls(cls, v: dict[str, float]) -> dict[str, float]:
        bad = sorted(g for g, s in v.items() if not s > 0)
        if bad:
            raise ValueError(f"TTLs must be > 0 seconds (groups: {', '.join(bad)})")
        return v

    @model_validator(mode="after")
    def _sqlite_path(self) -> CacheConfig:
        if self.backend == "sqlite" and not self.sqlite_path.strip():
            raise ValueError("backend sqlite needs sqlite_path")
        return self

    def ttl_for(self, group: str) -> float:
        return self.group_ttl_s.get(group, self.ttl_s)
