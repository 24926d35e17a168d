"""Shared fixtures. Services (PostgreSQL, Redis) come from environment variables set by .ci/run;
tests that need them skip with the reason when they are not set."""

from __future__ import annotations

import os

import pytest


@pytest.fixture
def postgres_url() -> str:
    url = os.environ.get("TIERGATE_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("TIERGATE_TEST_POSTGRES_URL not set: PostgreSQL tests did not run")
    return url
