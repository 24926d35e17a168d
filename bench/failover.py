#!/usr/bin/env python3
"""Failover benchmark: what one hard-failing deployment of three costs the clients (issue 5).

    .venv/bin/python bench/failover.py                # everything, ~6-8 min on 2 cores
    .venv/bin/python bench/failover.py --quick        # 2,000 requests per run, 1 repeat, ~2 min
    .venv/bin/python bench/failover.py --no-write     # print only
    .venv/bin/python bench/failover.py --render       # re-render from results/routing.json

One `tiergate serve --workers 1` in front of three simulated OpenAI-compatible upstreams
(`python -m tiergate.simulator --profile cloud --fast --latency-ms 20`), all three in one model
group, every deployment `timeout_s: 2`. The deployment listed FIRST (and made the most attractive
on paper: cheapest, best quality, lowest configured latency, so `balanced` also ranks it first
while it has no live data) is, per run:

    healthy   a third simulator (the baseline)
    refused   a loopback port nobody listens on (connection refused)
    hang      a simulator with `--fault timeout --hang-s 30` (the chat request hangs; the model
              listing, which the gateway's health probe uses, still answers)

Each (failure kind, strategy) run starts a fresh gateway (closed circuits), warms it up on a group
holding only the two healthy deployments (so the failing one is untouched), then sends N requests
(default 10,000) from an asyncio aiohttp client at a fixed concurrency (default 32), recording
each status and latency. It also polls `/ready` (circuit state) twice a second, reads the
simulators' `/_sim/stats`, and after the gateway has stopped reads its SQLite request log, whose
`attempts` column names every failed attempt's deployment and error code: attempts on the failing
deployment other than `circuit_open` are the requests that really reached it.

Finally it runs bench/routing_micro.py (three times, median per row) for the pure routing
decision and classification numbers. Writes results/routing.json, results/routing.md and the
"Routing" figures in bench/README.md. Everything listens on 127.0.0.1; every load loop is bounded
by its request count and by --max-run-s; only processes started here are stopped, by their
process-group id (run.py's start_process / stop_process).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import importlib.util
import json
import math
import os
import re
import resource
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
WORK = BENCH / ".work"
RESULTS = BENCH / "results"
PY = ROOT / ".venv" / "bin" / "python"
TIERGATE_BIN = ROOT / ".venv" / "bin" / "tiergate"
MASTER_KEY = "sk-bench-key"
GROUP, WARM_GROUP = "fo", "warm"
KINDS = ("healthy", "refused", "hang")
STRATEGIES = ("ordered", "balanced")
TIMEOUT_S = 2.0
SUCCESS_TARGET = 99.9
OTHER_CPU_WARN_PCT = 10.0


def load_run_module():
    spec = importlib.util.spec_from_file_location("bench_run", BENCH / "run.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


R = load_run_module()
log = R.log

# Environment variables that configure deployments by convention (tests/support.py's list):
# the gateway started here gets none of them from the caller's shell.
_CONVENTION = ("TIERGATE_", "YONCA_", "GENAI_", "OPENAI_", "ANTHROPIC_", "GROQ_", "DEEPSEEK_", "GOOGLE_",
               "GEMINI_", "OLLAMA_", "BEDROCK_")
_CONVENTION_EXACT = {"DEFAULT_PRIVACY_LEVEL", "LLM_STRATEGY", "LOCAL_TIMEOUT_SEC", "API_TIMEOUT_SEC",
                     "MAX_CONCURRENT_LOCAL", "MAX_CONCURRENT_API"}


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_CONVENTION) and k not in _CONVENTION_EXACT}
    env.update(extra)
    return env


# --------------------------------------------------------------------------------------------
# processes
# --------------------------------------------------------------------------------------------


def wait_http_200(port: int, path: str, proc: subprocess.Popen, timeout: float) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[:4]} exited with {proc.returncode} before answering")
        try:
            status, _, _ = R.http_request(port, "GET", path, headers={"Authorization": f"Bearer {MASTER_KEY}"}, timeout=2)
            if status == 200:
                return time.monotonic() - t0
        except OSError:
            pass
        time.sleep(0.02)
    raise RuntimeError(f"no 200 on 127.0.0.1:{port}{path} within {timeout:.0f} s")


class Sim:
    def __init__(self, name: str, latency_ms: float, extra: tuple[str, ...] = ()) -> None:
        self.name = name
        self.port = R.free_port()
        cmd = [str(PY), "-m", "tiergate.simulator", "--port", str(self.port), "--profile", "cloud", "--fast",
               "--latency-ms", f"{latency_ms:g}", *extra]
        self.cmd = cmd
        self.proc = R.start_process(f"failover-sim-{name}", cmd, env=clean_env())
        wait_http_200(self.port, "/health", self.proc, 20)

    def stats(self) -> dict:
        _, _, body = R.http_request(self.port, "GET", "/_sim/stats", timeout=5)
        s = json.loads(body)
        return {"requests": s.get("requests"), "chat_requests": s.get("chat_requests"), "faults": s.get("faults")}

    def reset(self) -> None:
        R.http_request(self.port, "POST", "/_sim/reset", body=b"{}", headers={"content-type": "application/json"}, timeout=5)


def refused_port() -> int:
    """A loopback port nobody listens on (checked: connecting is refused)."""
    for _ in range(20):
        port = R.free_port()
        if is_refused(port):
            return port
    raise RuntimeError("could not find a refused loopback port")


def is_refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return False


def gateway_config(label: str, strategy: str, bad_url: str, good: list[Sim], port: int,
                   timeout_s: float | None = TIMEOUT_S) -> str:
    """timeout_s None: no `timeout_s` in the file (the built-in default, 60 s)."""
    t = f"timeout_s: {timeout_s:g}, " if timeout_s is not None else ""
    dep = ("  - {{name: {name}, provider: openai, base_url: \"{url}\", model: gpt-4o-mini, location: cloud, "
           "residency: US, " + t + "latency_ms: {lat}, quality: {q}, price: {{input: {pi}, output: {po}}}}}")
    lines = [
        f"# generated by bench/failover.py ({label})",
        f"server: {{host: 127.0.0.1, port: {port}, master_key: env:TIERGATE_MASTER_KEY, workers: 1}}",
        f"store: {{url: \"sqlite:///bench/.work/{label}.db\"}}",
        "privacy: {default_level: PUBLIC}",
        f"routing: {{default_strategy: {strategy}}}",
        "deployments:",
        # the failing one: first in the group and the most attractive on paper
        dep.format(name="first", url=bad_url, lat=15, q=0.9, pi=0.1, po=0.2),
        dep.format(name="second", url=f"http://127.0.0.1:{good[0].port}/v1", lat=30, q=0.8, pi=0.2, po=0.4),
        dep.format(name="third", url=f"http://127.0.0.1:{good[1].port}/v1", lat=30, q=0.8, pi=0.2, po=0.4),
        "model_groups:",
        f"  {GROUP}: [first, second, third]",
        f"  {WARM_GROUP}: [second, third]",
    ]
    return "\n".join(lines) + "\n"


class Gateway:
    def __init__(self, label: str, config: str, port: int) -> None:
        self.label, self.port = label, port
        self.cfg = WORK / f"{label}.yaml"
        self.cfg.write_text(config)
        self.db = WORK / f"{label}.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.db}{suffix}").unlink(missing_ok=True)
        env = clean_env(TIERGATE_MASTER_KEY=MASTER_KEY)
        self.proc = R.start_process(
            label, [str(TIERGATE_BIN), "serve", "--config", str(self.cfg.relative_to(ROOT)), "--workers", "1",
                    "--port", str(port)], env=env)
        self.startup_s = wait_http_200(port, "/health", self.proc, 60)

    def stop(self) -> None:
        R.stop_process(self.proc, grace=15.0)

    def attempts(self) -> dict:
        """From the request log (after stop): rows, statuses and failed attempts per deployment."""
        out: dict = {"rows": 0, "status": {}, "attempts": {}, "fallbacks": {}}
        if not self.db.exists():
            out["error"] = "no database"
            return out
        con = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)
        try:
            for status, attempts, fallbacks in con.execute(
                "SELECT status_code, attempts, fallbacks FROM request_log WHERE model_group = ?", (GROUP,)
            ):
                out["rows"] += 1
                out["status"][str(status)] = out["status"].get(str(status), 0) + 1
                out["fallbacks"][str(fallbacks)] = out["fallbacks"].get(str(fallbacks), 0) + 1
                for a in json.loads(attempts or "[]"):
                    key = f"{a.get('deployment')}:{a.get('error_code')}"
                    out["attempts"][key] = out["attempts"].get(key, 0) + 1
        finally:
            con.close()
        return out


# --------------------------------------------------------------------------------------------
# the load client
# --------------------------------------------------------------------------------------------

BODY = json.dumps({
    "model": GROUP,
    "messages": [{"role": "user", "content": "Summarise in one sentence why circuit breakers help a gateway."}],
    "max_tokens": 32,
}).encode()
WARM_BODY = BODY.replace(f'"model": "{GROUP}"'.encode(), f'"model": "{WARM_GROUP}"'.encode())


async def load(port: int, body: bytes, n: int, conc: int, max_s: float, poll_ready: bool) -> dict:
    import aiohttp

    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    headers = {"Authorization": f"Bearer {MASTER_KEY}", "Content-Type": "application/json"}
    lat: list[float] = []
    starts: list[float] = []
    status: list[int] = []
    served_by: dict[str, int] = {}
    fallbacks: dict[str, int] = {}
    errors: dict[str, int] = {}
    slow: list[tuple[float, float, str, str]] = []  # (start s, latency s, deployment, fallbacks) > 1 s
    ready: list[tuple[float, str]] = []  # (s, circuit state of "first") when it changes
    nxt = 0
    t_start = time.perf_counter()
    deadline = t_start + max_s
    done = asyncio.Event()

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal nxt
        while nxt < n and time.perf_counter() < deadline:
            nxt += 1
            t0 = time.perf_counter()
            code, dep, fb = 0, "", ""
            try:
                async with session.post(url, data=body, headers=headers) as resp:
                    data = await resp.read()
                    code = resp.status
                    dep = resp.headers.get("x-tiergate-deployment", "")
                    fb = resp.headers.get("x-tiergate-fallbacks", "")
                    if code == 200 and b'"choices"' not in data:
                        code = -2  # 200 without an answer
                    elif code != 200:
                        try:
                            err = json.loads(data).get("error", {}).get("code") or str(code)
                        except (ValueError, AttributeError):
                            err = str(code)
                        errors[f"{code} {err}"] = errors.get(f"{code} {err}", 0) + 1
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                code = -1
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
            t1 = time.perf_counter()
            lat.append(t1 - t0)
            starts.append(t0 - t_start)
            status.append(code)
            if code == 200:
                served_by[dep] = served_by.get(dep, 0) + 1
                fallbacks[fb] = fallbacks.get(fb, 0) + 1
            if t1 - t0 > 1.0:
                slow.append((round(t0 - t_start, 3), round(t1 - t0, 3), dep, fb))

    async def poller() -> None:
        last = None
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as s:
            while not done.is_set():
                t = time.perf_counter() - t_start
                try:
                    async with s.get(f"http://127.0.0.1:{port}/ready") as resp:
                        state = (json.loads(await resp.read()).get("deployments", {}).get("first", {}) or {}).get("circuit", "?")
                except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
                    state = "?"
                if state != last:
                    ready.append((round(t, 2), state))
                    last = state
                try:
                    await asyncio.wait_for(done.wait(), 0.5)
                except asyncio.TimeoutError:
                    pass

    conn = aiohttp.TCPConnector(limit=conc, force_close=False)
    timeout = aiohttp.ClientTimeout(total=45)  # > routing.max_failover_s (30 s)
    async with aiohttp.ClientSession(connector=conn, timeout=timeout) as session:
        poll = asyncio.create_task(poller()) if poll_ready else None
        await asyncio.gather(*(worker(session) for _ in range(conc)))
        wall = time.perf_counter() - t_start
        done.set()
        if poll:
            await poll
    return {"lat": lat, "starts": starts, "status": status, "served_by": served_by, "fallbacks": fallbacks,
            "errors": errors, "slow": slow, "ready": ready, "wall_s": wall, "cut_by_time": nxt < n}


def pct(sorted_vals: list[float], q: float) -> float:
    """Nearest-rank percentile of sorted values."""
    if not sorted_vals:
        return float("nan")
    k = max(0, min(len(sorted_vals) - 1, math.ceil(q / 100 * len(sorted_vals)) - 1))
    return sorted_vals[k]


def summarise(res: dict) -> dict:
    lat = sorted(res["lat"])
    n = len(lat)
    ok = sum(1 for s in res["status"] if s == 200)
    ms = lambda v: round(v * 1000, 2)  # noqa: E731
    return {
        "requests": n, "ok": ok, "success_pct": round(100 * ok / n, 3) if n else None,
        "p50_ms": ms(pct(lat, 50)), "p90_ms": ms(pct(lat, 90)), "p99_ms": ms(pct(lat, 99)),
        "p999_ms": ms(pct(lat, 99.9)), "max_ms": ms(lat[-1]) if lat else None,
        "over_1s": sum(1 for v in lat if v > 1.0), "rps": round(n / res["wall_s"], 1), "wall_s": round(res["wall_s"], 2),
        "served_by": res["served_by"], "fallbacks_hdr": res["fallbacks"], "errors": res["errors"],
        "cut_by_time": res["cut_by_time"],
    }


def our_cpu(pids: list[int]) -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime + sum(R.cpu_seconds(p) for p in pids)


# --------------------------------------------------------------------------------------------
# one run
# --------------------------------------------------------------------------------------------


def one_run(kind: str, strategy: str, rep: int, sims: dict[str, Sim], args, requests: int | None = None,
            concurrency: int | None = None) -> dict:
    label = f"failover-{kind}-{strategy}-{rep}"
    requests = requests or args.requests
    concurrency = concurrency or args.concurrency
    timeout_s = None if kind == "hang-defaults" else TIMEOUT_S
    if kind == "healthy":
        bad_url, bad_port = f"http://127.0.0.1:{sims['spare'].port}/v1", sims["spare"].port
    elif kind.startswith("hang"):
        bad_url, bad_port = f"http://127.0.0.1:{sims['hang'].port}/v1", sims["hang"].port
    else:
        bad_port = refused_port()
        bad_url = f"http://127.0.0.1:{bad_port}/v1"
    port = R.free_port()
    gw = Gateway(label, gateway_config(label, strategy, bad_url, [sims["good1"], sims["good2"]], port, timeout_s), port)
    roots = [gw.proc.pid] + [s.proc.pid for s in sims.values()]
    run: dict = {"kind": kind, "strategy": strategy, "repeat": rep, "gateway_startup_s": round(gw.startup_s, 2),
                 "failing_url": bad_url, "concurrency": concurrency,
                 "timeout_s": timeout_s if timeout_s is not None else "default (60)"}
    try:
        # warm-up on the healthy pair only: the failing deployment's circuit stays untouched
        asyncio.run(load(port, WARM_BODY, args.warmup_requests, args.concurrency, 60, False))
        run["other_cpu_pct_before"] = round(R.wait_quiet(args.wait_quiet, roots, label), 1)
        for s in sims.values():
            s.reset()
        b0, o0, w0 = R.machine_busy_seconds(), our_cpu(roots), time.monotonic()
        g0 = R.cpu_seconds(gw.proc.pid)
        res = asyncio.run(load(port, BODY, requests, concurrency, args.max_run_s, True))
        window = time.monotonic() - w0
        other = (R.machine_busy_seconds() - b0) - (our_cpu(roots) - o0)
        run["other_cpu_pct"] = round(max(0.0, 100 * other / (window * (os.cpu_count() or 1))), 1)
        run["busy"] = run["other_cpu_pct"] > OTHER_CPU_WARN_PCT
        run["gateway_cpu_ms_per_req"] = round(1000 * (R.cpu_seconds(gw.proc.pid) - g0) / max(1, len(res["lat"])), 3)
        run.update(summarise(res))
        run["slow_requests"] = res["slow"][:200]
        run["over_1s_after_3s"] = sum(1 for x in res["slow"] if x[0] > 3.0)
        run["circuit_timeline"] = res["ready"]
        time.sleep(0.5)
        st, _, body = R.http_request(port, "GET", "/ready", timeout=10)
        run["ready_after"] = {k: v.get("circuit") for k, v in json.loads(body).get("deployments", {}).items()}
        run["sim_stats"] = {k: s.stats() for k, s in sims.items() if k in ("good1", "good2") or
                            (k == "hang" and kind.startswith("hang")) or (k == "spare" and kind == "healthy")}
        if kind == "refused":
            run["refused_port_still_refused"] = is_refused(bad_port)
    finally:
        gw.stop()
    log_ = gw.attempts()
    run["request_log"] = log_
    reached = sum(v for k, v in log_["attempts"].items() if k.startswith("first:") and not k.endswith(":circuit_open"))
    skipped = log_["attempts"].get("first:circuit_open", 0)
    run["reached_failing"] = reached if kind != "healthy" else None
    run["circuit_open_skips"] = skipped
    if kind.startswith("hang"):
        run["reached_failing_sim"] = run["sim_stats"]["hang"]["chat_requests"]
    if kind == "healthy":
        run["served_by_first_sim"] = run["sim_stats"]["spare"]["chat_requests"]
    busy = " BUSY" if run["busy"] else ""
    log(f"{label}: {run['requests']} req, {run['success_pct']}% ok, p50 {run['p50_ms']} ms, p99 {run['p99_ms']} ms, "
        f"p99.9 {run['p999_ms']} ms, max {run['max_ms']} ms, {run['rps']} req/s, reached failing "
        f"{run['reached_failing']}, circuit {run['circuit_timeline'][:8]}, other CPU {run['other_cpu_pct']}%{busy}")
    return run


# --------------------------------------------------------------------------------------------
# routing_micro.py
# --------------------------------------------------------------------------------------------


def run_micro(times: int, rounds: int | None) -> dict:
    rows: dict[str, list[tuple[float, float]]] = {}
    others = []
    for _ in range(times):
        cmd = [str(PY), str(BENCH / "routing_micro.py")] + (["--rounds", str(rounds)] if rounds else [])
        b0, c0, w0 = R.machine_busy_seconds(), R.children_cpu_seconds(), time.monotonic()
        r = subprocess.run(cmd, cwd=ROOT, text=True, capture_output=True, timeout=300)
        other = (R.machine_busy_seconds() - b0) - (R.children_cpu_seconds() - c0)
        others.append(round(max(0.0, 100 * other / ((time.monotonic() - w0) * (os.cpu_count() or 1))), 1))
        if r.returncode != 0:
            raise RuntimeError(f"routing_micro.py failed: {r.stderr[-1000:]}")
        for line in r.stdout.splitlines():
            m = re.match(r"^(.*?)\s+(\d+\.\d+)\s+(\d+\.\d+)(\s+->.*)?$", line)
            if m and not line.startswith("what"):
                rows.setdefault(m.group(1).strip(), []).append((float(m.group(2)), float(m.group(3))))
    out = {name: {"median_us": round(statistics.median(v[0] for v in vals), 2),
                  "p90_us": round(statistics.median(v[1] for v in vals), 2),
                  "runs_median_us": [v[0] for v in vals]} for name, vals in rows.items()}
    out["_other_cpu_pct"] = others
    return out


# --------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------


def med(vals):
    vals = [v for v in vals if v is not None]
    return round(statistics.median(vals), 3) if vals else None


def aggregate(runs: list[dict]) -> list[dict]:
    cells = []
    for strategy in STRATEGIES:
        base = [r for r in runs if r["kind"] == "healthy" and r["strategy"] == strategy]
        base_p99 = med([r["p99_ms"] for r in base])
        for kind in KINDS + ("hang-sustained",):
            rs = [r for r in runs if r["kind"] == kind and r["strategy"] == strategy]
            if not rs:
                continue
            c = {
                "kind": kind, "strategy": strategy, "repeats": len(rs),
                "requests": sum(r["requests"] for r in rs),
                "success_pct": med([r["success_pct"] for r in rs]),
                "success_pct_min": min(r["success_pct"] for r in rs),
                "p50_ms": med([r["p50_ms"] for r in rs]), "p99_ms": med([r["p99_ms"] for r in rs]),
                "p999_ms": med([r["p999_ms"] for r in rs]), "max_ms": max(r["max_ms"] for r in rs),
                "over_1s": med([r["over_1s"] for r in rs]),
                "over_1s_after_3s": med([r["over_1s_after_3s"] for r in rs]), "wall_s": med([r["wall_s"] for r in rs]),
                "circuit_changes": med([len(r["circuit_timeline"]) - 1 for r in rs]), "rps": med([r["rps"] for r in rs]),
                "reached_failing": med([r["reached_failing"] for r in rs]),
                "circuit_open_skips": med([r["circuit_open_skips"] for r in rs]),
                "busy_runs": sum(1 for r in rs if r["busy"]),
                "other_cpu_pct": med([r["other_cpu_pct"] for r in rs]),
                "baseline_p99_ms": base_p99,
            }
            if kind != "healthy" and base_p99 is not None:
                c["p99_rise_ms"] = round(c["p99_ms"] - base_p99, 2)
                c["p99_target_met"] = c["p99_rise_ms"] < TIMEOUT_S * 1000
                c["success_target_met"] = c["success_pct"] >= SUCCESS_TARGET
            cells.append(c)
    return cells


def fmt(v, d=2):
    if v is None:
        return "—"
    if isinstance(v, float):
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        return f"{v:.{d}f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


MICRO_TARGETS = [
    ("rank balanced (50)", 100.0, "routing decision (rank, `balanced`) over 50 deployments: median ≤ 100 µs"),
    ("rank learned (50)", 100.0, "routing decision (rank, `learned`, the slowest strategy) over 50 deployments: median ≤ 100 µs"),
    ("whole decision: needs+check+classify 1KB+rank", 100.0,
     "whole decision over 50 (needs + constraint checks + classify 1 KB + rank `balanced`): median ≤ 100 µs"),
    ("classify 4096 B", 1000.0, "auto_route classification of a 4 KB prompt: median ≤ 1 ms"),
]


def render(results: dict) -> str:
    s = results["settings"]
    m = results["machine"]
    extra = "".join(f" {what} re-run {results[k]}." for k, what in (("micro_date", "Micro-benchmark"),
                    ("defaults_check_date", "Built-in-timeouts check")) if results.get(k))
    out = [
        f"Run {results['date']} on {m.get('cpu')} ({m.get('cores')} cores), Python {m.get('python')}, tiergate "
        f"{results['versions'].get('tiergate')} (git {results['versions'].get('git')}); load average at start "
        f"{m.get('loadavg_at_start')}.{extra}",
        "",
        "### Targets",
        "",
        "| target | measured | met |",
        "|---|---:|:---:|",
    ]
    for c in results["cells"]:
        if c["kind"] == "healthy":
            continue
        what = {"refused": "connection-refused", "hang": "hanging", "hang-sustained": "hanging (sustained run)"}[c["kind"]]
        out.append(f"| {what} deployment first, `{c['strategy']}`: success ≥ {SUCCESS_TARGET} % | "
                   f"{c['success_pct']:.2f} % (worst run {c['success_pct_min']:.2f} %) | "
                   f"{'yes' if c['success_target_met'] else '**no**'} |")
        out.append(f"| {what} deployment first, `{c['strategy']}`: p99 rises < one timeout ({TIMEOUT_S * 1000:g} ms) | "
                   f"{fmt(c['p99_ms'])} − {fmt(c['baseline_p99_ms'])} = {c['p99_rise_ms']:+.2f} ms | "
                   f"{'yes' if c['p99_target_met'] else '**no**'} |")
    micro = results.get("micro") or {}
    for key, limit, text in MICRO_TARGETS:
        if key in micro:
            v = micro[key]["median_us"]
            out.append(f"| {text} | {v:.1f} µs | {'yes' if v <= limit else '**no**'} |")
    out += [
        "",
        f"### Failover: one of three deployments failing hard ({fmt(s['requests'])} requests per run, "
        f"{s['concurrency']} concurrent)",
        "",
        "| failing deployment (listed first) | strategy | runs | success % | p50 ms | p99 ms | baseline p99 ms | "
        "p99 rise ms | p99.9 ms | max ms | requests > 1 s (after 3 s) | reached the failing one | skipped (circuit open) | "
        "circuit changes seen | run s | req/s | busy runs |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in results["cells"]:
        kind = c["kind"] if c["kind"] != "hang-sustained" else f"hang, sustained ({fmt(c['requests'])} requests)"
        out.append(
            f"| {kind} | {c['strategy']} | {c['repeats']} | {c['success_pct']:.2f} | {fmt(c['p50_ms'])} | "
            f"{fmt(c['p99_ms'])} | {fmt(c['baseline_p99_ms'])} | {fmt(c.get('p99_rise_ms'))} | {fmt(c['p999_ms'])} | "
            f"{fmt(c['max_ms'])} | {fmt(c['over_1s'], 0)} ({fmt(c['over_1s_after_3s'], 0)}) | "
            f"{fmt(c['reached_failing'], 0)} | {fmt(c['circuit_open_skips'], 0)} | {fmt(c['circuit_changes'], 0)} | "
            f"{fmt(c['wall_s'], 1)} | {fmt(c['rps'], 0)} | {c['busy_runs']} |"
        )
    out += [
        "",
        f"One `tiergate serve --workers 1`; three deployments in one group, each a `tiergate.simulator --profile cloud "
        f"--fast --latency-ms {s['latency_ms']:g}` (or the failure), `timeout_s: {TIMEOUT_S:g}`, default circuit "
        f"breaker (5 consecutive failures or ≥ 50 % of ≥ 10 in 30 s; 10 s cooldown; 1 half-open trial), default "
        f"retries, `health_probe_interval_s` 15. The failing deployment is listed first and is the cheapest, best "
        f"and (configured) fastest, so both `ordered` and `balanced` try it first while its circuit is closed. "
        f"Fresh gateway per run, warmed up on the two healthy deployments only. asyncio aiohttp client, "
        f"{s['concurrency']} requests in flight. Figures are medians over the runs (`max` is the largest). "
        f"*reached the failing one*: attempts on it other than `circuit_open` in the gateway's request log (for "
        f"`hang` equal to the simulator's `/_sim/stats` count, checked per run in the JSON); *skipped*: attempts "
        f"refused by an open circuit after routing (no upstream contact). A run is *busy* when other processes used "
        f"more than {OTHER_CPU_WARN_PCT:g} % of the machine during it.",
    ]
    dflt = [r for r in results["runs"] if r["kind"] == "hang-defaults"]
    if dflt:
        r = dflt[-1]
        st = ", ".join(f"{k}: {v}" for k, v in sorted(r["request_log"]["status"].items()))
        att = ", ".join(f"{k} × {v}" for k, v in sorted(r["request_log"]["attempts"].items()))
        served = sum(v["chat_requests"] for k, v in r["sim_stats"].items() if k in ("good1", "good2"))
        out += ["", "### The same hang with the built-in timeouts", "",
                "| deployments' `timeout_s` | `max_failover_s` | requests | success % | statuses (request log) | "
                "latency p50 / max ms | failed attempts (request log) | chat requests that reached the healthy simulators |",
                "|---|---:|---:|---:|---|---|---|---:|",
                f"| default (60 s) | default (30 s) | {r['requests']} | {r['success_pct']:.1f} | {st} | "
                f"{fmt(r['p50_ms'])} / {fmt(r['max_ms'])} | {att} | {served} |",
                "", f"The `hang` setup with `timeout_s` left out of the file ({r['requests']} requests, "
                f"{r['concurrency']} at a time, strategy `{r['strategy']}`): see the observations."]
    if micro:
        out += ["", "### Routing micro-benchmark (`bench/routing_micro.py`)", "",
                "| what | median µs | p90 µs |", "|---|---:|---:|"]
        for name, v in micro.items():
            if name.startswith("_"):
                continue
            out.append(f"| {name} | {v['median_us']:.2f} | {v['p90_us']:.2f} |")
        out += ["", f"Median over {results['settings']['micro_runs']} runs of the script (each the median of "
                    f"{results['settings']['micro_rounds'] or 3000} timed calls after a warm-up); pure functions, no I/O. "
                    f"Other processes' share of the machine during each run of the script: "
                    f"{', '.join(f'{x:g} %' for x in micro.get('_other_cpu_pct', [])) or 'not recorded'}"
                    f" (one core of two busy elsewhere = 50 %)."]
    notes = observations(results) + (results.get("notes") or [])
    if notes:
        out += ["", "### Observations", ""] + [f"- {n}" for n in notes]
    return "\n".join(out) + "\n"


def observations(results: dict) -> list[str]:
    """What the runs show about the breaker and fallback, derived from the per-run data."""
    conc = results["settings"]["concurrency"]
    runs = results["runs"]
    out = []
    for kind in ("refused", "hang"):
        rs = [r for r in runs if r["kind"] == kind]
        if not rs:
            continue
        reached = sorted({r["reached_failing"] for r in rs})
        first = [t for r in rs for t, st in r["circuit_timeline"] if st == "open"][:1]
        if kind == "refused":
            out.append(
                f"`refused`: the failing deployment was reached {', '.join(map(str, reached))} times per run "
                f"(concurrency {conc}): the requests routed before the fifth refusal came back had been admitted "
                f"while the circuit was closed, plus one half-open trial when a run outlasted the 10 s cooldown; "
                f"refusals take about a millisecond, so the circuit was open by the first poll of `/ready` and the "
                f"p99 did not move beyond run-to-run noise.")
        else:
            slow = sorted({r["over_1s"] for r in rs})
            out.append(
                f"`hang`: the failing deployment was reached {', '.join(map(str, reached))} times per run and "
                f"{', '.join(map(str, slow))} requests per run took longer than 1 s (each about one `timeout_s`, "
                f"{TIMEOUT_S:g} s, plus a normal answer): the {conc} requests in flight at the start all went to the "
                f"hanging deployment before any failure could come back, and the breaker opens only on completed "
                f"failures (first `open` seen at {first[0] if first else '?'} s). That burst is "
                f"{100 * conc / results['settings']['requests']:.2f} % of a {results['settings']['requests']:,}-request "
                f"run, so p99 stays near the baseline while p99.9 and max are one timeout; with more requests in flight "
                f"than 1 % of a run's requests, p99 would be one timeout too.")
    hangs = [r for r in runs if r["kind"] in ("hang", "hang-sustained")]
    early = []
    for r in hangs:
        tl = r["circuit_timeline"]
        for (t0, s0), (t1, s1) in zip(tl, tl[1:]):
            if s0 == "open" and s1 == "half_open" and t1 - t0 < 9.0:  # before the 10 s cooldown (2 Hz polling)
                early.append(round(t1 - t0, 1))
    if hangs and early:
        out.append(
            f"Half-open before the cooldown: in {len(early)} of the {len(hangs)} `hang` runs the circuit went from open "
            f"to half-open only {', '.join(f'{x:g}' for x in early)} s after opening. Since these runs, a "
            f"background probe readmits a deployment early only on evidence of recovery (the probes had seen the "
            f"outage, or the breaker opened on connection errors): a hanging upstream whose model listing keeps "
            f"answering now waits out the cooldown (`HealthRegistry.record_probe`, src/tiergate/routing/health.py).")
    for r in runs:
        if r["kind"] == "hang-defaults":
            ok = r["success_pct"]
            if ok >= 99.9:
                out.append(
                    f"With the built-in timeouts (deployment `timeout_s` 60 s > `routing.max_failover_s` 30 s) a "
                    f"hanging first deployment still leaves the fallback time: {ok:.0f} % of the {r['requests']} "
                    f"requests got an answer from a healthy deployment after {r['max_ms'] / 1000:.1f} s. While other "
                    f"candidates remain, an attempt may use the budget minus a reserve (half of what is left, at most "
                    f"10 s) (`Router.bounded`, src/tiergate/routing/router.py); the budget running out is no verdict "
                    f"on a deployment.")
            else:
                out.append(
                    f"With the built-in timeouts (deployment `timeout_s` 60 s > `routing.max_failover_s` 30 s) a "
                    f"hanging first deployment made {100 - ok:.0f} % of the {r['requests']} requests fail after "
                    f"{r['max_ms'] / 1000:.1f} s.")
        if r["kind"] == "hang-sustained":
            tl = ", ".join(f"{st} at {t:g} s" for t, st in r["circuit_timeline"])
            out.append(
                f"`hang`, sustained ({r['requests']:,} requests, {r['wall_s']:.0f} s): circuit of the failing "
                f"deployment as polled from `/ready` twice a second: {tl}. It was reached {r['reached_failing']} "
                f"times ({r['over_1s_after_3s']} requests after the first 3 s took > 1 s): after each "
                f"`cooldown_s` (10 s) one half-open trial request waits a full timeout before the circuit opens "
                f"again; a background probe (`health_probe_interval_s` 15, `GET /v1/models`, which the hanging "
                f"upstream still answers) can also move it to half-open early.")
    return out


def update_readme(md: str) -> None:
    readme = BENCH / "README.md"
    text = readme.read_text()
    start, end = "<!-- routing:results:start -->", "<!-- routing:results:end -->"
    if start in text and end in text:
        pre, rest = text.split(start, 1)
        _, post = rest.split(end, 1)
        readme.write_text(f"{pre}{start}\n{md}{end}{post}")


def versions() -> dict:
    v = {}
    r = R.run([str(PY), "-c", "import tiergate; print(getattr(tiergate, '__version__', '?'))"], 30)
    v["tiergate"] = r.stdout.strip() or None
    r = R.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], 10)
    v["git"] = r.stdout.strip() or None
    return v


def only(args, micro_runs: int) -> int:
    """Run only the micro-benchmark and/or the built-in-timeouts check; merge into routing.json."""
    what = {w.strip() for w in args.only.split(",") if w.strip()}
    if what - {"micro", "defaults"}:
        sys.exit("--only takes micro and/or defaults")
    path = RESULTS / "routing.json"
    results = json.loads(path.read_text())
    if "defaults" in what:
        sims: dict[str, Sim] = {}
        try:
            sims["good1"] = Sim("good1", args.latency_ms)
            sims["good2"] = Sim("good2", args.latency_ms)
            sims["hang"] = Sim("hang", args.latency_ms, ("--fault", "timeout", "--hang-s", "90"))
            run = one_run("hang-defaults", "ordered", 1, sims, args, args.defaults_check or 8, 8)
        finally:
            for s in sims.values():
                R.stop_process(s.proc, grace=5.0)
        results["runs"] = [r for r in results["runs"] if r["kind"] != "hang-defaults"] + [run]
        results["settings"]["defaults_check_requests"] = run["requests"]
        results["defaults_check_date"] = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    if "micro" in what:
        log(f"routing_micro.py x {micro_runs or 3}")
        results["micro"] = run_micro(micro_runs or 3, args.micro_rounds)
        results["settings"]["micro_runs"] = micro_runs or 3
        results["micro_date"] = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    md = render(results)
    print(md)
    if not args.no_write:
        path.write_text(json.dumps(results, indent=2) + "\n")
        (RESULTS / "routing.md").write_text(md)
        update_readme(md)
        log("merged into bench/results/routing.json; wrote routing.md and the README figures")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="2,000 requests per run, 1 repeat, 1 micro run")
    ap.add_argument("--requests", type=int, help="requests per run (default 10,000; quick 2,000)")
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--repeats", type=int, help="runs per (failure, strategy) (default 3; quick 1)")
    ap.add_argument("--kinds", default=",".join(KINDS), help="subset of healthy,refused,hang")
    ap.add_argument("--strategies", default=",".join(STRATEGIES), help="subset of ordered,balanced")
    ap.add_argument("--latency-ms", type=float, default=20.0, help="simulated upstream latency")
    ap.add_argument("--sustained", type=int,
                    help="requests of one extra, longer hang/ordered run that outlasts the breaker's cooldown and "
                         "probe interval (default 30,000; quick 0 = none)")
    ap.add_argument("--warmup-requests", type=int, default=300)
    ap.add_argument("--max-run-s", type=float, default=120.0, help="no new request after this many s of a run")
    ap.add_argument("--max-minutes", type=float, default=25.0, help="no new run starts after this")
    ap.add_argument("--wait-quiet", type=float, default=20.0,
                    help="before each run wait up to this long for other processes to use < 10%% of the CPU")
    ap.add_argument("--micro-runs", type=int, help="runs of routing_micro.py (default 3; quick 1; 0 = skip)")
    ap.add_argument("--micro-rounds", type=int, help="--rounds for routing_micro.py (default: its own, 3000)")
    ap.add_argument("--defaults-check", type=int,
                    help="requests (8 at a time) of one extra hang/ordered run with the built-in timeout_s (60 s) and "
                         "max_failover_s (30 s); ~31 s (default 8; quick 0 = none)")
    ap.add_argument("--only", help="comma list of micro,defaults: run only these and merge them into the existing "
                                   "results/routing.json")
    ap.add_argument("--no-write", action="store_true", help="do not write results/ or README.md")
    ap.add_argument("--render", action="store_true", help="re-render routing.md and README.md from routing.json")
    args = ap.parse_args()

    if args.render:
        results = json.loads((RESULTS / "routing.json").read_text())
        md = render(results)
        print(md)
        (RESULTS / "routing.md").write_text(md)
        update_readme(md)
        return 0

    args.requests = args.requests or (2000 if args.quick else 10000)
    args.repeats = args.repeats or (1 if args.quick else 3)
    if args.sustained is None:
        args.sustained = 0 if args.quick else 30000
    if args.defaults_check is None:
        args.defaults_check = 0 if args.quick else 8
    micro_runs = args.micro_runs if args.micro_runs is not None else (1 if args.quick else 3)
    kinds = [k for k in args.kinds.split(",") if k]
    strategies = [s for s in args.strategies.split(",") if s]
    if set(kinds) - set(KINDS) or set(strategies) - set(STRATEGIES):
        ap.error("unknown --kinds or --strategies")
    if "healthy" not in kinds:
        kinds.insert(0, "healthy")  # the baseline is always needed
    WORK.mkdir(parents=True, exist_ok=True)
    R.LOGS.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: sys.exit(130))
    deadline = time.monotonic() + 60 * args.max_minutes

    if args.only:
        return only(args, micro_runs)
    results: dict = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": {},
        "settings": {"requests": args.requests, "concurrency": args.concurrency, "repeats": args.repeats,
                     "latency_ms": args.latency_ms, "timeout_s": TIMEOUT_S, "warmup_requests": args.warmup_requests,
                     "gateway_workers": 1, "kinds": kinds, "strategies": strategies, "quick": args.quick,
                     "micro_runs": micro_runs, "sustained_requests": args.sustained,
                     "defaults_check_requests": args.defaults_check, "micro_rounds": args.micro_rounds},
        "versions": versions(),
        "runs": [], "cells": [],
    }
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    results["machine"] = {"cpu": cpu, "cores": os.cpu_count(), "python": sys.version.split()[0],
                          "loadavg_at_start": [round(x, 2) for x in os.getloadavg()]}

    sims: dict[str, Sim] = {}
    try:
        lat = args.latency_ms
        sims["good1"] = Sim("good1", lat)
        sims["good2"] = Sim("good2", lat)
        sims["spare"] = Sim("spare", lat)
        if "hang" in kinds:
            sims["hang"] = Sim("hang", lat, ("--fault", "timeout", "--hang-s", "30"))
        log("simulators: " + ", ".join(f"{k} 127.0.0.1:{s.port} (pid {s.proc.pid})" for k, s in sims.items()))
        for rep in range(1, args.repeats + 1):
            for strategy in strategies:
                for kind in kinds:
                    if time.monotonic() > deadline:
                        log("time budget (--max-minutes) used up: no more runs")
                        break
                    try:
                        results["runs"].append(one_run(kind, strategy, rep, sims, args))
                    except Exception as e:  # noqa: BLE001
                        log(f"run {kind} {strategy} {rep} FAILED: {e}")
                        results.setdefault("failed_runs", []).append(f"{kind} {strategy} {rep}: {e}")
        if args.sustained and "hang" in kinds and "ordered" in strategies and time.monotonic() < deadline:
            try:
                results["runs"].append(one_run("hang-sustained", "ordered", 1, sims, args, args.sustained))
            except Exception as e:  # noqa: BLE001
                log(f"sustained run FAILED: {e}")
                results.setdefault("failed_runs", []).append(f"hang-sustained ordered: {e}")
        if args.defaults_check and "hang" in kinds and time.monotonic() < deadline:
            try:
                # a simulator that hangs longer than the 30 s budget (the runs' one stops at 30 s)
                sims["hang90"] = Sim("hang90", args.latency_ms, ("--fault", "timeout", "--hang-s", "90"))
                trio = {"good1": sims["good1"], "good2": sims["good2"], "hang": sims["hang90"]}
                results["runs"].append(one_run("hang-defaults", "ordered", 1, trio, args, args.defaults_check, 8))
            except Exception as e:  # noqa: BLE001
                log(f"defaults check FAILED: {e}")
                results.setdefault("failed_runs", []).append(f"hang-defaults ordered: {e}")
    finally:
        for s in sims.values():
            R.stop_process(s.proc, grace=5.0)
    results["cells"] = aggregate(results["runs"])
    if micro_runs:
        log(f"routing_micro.py x {micro_runs}")
        results["micro"] = run_micro(micro_runs, args.micro_rounds)
    results["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    md = render(results)
    print()
    print(md)
    if not args.no_write:
        (RESULTS / "routing.json").write_text(json.dumps(results, indent=2) + "\n")
        (RESULTS / "routing.md").write_text(md)
        update_readme(md)
        log("wrote bench/results/routing.json, routing.md and the Routing figures in bench/README.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
