"""Request ids: `req_` + 12 hex digits of Unix milliseconds + 16 random hex digits.

Time-ordered (like UUIDv7/ULID), so ids sort by arrival and the request log's primary-key index
grows at its right edge instead of dirtying a random page per row; 64 random bits keep ids
unique across replicas. Ids are identifiers, not secrets: the bits come from a PRNG seeded by the
OS once per process (and again in each forked worker), since a syscall per id showed in profiles.
"""

from __future__ import annotations

import os
import random
import time

_rand = random.Random()
os.register_at_fork(after_in_child=_rand.seed)


def new_request_id() -> str:
    return f"req_{time.time_ns() // 1_000_000:012x}{_rand.getrandbits(64):016x}"
