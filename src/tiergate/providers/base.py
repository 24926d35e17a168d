"""The provider adapter interface, and the translation of transport failures into gateway errors.

An adapter speaks one upstream wire format for one deployment. It owns its pooled keep-alive HTTP
client, and translates requests from and answers into the canonical OpenAI format
(`tiergate.types`). Everything above this seam (pipeline, routing, SDK) depends on `Provider`
only, never on a concrete vendor.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

import aiohttp
import orjson

from .. import __version__
from ..config.models import Deployment
from ..errors import (
    UpstreamConnectionError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamStatusError,
    UpstreamTimeoutError,
)
from ..types import ChatResult, ChatStream


@dataclass(slots=True)
class Health:
    ok: bool
    latency_ms: float | None = None
    models: list[str] = field(default_factory=list)
    error: str | None = None


class Provider(ABC):
    """One deployment's adapter. `start()` runs on the serving event loop before first use."""

    wire: ClassVar[str]

    def __init__(self, deployment: Deployment, *, api_key: str | None = None) -> None:
        self.deployment = deployment
        self.name = deployment.name
        self.api_key = api_key

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Create pooled clients; called once on the event loop that will use the adapter."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release pooled clients."""

    @abstractmethod
    async def chat(self, body: dict[str, Any]) -> ChatResult:
        """One complete answer. `body` is OpenAI-format with `model` already the upstream id."""

    @abstractmethod
    async def open_stream(self, body: dict[str, Any]) -> ChatStream:
        """Start a streamed answer; raises `UpstreamError` if the upstream refuses it."""

    async def embed(self, body: dict[str, Any]) -> dict[str, Any]:
        raise UpstreamError(
            f"deployment {self.name} ({self.wire}) does not serve embeddings",
            deployment=self.name,
        )

    @abstractmethod
    async def list_models(self) -> list[str]:
        """The model ids the endpoint reports (a cheap call, used as the health probe)."""

    async def health(self) -> Health:
        t0 = time.perf_counter()
        try:
            models = await self.list_models()
        except UpstreamError as exc:
            return Health(False, error=exc.message)
        return Health(True, (time.perf_counter() - t0) * 1000.0, models)


ErrorMapper = Callable[[int, bytes, Any], UpstreamError]
"""Maps an upstream answer's non-200 status, body and headers to the gateway error to raise."""


class HTTPProvider(Provider):
    """An adapter over one pooled keep-alive aiohttp session, which its `start()` opens with
    `_open_session`. Sending, reading, error mapping and the translation of transport failures
    live here once; an adapter overrides `_send` to change how a request goes out (per-request
    auth, signing) and `error_for` to read its upstream's error bodies."""

    _session: aiohttp.ClientSession | None = None
    _stream_timeout: aiohttp.ClientTimeout

    def _open_session(self, headers: dict[str, str]) -> None:
        self._session = make_session(self.deployment, headers)
        self._stream_timeout = stream_timeout(self.deployment)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise UpstreamError(f"deployment {self.name} is not started", deployment=self.name)
        return self._session

    async def _send(
        self,
        method: str,
        url: str,
        payload: bytes | None,
        *,
        timeout: aiohttp.ClientTimeout | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
    ) -> aiohttp.ClientResponse:
        """Send one request; the caller owns (and releases) the response. Without `timeout` the
        session's applies (aiohttp would read an explicit None as "no limit")."""
        if timeout is None:
            return await self._http().request(method, url, data=payload, headers=headers, params=params)
        return await self._http().request(
            method, url, data=payload, headers=headers, params=params, timeout=timeout
        )

    def error_for(self, status: int, raw: bytes, headers: Any) -> UpstreamError:
        """The gateway error for a non-200 answer (override for an upstream's own error shape)."""
        return status_error(self.name, status, raw, headers)

    async def request_raw(
        self,
        method: str,
        url: str,
        payload: Any = None,
        *,
        probe: bool = False,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        errors: ErrorMapper | None = None,
    ) -> tuple[bytes, Any]:
        """One request with `payload` as JSON: the body and headers of a 200 answer. A non-200
        answer raises `errors` (default `error_for`), a transport failure its gateway error;
        `probe` uses the short health-probe timeout."""
        timeout = probe_timeout(self.deployment) if probe else None
        data = None if payload is None else orjson.dumps(payload)
        try:
            async with await self._send(method, url, data, timeout=timeout, headers=headers, params=params) as resp:
                raw = await resp.read()
                if resp.status != 200:
                    raise (errors or self.error_for)(resp.status, raw, resp.headers)
                return raw, resp.headers
        except Exception as exc:
            raise translate_exception(exc, self.name) from exc

    async def request_json(
        self,
        method: str,
        url: str,
        payload: Any = None,
        *,
        probe: bool = False,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        errors: ErrorMapper | None = None,
    ) -> Any:
        """`request_raw`, the answer decoded from JSON."""
        raw, _ = await self.request_raw(
            method, url, payload, probe=probe, headers=headers, params=params, errors=errors
        )
        return load_json(raw, self.name)

    async def open_response(
        self,
        url: str,
        payload: Any,
        *,
        headers: dict[str, str] | None = None,
        errors: ErrorMapper | None = None,
    ) -> aiohttp.ClientResponse:
        """POST `payload` as JSON for a streamed answer: the open response, whose body the
        caller reads and releases. A non-200 answer is read, released, and raised as `errors`
        (default `error_for`)."""
        try:
            resp = await self._send(
                "POST", url, orjson.dumps(payload), timeout=self._stream_timeout, headers=headers
            )
        except Exception as exc:
            raise translate_exception(exc, self.name) from exc
        if resp.status != 200:
            try:
                raw = await resp.read()
            except Exception:  # noqa: BLE001 - the status already says what failed
                raw = b""
            finally:
                resp.release()
            raise (errors or self.error_for)(resp.status, raw, resp.headers)
        return resp


def load_json(raw: bytes, deployment: str) -> Any:
    """An upstream answer body decoded from JSON."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise UpstreamProtocolError("upstream sent malformed JSON", deployment=deployment) from exc


def make_session(deployment: Deployment, headers: dict[str, str]) -> aiohttp.ClientSession:
    """The pooled keep-alive client every adapter uses for its deployment: `headers` are the
    adapter's own (auth, content type), then the deployment's configured `headers` over them."""
    connector = aiohttp.TCPConnector(
        limit=deployment.max_concurrency or 0,  # 0 = no cap; the pipeline bounds concurrency
        limit_per_host=0,
        keepalive_timeout=30,
        ttl_dns_cache=300,
        enable_cleanup_closed=False,
    )
    return aiohttp.ClientSession(
        connector=connector,
        headers={**headers, **deployment.headers},
        timeout=aiohttp.ClientTimeout(total=deployment.timeout_s, sock_connect=deployment.connect_timeout_s),
        auto_decompress=True,
    )


def stream_timeout(deployment: Deployment) -> aiohttp.ClientTimeout:
    """For streamed answers: no total limit, but each read must come within `timeout_s`."""
    return aiohttp.ClientTimeout(
        total=None, sock_connect=deployment.connect_timeout_s, sock_read=deployment.timeout_s
    )


def probe_timeout(deployment: Deployment) -> aiohttp.ClientTimeout:
    """For health probes and model listings."""
    return aiohttp.ClientTimeout(total=min(5.0, deployment.timeout_s))


USER_AGENT = f"tiergate/{__version__}"


def parse_retry_after(headers: Any) -> float | None:
    """`retry-after-ms`, or `retry-after` in seconds or as an HTTP date."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        if parsed is None:
            return None
        return max(0.0, parsed.timestamp() - time.time())


def upstream_message(body: bytes) -> str:
    """The upstream's own error message (OpenAI/Anthropic/Gemini shapes), short."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body[:200].decode("utf-8", "replace").strip()
        return text or "no body"
    err = data.get("error") if isinstance(data, dict) else None
    if isinstance(err, dict):
        return str(err.get("message") or err.get("type") or err)[:300]
    if isinstance(err, str):
        return err[:300]
    if isinstance(data, dict) and "message" in data:
        return str(data["message"])[:300]
    return str(data)[:300]


def status_error(deployment: str, status: int, body: bytes, headers: Any) -> UpstreamStatusError:
    if status in (401, 403):
        # Never echo the upstream's words here: some repeat part of the key they refused.
        message = (
            f"upstream returned {status}: it refused the gateway's credentials for deployment "
            f"'{deployment}' (check that deployment's api_key setting)"
        )
    else:
        message = f"upstream returned {status}: {upstream_message(body)}"
    return UpstreamStatusError(
        message,
        deployment=deployment,
        upstream_status=status,
        retry_after=parse_retry_after(headers),
    )


def translate_exception(exc: BaseException, deployment: str) -> UpstreamError:
    """Map transport exceptions to gateway errors, most specific first."""
    if isinstance(exc, UpstreamError):
        return exc
    if isinstance(exc, (asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
        return UpstreamTimeoutError("upstream timed out", deployment=deployment)
    if isinstance(exc, aiohttp.ClientPayloadError):
        return UpstreamProtocolError(
            "upstream connection broke off in the middle of the answer", deployment=deployment
        )
    if isinstance(exc, aiohttp.ClientConnectorError):
        return UpstreamConnectionError(
            f"cannot connect to upstream ({exc.os_error.strerror or exc.os_error})",
            deployment=deployment,
        )
    if isinstance(exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)):
        return UpstreamConnectionError(
            "upstream closed the connection (reset)", deployment=deployment
        )
    if isinstance(exc, aiohttp.ClientError):
        return UpstreamConnectionError(f"upstream client error: {type(exc).__name__}", deployment=deployment)
    if isinstance(exc, (orjson.JSONDecodeError, ValueError)):
        return UpstreamProtocolError("upstream sent malformed JSON", deployment=deployment)
    return UpstreamError(f"upstream call failed: {type(exc).__name__}", deployment=deployment)
