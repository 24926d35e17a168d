"""Experiments: A/B splits of a model group across deployments (`routing.experiments`).

`assign` draws the arm (a deployment name) that goes first for a request:

* With a sticky id (the API key id or the end user, per `ExperimentConfig.sticky_by`), the id is
  hashed (BLAKE2b, salted with the experiment's model group so one user is not always in the first arm
  of every experiment) to a number u in [0, 1), and u picks the arm whose slice of the
  cumulative weights contains it. The same id gets the same arm on every request, in every
  process and after restarts, as long as the arms and weights are unchanged. (Changing a weight
  moves only the ids near the slice boundaries that shifted.)
* Without one, u comes from `rng.random()`: a fresh weighted draw per request.

Arms are taken in the configuration's order; arms with a weight <= 0 never get traffic.
`order_with_arm` then puts the assigned arm first among the eligible candidates; the others keep
their order as the fallback chain. If the arm is not eligible (privacy, constraints, breaker),
the order is unchanged: experiments never override eligibility.

All synchronous and allocation-light: a hash of a short string and a scan of a few arms.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Protocol, TypeVar

from tiergate.config.models import ExperimentConfig

T = TypeVar("T")

_SCALE = float(1 << 64)


class _Random(Protocol):
    def random(self) -> float: ...


def sticky_fraction(sticky_id: str, salt: str = "") -> float:
    """A uniform, stable number in [0, 1) for an id (first 8 bytes of a salted BLAKE2b)."""
    data = f"{salt}\x00{sticky_id}".encode("utf-8", "surrogatepass")
    digest = hashlib.blake2b(data, digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE


def assign(
    experiment: ExperimentConfig,
    sticky_id: str | None,
    rng: _Random,
    *,
    salt: str = "",
) -> str:
    """The arm (deployment name) to try first for this request; see the module docstring.

    `salt` should be the experiment's model group name.
    Raises ValueError if no arm has a positive weight.
    """
    arms = experiment.arms
    total = 0.0
    for weight in arms.values():
        if weight > 0:
            total += weight
    if total <= 0:
        raise ValueError("experiment has no arm with a positive weight")
    u = sticky_fraction(sticky_id, salt) if sticky_id else rng.random()
    point = u * total
    cumulative = 0.0
    last = ""
    for arm, weight in arms.items():
        if weight <= 0:
            continue
        cumulative += weight
        last = arm
        if point < cumulative:
            return arm
    return last  # u * total rounded up to total: the last positive arm


def sticky_id_for(
    experiment: ExperimentConfig, key_id: str | None, user: str | None
) -> str | None:
    """The id an experiment sticks to: the user (falling back to the key) or the key."""
    if experiment.sticky_by == "user":
        return user or key_id
    return key_id


def order_with_arm(candidates: Sequence[T], arm: str) -> list[T]:
    """`candidates` (Deployments or names) with `arm` moved to the front, others in order."""
    if not candidates:
        return []
    if isinstance(candidates[0], str):
        index = next((i for i, c in enumerate(candidates) if c == arm), -1)
    else:
        index = next((i for i, c in enumerate(candidates) if c.name == arm), -1)  # type: ignore[attr-defined]
    if index <= 0:  # already first, or not eligible: the order stays
        return list(candidates)
    out = [candidates[index]]
    out.extend(candidates[:index])
    out.extend(candidates[index + 1 :])
    return out
