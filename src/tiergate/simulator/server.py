"""The simulated OpenAI-compatible upstream server (aiohttp.web).

Owns: the HTTP surface (``POST /v1/chat/completions``, ``GET /v1/models``,
``GET /health``, ``GET /_sim/stats``, ``POST /_sim/reset``, ``GET|POST /_sim/config``), request
validation, auth, stats, timing (latency / TTFT / tokens-per-second pacing with
asyncio sleeps), dispatch of injected faults, and the process entry points
:func:`build_app`, :func:`start_simulator` and :func:`run_simulator`.

Test controls: ``POST /_sim/config`` changes a running instance (fault, fault_rate, latency_ms,
ttft_ms, tokens_per_s, hang_s, fault_models, seed; see ``profiles.reconfigure``), and
``/_sim/stats`` reports ``in_flight`` / ``max_in_flight``: chat requests being answered now and
the most at once since start or the last ``/_sim/reset`` (what a gateway's concurrency limit must
bound).

Fast mode (all delays 0) keeps per-request work to one ``orjson.loads``, a
message scan and one ``orjson.dumps``; streams are then written in one go.
"""

from __future__ import annotations

import asyncio
import importlib
import itertools
import os
import random
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from multidict import CIMultiDictProxy

from . import content as C
from . import faults as F
from . import wire as W
from .profiles import FAULT_KINDS, Profile, SimulatorConfig, reconfigure, resolve_profile, runtime_settings

_MODELS_CREATED = 1_700_000_000
_MAX_BODY = 64 * 1024 * 1024
_SHUTDOWN_TIMEOUT = 2.0
_HEALTH = b'{"status":"ok"}'


# --------------------------------------------------------------------------- state


@dataclass(slots=True)
class SimState:
    """Per-instance state: resolved profile, fault dice and request stats."""

    profile: Profile
    cfg: SimulatorConfig
    auth: str | None
    fingerprint: str
    models_body: bytes
    rng: random.Random
    id_prefix: str
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    ids: Iterator[int] = field(default_factory=itertools.count)
    requests: int = 0
    chat_requests: int = 0
    faults: int = 0
    in_flight: int = 0  # chat requests being answered now
    max_in_flight: int = 0  # the most at once since start or reset
    last_request: Any = None
    last_headers: CIMultiDictProxy[str] | None = None

    def roll_config_fault(self) -> str | None:
        fault = self.cfg.fault
        if fault is None:
            return None
        rate = self.cfg.fault_rate
        if rate >= 1.0 or (rate > 0.0 and self.rng.random() < rate):
            return fault
        return None

    def enter(self) -> None:
        """A chat request started (paired with `leave`)."""
        self.in_flight += 1
        if self.in_flight > self.max_in_flight:
            self.max_in_flight = self.in_flight

    def leave(self) -> None:
        self.in_flight -= 1

    def next_id(self) -> str:
        return f"chatcmpl-{self.id_prefix}{next(self.ids):08x}"

    def stats(self) -> dict[str, Any]:
        headers = {str(k): v for k, v in (self.last_headers or {}).items()}
        return {
            "requests": self.requests,
            "chat_requests": self.chat_requests,
            "faults": self.faults,
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "last_request": self.last_request,
            "last_headers": headers,
            "profile": self.profile.name,
        }

    def reset(self) -> None:
        self.requests = self.chat_requests = self.faults = 0
        self.max_in_flight = self.in_flight  # requests still being answered stay counted
        self.last_request = None
        self.last_headers = None


STATE: web.AppKey[SimState] = web.AppKey("tiergate_simulator_state", SimState)


# --------------------------------------------------------------------------- request model


@dataclass(slots=True)
class ChatRequest:
    """The validated subset of a chat completion request the simulator uses."""

    model: str
    scan: C.MessageScan
    stream: bool
    include_usage: bool
    n: int
    max_tokens: int | None
    stop: Any
    tools: Any
    tool_choice: Any
    response_format: Any


def _int_param(body: dict[str, Any], name: str, low: int, high: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise C.RequestError(f"Invalid value for '{name}': expected an integer in [{low}, {high}].", name)
    return value


def parse_chat_request(body: dict[str, Any]) -> ChatRequest:
    """Validate a decoded request body; raises :class:`content.RequestError`."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise C.RequestError("you must provide a model parameter", "model")
    if "messages" not in body:
        raise C.RequestError("Missing required parameter: 'messages'.", "messages")
    scan = C.scan_messages(body["messages"])
    stream_opts = body.get("stream_options")
    max_tokens = _int_param(body, "max_completion_tokens", 1, 10**9)
    if max_tokens is None:
        max_tokens = _int_param(body, "max_tokens", 1, 10**9)
    return ChatRequest(
        model=model,
        scan=scan,
        stream=body.get("stream") is True,
        include_usage=isinstance(stream_opts, dict) and stream_opts.get("include_usage") is True,
        n=_int_param(body, "n", 1, 128) or 1,
        max_tokens=max_tokens,
        stop=body.get("stop"),
        tools=body.get("tools"),
        tool_choice=body.get("tool_choice"),
        response_format=body.get("response_format"),
    )


# --------------------------------------------------------------------------- answer planning


@dataclass(slots=True)
class ChoicePlan:
    """One choice of the answer: either text or a single tool call."""

    index: int
    finish: str
    text: str | None = None
    tool_name: str | None = None
    tool_id: str | None = None
    tool_args: str | None = None

    @property
    def output_chars(self) -> int:
        if self.text is not None:
            return len(self.text)
        return len(self.tool_name or "") + len(self.tool_args or "")


def plan_choice(req: ChatRequest, st: SimState, index: int) -> ChoicePlan:
    """Deterministic content of choice ``index`` (same for stream and non-stream)."""
    tool = None if req.scan.last_role == "tool" else C.select_tool(req.tools, req.tool_choice)
    if tool is not None:
        name = str(tool.get("name", "tool"))
        args = C.tool_arguments(tool)
        return ChoicePlan(index, "tool_calls", None, name, C.tool_call_id(name, args, index), args)
    text = C.base_reply(req.scan, st.profile.name, req.model, st.profile.reply_tokens, index)
    as_json = C.json_reply(text, req.response_format)
    if as_json is not None:
        text = as_json
    text = C.apply_stop(text, req.stop)
    text, cut = C.apply_cap(text, req.max_tokens)
    return ChoicePlan(index, "length" if cut else "stop", text)


def plan_answer(req: ChatRequest, st: SimState) -> tuple[list[ChoicePlan], dict[str, int]]:
    choices = [plan_choice(req, st, i) for i in range(req.n)]
    completion = sum(C.estimate_tokens(c.output_chars) for c in choices)
    return choices, W.usage(C.estimate_tokens(req.scan.prompt_chars), completion)


# --------------------------------------------------------------------------- non-streaming


def completion_bytes(req: ChatRequest, st: SimState, choices: list[ChoicePlan], use: dict[str, int]) -> bytes:
    out = []
    for c in choices:
        if c.text is not None:
            message = W.text_message(c.text)
        else:
            message = W.tool_message(c.tool_id or "", c.tool_name or "", c.tool_args or "")
        out.append(W.completion_choice(c.index, message, c.finish))
    return W.completion_body(st.next_id(), int(time.time()), req.model, st.fingerprint, out, use)


async def respond_plain(
    request: web.Request, req: ChatRequest, st: SimState, truncate: bool
) -> web.StreamResponse:
    choices, use = plan_answer(req, st)
    p = st.profile
    delay = p.latency_ms / 1000.0
    if p.tokens_per_s > 0:
        delay += use["completion_tokens"] / p.tokens_per_s
    if delay > 0:
        await asyncio.sleep(delay)
    body = completion_bytes(req, st, choices, use)
    if truncate:
        return await send_truncated_body(request, body)
    return web.Response(body=body, content_type=W.JSON_CT)


async def send_truncated_body(request: web.Request, body: bytes) -> web.StreamResponse:
    """Announce the full Content-Length, send half the body, close."""
    resp = web.StreamResponse(headers={"Content-Type": W.JSON_CT})
    resp.content_length = len(body)
    try:
        await resp.prepare(request)
        await resp.write(body[: len(body) // 2])
    except ConnectionError:
        pass
    F.close_connection(request)
    return resp


# --------------------------------------------------------------------------- streaming


def choice_events(fr: W.ChunkFramer, c: ChoicePlan) -> list[tuple[bytes, float]]:
    """SSE events of one choice with the token weight used for pacing."""
    if c.text is None:
        events = [(fr.choice(c.index, W.sse_tool_start(c.tool_id or "", c.tool_name or "")), 0.0)]
        events += [(fr.choice(c.index, W.sse_tool_args(a)), len(a) / 4) for a in C.argument_pieces(c.tool_args or "")]
    else:
        events = [(fr.choice(c.index, W.sse_role_delta()), 0.0)]
        events += [(fr.content(c.index, piece), len(piece) / 4) for piece in C.stream_pieces(c.text)]
    events.append((fr.choice(c.index, {}, c.finish), 0.0))
    return events


def stream_events(req: ChatRequest, st: SimState) -> list[tuple[bytes, float]]:
    """All SSE events of a streamed answer (choices interleaved), without [DONE]."""
    choices, use = plan_answer(req, st)
    fr = W.ChunkFramer.create(st.next_id(), int(time.time()), req.model, st.fingerprint, req.include_usage)
    per_choice = [choice_events(fr, c) for c in choices]
    if len(per_choice) == 1:
        events = per_choice[0]
    else:
        events = [e for group in itertools.zip_longest(*per_choice) for e in group if e is not None]
    if req.include_usage:
        events.append((fr.usage(use), 0.0))
    return events


async def respond_stream(
    request: web.Request, req: ChatRequest, st: SimState, truncate: bool
) -> web.StreamResponse:
    events = stream_events(req, st)
    p = st.profile
    if p.ttft_ms > 0:
        await asyncio.sleep(p.ttft_ms / 1000.0)
    resp = web.StreamResponse(headers=W.SSE_HEADERS)
    try:
        await resp.prepare(request)
        if truncate:
            keep = max(1, min(3, len(events) - 1))
            await resp.write(b"".join(e for e, _ in events[:keep]))
            F.close_connection(request)
            return resp
        if p.tokens_per_s <= 0:
            await resp.write(b"".join(e for e, _ in events) + W.DONE)
        else:
            await write_paced(resp, events, p.tokens_per_s)
            await resp.write(W.DONE)
        await resp.write_eof()
    except ConnectionError:
        pass  # client went away mid-stream: nothing to report
    return resp


async def write_paced(resp: web.StreamResponse, events: list[tuple[bytes, float]], tps: float) -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    tokens = 0.0
    for data, weight in events:
        tokens += weight
        delay = start + tokens / tps - loop.time()
        if delay > 0.001:
            await asyncio.sleep(delay)
        await resp.write(data)


# --------------------------------------------------------------------------- handlers


def _authorized(request: web.Request, st: SimState) -> bool:
    return st.auth is None or request.headers.get("Authorization") == st.auth


def _unauthorized() -> web.Response:
    return F.error_response(
        401, "Incorrect API key provided.", "invalid_request_error", None, "invalid_api_key"
    )


async def _read_json(request: web.Request) -> tuple[Any, bool]:
    raw = await request.read()
    try:
        return orjson.loads(raw), True
    except orjson.JSONDecodeError:
        return None, False


async def chat_completions(request: web.Request) -> web.StreamResponse:
    st = request.app[STATE]
    st.enter()
    try:
        return await _chat_completions(request, st)
    finally:
        st.leave()


async def _chat_completions(request: web.Request, st: SimState) -> web.StreamResponse:
    st.requests += 1
    st.chat_requests += 1
    st.last_headers = request.headers
    body, ok = await _read_json(request)
    if ok:
        st.last_request = body
    if not _authorized(request, st):
        return _unauthorized()
    if not ok or not isinstance(body, dict):
        return F.error_response(
            400,
            "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your "
            "HTTP library correctly. The OpenAI API expects a JSON payload.)",
            "invalid_request_error",
        )
    try:
        req = parse_chat_request(body)
    except C.RequestError as exc:
        return F.error_response(400, exc.message, "invalid_request_error", exc.param)
    spec = req.scan.fault or st.roll_config_fault()
    if spec is None:
        return await (respond_stream if req.stream else respond_plain)(request, req, st, False)
    return await _respond_with_fault(request, req, st, F.parse_fault(spec))


async def _respond_with_fault(
    request: web.Request, req: ChatRequest, st: SimState, fault: F.Fault
) -> web.StreamResponse:
    if fault.kind not in FAULT_KINDS:
        return await (respond_stream if req.stream else respond_plain)(request, req, st, False)
    st.faults += 1
    early = F.http_fault_response(fault.kind)
    if early is not None:
        return early
    if fault.kind == "reset":
        return F.reset_connection(request)
    if fault.kind == "malformed":
        return F.malformed_response(req.stream)
    if fault.kind == "timeout":
        if not await F.hang(request, st.cfg.hang_s, st.stopping):
            return F.reset_connection(request)
    elif fault.kind == "slow_first_byte":
        await asyncio.sleep((fault.arg or 0.0) / 1000.0)
    truncate = fault.kind == "truncate"
    return await (respond_stream if req.stream else respond_plain)(request, req, st, truncate)


_EMBED_DIMS = 64


async def embeddings(request: web.Request) -> web.StreamResponse:
    """``POST /v1/embeddings``: deterministic unit vectors (``dimensions`` honoured)."""
    st = request.app[STATE]
    st.requests += 1
    st.chat_requests += 1
    st.last_headers = request.headers
    body, ok = await _read_json(request)
    if ok:
        st.last_request = body
    if not _authorized(request, st):
        return _unauthorized()
    if not ok or not isinstance(body, dict) or not isinstance(body.get("model"), str):
        return F.error_response(400, "you must provide a model parameter", "invalid_request_error", "model")
    inputs = body.get("input")
    if isinstance(inputs, str):
        inputs = [inputs]
    if not isinstance(inputs, list) or not inputs or not all(isinstance(t, str) and t for t in inputs):
        return F.error_response(
            400, "'input' must be a non-empty string or array of non-empty strings", "invalid_request_error", "input"
        )
    fault = next((f for f in map(C.find_fault, inputs) if f), None) or st.roll_config_fault()
    if fault is not None:
        early = F.http_fault_response(F.parse_fault(fault).kind)
        if early is not None:
            st.faults += 1
            return early
    try:
        dims = _int_param(body, "dimensions", 1, 4096)
    except C.RequestError as exc:
        return F.error_response(400, exc.message, "invalid_request_error", exc.param)
    data = [
        {"object": "embedding", "index": i, "embedding": C.embedding_vector(t, dims or _EMBED_DIMS)}
        for i, t in enumerate(inputs)
    ]
    tokens = sum(C.estimate_tokens(len(t)) for t in inputs)
    payload = {
        "object": "list", "data": data, "model": body["model"],
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    return web.Response(body=orjson.dumps(payload), content_type=W.JSON_CT)


def _models_fault(st: SimState) -> web.Response | None:
    """The configured HTTP fault for the model listing, when `fault_models` is on."""
    if not st.cfg.fault_models:
        return None
    spec = st.roll_config_fault()
    return F.http_fault_response(F.parse_fault(spec).kind) if spec is not None else None


async def list_models(request: web.Request) -> web.Response:
    st = request.app[STATE]
    st.requests += 1
    st.last_headers = request.headers
    if not _authorized(request, st):
        return _unauthorized()
    failed = _models_fault(st)
    if failed is not None:
        return failed
    return web.Response(body=st.models_body, content_type=W.JSON_CT)


async def get_model(request: web.Request) -> web.Response:
    st = request.app[STATE]
    st.requests += 1
    st.last_headers = request.headers
    if not _authorized(request, st):
        return _unauthorized()
    failed = _models_fault(st)
    if failed is not None:
        return failed
    obj = W.model_obj(request.match_info["model"], _owner(st.profile), _MODELS_CREATED)
    return web.Response(body=orjson.dumps(obj), content_type=W.JSON_CT)


async def v1_not_found(request: web.Request) -> web.Response:
    st = request.app[STATE]
    st.requests += 1
    st.last_headers = request.headers
    return F.error_response(
        404, f"Invalid URL ({request.method} {request.path})", "invalid_request_error"
    )


async def health(request: web.Request) -> web.Response:
    return web.Response(body=_HEALTH, content_type=W.JSON_CT)


async def sim_stats(request: web.Request) -> web.Response:
    return web.Response(body=orjson.dumps(request.app[STATE].stats()), content_type=W.JSON_CT)


async def sim_reset(request: web.Request) -> web.Response:
    request.app[STATE].reset()
    return web.Response(body=b'{"status":"reset"}', content_type=W.JSON_CT)


async def sim_config(request: web.Request) -> web.Response:
    """``GET``: the instance's runtime settings. ``POST {"fault": "500"|null, "fault_rate": 0..1,
    "latency_ms": n, "ttft_ms": n, "tokens_per_s": n, "hang_s": n, "fault_models": bool,
    "seed": n}``: change them (any subset) for the following requests; ``seed`` also reseeds the
    fault dice. A bad body changes nothing and gets a 400 naming the problem."""
    st = request.app[STATE]
    if request.method == "POST":
        body, ok = await _read_json(request)
        if not ok or not isinstance(body, dict):
            return F.error_response(400, "expected a JSON object of settings", "invalid_request_error")
        try:
            st.profile, st.cfg = reconfigure(st.profile, st.cfg, body)
        except ValueError as exc:
            return F.error_response(400, str(exc), "invalid_request_error")
        if "seed" in body:
            st.rng = random.Random(st.cfg.seed)
    return web.Response(body=orjson.dumps(runtime_settings(st.profile, st.cfg)), content_type=W.JSON_CT)


# --------------------------------------------------------------------------- app / runners


def _owner(profile: Profile) -> str:
    return f"tiergate-sim-{profile.name}"


def _new_state(cfg: SimulatorConfig) -> SimState:
    profile = resolve_profile(cfg)
    return SimState(
        profile=profile,
        cfg=cfg,
        auth=f"Bearer {cfg.api_key}" if cfg.api_key else None,
        fingerprint=f"fp_sim_{profile.name}",
        models_body=W.models_body(profile.models, _owner(profile), _MODELS_CREATED),
        rng=random.Random(cfg.seed),
        id_prefix=f"sim{os.urandom(3).hex()}",
    )


async def _on_shutdown(app: web.Application) -> None:
    app[STATE].stopping.set()


def build_app(cfg: SimulatorConfig) -> web.Application:
    """The simulator as an aiohttp application (raises ValueError on bad config)."""
    app = web.Application(client_max_size=_MAX_BODY)
    app[STATE] = _new_state(cfg)
    app.on_shutdown.append(_on_shutdown)
    if cfg.format == "openai":
        app.router.add_post("/v1/chat/completions", chat_completions)
        app.router.add_post("/v1/embeddings", embeddings)
        app.router.add_get("/v1/models", list_models)
        app.router.add_get("/v1/models/{model:.+}", get_model)
        app.router.add_route("*", "/v1/{tail:.*}", v1_not_found)
    else:
        importlib.import_module(f"{__package__}.formats.{cfg.format}").add_routes(app)
    app.router.add_get("/health", health)
    app.router.add_get("/_sim/stats", sim_stats)
    app.router.add_post("/_sim/reset", sim_reset)
    app.router.add_get("/_sim/config", sim_config)
    app.router.add_post("/_sim/config", sim_config)
    return app


async def start_simulator(
    cfg: SimulatorConfig, host: str = "127.0.0.1", port: int = 0
) -> tuple[web.AppRunner, int]:
    """Start listening; returns (runner, bound port).  Call ``await runner.cleanup()``."""
    runner = web.AppRunner(build_app(cfg), access_log=None, shutdown_timeout=_SHUTDOWN_TIMEOUT)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner, _bound_port(runner, port)


def _bound_port(runner: web.AppRunner, default: int) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return default


def banner(cfg: SimulatorConfig, host: str, port: int) -> str:
    path, fmt = ("/v1", "") if cfg.format == "openai" else ("", f" format={cfg.format}")
    return (
        f"tiergate simulate: profile={cfg.profile}{fmt} listening on "
        f"http://{host}:{port}{path} (SIMULATED upstream)"
    )


async def serve_forever(cfg: SimulatorConfig, host: str = "127.0.0.1", port: int = 8200) -> None:
    """Run until SIGINT/SIGTERM (or cancellation), then clean up."""
    runner, bound = await start_simulator(cfg, host, port)
    stop = asyncio.Event()
    installed = _install_signal_handlers(stop)
    print(banner(cfg, host, bound), flush=True)
    try:
        await stop.wait()
    finally:
        _remove_signal_handlers(installed)
        await runner.cleanup()


def _install_signal_handlers(stop: asyncio.Event) -> list[signal.Signals]:
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError, ValueError):
            continue
        installed.append(sig)
    return installed


def _remove_signal_handlers(installed: list[signal.Signals]) -> None:
    loop = asyncio.get_running_loop()
    for sig in installed:
        loop.remove_signal_handler(sig)


def run_simulator(cfg: SimulatorConfig, host: str = "127.0.0.1", port: int = 8200) -> None:
    """Blocking entry point (uvloop when available); stops cleanly on SIGINT/SIGTERM."""
    resolve_profile(cfg)  # fail fast on bad config, before binding
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency off Windows
        asyncio.run(serve_forever(cfg, host, port))
    else:
        uvloop.run(serve_forever(cfg, host, port))
