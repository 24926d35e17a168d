"""The admin API for money: budgets and the report (master key only; see `admin.py`).

    GET    /admin/budgets                 every configured budget now: limit, spent, reserved,
                                          remaining, share used, emergency, reset time; the scopes'
                                          limits and where they come from (config / admin)
    GET    /admin/budgets/{scope}         one scope: `global`, `team:<name>` or `key:<id>`
    PUT    /admin/budgets/{scope}         body: {daily_usd, monthly_usd, rpm, tpm, on_store_unavailable}
                                          replaces the config's limits of a global/team scope
    DELETE /admin/budgets/{scope}         back to the config's limits
    GET    /admin/report?days=30          `tiergate report` as JSON
    GET    /admin/cache/stats[?partition=P]   the response cache: entries, hits, misses, savings
    DELETE /admin/cache[?partition=P]         clear the cache (one partition or all)
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import ValidationError

from ..budget.manager import Scope
from ..budget.policies import check_scope
from ..config.models import Limits
from ..errors import InvalidRequestError, ModelNotFoundError, ServiceUnavailableError
from ..pipeline import Gateway
from .admin import admin_route
from .app import STORE_KEY, read_json


def _scope(request: web.Request) -> str:
    return request.match_info["scope"]


def _limits_dict(limits: Limits) -> dict[str, Any]:
    return {
        "daily_usd": str(limits.daily_usd) if limits.daily_usd is not None else None,
        "monthly_usd": str(limits.monthly_usd) if limits.monthly_usd is not None else None,
        "rpm": limits.rpm,
        "tpm": limits.tpm,
        "on_store_unavailable": limits.on_store_unavailable,
    }


async def _key_scope(gateway: Gateway, scope: str) -> Scope:
    keystore = getattr(gateway, "keystore", None)
    key = await keystore.get(scope[4:]) if keystore is not None else None
    if key is None:
        raise ModelNotFoundError(f"no API key {scope[4:]!r}", param="scope", code="key_not_found")
    return Scope(scope, Limits(daily_usd=key.daily_usd, monthly_usd=key.monthly_usd, rpm=key.rpm, tpm=key.tpm))


async def list_budgets(request: web.Request, gateway: Gateway) -> tuple[int, Any]:
    policies = gateway.budget.policies
    scopes = [Scope(name, limits) for name, limits in sorted(policies.all().items())]
    return 200, {
        "object": "list",
        "backend": gateway.budget.backend,
        "timezone": gateway.settings.budgets.timezone,
        "data": await gateway.budget.status(scopes),
        "scopes": [{"scope": s.name, "source": policies.source(s.name), **_limits_dict(s.limits)} for s in scopes],
    }


async def get_budget(request: web.Request, gateway: Gateway) -> tuple[int, Any]:
    scope = _scope(request)
    if scope.startswith("key:"):
        s = await _key_scope(gateway, scope)
        source = "key"
    else:
        _check(scope)
        limits = gateway.budget.policies.get(scope)
        if limits is None:
            raise ModelNotFoundError(f"no budget or limit is set for scope {scope!r}", param="scope",
                                     code="budget_not_found")
        s, source = Scope(scope, limits), gateway.budget.policies.source(scope)
    return 200, {"scope": scope, "source": source, **_limits_dict(s.limits),
                 "budgets": await gateway.budget.status([s])}


async def put_budget(request: web.Request, gateway: Gateway) -> tuple[int, Any]:
    scope = _check(_scope(request))
    _needs_store(request)
    body = await read_json(request)
    if not isinstance(body, dict):
        raise InvalidRequestError("the body must be a JSON object of limits")
    try:
        limits = Limits.model_validate(body)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or None
        raise InvalidRequestError(f"{field}: {err['msg']}", param=field) from None
    await gateway.budget.policies.put(scope, limits)
    return 200, {"scope": scope, "source": "admin", **_limits_dict(limits),
                 "budgets": await gateway.budget.status([Scope(scope, limits)])}


async def delete_budget(request: web.Request, gateway: Gateway) -> tuple[int, Any]:
    scope = _check(_scope(request))
    _needs_store(request)
    deleted = await gateway.budget.policies.delete(scope)
    limits = gateway.budget.policies.get(scope)
    return 200, {"scope": scope, "deleted": deleted, "source": gateway.budget.policies.source(scope),
                 **(_limits_dict(limits) if limits else {})}


async def report(request: web.Request, gateway: Gateway) -> tuple[int, Any]:
    from ..report import report_payload

    store = _needs_store(request)
    raw = request.query.get("days", "30")
    try:
        days = int(raw)
        if not 1 <= days <= 3660:
            raise ValueError
    except ValueError:
        raise InvalidRequestError("days must be a whole number from 1 to 3660", param="days") from None
    return 200, await report_payload(store, gateway.settings, days)


def _check(scope: str) -> str:
    try:
        return check_scope(scope)
    except ValueError as exc:
        raise InvalidRequestError(str(exc), param="scope") from None


def _needs_store(request: web.Request) -> Any:
    store = request.app[STORE_KEY]
    if store is None:
        raise ServiceUnavailableError("this needs the gateway's database (store)", code="store_unavailable")
    return store


async def cache_stats(request: web.Request, gateway: Gateway) -> tuple[int, Any]:
    from ..cache.admin import admin_stats

    return await admin_stats(gateway.cache, request.query.get("partition") or None)


async def cache_clear(request: web.Request, gateway: Gateway) -> tuple[int, Any]:
    from ..cache.admin import admin_clear

    return await admin_clear(gateway.cache, request.query.get("partition") or None)


def add_budget_routes(app: web.Application) -> None:
    app.router.add_get("/admin/budgets", admin_route(list_budgets))
    app.router.add_get("/admin/budgets/{scope}", admin_route(get_budget))
    app.router.add_put("/admin/budgets/{scope}", admin_route(put_budget))
    app.router.add_delete("/admin/budgets/{scope}", admin_route(delete_budget))
    app.router.add_get("/admin/report", admin_route(report))
    app.router.add_get("/admin/cache/stats", admin_route(cache_stats))
    app.router.add_delete("/admin/cache", admin_route(cache_clear))
