"""The `tiergate` command line as a user runs it (subprocesses)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support import MASTER_KEY, clean_env, deployment, http_json, start_gateway, start_sim


def _run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full = clean_env(**env, COLUMNS="120")
    return subprocess.run([sys.executable, "-m", "tiergate", *args], cwd=cwd, env=full, capture_output=True,
                          text=True, timeout=60)


def test_info_shows_the_alem_banner_for_yonca_env(tmp_path: Path) -> None:
    r = _run(["info", "--no-probe"], tmp_path, YONCA_LLM_PROVIDER="groq", YONCA_GROQ_API_KEY="gsk_supersecret_value",
             YONCA_GROQ_MODEL="meta-llama/llama-4-maverick-17b-128e-instruct")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    for line in ("Tier I: Groq LPU", "Latency: ~200ms (P95)", "Throughput: 800 tok/s", "Data Residency: US (Groq servers)",
                 "Cost Range: $0–50/mo", "Source: env:YONCA_LLM_PROVIDER=groq"):
        assert line in out, line
    assert "gsk_supersecret_value" not in out + r.stderr


def test_info_probes_reachability(tmp_path: Path) -> None:
    sim = start_sim(tmp_path, "local")
    try:
        cfg = tmp_path / "tiergate.yaml"
        cfg.write_text(json.dumps({"deployments": [deployment("office", sim, "local"),
                                                   deployment("gone", "http://127.0.0.1:9/v1", "cloud")]}))
        r = _run(["info"], tmp_path)
    finally:
        sim.stop()
    assert r.returncode == 0, r.stderr
    assert "Status: reachable" in r.stdout and "UNREACHABLE (cannot connect to upstream" in r.stdout
    assert "Endpoint reports: llama3.2:3b, qwen2.5:7b" in r.stdout  # the models the endpoint lists


def test_recommend_by_flags(tmp_path: Path) -> None:
    r = _run(["recommend", "--sovereignty", "--no-air-gap"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert "Tier III" in r.stdout and "YONCA_LLM_PROVIDER=azintelecom" in r.stdout
    r = _run(["recommend", "--no-sovereignty", "--complex-reasoning", "--budget", "250"], tmp_path)
    assert "Tier II" in r.stdout and "YONCA_LLM_PROVIDER=gemini" in r.stdout


def test_explain_prints_the_decision(tmp_path: Path) -> None:
    cfg = tmp_path / "tiergate.yaml"
    cfg.write_text(json.dumps({
        "deployments": [deployment("office", "http://127.0.0.1:9/v1", "local"), deployment("groq", "http://127.0.0.1:9/v1", "cloud")],
        "model_groups": {"assistant": ["groq", "office"]},
    }))
    r = _run(["explain", "patient data", "--model", "assistant", "--privacy", "PRIVATE"], tmp_path)
    assert r.returncode == 0, r.stderr
    decision = json.loads(r.stdout)
    assert decision["order"] == ["office"] and decision["excluded"][0]["deployment"] == "groq"
    assert decision["upstream_called"] is False


def test_recommend_interactively(tmp_path: Path) -> None:
    full = clean_env()
    r = subprocess.run([sys.executable, "-m", "tiergate", "recommend"], cwd=tmp_path, env=full, input="yes\nyes\n",
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "Tier IV" in r.stdout and "YONCA_LLM_PROVIDER=ollama" in r.stdout


def test_privacy_scan_streams_jsonl_and_survives_bad_lines(tmp_path: Path) -> None:
    text = "Zəng edin: +994 50 123 45 67, e-poçt leyla@example.az"
    lines = [
        json.dumps({"id": "a", "text": text}, ensure_ascii=False),
        "this is not json",
        json.dumps({"id": "b", "text": 42}),
        json.dumps({"id": "c", "text": "Order #4411-2093, version 2.10.0"}),
    ]
    proc = subprocess.run(
        [sys.executable, "-m", "tiergate", "privacy", "scan", "--explain"], cwd=tmp_path, env=clean_env(),
        input="\n".join(lines) + "\n", capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    out = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [o.get("id") for o in out] == ["a", None, "b", "c"]
    found = {(e["type"], text[e["start"]:e["end"]]) for e in out[0]["entities"]}
    assert found == {("PHONE", "+994 50 123 45 67"), ("EMAIL", "leyla@example.az")}
    assert all(e["why"] and 0 < e["score"] <= 1 for e in out[0]["entities"])
    assert "not JSON" in out[1]["error"] and out[1]["line"] == 2
    assert "'text' must be a string" in out[2]["error"]
    assert out[3]["entities"] == []  # order numbers and versions are not personal data


def test_report_reads_the_request_log(tmp_path: Path) -> None:
    sim = start_sim(tmp_path, "local")
    gw = start_gateway(tmp_path, {
        "deployments": [deployment("office", sim, "local", price={"input": 1, "output": 2})],
        "model_groups": {"assistant": ["office"]},
    })
    try:
        for _ in range(3):
            status, _, _ = http_json("POST", f"{gw.url}/chat/completions",
                                     {"model": "assistant", "messages": [{"role": "user", "content": "hi"}]},
                                     {"authorization": f"Bearer {MASTER_KEY}"})
            assert status == 200
    finally:
        gw.stop()  # flushes the request log
        sim.stop()
    r = _run(["report", "--json", "--config", str(gw.config_path)], tmp_path)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    office = next(row for row in data["deployments"] if row["deployment"] == "office")
    assert office["requests"] == 3 and office["error_rate"] == 0
    assert next(row for row in data["groups"] if row["model_group"] == "assistant")["requests"] == 3
    table = _run(["report", "--config", str(gw.config_path)], tmp_path)
    assert table.returncode == 0 and "office" in table.stdout
