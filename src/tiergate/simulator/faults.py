"""Fault injection for the simulator.

Owns: parsing fault specs (``"500"``, ``"slow_first_byte:250"`` ...), the
OpenAI-shaped error responses for HTTP faults, abrupt connection resets,
malformed bodies, and the cancellable "hang" used by ``timeout``.

Trigger strings (anywhere in any message text)::

    [[fault:500]] [[fault:503]] [[fault:429]] [[fault:400]] [[fault:401]]
    [[fault:timeout]] [[fault:reset]] [[fault:malformed]] [[fault:truncate]]
    [[fault:slow_first_byte:MS]]

Flow faults (``timeout``, ``slow_first_byte``, ``truncate``) are handled by the
server around its normal answer; the rest are answered here.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from dataclasses import dataclass

from aiohttp import web

from .wire import JSON_CT, SSE_HEADERS, error_body


@dataclass(frozen=True, slots=True)
class Fault:
    kind: str
    arg: float | None = None


def parse_fault(spec: str) -> Fault:
    """``"slow_first_byte:250"`` -> Fault("slow_first_byte", 250.0)."""
    kind, _, arg = spec.partition(":")
    return Fault(kind, float(arg) if arg else None)


_HTTP_FAULTS: dict[str, tuple[int, bytes, dict[str, str]]] = {
    "500": (
        500,
        error_body("The server had an error while processing your request. Sorry about that! (simulated)", "server_error"),
        {},
    ),
    "503": (
        503,
        error_body("The engine is currently overloaded, please try again later. (simulated)", "server_error"),
        {},
    ),
    "429": (
        429,
        error_body(
            "Rate limit reached for requests (simulated). Please try again in 1s.",
            "requests",
            None,
            "rate_limit_exceeded",
        ),
        {"retry-after": "1", "x-ratelimit-remaining-requests": "0"},
    ),
    "400": (
        400,
        error_body("Invalid request (simulated fault).", "invalid_request_error"),
        {},
    ),
    "401": (
        401,
        error_body("Incorrect API key provided (simulated fault).", "invalid_request_error", None, "invalid_api_key"),
        {},
    ),
}


def http_fault_response(kind: str) -> web.Response | None:
    """An error response for HTTP-status faults, None for other kinds."""
    entry = _HTTP_FAULTS.get(kind)
    if entry is None:
        return None
    status, body, headers = entry
    return web.Response(status=status, body=body, content_type=JSON_CT, headers=headers)


def error_response(status: int, message: str, type_: str, param: str | None = None, code: str | None = None) -> web.Response:
    return web.Response(status=status, body=error_body(message, type_, param, code), content_type=JSON_CT)


_LINGER_RST = struct.pack("ii", 1, 0)


def reset_connection(request: web.BaseRequest) -> web.Response:
    """Abort the TCP connection (RST, no HTTP response at all).

    The returned response is never delivered: aiohttp fails to write it to the
    closed transport and drops it quietly.
    """
    transport = request.transport
    if transport is not None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
            except OSError:
                pass
        transport.abort()
    return web.Response(status=500)


_MALFORMED_JSON = b'{"id": "chatcmpl-sim-malformed", "object": "chat.completion", "choices": [{"index": 0, "message": '
_MALFORMED_SSE = b'data: {"id": "chatcmpl-sim-malformed", "object": "chat.completion.chunk", "choices": [\n\n'


def malformed_response(stream: bool) -> web.Response:
    """200 with a body that does not parse (JSON or, for streams, an SSE event)."""
    if stream:
        return web.Response(body=_MALFORMED_SSE, headers=SSE_HEADERS)
    return web.Response(body=_MALFORMED_JSON, content_type=JSON_CT)


def connection_gone(request: web.BaseRequest) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


async def hang(request: web.BaseRequest, seconds: float, stopping: asyncio.Event) -> bool:
    """Sleep up to ``seconds``; returns early (False) if the client disconnects
    or the server is stopping.  Returns True if the full time elapsed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            return True
        if stopping.is_set() or connection_gone(request):
            return False
        try:
            await asyncio.wait_for(stopping.wait(), min(remaining, 0.1))
        except TimeoutError:
            pass


def close_connection(request: web.BaseRequest) -> None:
    """Gracefully close the transport (flushes what was written, then FIN)."""
    transport = request.transport
    if transport is not None:
        transport.close()
