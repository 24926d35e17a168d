"""The official `openai` SDK against a running gateway (real process, real sockets) routed to
simulated upstreams (real processes speaking OpenAI's wire format)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from typing import Any, Iterator

import openai
import pytest
from openai import AsyncOpenAI, OpenAI

from tests.support import (
    MASTER_KEY,
    GatewayProc,
    Sim,
    deployment,
    free_port,
    http_json,
    start_gateway,
    start_sim,
)

AZ = "Salam! Mənim adım Əliyevdir: ə ğ ı ö ü ş ç Ə Ğ I Ö Ü Ş Ç"
RU = "Привет, как дела? Съешь же ещё этих мягких французских булок."


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("world")
    specs: dict[str, tuple[str, ...]] = {
        "local": ("local",), "sovereign": ("sovereign",), "cloud": ("cloud",),
        "bad500": ("cloud", "--fault", "500"), "bad503": ("cloud", "--fault", "503"),
        "bad429": ("cloud", "--fault", "429"), "hang": ("cloud", "--fault", "timeout", "--hang-s", "5"),
        "reset": ("cloud", "--fault", "reset"), "badreq": ("cloud", "--fault", "400"),
    }
    sims: dict[str, Sim] = {}
    gw: GatewayProc | None = None
    try:
        for key, args in specs.items():
            sims[key] = start_sim(tmp, *args)
        gw = start_gateway(tmp, _world_config(sims))
        yield {"gw": gw, "sims": sims, "tmp": tmp}
    finally:
        if gw is not None:
            gw.stop()
        for s in sims.values():
            s.stop()


def _world_config(sims: dict[str, Sim]) -> dict[str, Any]:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    config = {
        "server": {"max_body_mb": 1},
        "privacy": {"default_level": "PUBLIC"},
        "deployments": [
            deployment("local-a", sims["local"], "local", capabilities=["tools", "json", "vision"]),
            deployment("sovereign-a", sims["sovereign"], "sovereign", tier="III"),
            deployment("cloud-a", sims["cloud"], "cloud", tier="I", price={"input": 0.15, "output": 0.6}),
            deployment("bad-500", sims["bad500"], "local"),
            deployment("bad-503", sims["bad503"], "local"),
            deployment("bad-429", sims["bad429"], "local"),
            deployment("hang", sims["hang"], "local", timeout_s=0.5),
            deployment("reset", sims["reset"], "local"),
            deployment("bad-request", sims["badreq"], "local"),
            deployment("dead", dead, "local", connect_timeout_s=1),
        ],
        "model_groups": {
            "assistant": ["local-a", "sovereign-a", "cloud-a"],
            "cloud-only": ["cloud-a"],
            "sov-cloud": ["sovereign-a", "cloud-a"],
            "fb-500": ["bad-500", "cloud-a"],
            "fb-timeout": ["hang", "cloud-a"],
            "fb-reset": ["reset", "cloud-a"],
            "fb-dead": ["dead", "cloud-a"],
            "no-fb-400": ["bad-request", "cloud-a"],
            "all-fail": ["bad-500", "dead", "reset"],
            "all-timeout": ["hang"],
            "all-503": ["bad-503"],
            "all-429": ["bad-429"],
        },
    }
    return config


@pytest.fixture
def gw(world: dict[str, Any]) -> GatewayProc:
    return world["gw"]


@pytest.fixture
def sims(world: dict[str, Any]) -> dict[str, Sim]:
    for s in world["sims"].values():
        s.reset()
    return world["sims"]


@pytest.fixture
def client(gw: GatewayProc) -> Iterator[OpenAI]:
    c = OpenAI(base_url=gw.url, api_key=MASTER_KEY, max_retries=0, timeout=20)
    yield c
    c.close()


def _user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


# ---------------------------------------------------------------- chat and streaming
def test_chat_answers_with_receipt(client: OpenAI, sims: dict[str, Sim]) -> None:
    raw = client.chat.completions.with_raw_response.create(model="assistant", messages=_user("Hello there"))
    completion = raw.parse()
    assert completion.choices[0].message.content
    assert completion.usage is not None and completion.usage.total_tokens > 0
    h = raw.headers
    assert h["x-tiergate-deployment"] == "local-a"
    assert h["x-tiergate-location"] == "local"
    assert h["x-tiergate-residency"] == "on-prem"
    assert h["x-tiergate-privacy"] == "PUBLIC"
    assert h["x-request-id"].startswith("req_")
    assert 0 <= float(h["x-tiergate-overhead-ms"]) < 1000
    body = sims["local"].stats()["last_request"]
    assert body["model"] == "local-a-model"  # the upstream id replaced the public name


def test_unknown_fields_and_parameters_pass_through(client: OpenAI, sims: dict[str, Sim]) -> None:
    client.chat.completions.create(
        model="assistant", messages=_user("params"), max_tokens=7, stop=["zzz"], seed=42, user="u-1",
        n=2, response_format={"type": "json_object"}, extra_body={"repetition_penalty": 1.1, "metadata": {"privacy": "PUBLIC", "app": "x"}},
    )
    sent = sims["local"].stats()["last_request"]
    assert sent["max_tokens"] == 7 and sent["stop"] == ["zzz"] and sent["seed"] == 42 and sent["user"] == "u-1"
    assert sent["n"] == 2 and sent["response_format"] == {"type": "json_object"}
    assert sent["repetition_penalty"] == 1.1
    assert sent["metadata"] == {"app": "x"}  # tiergate's own hint is not sent upstream


def test_stream_reassembles_to_the_same_text(client: OpenAI) -> None:
    msgs = _user("Tell me about wheat in Ganja")
    full = client.chat.completions.create(model="assistant", messages=msgs).choices[0].message.content
    chunks = list(client.chat.completions.create(model="assistant", messages=msgs, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == full
    assert all(c.usage is None for c in chunks)  # not asked for: the usage chunk is not passed on
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_stream_include_usage(client: OpenAI, gw: GatewayProc) -> None:
    with client.chat.completions.with_streaming_response.create(
        model="assistant", messages=_user("usage please"), stream=True, stream_options={"include_usage": True}
    ) as resp:
        assert resp.headers["x-tiergate-deployment"] == "local-a"
        assert resp.headers["content-type"].startswith("text/event-stream")
        chunks = list(resp.parse())
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None and last.usage.completion_tokens > 0


def test_tools_round_trip(client: OpenAI) -> None:
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
    first = client.chat.completions.create(model="assistant", messages=_user("Weather in Baku?"), tools=tools)
    call = first.choices[0].message.tool_calls[0]
    assert first.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather" and "city" in json.loads(call.function.arguments)
    second = client.chat.completions.create(model="assistant", tools=tools, messages=[
        {"role": "user", "content": "Weather in Baku?"},
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "sunny, 24C"},
    ])
    assert "sunny, 24C" in (second.choices[0].message.content or "")


def test_tools_streaming(client: OpenAI) -> None:
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}]
    chunks = list(client.chat.completions.create(model="assistant", messages=_user("find it"), tools=tools, stream=True))
    args = "".join(tc.function.arguments or "" for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or []))
    assert json.loads(args) == {"q": "value"} or isinstance(json.loads(args), dict)
    assert any(c.choices and c.choices[0].finish_reason == "tool_calls" for c in chunks)


def test_image_content_parts_pass_through(client: OpenAI, sims: dict[str, Sim]) -> None:
    client.chat.completions.create(model="assistant", messages=[{"role": "user", "content": [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
    ]}])
    sent = sims["local"].stats()["last_request"]["messages"][0]["content"]
    assert sent[1]["image_url"]["url"] == "data:image/png;base64,iVBORw0KGgo="


@pytest.mark.parametrize("text", [AZ, RU, AZ + " / " + RU + " 🌾"])
def test_unicode_intact_both_ways(client: OpenAI, sims: dict[str, Sim], text: str) -> None:
    out = client.chat.completions.create(model="assistant", messages=_user(f"[[echo]]{text}"))
    assert out.choices[0].message.content == text
    assert sims["local"].stats()["last_request"]["messages"][0]["content"] == f"[[echo]]{text}"
    streamed = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
        model="assistant", messages=_user(f"[[echo]]{text}"), stream=True) if c.choices)
    assert streamed == text


def test_200kb_prompt(client: OpenAI) -> None:
    text = ("Kənd təsərrüfatı məlumatı. " * 8000)[:200_000]
    out = client.chat.completions.create(model="assistant", messages=_user(f"[[echo]]{text}"))
    assert out.choices[0].message.content == text


async def test_50_concurrent_requests(gw: GatewayProc) -> None:
    async with AsyncOpenAI(base_url=gw.url, api_key=MASTER_KEY, max_retries=0, timeout=30) as c:
        async def one(i: int) -> str:
            r = await c.chat.completions.create(model="assistant", messages=_user(f"[[echo]]request {i}"))
            return r.choices[0].message.content or ""
        results = await asyncio.gather(*(one(i) for i in range(50)))
    assert results == [f"request {i}" for i in range(50)]


async def test_async_streaming(gw: GatewayProc) -> None:
    async with AsyncOpenAI(base_url=gw.url, api_key=MASTER_KEY, max_retries=0) as c:
        stream = await c.chat.completions.create(model="assistant", messages=_user("[[echo]]async ok"), stream=True)
        text = "".join([ch.choices[0].delta.content or "" async for ch in stream if ch.choices])
    assert text == "async ok"


# ---------------------------------------------------------------- errors
def test_missing_key_401(gw: GatewayProc) -> None:
    c = OpenAI(base_url=gw.url, api_key="wrong-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as e:
        c.chat.completions.create(model="assistant", messages=_user("hi"))
    assert e.value.status_code == 401
    status, body, _ = http_json("POST", f"{gw.url}/chat/completions", {"model": "assistant", "messages": _user("x")})
    assert status == 401 and body["error"]["type"] == "authentication_error"


def test_x_api_key_header_accepted(gw: GatewayProc) -> None:
    status, body, headers = http_json("POST", f"{gw.url}/chat/completions", {"model": "assistant", "messages": _user("x")},
                                      headers={"x-api-key": MASTER_KEY})
    assert status == 200 and headers["x-tiergate-deployment"] == "local-a"


def test_unknown_model_404_lists_known(client: OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="gpt-17", messages=_user("hi"))
    err = e.value.body
    assert err["code"] == "model_not_found" and err["param"] == "model"
    assert "assistant" in err["message"] and "cloud-only" in err["message"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "assistant"}, "messages"),
        ({"model": "assistant", "messages": []}, "messages"),
        ({"model": "assistant", "messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
        ({"model": "assistant", "messages": _user("x"), "temperature": 7}, "temperature"),
        ({"model": "assistant", "messages": _user("x"), "n": 0}, "n"),
        ({"messages": _user("x")}, "model"),
        ({"model": "assistant", "messages": _user("x"), "metadata": {"privacy": "TOP-SECRET"}}, "metadata.privacy"),
    ],
)
def test_invalid_body_400_names_the_field(gw: GatewayProc, body: dict[str, Any], param: str) -> None:
    status, out, headers = http_json("POST", f"{gw.url}/chat/completions", body, headers={"authorization": f"Bearer {MASTER_KEY}"})
    assert status == 400, out
    assert out["error"]["param"] == param and out["error"]["type"] == "invalid_request_error"
    assert param.split("[")[0].split(".")[0] in out["error"]["message"]
    assert headers["x-request-id"]


def test_malformed_json_400(gw: GatewayProc) -> None:
    import urllib.request
    req = urllib.request.Request(f"{gw.url}/chat/completions", data=b'{"model": "assistant", "messages": [', method="POST",
                                 headers={"authorization": f"Bearer {MASTER_KEY}", "content-type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=5)
    assert e.value.code == 400
    assert "not valid JSON" in json.loads(e.value.read())["error"]["message"]


def test_body_over_limit_413(client: OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as e:
        client.chat.completions.create(model="assistant", messages=_user("x" * 1_100_000))
    assert e.value.status_code == 413
    assert e.value.body["code"] == "request_too_large"


def test_unknown_route_is_json_404(gw: GatewayProc) -> None:
    status, body, _ = http_json("GET", f"{gw.base}/v1/nothing-here")
    assert status == 404 and body["error"]["code"] == "not_found"


def test_models_lists_groups(client: OpenAI) -> None:
    ids = {m.id for m in client.models.list()}
    assert {"assistant", "cloud-only", "fb-500"} <= ids


# ---------------------------------------------------------------- privacy by location
def test_private_request_never_reaches_cloud(client: OpenAI, sims: dict[str, Sim]) -> None:
    with pytest.raises(openai.PermissionDeniedError) as e:
        client.chat.completions.create(model="cloud-only", messages=_user("my FIN is 5ABC123"),
                                       extra_headers={"x-tiergate-privacy": "PRIVATE"})
    assert e.value.status_code == 403
    msg = e.value.body["message"]
    assert "PRIVATE" in msg and "cloud-a" in msg and "local" in msg
    assert sims["cloud"].stats()["requests"] == 0


def test_private_stream_never_reaches_cloud(client: OpenAI, sims: dict[str, Sim]) -> None:
    with pytest.raises(openai.PermissionDeniedError):
        client.chat.completions.create(model="sov-cloud", messages=_user("secret"), stream=True,
                                       extra_body={"metadata": {"privacy": "private"}})
    assert sims["cloud"].stats()["requests"] == 0 and sims["sovereign"].stats()["requests"] == 0


def test_sensitive_stays_in_country(client: OpenAI, sims: dict[str, Sim]) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="sov-cloud", messages=_user("tax data"), extra_headers={"x-tiergate-privacy": "SENSITIVE"})
    assert raw.headers["x-tiergate-location"] == "sovereign"
    with pytest.raises(openai.PermissionDeniedError):
        client.chat.completions.create(model="cloud-only", messages=_user("tax"), extra_body={"metadata": {"privacy": "SENSITIVE"}})
    assert sims["cloud"].stats()["requests"] == 0


def test_private_routes_to_local_in_mixed_group(client: OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="assistant", messages=_user("hi"), extra_headers={"x-tiergate-privacy": "PUBLIC"},
        extra_body={"metadata": {"privacy": "PRIVATE"}})
    # Header and body disagree: the stricter level wins.
    assert raw.headers["x-tiergate-privacy"] == "PRIVATE" and raw.headers["x-tiergate-location"] == "local"


def test_explain_calls_no_upstream(gw: GatewayProc, sims: dict[str, Sim]) -> None:
    status, body, headers = http_json(
        "POST", f"{gw.url}/chat/completions", {"model": "assistant", "messages": _user("x")},
        headers={"authorization": f"Bearer {MASTER_KEY}", "x-tiergate-explain": "true", "x-tiergate-privacy": "SENSITIVE"})
    assert status == 200 and headers["x-tiergate-explain"] == "true"
    assert body["privacy"]["level"] == "SENSITIVE" and body["order"] == ["local-a", "sovereign-a"]
    assert [e["deployment"] for e in body["excluded"]] == ["cloud-a"]
    assert all(s.stats()["requests"] == 0 for s in sims.values())


# ---------------------------------------------------------------- fallback
@pytest.mark.parametrize(("group", "failed"), [("fb-500", "bad-500"), ("fb-timeout", "hang"), ("fb-reset", "reset"), ("fb-dead", "dead")])
def test_fallback_to_second_candidate(client: OpenAI, sims: dict[str, Sim], group: str, failed: str) -> None:
    raw = client.chat.completions.with_raw_response.create(model=group, messages=_user("[[echo]]fallback works"))
    assert raw.parse().choices[0].message.content == "fallback works"
    assert raw.headers["x-tiergate-deployment"] == "cloud-a"
    assert raw.headers["x-tiergate-fallbacks"] == "1"


def test_fallback_for_streams_before_first_byte(client: OpenAI) -> None:
    with client.chat.completions.with_streaming_response.create(
        model="fb-500", messages=_user("[[echo]]streamed fallback"), stream=True) as resp:
        assert resp.headers["x-tiergate-deployment"] == "cloud-a"
        text = "".join(c.choices[0].delta.content or "" for c in resp.parse() if c.choices)
    assert text == "streamed fallback"


def test_client_error_does_not_fall_back(client: OpenAI, sims: dict[str, Sim]) -> None:
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="no-fb-400", messages=_user("x"))
    assert sims["cloud"].stats()["requests"] == 0


def test_all_fail_502_lists_every_attempt(client: OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as e:
        client.chat.completions.create(model="all-fail", messages=_user("x"))
    assert e.value.status_code == 502
    msg = e.value.body["message"]
    for name in ("bad-500", "dead", "reset"):
        assert name in msg


def test_all_timeouts_504(client: OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as e:
        client.chat.completions.create(model="all-timeout", messages=_user("x"))
    assert e.value.status_code == 504 and "hang" in e.value.body["message"]


def test_upstream_503_is_503(client: OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as e:
        client.chat.completions.create(model="all-503", messages=_user("x"))
    assert e.value.status_code == 503


def test_upstream_429_keeps_retry_after(client: OpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as e:
        client.chat.completions.create(model="all-429", messages=_user("x"))
    assert e.value.response.headers["retry-after"] == "1"


def test_truncated_stream_ends_with_error_event(gw: GatewayProc) -> None:
    c = OpenAI(base_url=gw.url, api_key=MASTER_KEY, max_retries=0)
    got: list[str] = []
    with pytest.raises(openai.APIError) as e:
        for chunk in c.chat.completions.create(model="cloud-only", messages=_user("cut me [[fault:truncate]]"), stream=True):
            got.append(chunk.choices[0].delta.content or "" if chunk.choices else "")
    assert "before the answer was complete" in str(e.value.message) or "broke off" in str(e.value.message)


def test_truncated_stream_raw_has_no_done(gw: GatewayProc) -> None:
    import urllib.request
    req = urllib.request.Request(f"{gw.url}/chat/completions", method="POST", data=json.dumps(
        {"model": "cloud-only", "stream": True, "messages": _user("[[fault:truncate]]")}).encode(),
        headers={"authorization": f"Bearer {MASTER_KEY}", "content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        text = r.read().decode()
    assert '"error"' in text and "[DONE]" not in text


# ---------------------------------------------------------------- health, readiness, log
def test_health_and_ready(gw: GatewayProc) -> None:
    assert http_json("GET", f"{gw.base}/health")[0] == 200
    status, body, _ = http_json("GET", f"{gw.base}/ready")
    assert status == 200 and body["store"] is True and body["deployments"]["local-a"]["ok"] is True
    assert body["deployments"]["local-a"]["models"] == ["llama3.2:3b", "qwen2.5:7b"]
    assert body["deployments"]["dead"]["ok"] is False and "cannot connect" in body["deployments"]["dead"]["error"]


def test_request_log_rows(client: OpenAI, gw: GatewayProc) -> None:
    raw = client.chat.completions.with_raw_response.create(model="fb-500", messages=_user("log me"))
    rid = raw.headers["x-request-id"]
    row = None
    for _ in range(100):
        with sqlite3.connect(gw.db_path) as db:
            db.row_factory = sqlite3.Row
            row = db.execute("select * from request_log where id = ?", (rid,)).fetchone()
        if row:
            break
        time.sleep(0.05)
    assert row is not None
    assert row["deployment"] == "cloud-a" and row["location"] == "cloud" and row["fallbacks"] == 1
    assert row["model_group"] == "fb-500" and row["status_code"] == 200 and row["privacy_level"] == "PUBLIC"
    assert row["total_tokens"] > 0 and row["upstream_ms"] > 0 and row["overhead_ms"] >= 0
    assert row["request_body"] is None and "log me" not in json.dumps(dict(row))
    assert "bad-500" in row["attempts"]


def test_wrong_method_is_json_405(gw: GatewayProc) -> None:
    status, body, headers = http_json("GET", f"{gw.url}/chat/completions")
    assert status == 405 and body["error"]["code"] == "method_not_allowed" and "POST" in body["error"]["message"]
    assert headers["x-request-id"].startswith("req_")


def test_head_on_health_is_allowed(gw: GatewayProc) -> None:
    import urllib.request

    with urllib.request.urlopen(urllib.request.Request(f"{gw.base}/health", method="HEAD"), timeout=5) as r:
        assert r.status == 200


# --------------------------------------------------------------------------- embeddings


def test_embeddings_float_and_base64_through_sdk(client: OpenAI, gw: GatewayProc, sims: dict[str, Sim]) -> None:
    status, body, headers = http_json(
        "POST", f"{gw.url}/embeddings",
        {"model": "assistant", "input": ["alpha", "beta"], "encoding_format": "float"},
        {"authorization": f"Bearer {MASTER_KEY}"},
    )
    assert status == 200, body
    assert [d["index"] for d in body["data"]] == [0, 1]
    floats = [d["embedding"] for d in body["data"]]
    assert len(floats[0]) == 64 and floats[0] != floats[1]
    assert body["usage"]["prompt_tokens"] >= 1
    assert headers["x-tiergate-deployment"] == "local-a" and headers["x-tiergate-location"] == "local"
    # The openai SDK asks for base64 by default and decodes it: the same vectors come back.
    raw = client.embeddings.with_raw_response.create(model="assistant", input=["alpha", "beta"])
    assert sims["local"].stats()["last_request"].get("encoding_format") is None  # gateway encodes
    decoded = [d.embedding for d in raw.parse().data]
    assert len(decoded) == 2
    for got, want in zip(decoded, floats):
        assert got == pytest.approx(want, abs=1e-6)  # float32 on the wire


def test_embeddings_dimensions_and_fallback(client: OpenAI, sims: dict[str, Sim]) -> None:
    res = client.embeddings.with_raw_response.create(model="fb-500", input="hello", dimensions=16)
    assert res.headers["x-tiergate-deployment"] == "cloud-a"
    assert res.headers["x-tiergate-fallbacks"] == "1"
    assert len(res.parse().data[0].embedding) == 16
    assert sims["cloud"].stats()["last_request"]["dimensions"] == 16


def test_private_embeddings_never_reach_cloud(client: OpenAI, sims: dict[str, Sim]) -> None:
    with pytest.raises(openai.PermissionDeniedError) as e:
        client.embeddings.create(
            model="cloud-only", input="patient record 4411", extra_headers={"x-tiergate-privacy": "PRIVATE"}
        )
    assert e.value.body["code"] == "privacy_policy_violation"  # type: ignore[index]
    ok = client.embeddings.with_raw_response.create(
        model="assistant", input="patient record 4411", extra_body={"metadata": {"privacy": "PRIVATE"}}
    )
    assert ok.headers["x-tiergate-location"] == "local"
    assert sims["cloud"].stats()["chat_requests"] == 0
    assert "metadata" not in sims["local"].stats()["last_request"]  # tiergate's hints stay home


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "assistant", "input": []}, "input"),
        ({"model": "assistant", "input": 5}, "input"),
        ({"model": "assistant", "input": "x", "encoding_format": "hex"}, "encoding_format"),
        ({"model": "assistant", "input": "x", "dimensions": 0}, "dimensions"),
        ({"input": "x"}, "model"),
    ],
)
def test_embeddings_bad_input_names_the_field(gw: GatewayProc, body: dict[str, Any], param: str) -> None:
    status, err, _ = http_json("POST", f"{gw.url}/embeddings", body, {"authorization": f"Bearer {MASTER_KEY}"})
    assert status == 400, err
    assert err["error"]["param"] == param
