"""The admin API: virtual keys, for the master key only.

    POST  /admin/keys                  body: key settings (`keys.KeySpec`)  -> 201 key + "key" (once)
    GET   /admin/keys                  ?team=NAME  ?include_revoked=true|false -> {"object": "list", ...}
    GET   /admin/keys/{id}                                                  -> key
    PATCH /admin/keys/{id}             body: the settings to change          -> key
    POST  /admin/keys/{id}/revoke                                           -> key
    POST  /admin/keys/{id}/rotate      body (optional): {"grace_s": n}      -> key + "key" (once)

A key is `keys.VirtualKey.to_dict()`; the plaintext appears only in the answers of create and
rotate. No key: 401; a virtual key: 403 `permission_denied`; an unknown id: 404 `key_not_found`.
Revocation, rotation and updates call `Authenticator.invalidate`, so they take effect at once here
and, through Redis, in every other gateway. Errors are OpenAI-shaped; never a stack trace.

`admin_route` is the wrapper every admin handler goes through (the budget routes in
`admin_budgets.py` too): master key first, then `handler(request, gateway) -> (status, payload)`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from ..auth import Principal, token_from_headers
from ..errors import GatewayError, InvalidRequestError, ServiceUnavailableError
from ..ids import new_request_id
from ..keys import KeyNotFoundError, KeySpec, KeyStore, check_known_names, parse_key_spec, valid_key_id
from ..pipeline import Gateway
from .app import GATEWAY_KEY, error_response, read_json

log = logging.getLogger("tiergate.admin")

_JSON = "application/json"


class PermissionDeniedError(GatewayError):
    status = 403
    type = "permission_error"
    code = "permission_denied"


AdminHandler = Callable[[web.Request, Gateway], Awaitable[tuple[int, Any]]]


def admin_route(handler: AdminHandler) -> Callable[[web.Request], Awaitable[web.Response]]:
    """An admin route: authenticate first (master key only; before the body is read), run
    `handler` -> (status, JSON payload), answer JSON with `x-request-id`; every failure an
    OpenAI-style error, never a stack trace."""

    async def run(request: web.Request) -> web.Response:
        rid = new_request_id()
        gateway = request.app[GATEWAY_KEY]
        headers = request.headers
        try:
            principal: Principal = await gateway.auth.authenticate(
                token_from_headers(headers.get("authorization"), headers.get("x-api-key"))
            )
            if not gateway.auth.enabled:
                raise PermissionDeniedError(
                    "the admin API needs a master key (server.master_key / TIERGATE_MASTER_KEY)"
                )
            if not principal.is_admin:
                raise PermissionDeniedError("the admin API needs the master key; virtual keys cannot use it")
            status, payload = await handler(request, gateway)
        except GatewayError as exc:
            return error_response(exc, rid)
        except Exception:
            log.exception("unhandled error in %s %s (request id %s)", request.method, request.path, rid)
            return error_response(
                GatewayError(f"internal gateway error (request id {rid}); see the gateway log"), rid
            )
        return web.Response(
            body=orjson.dumps(payload), status=status, content_type=_JSON, headers={"x-request-id": rid}
        )

    return run


def _keystore(gateway: Gateway) -> KeyStore:
    keystore = gateway.keystore
    if keystore is None:
        raise ServiceUnavailableError("virtual keys need the gateway's database (store)", code="keys_unavailable")
    return keystore


def _key_id(request: web.Request) -> str:
    key_id = request.match_info["id"]
    if not valid_key_id(key_id):
        raise KeyNotFoundError(f"no API key with id {key_id!r}", param="id")
    return key_id


def _check_names(gateway: Gateway, spec: KeySpec) -> None:
    check_known_names(spec, list(gateway.groups), list(gateway.deployments))


async def _optional_body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    body = await read_json(request)
    if not isinstance(body, dict):
        raise InvalidRequestError("the body must be a JSON object", param=None)
    return body


async def create_key(request: web.Request, gateway: Gateway) -> tuple[int, Any]:
    keystore = _keystore(gateway)
    spec = parse_key_spec(await read_json(request))
    _check_names(gateway, spec)
    key, plaintext = await keystore.create(spec)
    log.info("created API key %s (team %s)", key.id, key.team)
    return 201, {**key.to_dict(), "key": plaintext}


async def list_keys(request: web.Request, gateway: Gateway) -> tuple[int, Any]:
    keystore = _keystore(gateway)
    query = request.query
    unknown = sorted(set(query) - {"team", "include_revoked"})
    if unknown:
        raise InvalidRequestError(
            f"unknown query parameter {unknown[0]!r}; use team and include_revoked", param=unknown[0]
        )
    raw = query.get("include_revoked", "true").strip().lower()
    if raw not in ("true", "false", "1", "0", "yes", "no"):
        raise InvalidRequestError("'include_revoked' must be true or false", param="include_revoked")
    keys = await keystore.list(team=query.get("team") or None, include_revoked=raw in ("true", "1", "yes"))
    return 200, {"object": "list", "data": [k.to_dict() for k in keys]}


async def get_key(request: web.Request, gateway: Gateway) -> tuple[int, Any]:
    keystore = _keystore(gateway)
    return 200, (await keystore.get(_key_id(request))).to_dict()


async def update_key(request: web.Request, gateway: Gateway) -> tuple[int, Any]:
    keystore = _keystore(gateway)
    key_id = _key_id(request)
    spec = parse_key_spec(await read_json(request))
    _check_names(gateway, spec)
    key = await keystore.update(key_id, spec)
    await gateway.auth.invalidate(key_id)
    log.info("updated API key %s (%s)", key_id, ", ".join(sorted(spec.model_fields_set)) or "no changes")
    return 200, key.to_dict()


async def revoke_key(request: web.Request, gateway: Gateway) -> tuple[int, Any]:
    keystore = _keystore(gateway)
    key_id = _key_id(request)
    key = await keystore.revoke(key_id)
    await gateway.auth.invalidate(key_id)
    log.info("revoked API key %s", key_id)
    return 200, key.to_dict()


async def rotate_key(request: web.Request, gateway: Gateway) -> tuple[int, Any]:
    keystore = _keystore(gateway)
    key_id = _key_id(request)
    body = await _optional_body(request)
    unknown = sorted(set(body) - {"grace_s"})
    if unknown:
        raise InvalidRequestError(f"'{unknown[0]}' is not a rotate setting; use grace_s", param=unknown[0])
    grace = body.get("grace_s", 0)
    if isinstance(grace, bool) or not isinstance(grace, (int, float)):
        raise InvalidRequestError("'grace_s' must be a number of seconds", param="grace_s")
    key, plaintext = await keystore.rotate(key_id, float(grace))
    await gateway.auth.invalidate(key_id)
    log.info("rotated API key %s (grace %ss)", key_id, grace)
    return 200, {**key.to_dict(), "key": plaintext}


def add_admin_routes(app: web.Application) -> None:
    """Register the admin routes (before the app's catch-all route)."""
    app.router.add_post("/admin/keys", admin_route(create_key))
    app.router.add_get("/admin/keys", admin_route(list_keys))
    app.router.add_get("/admin/keys/{id}", admin_route(get_key))
    app.router.add_patch("/admin/keys/{id}", admin_route(update_key))
    app.router.add_post("/admin/keys/{id}/revoke", admin_route(revoke_key))
    app.router.add_post("/admin/keys/{id}/rotate", admin_route(rotate_key))
