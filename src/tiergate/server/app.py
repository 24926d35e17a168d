"""The HTTP app (aiohttp): OpenAI-compatible routes, health and readiness.

aiohttp's server and client were chosen by measurement (see bench/README.md and ARCHITECTURE.md):
the upstream client dominates per-request CPU, the server comes second. Handlers stay thin: they
translate HTTP to `Gateway.chat` and its outcome back to HTTP. Every answer, errors included,
carries `x-request-id`; successful ones carry the residency receipt.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import orjson
from aiohttp import web

from ..auth import token_from_headers
from ..errors import (
    GatewayError,
    InvalidRequestError,
    PayloadTooLargeError,
    UpstreamError,
)
from ..ids import new_request_id
from ..pipeline import Completed, Embedded, Explained, Gateway, Streaming
from ..store import Store

log = logging.getLogger("tiergate.server")

GATEWAY_KEY: web.AppKey[Gateway] = web.AppKey("gateway", Gateway)
STORE_KEY: web.AppKey[Store | None] = web.AppKey("store", object)  # type: ignore[arg-type]
MAX_BODY_KEY: web.AppKey[int] = web.AppKey("max_body", int)

_JSON = "application/json"
SSE_HEADERS = {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-cache",
    "x-accel-buffering": "no",
}
_DONE = b"data: [DONE]\n\n"


def error_response(exc: GatewayError, request_id: str) -> web.Response:
    headers = {"x-request-id": request_id, **exc.headers}
    return web.Response(
        body=orjson.dumps(exc.to_dict()), status=exc.status, content_type=_JSON, headers=headers
    )


def _internal_error(request_id: str) -> web.Response:
    exc = GatewayError(f"internal gateway error (request id {request_id}); see the gateway log")
    return error_response(exc, request_id)


async def _unknown_route(request: web.Request) -> web.Response:
    """JSON errors for unknown routes and methods (a catch-all route, not a middleware: a
    middleware would cost every request a few microseconds for what only misses need)."""
    known = {
        route.method
        for resource in request.app.router.resources()
        if resource.canonical == request.path
        for route in resource
        if route.method != "*"
    }
    if known and request.method not in known:
        status, code, reason = 405, "method_not_allowed", f"use {', '.join(sorted(known))}"
    else:
        status, code, reason = 404, "not_found", "no such route"
    err = InvalidRequestError(f"{request.method} {request.path}: {reason}", code=code, status=status)
    return error_response(err, new_request_id())


async def read_json(request: web.Request) -> Any:
    limit = request.app[MAX_BODY_KEY]
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLargeError(
            f"request body of {request.content_length} bytes is over the limit of {limit} bytes "
            "(server.max_body_mb)"
        )
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLargeError(
            f"request body is over the limit of {limit} bytes (server.max_body_mb)"
        ) from None
    if not raw:
        raise InvalidRequestError("request body is empty; expected a JSON object")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(f"request body is not valid JSON: {exc}") from None


async def _run(request: web.Request, stage: str) -> tuple[str, Any]:
    """Read the body and run it through `Gateway.<stage>` (chat or embed): (request id, the
    outcome or the error response to send)."""
    t0 = time.perf_counter()
    headers = request.headers
    rid = new_request_id()
    try:
        body = await read_json(request)
        outcome = await getattr(request.app[GATEWAY_KEY], stage)(
            body,
            headers=headers,
            api_key=token_from_headers(headers.get("authorization"), headers.get("x-api-key")),
            request_id=rid,
            t0=t0,
        )
    except GatewayError as exc:
        return rid, error_response(exc, rid)
    except Exception:
        log.exception("unhandled error in %s (request id %s)", stage, rid)
        return rid, _internal_error(rid)
    return rid, outcome


async def chat_completions(request: web.Request) -> web.StreamResponse:
    rid, outcome = await _run(request, "chat")
    if isinstance(outcome, Completed):
        return web.Response(
            body=outcome.result.raw, content_type=_JSON, headers=outcome.receipt.headers()
        )
    if isinstance(outcome, Explained):
        return _explained(outcome, rid)
    if isinstance(outcome, Streaming):
        return await _stream(request, outcome)
    return outcome  # an error response


async def embeddings(request: web.Request) -> web.StreamResponse:
    rid, outcome = await _run(request, "embed")
    if isinstance(outcome, Explained):
        return _explained(outcome, rid)
    if isinstance(outcome, Embedded):
        return web.Response(body=outcome.raw, content_type=_JSON, headers=outcome.receipt.headers())
    return outcome  # an error response


def _explained(outcome: Explained, rid: str) -> web.Response:
    return web.Response(
        body=orjson.dumps(outcome.decision.to_dict()),
        content_type=_JSON,
        headers={"x-request-id": rid, "x-tiergate-explain": "true"},
    )


async def _stream(request: web.Request, outcome: Streaming) -> web.StreamResponse:
    resp = web.StreamResponse(status=200, headers={**SSE_HEADERS, **outcome.receipt.headers()})
    events = outcome.events()
    try:
        await resp.prepare(request)
        try:
            async for batch in events:
                await resp.write(b"".join([b"data: " + ev.raw + b"\n\n" for ev in batch]))
        except UpstreamError as exc:
            # Tell the client explicitly; never end as if the answer were complete.
            log.warning(
                "upstream stream failed (request id %s, deployment %s): %s",
                outcome.receipt.request_id, exc.deployment, exc.code,
            )
            await resp.write_eof(b"data: " + orjson.dumps(exc.to_dict()) + b"\n\n")
        else:
            await resp.write_eof(_DONE)
    except ConnectionResetError:
        pass  # the client went away; the record says 499
    finally:
        await events.aclose()
        await outcome.aclose()
    return resp


async def list_models(request: web.Request) -> web.Response:
    rid = new_request_id()
    gateway = request.app[GATEWAY_KEY]
    headers = request.headers
    try:
        await gateway.auth.authenticate(token_from_headers(headers.get("authorization"), headers.get("x-api-key")))
    except GatewayError as exc:
        return error_response(exc, rid)
    payload = {"object": "list", "data": gateway.list_models()}
    return web.Response(body=orjson.dumps(payload), content_type=_JSON, headers={"x-request-id": rid})


async def feedback(request: web.Request) -> web.Response:
    """`POST /v1/feedback {"request_id", "score" (0..1), "comment"?}`: a user's verdict on an
    answer, into the learning statistics of the deployment that gave it."""
    from ..routing.learning import UnknownRequest

    rid = new_request_id()
    gateway = request.app[GATEWAY_KEY]
    headers = request.headers
    try:
        await gateway.auth.authenticate(token_from_headers(headers.get("authorization"), headers.get("x-api-key")))
        body = await read_json(request)
        if not isinstance(body, dict) or not isinstance(body.get("request_id"), str):
            raise InvalidRequestError("'request_id' must be a string (an x-request-id)", param="request_id")
        score = body.get("score")
        if isinstance(score, bool) or not isinstance(score, (int, float)):
            raise InvalidRequestError("'score' must be a number from 0 to 1", param="score")
        comment = body.get("comment")
        if comment is not None and not isinstance(comment, str):
            raise InvalidRequestError("'comment' must be a string", param="comment")
        learner = gateway.router.learner
        if learner is None:
            raise InvalidRequestError("learning is off (routing.learning: false)", code="learning_disabled")
        try:
            result = await learner.feedback(body["request_id"], float(score), comment=comment)
        except UnknownRequest:
            raise GatewayError(
                f"no request {body['request_id']!r} is known to this gateway", param="request_id",
                code="request_not_found", status=404,
            ) from None
        except ValueError as exc:
            raise InvalidRequestError(str(exc), param="score", status=422) from None
    except GatewayError as exc:
        return error_response(exc, rid)
    payload = {"ok": True, "request_id": result.request_id, "deployment": result.deployment,
               "duplicate": result.duplicate}
    return web.Response(body=orjson.dumps(payload), content_type=_JSON, headers={"x-request-id": rid})


async def health(request: web.Request) -> web.Response:
    rid = new_request_id()
    return web.Response(body=b'{"status":"ok"}', content_type=_JSON, headers={"x-request-id": rid})


async def ready(request: web.Request) -> web.Response:
    """Ready when the store answers and at least one deployment answers its health probe."""
    gateway = request.app[GATEWAY_KEY]
    store = request.app[STORE_KEY]
    store_ok = await store.ping() if store is not None else True
    probes = await asyncio.gather(
        *(asyncio.wait_for(p.health(), 3.0) for p in gateway.providers.values()),
        return_exceptions=True,
    )
    deployments = {}
    for name, probe in zip(gateway.providers, probes):
        if isinstance(probe, BaseException):
            deployments[name] = {"ok": False, "error": type(probe).__name__}
        else:
            deployments[name] = {
                "ok": probe.ok, "latency_ms": probe.latency_ms, "error": probe.error, "models": probe.models,
            }
    circuits = gateway.router.health.snapshot()
    for name, entry in deployments.items():
        if name in circuits:
            entry["circuit"] = circuits[name].get("state")
    usable = any(v["ok"] for v in deployments.values())
    ok = store_ok and usable
    body = {"status": "ready" if ok else "not_ready", "store": store_ok, "deployments": deployments}
    rid = new_request_id()
    return web.Response(
        body=orjson.dumps(body), status=200 if ok else 503, content_type=_JSON, headers={"x-request-id": rid}
    )


def build_app(gateway: Gateway, *, store: Store | None = None, max_body_bytes: int | None = None) -> web.Application:
    limit = max_body_bytes or int(gateway.settings.server.max_body_mb * 1024 * 1024)
    app = web.Application(client_max_size=limit + 1)
    app[GATEWAY_KEY] = gateway
    app[STORE_KEY] = store
    app[MAX_BODY_KEY] = limit
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/chat/completions", chat_completions)
    app.router.add_post("/v1/embeddings", embeddings)
    app.router.add_post("/v1/feedback", feedback)
    app.router.add_post("/embeddings", embeddings)
    from .anthropic_api import count_tokens, messages  # Anthropic-compatible inbound API

    app.router.add_post("/v1/messages", messages)
    app.router.add_post("/v1/messages/count_tokens", count_tokens)
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/models", list_models)
    app.router.add_get("/health", health)
    app.router.add_get("/ready", ready)
    from .admin import add_admin_routes  # /admin/keys: virtual keys, master key only

    add_admin_routes(app)
    from .admin_budgets import add_budget_routes  # /admin/budgets, /admin/report

    add_budget_routes(app)
    app.router.add_route("*", "/{tail:.*}", _unknown_route)  # JSON 404/405 for the rest
    return app
