"""`tiergate cache stats|clear`: the cache's statistics and clearing, from the command line.

They open the configured backend directly (the SQLite file, Redis), so they see what every
gateway process stored. The memory backend lives inside the gateway process: for it these
commands point to the admin API (`GET /admin/cache/stats`, `DELETE /admin/cache`).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from ..config.models import Settings
    from .config import CacheConfig

cache_app = typer.Typer(
    no_args_is_help=True, rich_markup_mode=None, pretty_exceptions_show_locals=False,
    help="The response cache: statistics and clearing (SQLite and Redis backends).",
)
console = Console()
err_console = Console(stderr=True)

ConfigOpt = Annotated[
    Optional[Path],
    typer.Option("--config", "-c", help="tiergate.yaml (default: $TIERGATE_CONFIG, ./tiergate.yaml)"),
]
PartitionOpt = Annotated[
    Optional[str],
    typer.Option("--partition", "-p", help="one partition, e.g. 'team:research|PUBLIC' (default: all)"),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="JSON instead of a table")]


def _settings(config: Path | None) -> Settings:
    from ..config import ConfigError, load_settings

    try:
        return load_settings(config)
    except ConfigError as exc:
        err_console.print("[bold red]configuration error[/]")
        err_console.print(str(exc), markup=False, highlight=False)
        raise typer.Exit(2) from None


def _cache_config(settings: Settings) -> CacheConfig:
    from .config import CacheConfig

    cfg = getattr(settings, "cache", None)
    return cfg if isinstance(cfg, CacheConfig) else CacheConfig()


def _open(settings: Settings) -> Any:
    from . import ResponseCache

    cfg = _cache_config(settings)
    if cfg.backend == "memory":
        err_console.print(
            "the cache uses the memory backend: it lives inside the gateway process. "
            "Use the admin API: GET /admin/cache/stats, DELETE /admin/cache[?partition=...]",
            highlight=False,
        )
        raise typer.Exit(1)
    from .config import SemanticConfig

    try:
        # Semantic part off: these commands never embed anything.
        off = SemanticConfig(allow_opt_in=False)
        return ResponseCache.from_settings(cfg.model_copy(update={"enabled": True, "semantic": off}), settings.redis)
    except ValueError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(2) from None


@cache_app.command("stats")
def stats(config: ConfigOpt = None, partition: PartitionOpt = None, as_json: JsonOpt = False) -> None:
    """Entries, hits, misses and saved cost per partition."""
    settings = _settings(config)
    cache = _open(settings)

    async def run() -> Any:
        try:
            return await cache.stats(partition)
        finally:
            await cache.close()

    result = asyncio.run(run())
    if result.unavailable:
        err_console.print(f"[bold red]cache backend unavailable:[/] {result.unavailable}", highlight=False)
        raise typer.Exit(1)
    if as_json:
        console.print_json(json.dumps(result.to_dict(), default=str))
        return
    table = Table(title=f"Response cache ({result.backend})")
    for col in ("partition", "entries", "hits", "semantic hits", "misses", "hit rate", "stores", "saved USD"):
        table.add_column(col, justify="left" if col == "partition" else "right", no_wrap=col == "partition")
    rows = sorted(result.partitions, key=lambda p: p.partition) + [result.totals()]
    for p in rows:
        d = p.to_dict()
        rate = d["hit_rate"]
        table.add_row(
            "total" if p.partition == "*" else p.partition, str(p.entries), str(p.hits), str(p.semantic_hits),
            str(p.misses), "-" if rate is None else f"{rate:.1%}", str(p.stores), str(d["saved_usd"]),
        )
    console.print(table)


@cache_app.command("clear")
def clear(config: ConfigOpt = None, partition: PartitionOpt = None, as_json: JsonOpt = False) -> None:
    """Delete cached answers: one partition's, or all (counters are kept)."""
    from . import CacheUnavailable

    settings = _settings(config)
    cache = _open(settings)

    async def run() -> int:
        try:
            return await cache.clear(partition)
        finally:
            await cache.close()

    try:
        deleted = asyncio.run(run())
    except CacheUnavailable as exc:
        err_console.print(f"[bold red]cache backend unavailable:[/] {exc}", highlight=False)
        raise typer.Exit(1) from None
    if as_json:
        console.print_json(json.dumps({"partition": partition, "deleted": deleted}))
    else:
        where = f"partition {partition}" if partition else "all partitions"
        console.print(f"deleted {deleted} cached answers ({where})", highlight=False)
