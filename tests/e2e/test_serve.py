"""Running the gateway as users do: bind safety, simulated demo mode, workers, graceful shutdown."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.support import (
    MASTER_KEY,
    clean_env,
    deployment,
    free_port,
    http_json,
    start_gateway,
    start_sim,
)


def _clean_env(**extra: str) -> dict[str, str]:
    return clean_env(**extra)


def test_refuses_public_bind_without_master_key(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "tiergate", "serve", "--host", "0.0.0.0", "--port", str(free_port())],
                       cwd=tmp_path, env=_clean_env(), capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert "refusing to listen on 0.0.0.0 without a master key" in (r.stdout + r.stderr)


def test_simulated_defaults_when_nothing_configured(tmp_path: Path) -> None:
    gw = start_gateway(tmp_path, {}, master_key=None)
    try:
        status, body, headers = http_json("POST", f"{gw.url}/chat/completions",
                                          {"model": "assistant", "messages": [{"role": "user", "content": "hello"}]})
        assert status == 200, body
        assert headers["x-tiergate-deployment"] == "sim-local" and headers["x-tiergate-location"] == "local"
        status, body, headers = http_json("POST", f"{gw.url}/chat/completions", {"model": "assistant", "messages": [
            {"role": "user", "content": "hello"}]}, headers={"x-tiergate-privacy": "PUBLIC"})
        assert status == 200
        log = gw.log()
        assert "SIMULATED" in log and "no master key" in log.lower()
    finally:
        assert gw.stop() == 0


def test_config_error_is_reported_not_a_traceback(tmp_path: Path) -> None:
    cfg = tmp_path / "tiergate.yaml"
    cfg.write_text("deployments:\n  - name: x\n    model: m\n    base_url: http://127.0.0.1:1/v1\n    location: moon\n")
    r = subprocess.run([sys.executable, "-m", "tiergate", "serve", "--config", str(cfg)], cwd=tmp_path,
                       env=_clean_env(), capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    out = r.stdout + r.stderr
    assert "deployments[0].location" in out and "Traceback" not in out


def test_two_workers_share_the_port(tmp_path: Path) -> None:
    sim = start_sim(tmp_path, "local")
    gw = start_gateway(tmp_path, {"deployments": [deployment("local-a", sim, "local")], "model_groups": {"a": ["local-a"]}}, workers=2)
    try:
        for i in range(20):
            status, body, _ = http_json("POST", f"{gw.url}/chat/completions", {"model": "a", "messages": [
                {"role": "user", "content": f"[[echo]]n{i}"}]}, headers={"authorization": f"Bearer {MASTER_KEY}"})
            assert status == 200 and body["choices"][0]["message"]["content"] == f"n{i}"
        assert sim.stats()["chat_requests"] == 20
    finally:
        assert gw.stop() == 0
        sim.stop()


def test_sigterm_lets_a_stream_finish_and_flushes_the_log(tmp_path: Path) -> None:
    # A slow simulated upstream: ~40 words at 20 tokens/s, so the stream lasts about 2 s.
    sim = start_sim(tmp_path, "local", "--ttft-ms", "10", "--tps", "20", "--reply-tokens", "40", fast=False)
    cfg: dict[str, Any] = {
        "server": {"shutdown_grace_s": 20},
        "store": {"url": f"sqlite:///{tmp_path / 'shutdown.db'}", "flush_interval_ms": 5000},
        "deployments": [deployment("slow", sim, "local")],
        "model_groups": {"slow": ["slow"]},
    }
    gw = start_gateway(tmp_path, cfg)
    req = urllib.request.Request(f"{gw.url}/chat/completions", method="POST", data=json.dumps(
        {"model": "slow", "stream": True, "messages": [{"role": "user", "content": "long answer please"}]}).encode(),
        headers={"authorization": f"Bearer {MASTER_KEY}", "content-type": "application/json"})
    lines: list[str] = []
    first = threading.Event()
    rid: list[str] = []

    def consume() -> None:
        with urllib.request.urlopen(req, timeout=30) as r:
            rid.append(r.headers["x-request-id"])
            for raw in r:
                lines.append(raw.decode())
                first.set()

    t = threading.Thread(target=consume)
    t.start()
    try:
        assert first.wait(10)
        os.kill(gw.proc.pid, signal.SIGTERM)
        t.join(25)
        assert not t.is_alive()
        assert gw.proc.wait(25) == 0
    finally:
        gw.stop()
        sim.stop()
    body = "".join(lines)
    assert body.rstrip().endswith("data: [DONE]")
    assert '"finish_reason":"stop"' in body.replace(" ", "")
    with sqlite3.connect(tmp_path / "shutdown.db") as db:
        rows = db.execute("select status_code, stream, deployment from request_log where id = ?", (rid[0],)).fetchall()
    assert rows == [(200, 1, "slow")]


def _post_stream(url: str, body: dict[str, Any]) -> str:
    req = urllib.request.Request(url, method="POST", data=json.dumps(body).encode(),
                                 headers={"authorization": f"Bearer {MASTER_KEY}", "content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.read().decode()


@pytest.mark.parametrize("enabled", [True, False])
def test_bodies_are_logged_only_when_enabled(tmp_path: Path, enabled: bool) -> None:
    sim = start_sim(tmp_path, "local")
    db = tmp_path / "bodies.db"
    cfg: dict[str, Any] = {
        "store": {"url": f"sqlite:///{db}", "flush_interval_ms": 20, "log_bodies": enabled},
        "deployments": [deployment("local-a", sim, "local")],
    }
    gw = start_gateway(tmp_path, cfg)
    try:
        msgs = [{"role": "user", "content": "[[echo]]keep me"}]
        status, _, _ = http_json("POST", f"{gw.url}/chat/completions", {"model": "local-a", "messages": msgs},
                                 headers={"authorization": f"Bearer {MASTER_KEY}"})
        assert status == 200
        assert "[DONE]" in _post_stream(f"{gw.url}/chat/completions", {"model": "local-a", "stream": True, "messages": msgs})
    finally:
        assert gw.stop() == 0
        sim.stop()
    with sqlite3.connect(db) as conn:
        rows = conn.execute("select stream, request_body, response_body from request_log").fetchall()
    assert sorted(r[0] for r in rows) == [0, 1]
    for _, req_body, resp_body in rows:
        if enabled:
            assert "keep me" in req_body and "keep" in resp_body and "me" in resp_body
        else:
            assert req_body is None and resp_body is None


def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        cfg = tmp_path / "tiergate.yaml"
        cfg.write_text("deployments:\n  - {name: x, model: m, base_url: 'http://127.0.0.1:9/v1', location: local}\n")
        r = subprocess.run([sys.executable, "-m", "tiergate", "serve", "--config", str(cfg), "--port", str(port), "--no-banner"],
                           cwd=tmp_path, env=_clean_env(), capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in r.stderr + r.stdout and "Traceback" not in r.stderr + r.stdout


def test_a_crashed_worker_stops_the_server_with_an_error(tmp_path: Path) -> None:
    sim = start_sim(tmp_path, "local")
    gw = start_gateway(tmp_path, {"deployments": [deployment("local-a", sim, "local")]}, workers=2)
    try:
        children = Path(f"/proc/{gw.proc.pid}/task/{gw.proc.pid}/children").read_text().split()
        workers = [int(c) for c in children if "serve" in Path(f"/proc/{c}/cmdline").read_text()]
        assert len(workers) == 2
        os.kill(workers[0], signal.SIGKILL)
        assert gw.proc.wait(30) != 0
        assert "exited unexpectedly" in gw.log()
    finally:
        gw.stop()
        sim.stop()


def test_gateway_on_postgresql(tmp_path: Path, postgres_url: str) -> None:
    """Two gateway processes (replicas) share one PostgreSQL request log."""
    import asyncio

    import sqlalchemy as sa

    from tiergate.store import normalize_url

    sim = start_sim(tmp_path, "local")
    cfg: dict[str, Any] = {"store": {"url": postgres_url, "flush_interval_ms": 20},
                           "deployments": [deployment("local-a", sim, "local")]}
    replicas = [start_gateway(tmp_path, cfg), start_gateway(tmp_path, cfg)]
    ids: list[str] = []
    try:
        for gw in replicas:
            for _ in range(3):
                status, _, headers = http_json("POST", f"{gw.url}/chat/completions", {"model": "local-a", "messages": [
                    {"role": "user", "content": "hi"}]}, headers={"authorization": f"Bearer {MASTER_KEY}"})
                assert status == 200
                ids.append(headers["x-request-id"])
    finally:
        for gw in replicas:
            assert gw.stop() == 0  # shutdown flushes the log
        sim.stop()

    async def rows() -> list[tuple[str, str, int]]:
        from sqlalchemy.ext.asyncio import create_async_engine

        engine = create_async_engine(normalize_url(postgres_url))
        try:
            async with engine.begin() as conn:
                found = (await conn.execute(sa.text(
                    "select id, deployment, status_code from request_log where id = any(:ids)"), {"ids": ids})).all()
                await conn.execute(sa.text("delete from request_log where id = any(:ids)"), {"ids": ids})
            return [tuple(r) for r in found]
        finally:
            await engine.dispose()

    found = asyncio.run(rows())
    assert sorted(found) == sorted((i, "local-a", 200) for i in ids)


def test_overhead_header_excludes_upstream_time(tmp_path: Path) -> None:
    sim = start_sim(tmp_path, "local", "--latency-ms", "300", "--ttft-ms", "300", "--tps", "0", fast=False)
    gw = start_gateway(tmp_path, {"deployments": [deployment("slow", sim, "local")]})
    try:
        for stream in (False, True):
            t0 = time.perf_counter()
            if stream:
                req = urllib.request.Request(f"{gw.url}/chat/completions", method="POST", data=json.dumps(
                    {"model": "slow", "stream": True, "messages": [{"role": "user", "content": "x"}]}).encode(),
                    headers={"authorization": f"Bearer {MASTER_KEY}", "content-type": "application/json"})
                with urllib.request.urlopen(req, timeout=10) as r:
                    headers = dict(r.headers)
                    r.read()
            else:
                status, _, headers = http_json("POST", f"{gw.url}/chat/completions", {"model": "slow", "messages": [
                    {"role": "user", "content": "x"}]}, headers={"authorization": f"Bearer {MASTER_KEY}"})
                assert status == 200
            elapsed_ms = (time.perf_counter() - t0) * 1000
            overhead = float(headers["x-tiergate-overhead-ms"])
            assert elapsed_ms >= 300  # the upstream really took its time
            assert 0 <= overhead < 100  # and none of it is counted as the gateway's
    finally:
        gw.stop()
        sim.stop()
