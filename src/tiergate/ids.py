"""Request ids: `req_` + 12 hex digits of Unix milliseconds + 16 random hex digits.

Time-ordered (like UUIDv7/ULID), so ids sort by arrival and the request log's primary-key index
grows at its right edge instead of dirtying a random page per row; 64 random bits keep ids
unguessable and unique across replicas.
"""

from __future__ import annotations

import os
import time


def new_request_id() -> str:
    return f"req_{time.time_ns() // 1_000_000:012x}{os.urandom(8).hex()}"
