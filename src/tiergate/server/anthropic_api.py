"""Anthropic-compatible inbound API: `POST /v1/messages` and `POST /v1/messages/count_tokens`.

The official `anthropic` SDK pointed at the gateway reaches any deployment of any location under
the same privacy rules as the OpenAI route: the request is translated to the canonical OpenAI body
(`tiergate.anthropic_messages`) and goes through `Gateway.chat` (auth, privacy, routing,
fallback, receipts, request log); the canonical answer is translated back. Errors use Anthropic's
shape (`{"type": "error", "error": {"type", "message"}}`) with the gateway's HTTP status. Every
answer carries `x-request-id` and `request-id` (the header the anthropic SDK reads).
"""

from __future__ import annotations

import logging
import time
from typing import Any, Mapping

import orjson
from aiohttp import web

from ..anthropic_messages import (
    StreamTranslator,
    error_body,
    error_event,
    message_id,
    to_anthropic_message,
    to_openai_request,
)
from ..auth import Principal, token_from_headers
from ..errors import GatewayError, UpstreamError, UpstreamProtocolError
from ..ids import new_request_id
from ..pipeline import Completed, Explained, Gateway, Streaming
from ..routing.eligible import estimate_prompt_tokens
from .app import GATEWAY_KEY, SSE_HEADERS, read_json

log = logging.getLogger("tiergate.server.anthropic")

_JSON = "application/json"


def _ids(request_id: str) -> dict[str, str]:
    return {"x-request-id": request_id, "request-id": request_id}


def anthropic_error(exc: GatewayError, request_id: str) -> web.Response:
    """A gateway error in Anthropic's shape, same status (429 keeps `retry-after`)."""
    body = error_body(exc.status, exc.message, request_id)
    return web.Response(
        body=orjson.dumps(body), status=exc.status, content_type=_JSON,
        headers={**exc.headers, **_ids(request_id)},
    )


def _internal(request_id: str) -> web.Response:
    exc = GatewayError(f"internal gateway error (request id {request_id}); see the gateway log")
    return anthropic_error(exc, request_id)


async def _authenticate(gateway: Gateway, headers: Mapping[str, str]) -> Principal:
    """Before the body is read: an unauthenticated caller learns nothing about validation."""
    return await gateway.auth.authenticate(token_from_headers(headers.get("authorization"), headers.get("x-api-key")))


async def messages(request: web.Request) -> web.StreamResponse:
    t0 = time.perf_counter()
    rid = new_request_id()
    headers = request.headers
    gateway = request.app[GATEWAY_KEY]
    try:
        principal = await _authenticate(gateway, headers)
        body = to_openai_request(await read_json(request))
        outcome = await gateway.chat(body, headers=headers, principal=principal, request_id=rid, t0=t0)
        if isinstance(outcome, Completed):
            return _completed(outcome, body, rid)
    except GatewayError as exc:
        return anthropic_error(exc, rid)
    except Exception:
        log.exception("unhandled error in /v1/messages (request id %s)", rid)
        return _internal(rid)
    if isinstance(outcome, Explained):
        return web.Response(
            body=orjson.dumps(outcome.decision.to_dict()), content_type=_JSON,
            headers={**_ids(rid), "x-tiergate-explain": "true"},
        )
    translator = StreamTranslator(
        model=body["model"], message_id=message_id(rid), input_tokens=estimate_prompt_tokens(body)
    )
    return await _relay(request, outcome, translator, rid)


def _completed(outcome: Completed, body: dict[str, Any], rid: str) -> web.Response:
    message = to_anthropic_message(
        outcome.result.json(), model=body["model"], message_id=message_id(rid), request_body=body
    )
    return web.Response(
        body=orjson.dumps(message), content_type=_JSON, headers={**outcome.receipt.headers(), **_ids(rid)}
    )


async def _relay(
    request: web.Request, outcome: Streaming, translator: StreamTranslator, rid: str
) -> web.StreamResponse:
    """Canonical batches -> Anthropic events, one write per batch; an upstream failure after the
    answer began ends the stream with an `error` event (no `message_stop`), never as if complete."""
    resp = web.StreamResponse(status=200, headers={**SSE_HEADERS, **outcome.receipt.headers(), **_ids(rid)})
    events = outcome.events()
    try:
        await resp.prepare(request)
        head = translator.start()
        try:
            async for batch in events:
                await resp.write(head + translator.feed([ev.data for ev in batch]))
                head = b""
        except (UpstreamError, ValueError) as exc:
            if not isinstance(exc, UpstreamError):  # a chunk that is not JSON
                exc = UpstreamProtocolError(
                    "upstream sent a malformed stream event", deployment=outcome.receipt.deployment
                )
            log.warning(
                "upstream stream failed (request id %s, deployment %s): %s",
                rid, exc.deployment or outcome.receipt.deployment, exc.code,
            )
            await resp.write_eof(head + error_event(exc.status, exc.message, rid))
        else:
            await resp.write_eof(head + translator.finish())
    except ConnectionResetError:
        pass  # the client went away; the record says 499
    finally:
        await events.aclose()
        await outcome.aclose()
    return resp


async def count_tokens(request: web.Request) -> web.StreamResponse:
    """The gateway's local estimate of the prompt's input tokens; nothing is called upstream."""
    rid = new_request_id()
    gateway = request.app[GATEWAY_KEY]
    try:
        await _authenticate(gateway, request.headers)
        body = to_openai_request(await read_json(request), count_only=True)
        gateway.resolve(body["model"])  # 404 naming the known models
    except GatewayError as exc:
        return anthropic_error(exc, rid)
    except Exception:
        log.exception("unhandled error in /v1/messages/count_tokens (request id %s)", rid)
        return _internal(rid)
    payload = {"input_tokens": estimate_prompt_tokens(body)}
    return web.Response(body=orjson.dumps(payload), content_type=_JSON, headers=_ids(rid))
