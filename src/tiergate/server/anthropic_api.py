"""Anthropic-compatible inbound API (`POST /v1/messages`). Placeholder until issue 3 lands it."""

from __future__ import annotations

from aiohttp import web


async def messages(request: web.Request) -> web.StreamResponse:
    raise web.HTTPNotImplemented()


async def count_tokens(request: web.Request) -> web.StreamResponse:
    raise web.HTTPNotImplemented()
