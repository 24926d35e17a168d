"""The admin API's cache operations, as plain async functions (the server maps them to routes):

    GET    /admin/cache/stats[?partition=P]   -> admin_stats(cache, partition)
    DELETE /admin/cache[?partition=P]         -> admin_clear(cache, partition)

Each returns a JSON-ready dict and an HTTP status; they never raise for a backend failure.
"""

from __future__ import annotations

from typing import Any

from . import CacheUnavailable, ResponseCache


async def admin_stats(cache: ResponseCache | None, partition: str | None = None) -> tuple[int, dict[str, Any]]:
    """Statistics of the cache (one partition or all): 200, or 503 if the backend did not answer."""
    if cache is None or not cache.enabled:
        return 200, {"enabled": False}
    stats = await cache.stats(partition)
    body: dict[str, Any] = {"enabled": True, **stats.to_dict(), "process": cache.metrics()}
    return (503 if stats.unavailable else 200), body


async def admin_clear(cache: ResponseCache | None, partition: str | None = None) -> tuple[int, dict[str, Any]]:
    """Delete the entries of one partition (or all): 200 with the count, or 503."""
    if cache is None or not cache.enabled:
        return 200, {"enabled": False, "deleted": 0}
    try:
        deleted = await cache.clear(partition)
    except CacheUnavailable as exc:
        return 503, {"error": {"type": "cache_unavailable", "message": str(exc)}}
    return 200, {"enabled": True, "partition": partition, "deleted": deleted}
