"""`tiergate cache stats|clear` (the Typer sub-app the main CLI registers)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import tiergate.cache.cli as cache_cli
from tiergate.cache import ResponseCache
from tiergate.cache.keys import partition

from .conftest import COST, answer, chat, config

PUB = partition("team:a", "PUBLIC")
OTHER = partition("team:b", "PUBLIC")


@pytest.fixture
def sqlite_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TIERGATE_CONFIG", raising=False)
    path = tmp_path / "cache.db"
    cfg = config(backend="sqlite", sqlite_path=str(path))
    monkeypatch.setattr(cache_cli, "_cache_config", lambda settings: cfg)

    async def fill() -> None:
        cache = ResponseCache.from_settings(cfg, None)
        await cache.store("faq", PUB, chat("q1"), answer(), COST)
        await cache.store("faq", PUB, chat("q2"), answer(), COST)
        await cache.store("faq", OTHER, chat("q1"), answer(), COST)
        await cache.lookup("faq", PUB, chat("q1"))
        await cache.close()

    asyncio.run(fill())
    return path


def test_stats_and_clear(sqlite_config: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cache_cli.cache_app, ["stats", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["backend"] == "sqlite" and data["totals"]["entries"] == 3 and data["totals"]["hits"] == 1
    table = runner.invoke(cache_cli.cache_app, ["stats"], env={"COLUMNS": "200"})
    assert table.exit_code == 0 and "team:a|PUBLIC" in table.output and "total" in table.output

    result = runner.invoke(cache_cli.cache_app, ["clear", "--partition", PUB])
    assert result.exit_code == 0 and "deleted 2" in result.output
    data = json.loads(runner.invoke(cache_cli.cache_app, ["stats", "--json", "--partition", OTHER]).output)
    assert data["totals"]["entries"] == 1
    result = runner.invoke(cache_cli.cache_app, ["clear", "--json"])
    assert result.exit_code == 0 and json.loads(result.output)["deleted"] == 1


def test_memory_backend_points_to_the_admin_api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TIERGATE_CONFIG", raising=False)
    result = CliRunner().invoke(cache_cli.cache_app, ["stats"])
    assert result.exit_code == 1
    assert "admin" in result.output.lower() or "admin" in (result.stderr if hasattr(result, "stderr") else "")
