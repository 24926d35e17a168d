"""The `tiergate` command line (Typer + Rich). Holds no logic of its own: each command loads the
settings and calls into the package.

    tiergate serve      start the gateway (banner, workers, graceful shutdown)
    tiergate info       the ALEM banner for each deployment, with live reachability
    tiergate recommend  the ALEM decision tree: which tier, and a config snippet
    tiergate simulate   a simulated upstream (local | sovereign | cloud; any wire format)
    tiergate explain    the routing decision for a request, without calling any upstream
    tiergate privacy scan   detect personal data and secrets in JSON Lines texts
    tiergate report     per deployment, group and experiment arm: requests, spend, latency, errors
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console

from .config import ConfigError, Settings, load_settings
from .config.models import resolve_secret

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold secrets; never print them
    rich_markup_mode=None,
    help="tiergate: a privacy-first, multi-tier LLM gateway.",
)
console = Console(stderr=False)
err_console = Console(stderr=True)

ConfigOpt = Annotated[
    Optional[Path],
    typer.Option("--config", "-c", help="tiergate.yaml (default: $TIERGATE_CONFIG, ./tiergate.yaml)"),
]


def _load(config: Path | None, *, allow_simulated_default: bool = True) -> Settings:
    try:
        return load_settings(config, allow_simulated_default=allow_simulated_default)
    except ConfigError as exc:
        err_console.print("[bold red]configuration error[/]")
        err_console.print(str(exc), markup=False, highlight=False)
        raise typer.Exit(2) from None


def _setup_logging() -> None:
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )


@app.command()
def serve(
    config: ConfigOpt = None,
    host: Annotated[Optional[str], typer.Option(help="listen address (default server.host)")] = None,
    port: Annotated[Optional[int], typer.Option(help="listen port (default server.port)")] = None,
    workers: Annotated[Optional[int], typer.Option(help="worker processes sharing the port")] = None,
    no_banner: Annotated[bool, typer.Option("--no-banner", help="skip the start-up banner")] = False,
) -> None:
    """Start the gateway."""
    from .banner import render_banner
    from .providers import UnsupportedProviderError, create_provider
    from .server.serve import (
        ServeError,
        check_bind,
        prepare,
        serve_workers,
        start_simulators,
        stop_processes,
    )

    _setup_logging()
    settings = _load(config)
    host = host or settings.server.host
    port = settings.server.port if port is None else port
    workers = workers or settings.server.workers
    master = resolve_secret(settings.server.master_key)
    procs: list[Any] = []
    try:
        check_bind(settings, host, master is not None)
        for d in settings.deployments:
            create_provider(d)
        prepare(settings)
        if settings.simulated:
            settings, procs = start_simulators(settings)
        if not no_banner:
            auth = (
                "master key required (Authorization: Bearer … or x-api-key)"
                if master
                else "NO master key configured: open to anyone who can reach it, so bound to loopback only"
            )
            render_banner(
                settings, console=console, listen_url=f"http://{host}:{port}/v1", auth=auth
            )
        serve_workers(settings, host, port, workers)
    except (ServeError, UnsupportedProviderError) as exc:
        err_console.print(f"[bold red]cannot start:[/] {exc}", highlight=False)
        raise typer.Exit(2) from None
    finally:
        stop_processes(procs)


@app.command()
def info(
    config: ConfigOpt = None,
    probe: Annotated[bool, typer.Option(help="probe each deployment's reachability")] = True,
) -> None:
    """Show each configured deployment (ALEM banner), where it came from, and whether it answers."""
    from .banner import render_banner

    settings = _load(config, allow_simulated_default=True)
    reach = asyncio.run(_probe(settings)) if probe else None
    render_banner(settings, console=console, reachability=reach)


async def _probe(settings: Settings) -> dict[str, Any]:
    """Each deployment's health probe (its adapter's cheap model-list call): reachable or not,
    the round trip, and the models the endpoint reports."""
    from .providers import Health, create_provider

    out: dict[str, Health] = {}

    async def one(d: Any) -> None:
        try:
            provider = create_provider(d)
            await provider.start()
        except Exception as exc:  # noqa: BLE001 - a deployment that cannot start is unreachable
            out[d.name] = Health(False, error=str(exc)[:200])
            return
        try:
            out[d.name] = await asyncio.wait_for(provider.health(), 6.0)
        except asyncio.TimeoutError:
            out[d.name] = Health(False, error="no answer within 6 s")
        finally:
            await provider.close()

    await asyncio.gather(*(one(d) for d in settings.deployments))
    return out


@app.command()
def recommend(
    sovereignty: Annotated[Optional[bool], typer.Option("--sovereignty/--no-sovereignty", help="is data sovereignty mandatory?")] = None,
    air_gap: Annotated[Optional[bool], typer.Option("--air-gap/--no-air-gap", help="is an air gap required?")] = None,
    complex_reasoning: Annotated[Optional[bool], typer.Option("--complex-reasoning/--simple", help="is complex reasoning needed?")] = None,
    budget: Annotated[Optional[float], typer.Option(help="monthly budget in USD")] = None,
) -> None:
    """The ALEM decision tree: which tier fits, with a config snippet. Asks what flags leave open."""
    from .recommend import ask_interactively
    from .recommend import recommend as decide

    if sovereignty is None or (sovereignty and air_gap is None) or (
        not sovereignty and (complex_reasoning is None or (complex_reasoning and budget is None))
    ):
        if sovereignty is None and air_gap is None and complex_reasoning is None and budget is None:
            rec = ask_interactively(console, typer.prompt)
        else:
            err_console.print(
                "give --sovereignty/--no-sovereignty and the answers the tree needs "
                "(--air-gap/--no-air-gap, or --complex-reasoning/--simple and --budget), or no flags to be asked"
            )
            raise typer.Exit(2)
    else:
        rec = decide(
            sovereignty=bool(sovereignty),
            air_gap=bool(air_gap),
            complex_reasoning=bool(complex_reasoning),
            budget_per_month=float(budget or 0.0),
        )
    console.print(f"[bold]Recommended: Tier {rec.tier} — {rec.name}[/]")
    for step in rec.reason:
        console.print(f"  • {step}", highlight=False)
    console.print("\n[bold]Environment (ALEM):[/]")
    console.print(rec.env_snippet, markup=False, highlight=False)
    console.print("\n[bold]tiergate.yaml:[/]")
    console.print(rec.yaml_snippet, markup=False, highlight=False)


@app.command()
def simulate(
    port: Annotated[int, typer.Option(help="listen port on 127.0.0.1")] = 8200,
    profile: Annotated[str, typer.Option(help="local | sovereign | cloud")] = "local",
    format: Annotated[
        str, typer.Option("--format", help="wire format: openai | anthropic | gemini | ollama | bedrock")
    ] = "openai",
    host: Annotated[str, typer.Option(help="listen address")] = "127.0.0.1",
    latency_ms: Annotated[Optional[float], typer.Option(help="delay before a non-streamed answer")] = None,
    ttft_ms: Annotated[Optional[float], typer.Option(help="time to first token (streaming)")] = None,
    tps: Annotated[Optional[float], typer.Option(help="tokens per second (0 = instant)")] = None,
    fast: Annotated[bool, typer.Option("--fast", help="no delays at all")] = False,
    fault: Annotated[Optional[str], typer.Option(help="inject a fault: 500|503|429|400|401|timeout|reset|malformed|truncate")] = None,
    fault_rate: Annotated[float, typer.Option(help="share of requests that fault")] = 1.0,
    api_key: Annotated[Optional[str], typer.Option(help="require this bearer key")] = None,
    reply_tokens: Annotated[Optional[int], typer.Option(help="words in a generated reply")] = None,
    model: Annotated[Optional[list[str]], typer.Option(help="model id to report (repeatable)")] = None,
    hang_s: Annotated[float, typer.Option(help="how long the 'timeout' fault hangs")] = 30.0,
) -> None:
    """Serve a SIMULATED upstream (for demos, tests and benchmarks), speaking OpenAI's wire
    format or, with --format, Anthropic's, Gemini's, Ollama's or Bedrock's.

    Faults can also be triggered per request by strings in a message: [[fault:500]],
    [[fault:429]], [[fault:timeout]], [[fault:reset]], [[fault:malformed]], [[fault:truncate]],
    [[fault:slow_first_byte:MS]]; [[echo]] makes the reply repeat the last user message.
    """
    from .simulator import SimulatorConfig, run_simulator

    if profile not in ("local", "sovereign", "cloud"):
        err_console.print("--profile must be one of local, sovereign, cloud")
        raise typer.Exit(2)
    cfg = SimulatorConfig(
        profile=profile,
        latency_ms=0 if fast else latency_ms,
        ttft_ms=0 if fast else ttft_ms,
        tokens_per_s=0 if fast else tps,
        api_key=api_key,
        fault=fault,
        fault_rate=fault_rate,
        reply_tokens=reply_tokens,
        models=model or None,
        hang_s=hang_s,
        format=format,
    )
    try:
        run_simulator(cfg, host=host, port=port)
    except ValueError as exc:
        err_console.print(f"tiergate simulate: {exc}")
        raise typer.Exit(2) from None


@app.command()
def explain(
    prompt: Annotated[str, typer.Argument(help="the user message")],
    model: Annotated[str, typer.Option(help="model group")] = "default",
    privacy: Annotated[Optional[str], typer.Option(help="declared privacy level")] = None,
    max_latency_ms: Annotated[Optional[float], typer.Option()] = None,
    max_cost: Annotated[Optional[float], typer.Option()] = None,
    config: ConfigOpt = None,
) -> None:
    """Show the routing decision for a request without calling any upstream."""
    from .auth import ANONYMOUS
    from .errors import GatewayError
    from .pipeline import Explained, Gateway

    settings = _load(config)
    gateway = Gateway(settings)
    constraints: dict[str, Any] = {}
    if max_latency_ms is not None:
        constraints["max_latency_ms"] = max_latency_ms
    if max_cost is not None:
        constraints["max_cost"] = max_cost
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": prompt}]}
    if constraints:
        body["metadata"] = {"constraints": constraints}
    headers = {"x-tiergate-explain": "true"}
    if privacy:
        headers["x-tiergate-privacy"] = privacy
    try:
        outcome = asyncio.run(gateway.chat(body, headers=headers, principal=ANONYMOUS))
    except GatewayError as exc:
        console.print_json(json.dumps(exc.to_dict()))
        raise typer.Exit(1) from None
    assert isinstance(outcome, Explained)
    console.print_json(json.dumps(outcome.decision.to_dict()))


@app.command()
def report(
    days: Annotated[int, typer.Option(help="the last N days")] = 30,
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of tables")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV instead of tables")] = False,
    config: ConfigOpt = None,
) -> None:
    """Requests, tokens, spend, latency (average, p95), error rate and feedback per deployment,
    per model group and per experiment arm, from the request log."""
    from .report import build_report
    from .store import Store

    settings = _load(config)

    async def run() -> Any:
        store = await Store.open(settings.store.url)
        try:
            return await build_report(store, days, settings=settings)
        finally:
            await store.close()

    result = asyncio.run(run())
    if as_json:
        console.print_json(json.dumps(result.to_json(), default=str))
    elif as_csv:
        sys.stdout.write(result.to_csv())
    else:
        for table in result.to_table():
            console.print(table)


privacy_app = typer.Typer(
    no_args_is_help=True, rich_markup_mode=None, pretty_exceptions_show_locals=False,
    help="The privacy detector, for evaluation and operations.",
)
app.add_typer(privacy_app, name="privacy")


@privacy_app.command("scan")
def privacy_scan(
    explain_: Annotated[bool, typer.Option("--explain", help="say why each span matched")] = False,
    config: ConfigOpt = None,
) -> None:
    """Read JSON Lines {"id": ..., "text": ...} on stdin; write {"id": ..., "entities": [{"type",
    "start", "end", "score"}]} per line on stdout (Python string offsets, end exclusive), as each
    line is read. A bad line gets {"id": ..., "error": ...} and the scan goes on."""
    from .privacy.policy import PrivacyEngine

    settings = _load(config)
    detector = PrivacyEngine(settings.privacy).detector
    out = sys.stdout
    for n, line in enumerate(sys.stdin, 1):
        if not line.strip():
            continue
        out.write(_scan_line(detector, line, n, explain_) + "\n")
        out.flush()


def _scan_line(detector: Any, line: str, n: int, explain_: bool) -> str:
    import orjson

    try:
        item = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return orjson.dumps({"id": None, "line": n, "error": f"line {n} is not JSON: {exc}"}).decode()
    ident = item.get("id") if isinstance(item, dict) else None
    text = item.get("text") if isinstance(item, dict) else None
    if not isinstance(text, str):
        return orjson.dumps({"id": ident, "line": n, "error": f"line {n}: 'text' must be a string"}).decode()
    try:
        found = detector.scan(text)
    except Exception as exc:  # noqa: BLE001 - one bad text must not stop the scan
        return orjson.dumps({"id": ident, "line": n, "error": f"detector failed: {type(exc).__name__}"}).decode()
    entities = [{**e.to_dict(), "why": e.reason} if explain_ else e.to_dict() for e in found]
    return orjson.dumps({"id": ident, "entities": entities}).decode()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
