"""Experiments: sticky, weighted arm assignment and the candidate order it produces."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from tiergate.config.models import Deployment, ExperimentConfig
from tiergate.routing.experiments import (
    assign,
    order_with_arm,
    sticky_fraction,
    sticky_id_for,
)

SPLIT = ExperimentConfig(arms={"a": 0.7, "b": 0.2, "c": 0.1})


def test_sticky_ids_are_stable() -> None:
    ids = [f"user-{i}" for i in range(500)]
    first = [assign(SPLIT, i, random.Random(1), salt="chat") for i in ids]
    # Another rng, a rebuilt (equal) config, a later call: same arms.
    same = ExperimentConfig(arms={"a": 0.7, "b": 0.2, "c": 0.1})
    assert [assign(same, i, random.Random(99), salt="chat") for i in ids] == first
    # Weights given on another scale are the same split.
    scaled = ExperimentConfig(arms={"a": 70, "b": 20, "c": 10})
    assert [assign(scaled, i, random.Random(5), salt="chat") for i in ids] == first
    # The fraction is a pure function of (salt, id).
    assert sticky_fraction("user-1", "chat") == sticky_fraction("user-1", "chat")
    assert 0.0 <= sticky_fraction("user-1") < 1.0


def test_weights_respected_over_many_ids() -> None:
    n = 20_000
    counts = Counter(assign(SPLIT, f"key-{i}", random.Random(0), salt="g") for i in range(n))
    for arm, weight in SPLIT.arms.items():
        assert counts[arm] / n == pytest.approx(weight, abs=0.015), (arm, counts)


def test_random_draw_without_sticky_id() -> None:
    rng = random.Random(42)
    n = 20_000
    counts = Counter(assign(SPLIT, None, rng) for _ in range(n))
    for arm, weight in SPLIT.arms.items():
        assert counts[arm] / n == pytest.approx(weight, abs=0.015), (arm, counts)
    assert assign(SPLIT, "", random.Random(0)) in SPLIT.arms  # empty id: random draw


def test_salt_decorrelates_groups() -> None:
    ids = [f"u{i}" for i in range(2000)]
    half = ExperimentConfig(arms={"x": 1, "y": 1})
    one = [assign(half, i, random.Random(0), salt="g1") for i in ids]
    two = [assign(half, i, random.Random(0), salt="g2") for i in ids]
    agree = sum(a == b for a, b in zip(one, two, strict=True)) / len(ids)
    assert 0.45 < agree < 0.55  # independent, not the same split twice


def test_changing_one_weight_moves_few_ids() -> None:
    ids = [f"u{i}" for i in range(5000)]
    before = [assign(ExperimentConfig(arms={"a": 50, "b": 50}), i, random.Random(0)) for i in ids]
    after = [assign(ExperimentConfig(arms={"a": 55, "b": 45}), i, random.Random(0)) for i in ids]
    moved = [(x, y) for x, y in zip(before, after, strict=True) if x != y]
    assert all(m == ("b", "a") for m in moved)  # only b -> a, about 5 %
    assert len(moved) / len(ids) == pytest.approx(0.05, abs=0.015)


def test_zero_weight_arms() -> None:
    exp = ExperimentConfig(arms={"off": 0, "on": 1})
    assert {assign(exp, f"u{i}", random.Random(i)) for i in range(300)} == {"on"}
    assert {assign(exp, None, random.Random(i)) for i in range(300)} == {"on"}
    with pytest.raises(ValueError):
        assign(ExperimentConfig(arms={"a": 0, "b": 0}), "u", random.Random(0))


def test_sticky_id_for() -> None:
    by_user = ExperimentConfig(arms={"a": 1, "b": 1}, sticky_by="user")
    by_key = ExperimentConfig(arms={"a": 1, "b": 1}, sticky_by="key")
    assert sticky_id_for(by_user, "k1", "alice") == "alice"
    assert sticky_id_for(by_user, "k1", None) == "k1"  # no user: stick to the key
    assert sticky_id_for(by_key, "k1", "alice") == "k1"
    assert sticky_id_for(by_key, None, "alice") is None


def _dep(name: str) -> Deployment:
    return Deployment(name=name, model="m", location="local")


def test_order_with_arm_puts_the_arm_first() -> None:
    deps = [_dep("x"), _dep("y"), _dep("z")]
    assert [d.name for d in order_with_arm(deps, "z")] == ["z", "x", "y"]
    assert [d.name for d in order_with_arm(deps, "y")] == ["y", "x", "z"]
    assert [d.name for d in order_with_arm(deps, "x")] == ["x", "y", "z"]
    assert [d.name for d in order_with_arm(deps, "gone")] == ["x", "y", "z"]  # not eligible
    assert order_with_arm(["x", "y", "z"], "y") == ["y", "x", "z"]
    assert order_with_arm([], "x") == []
    original = ["x", "y"]
    order_with_arm(original, "y")
    assert original == ["x", "y"]  # a new list; the input is untouched
