#!/usr/bin/env python3
"""Cost of admission and settlement (issue 6): budgets and rate limits on vs off.

From the repository root (needs the project venv, `make install`; the gateway part also needs
nginx + its echo module + wrk, which `bench/run.sh` installs, and Redis for the Redis rows):

    .venv/bin/python bench/budget_speed.py                  # everything, ~5 min on 2 cores
    .venv/bin/python bench/budget_speed.py --quick          # smoke check, ~1.5 min
    .venv/bin/python bench/budget_speed.py --only micro     # no servers
    .venv/bin/python bench/budget_speed.py --redis-url redis://127.0.0.1:6379/0

What is measured:

1. micro: `BudgetManager.admit` and `settle` for one request after another, in-process, the way
   the pipeline calls them (the settlement goes out in the background; with Redis it rides along
   with the next request's admission): the admission's latency (what a request waits for) and
   the CPU time per request of both, with a global daily and monthly budget, a team budget and a key with its own budget, rpm
   and tpm (6 budget windows, 6 rate limits), per counter backend: `memory` (the default for one
   process on SQLite), `redis` (replicas), `database` (SQLite file shared by workers, no Redis).
   The same calls with no budget configured give the baseline; "added" is the difference of the
   medians. Targets: <= 0.3 ms median added with SQLite (memory counters), <= 1 ms with Redis.
2. gateway: `tiergate serve` in front of bench/run.py's nginx fixture, wrk at 50 connections, the
   same config with budgets and rate limits off and on: one worker on SQLite (counters in memory,
   the default setup) and two workers sharing Redis, each against "off" with the same worker
   count (`--with-database`: two workers sharing budgets through SQLite, no Redis); interleaved
   rounds, medians. The limits are far above what the run can reach, so every request is admitted
   and the cost of counting is what is seen. Target: req/s with them on >= 80 % of off.

Writes bench/results/budget_speed.json and .md. Every server listens on 127.0.0.1, every load run
is bounded by wrk's -d, every process started here is stopped by its own process-group id.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import importlib.util
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"
sys.path.insert(0, str(ROOT / "src"))


def log(msg: str) -> None:
    print(f"[{dt.datetime.now():%H:%M:%S}] {msg}", flush=True)


# --------------------------------------------------------------------------------------------
# micro
# --------------------------------------------------------------------------------------------


def _settings(budgets_on: bool, redis_url: str | None, prefix: str, workers: int = 1):
    from tiergate.config.models import Settings

    big = "1000000"
    d = {"name": "cloud", "model": "m", "location": "cloud", "base_url": "http://127.0.0.1:9",
         "price": {"input": "0.15", "output": "0.60"}}
    cfg: dict = {"deployments": [d], "server": {"workers": workers}}
    if budgets_on:
        cfg["budgets"] = {"daily_usd": big, "monthly_usd": big, "rpm": 10**8, "tpm": 10**12}
        cfg["teams"] = {"research": {"daily_usd": big, "monthly_usd": big, "rpm": 10**8, "tpm": 10**12}}
    if redis_url:
        cfg["redis"] = {"url": redis_url, "prefix": prefix}
    return Settings(**cfg)


def _principal(budgets_on: bool):
    from tiergate.auth import Principal
    from tiergate.keys import VirtualKey

    if not budgets_on:
        return Principal("master", is_admin=True)
    now = dt.datetime.now(dt.UTC)
    key = VirtualKey(
        id="key_bench", prefix="tg-bench", name=None, team="research", models=(), deployments=(), locations=(),
        residencies=(), default_privacy=None, default_strategy=None, daily_usd=Decimal("1000000"),
        monthly_usd=Decimal("1000000"), rpm=10**8, tpm=10**12, expires_at=None, revoked_at=None, metadata={},
        created_at=now, updated_at=now,
    )
    return Principal("key_bench", team="research", key=key)


async def _micro_one(backend: str, budgets_on: bool, n: int, redis_url: str | None) -> list[float]:
    from tiergate.budget.setup import build_budget_manager
    from tiergate.store.db import Store

    prefix = f"tgbench-{uuid.uuid4().hex[:8]}"
    engine = None
    store = None
    client = None
    tmp = tempfile.mkdtemp(prefix="tg-budget-bench-")
    if backend == "redis":
        from tiergate.redisconn import connect

        settings = _settings(budgets_on, redis_url, prefix)
        client = connect(settings.redis)
    elif backend == "database":
        settings = _settings(budgets_on, None, prefix, workers=2)
        store = await Store.open(f"sqlite:///{tmp}/bench.db")
        engine = store.engine
    else:
        settings = _settings(budgets_on, None, prefix)
    mgr = build_budget_manager(settings, engine, client)
    principal = _principal(budgets_on)
    cands = list(settings.deployments)
    samples: list[float] = []  # CPU per request (admission + settlement), µs
    admit_only: list[float] = []  # admission latency (what a request waits for), µs
    try:
        for i in range(n + 50):
            c0 = time.process_time()
            t0 = time.perf_counter()
            kept, _ex, adm = await mgr.admit(f"r{i}", principal, cands, 250, 256)
            t1 = time.perf_counter()
            mgr.settle(adm, Decimal("0.0002"))  # in the background, as the pipeline does
            if i >= 50:
                admit_only.append((t1 - t0) * 1e6)
                samples.append((time.process_time() - c0) * 1e6)
        while mgr._tasks:  # the last settlements
            await asyncio.gather(*list(mgr._tasks))
    finally:
        await mgr.close()
        if client is not None:
            keys = [k async for k in client.scan_iter(match=f"{prefix}:*", count=1000)]
            if keys:
                await client.delete(*keys)
            await client.aclose()
        if store is not None:
            await store.close()
    return samples, admit_only


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def bench_micro(n: int, redis_url: str | None) -> list[dict]:
    rows = []
    backends = ["memory", "database"] + (["redis"] if redis_url else [])
    for backend in backends:
        row: dict = {"backend": backend, "n": n}
        for on in (False, True):
            samples, admit_only = asyncio.run(_micro_one(backend, on, n, redis_url))
            key = "on" if on else "off"
            row[f"cpu_us_{key}"] = round(statistics.mean(samples), 1)
            row[f"admit_p50_us_{key}"] = round(statistics.median(admit_only), 1)
            row[f"admit_p99_us_{key}"] = round(_pct(admit_only, 0.99), 1)
        row["added_admit_p50_ms"] = round((row["admit_p50_us_on"] - row["admit_p50_us_off"]) / 1000, 4)
        row["added_cpu_ms"] = round((row["cpu_us_on"] - row["cpu_us_off"]) / 1000, 4)
        rows.append(row)
        log(f"micro {backend:8s} admission p50 {row['admit_p50_us_on']:8.1f} µs (p99 {row['admit_p99_us_on']:8.1f}), "
            f"CPU per request {row['cpu_us_on']:8.1f} µs; off: {row['admit_p50_us_off']:.1f} / {row['cpu_us_off']:.1f}")
    return rows


# --------------------------------------------------------------------------------------------
# gateway
# --------------------------------------------------------------------------------------------

GATEWAY_CONFIG = """# generated by bench/budget_speed.py: bench/tiergate-bench.yaml's fast JSON deployment; the
# runs differ only in the budgets/teams/redis sections.
server: {{host: 127.0.0.1, port: 8100, master_key: env:TIERGATE_MASTER_KEY}}
store: {{url: "sqlite:///bench/.work/{label}.db"}}
privacy: {{default_level: PUBLIC}}
deployments:
  - {{name: upstream-json, provider: openai, base_url: "http://127.0.0.1:NGINX_PORT/json/v1", model: bench-model, location: local, residency: on-prem, timeout_s: 30, price: {{input: 0.1, output: 0.2}}}}
model_groups:
  bench: [upstream-json]
{extra}"""

ON = """budgets: {daily_usd: 1000000, monthly_usd: 1000000, rpm: 100000000, tpm: 1000000000000}
"""


def load_run_module():
    spec = importlib.util.spec_from_file_location("bench_run", BENCH / "run.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def bench_gateway(rounds: int, duration: float, warmup: float, conns: int, redis_url: str | None,
                  wait_quiet_s: float, with_database: bool) -> dict:
    import shutil

    R = load_run_module()
    for d in (R.WORK, R.LOGS):
        d.mkdir(parents=True, exist_ok=True)
    if not (shutil.which("nginx") and shutil.which("wrk") and R.ECHO_MODULE.exists()):
        raise RuntimeError("nginx, its echo module and wrk are needed (bench/run.sh installs them)")
    direct = R.start_fixture_nginx("nginx-budget")
    nginx, nginx_port = direct.proc, direct.port
    # mode -> (extra config, workers). One worker on SQLite keeps the counters in memory (the
    # default setup); two workers share them through Redis, or without Redis through the database.
    redis_cfg = f'redis: {{url: "{redis_url}", prefix: "tgbench-{uuid.uuid4().hex[:8]}"}}\n' if redis_url else ""
    modes: dict[str, tuple[str, int]] = {"off-1w": ("", 1), "on-memory-1w": (ON, 1), "off-2w": ("", 2)}
    if redis_url:
        modes["on-redis-2w"] = (ON + redis_cfg, 2)
    if with_database:
        modes["on-database-2w"] = (ON, 2)
    gws = {}
    cells: list[dict] = []
    try:
        R.wait_healthy(direct, 10)
        for mode, (extra, workers) in modes.items():
            label = f"tiergate-budget-{mode}"
            t = R.Tiergate(nginx_port, config_text=GATEWAY_CONFIG.format(label=label, extra=extra), label=label,
                           workers=workers)
            t.port = R.free_port()
            t.proc = t.start()
            R.wait_healthy(t, 60)
            gws[mode] = t
        roots = [nginx.pid] + [t.proc.pid for t in gws.values()]
        names = list(gws)
        for r in range(rounds):
            order = names if r % 2 == 0 else list(reversed(names))
            for mode in order:
                t = gws[mode]
                R.wait_quiet(wait_quiet_s, roots, f"{mode} c={conns}")
                c = R.measure_cell(t, "json", conns, duration, warmup)
                c.update(mode=mode, round=r + 1)
                cells.append(c)
                log(f"round {r + 1} {mode:12s} c={conns} {c['rps']:>8.1f} req/s  p50 {c['p50_ms']:.2f} ms  "
                    f"p99 {c['p99_ms']:.2f} ms  {c.get('cpu_ms_per_req')} ms CPU/req  errors {c['errors']}")
    finally:
        for t in gws.values():
            if t.proc:
                R.stop_process(t.proc)
        R.stop_process(nginx)
    summary: dict = {}
    for mode in gws:
        cs = [c for c in cells if c["mode"] == mode]
        summary[mode] = {k: round(statistics.median([c[k] for c in cs if c.get(k) is not None]), 3)
                         for k in ("rps", "p50_ms", "p99_ms", "cpu_ms_per_req")}
        summary[mode]["errors"] = sum(c["errors"] for c in cs)
    for mode in summary:
        off = summary["off-" + mode.rsplit("-", 1)[1]]["rps"]  # the same worker count, off
        summary[mode]["rps_ratio_vs_off"] = round(summary[mode]["rps"] / off, 3) if off else None
    return {"cells": cells, "summary": summary, "connections": conns, "machine": R.machine_info()}


def render(res: dict) -> str:
    out = ["# Budgets and rate limits: cost of admission and settlement", "",
           f"Run {res['when']}. `bench/budget_speed.py`; see its docstring for the method.", ""]
    if res.get("micro"):
        out += ["## admission and settlement, in-process", "",
                "| counters | admission p50 µs | admission p99 µs | CPU µs per request (admit + settle) | "
                "added admission p50 ms | added CPU ms | target |",
                "|---|---:|---:|---:|---:|---:|---|"]
        targets = {"memory": "<= 0.3 ms (SQLite, one process)", "redis": "<= 1 ms", "database": "-"}
        for r in res["micro"]:
            out.append(f"| {r['backend']} | {r['admit_p50_us_on']} | {r['admit_p99_us_on']} | {r['cpu_us_on']} | "
                       f"{r['added_admit_p50_ms']} | {r['added_cpu_ms']} | {targets.get(r['backend'], '')} |")
        out.append("")
    if res.get("gateway"):
        g = res["gateway"]
        out += [f"## gateway, fast upstream, {g['connections']} connections (medians; -1w/-2w: workers)", "",
                "| mode | req/s | vs off | p50 ms | p99 ms | CPU ms/req | errors |", "|---|---:|---:|---:|---:|---:|---:|"]
        for mode, s in g["summary"].items():
            out.append(f"| {mode} | {s['rps']} | {s['rps_ratio_vs_off']} | {s['p50_ms']} | {s['p99_ms']} | "
                       f"{s['cpu_ms_per_req']} | {s['errors']} |")
        out.append("")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="micro,gateway")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--redis-url", default=os.environ.get("TIERGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))
    ap.add_argument("--no-redis", action="store_true")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--with-database", action="store_true",
                    help="also 2 workers sharing budgets through SQLite (no Redis): slow by design")
    ap.add_argument("--wait-quiet", type=float, default=30.0)
    args = ap.parse_args()
    redis_url = None if args.no_redis else args.redis_url
    only = set(args.only.split(","))
    res: dict = {"when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
    if "micro" in only:
        res["micro"] = bench_micro(2000 if args.quick else 10000, redis_url)
    if "gateway" in only:
        # Many short interleaved rounds: a gateway's req/s varies by +-15 % between cells on this
        # 2-core machine, so a ratio needs medians over several.
        res["gateway"] = bench_gateway(1 if args.quick else 6, 3 if args.quick else 5, 1,
                                       50, redis_url, args.wait_quiet, args.with_database)
    md = render(res)
    print(md)
    if not args.no_write:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "budget_speed.json").write_text(json.dumps(res, indent=1, default=str))
        (RESULTS / "budget_speed.md").write_text(md + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
