"""Test support: real processes on 127.0.0.1 — simulated upstreams and gateways.

Everything here starts real servers over real sockets and stops only the processes it started,
by PID. The simulated upstreams are the outer-boundary fakes (they speak OpenAI's wire format).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

MASTER_KEY = "tg-test-master-key-0123456789"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_json(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None, timeout: float = 10.0) -> tuple[int, Any, dict[str, str]]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:  # noqa: S310 - loopback
            raw = r.read()
            return r.status, json.loads(raw) if raw else None, dict(r.headers)
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = raw.decode("utf-8", "replace")
        return e.code, parsed, dict(e.headers)


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=1.0) as r:  # noqa: S310
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


@dataclass
class Proc:
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        return self.proc.returncode


@dataclass
class Sim(Proc):
    profile: str = "local"

    @property
    def url(self) -> str:
        return f"{self.base}/v1"

    def stats(self) -> dict[str, Any]:
        return http_json("GET", f"{self.base}/_sim/stats")[1]

    def reset(self) -> None:
        http_json("POST", f"{self.base}/_sim/reset", {})


def start_sim(tmp: Path, profile: str = "local", *args: str, fast: bool = True, fmt: str = "openai") -> Sim:
    """A simulated upstream process speaking wire format `fmt` (see tiergate.simulator)."""
    port = free_port()
    log_path = tmp / f"sim-{fmt}-{profile}-{port}.log"
    cmd = [
        sys.executable, "-m", "tiergate.simulator", "--port", str(port), "--profile", profile,
        "--format", fmt, *args,
    ]
    if fast:
        cmd.append("--fast")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    sim = Sim(proc, port, log_path, profile)
    wait_ready(f"{sim.base}/health", proc)
    return sim


@dataclass
class GatewayProc(Proc):
    config_path: Path = field(default=Path())
    db_path: Path = field(default=Path())

    @property
    def url(self) -> str:
        return f"{self.base}/v1"


def start_gateway(
    tmp: Path,
    config: dict[str, Any],
    *,
    env: dict[str, str] | None = None,
    workers: int = 1,
    master_key: str | None = MASTER_KEY,
    extra_args: tuple[str, ...] = (),
    wait: bool = True,
) -> GatewayProc:
    port = free_port()
    db_path = tmp / f"gw-{port}.db"
    cfg = dict(config)
    cfg.setdefault("server", {})
    cfg["server"] = {"host": "127.0.0.1", "port": port, **cfg["server"]}
    cfg.setdefault("store", {"url": f"sqlite:///{db_path}", "flush_interval_ms": 20})
    config_path = tmp / f"tiergate-{port}.yaml"
    config_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    full_env = clean_env()
    if master_key:
        full_env["TIERGATE_MASTER_KEY"] = master_key
    full_env.update(env or {})
    log_path = tmp / f"gateway-{port}.log"
    cmd = [sys.executable, "-m", "tiergate", "serve", "--config", str(config_path), "--workers", str(workers), *extra_args]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=full_env, cwd=tmp)
    gw = GatewayProc(proc, port, log_path, config_path, db_path)
    if wait:
        try:
            wait_ready(f"{gw.base}/health", proc)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\n--- gateway log ---\n{gw.log()}") from None
    return gw


#: Environment variables that make the gateway configure deployments by convention; gateways
#: started by tests get none of them from the developer's shell.
PROVIDER_VARS = frozenset({
    "OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY", "GROQ_API_KEY", "DEEPSEEK_API_KEY",
    "GOOGLE_API_KEY", "GEMINI_API_KEY", "GOOGLE_CLOUD_PROJECT", "GOOGLE_CLOUD_LOCATION",
    "GOOGLE_GENAI_USE_VERTEXAI", "OLLAMA_HOST", "OLLAMA_BASE_URL", "OLLAMA_DEFAULT_MODEL",
    "OLLAMA_KEEP_ALIVE", "BEDROCK_MODEL_ID", "BEDROCK_REGION", "DEFAULT_PRIVACY_LEVEL",
    "LLM_STRATEGY", "LOCAL_TIMEOUT_SEC", "API_TIMEOUT_SEC", "MAX_CONCURRENT_LOCAL", "MAX_CONCURRENT_API",
})
CONVENTION_PREFIXES = ("TIERGATE_", "YONCA_", "GENAI_")


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without the configuration conventions, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(CONVENTION_PREFIXES) and k not in PROVIDER_VARS}
    env.update(extra)
    return env


def deployment(name: str, sim: Sim | str, location: str, **extra: Any) -> dict[str, Any]:
    base_url = sim.url if isinstance(sim, Sim) else sim
    residency = {"local": "on-prem", "sovereign": "AZ", "cloud": "US"}[location]
    return {"name": name, "provider": "openai", "base_url": base_url, "model": f"{name}-model",
            "location": location, "residency": residency, **extra}
