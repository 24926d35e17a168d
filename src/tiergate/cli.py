"""The `tiergate` command line (Typer + Rich). Holds no logic of its own: each command loads the
settings and calls into the package.

    tiergate serve      start the gateway (banner, workers, graceful shutdown)
    tiergate info       the ALEM banner for each deployment, with live reachability
    tiergate recommend  the ALEM decision tree: which tier, and a config snippet
    tiergate simulate   a simulated upstream (local | sovereign | cloud; any wire format)
    tiergate explain    the routing decision for a request, without calling any upstream
    tiergate privacy scan   detect personal data and secrets in JSON Lines texts
    tiergate report     per deployment, group, team and experiment arm: requests, spend, latency,
                        errors, cache savings; recommendations computed from the data
    tiergate keys       virtual API keys: create | list | show | revoke | rotate
    tiergate cache      the response cache: stats | clear [--partition]
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
    if workers != settings.server.workers:  # the workers read it (e.g. shared budget counters)
        settings = settings.model_copy(update={"server": settings.server.model_copy(update={"workers": workers})})
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
    days: Annotated[int, typer.Option(min=1, help="the last N days")] = 30,
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of tables")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV instead of tables")] = False,
    config: ConfigOpt = None,
) -> None:
    """Requests, tokens, spend, latency (average, p95), error rate, feedback, cache hits and
    savings per deployment, per model group and per experiment arm; per team; and
    recommendations computed from them (prices, locations and groups from the config), from the
    request log."""
    from .report import build_report
    from .store import Store

    if as_json and as_csv:
        err_console.print("give --json or --csv, not both")
        raise typer.Exit(2)
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


keys_app = typer.Typer(
    no_args_is_help=True, rich_markup_mode=None, pretty_exceptions_show_locals=False,
    help="Virtual API keys, directly in the configured database (the admin API's twin).",
)
app.add_typer(keys_app, name="keys")
from .cache.cli import cache_app  # noqa: E402 - the sub-app is defined in its package

app.add_typer(cache_app, name="cache")

JsonOpt = Annotated[bool, typer.Option("--json", help="JSON instead of text and tables")]
_KEY_SHOWN_ONCE = "Store this key now: it cannot be shown again (only its digest is kept)."


def _keys_run(settings: Settings, op: Any, *, need_secret: bool, as_json: bool) -> Any:
    """Run `op(keystore)` against the configured database; a GatewayError is printed (JSON with
    --json) and ends the command with exit code 1."""
    from rich.markup import escape
    from sqlalchemy.exc import SQLAlchemyError

    from .auth import key_secret
    from .errors import GatewayError
    from .keys import KeyStore
    from .store import Store

    secret = key_secret(settings) if resolve_secret(settings.server.master_key) else None
    if need_secret and not secret:
        err_console.print(
            "virtual keys need a master key (TIERGATE_MASTER_KEY or server.master_key; and the same "
            "TIERGATE_KEY_SECRET / server.key_secret as the gateway, if it uses one)",
            highlight=False,
        )
        raise typer.Exit(2)

    async def run() -> Any:
        store = await Store.open(settings.store.url)
        try:
            return await op(KeyStore(store.engine, secret or ""))
        finally:
            await store.close()

    try:
        return asyncio.run(run())
    except GatewayError as exc:
        if as_json:
            sys.stdout.write(json.dumps(exc.to_dict()) + "\n")
        else:
            err_console.print(f"[bold red]error:[/] {escape(exc.message)}", highlight=False)
        raise typer.Exit(1) from None
    except (OSError, SQLAlchemyError) as exc:  # the database is unreachable or refused the change
        first_line = (str(exc).splitlines() or [""])[0][:300]
        err_console.print(f"[bold red]database error:[/] {type(exc).__name__}: {escape(first_line)}", highlight=False)
        raise typer.Exit(1) from None


def _keys_publish(settings: Settings, key_id: str) -> None:
    """Tell running gateways (Redis) that a key changed, so they drop it from their caches now."""
    from .auth import key_channel, publish_invalidation
    from .redisconn import connect

    ttl = settings.server.key_cache_ttl_s

    async def run() -> str:
        client = connect(settings.redis)
        if client is None:
            return f"no Redis configured: running gateways see the change within {ttl:g}s (key_cache_ttl_s)"
        try:
            heard = await publish_invalidation(client, key_channel(settings), key_id)
            return f"told {heard} running gateway process(es) through Redis"
        except Exception as exc:  # noqa: BLE001 - the database change stands; the TTL bounds the rest
            return (
                f"could not reach Redis ({type(exc).__name__}): running gateways see the change within "
                f"{ttl:g}s (key_cache_ttl_s)"
            )
        finally:
            await client.aclose()

    err_console.print(asyncio.run(run()), highlight=False)


def _keys_print(data: dict[str, Any], as_json: bool, title: str | None = None) -> None:
    if as_json:
        sys.stdout.write(json.dumps(data) + "\n")
        return
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, show_header=False, box=None)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for name, value in data.items():
        if name == "key":
            continue
        if isinstance(value, (list, dict)):
            value = json.dumps(value, ensure_ascii=False) if value else "-"
        table.add_row(name, Text("-" if value is None else str(value)))
    console.print(table)


def _keys_plaintext(data: dict[str, Any], plaintext: str, as_json: bool, verb: str) -> None:
    if as_json:
        sys.stdout.write(json.dumps({**data, "key": plaintext}) + "\n")
    else:
        _keys_print(data, False, title=f"{verb} API key {data['id']}")
        console.print(f"\nkey: {plaintext}", markup=False, highlight=False, soft_wrap=True)
    err_console.print(_KEY_SHOWN_ONCE, style="bold yellow", highlight=False)


@keys_app.command("create")
def keys_create(
    name: Annotated[Optional[str], typer.Option(help="a name people recognise the key by")] = None,
    team: Annotated[Optional[str], typer.Option(help="the team the key belongs to (team budgets)")] = None,
    model: Annotated[Optional[list[str]], typer.Option("--model", help="allowed model group or name (repeatable; none: all)")] = None,
    deployment: Annotated[Optional[list[str]], typer.Option("--deployment", help="allowed deployment (repeatable)")] = None,
    location: Annotated[Optional[list[str]], typer.Option("--location", help="allowed location: local | sovereign | cloud (repeatable)")] = None,
    residency: Annotated[Optional[list[str]], typer.Option("--residency", help="allowed residency, e.g. AZ (repeatable)")] = None,
    privacy: Annotated[Optional[str], typer.Option(help="default privacy level: PUBLIC | SENSITIVE | PRIVATE")] = None,
    strategy: Annotated[Optional[str], typer.Option(help="default routing strategy")] = None,
    daily_usd: Annotated[Optional[str], typer.Option(help="daily budget in USD")] = None,
    monthly_usd: Annotated[Optional[str], typer.Option(help="monthly budget in USD")] = None,
    rpm: Annotated[Optional[int], typer.Option(help="requests per minute")] = None,
    tpm: Annotated[Optional[int], typer.Option(help="tokens per minute")] = None,
    expires_at: Annotated[Optional[str], typer.Option(help="expiry, ISO 8601 with a time zone")] = None,
    expires_in: Annotated[Optional[str], typer.Option(help="expiry from now: 30d, 12h, 15m, 2w")] = None,
    metadata: Annotated[Optional[str], typer.Option(help="a JSON object stored with the key")] = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Issue a virtual key; its plaintext is printed once."""
    from .keys import check_known_names, parse_key_spec

    settings = _load(config)
    given: dict[str, Any] = {
        "name": name, "team": team, "models": model, "deployments": deployment, "locations": location,
        "residencies": residency, "default_privacy": privacy, "default_strategy": strategy,
        "daily_usd": daily_usd, "monthly_usd": monthly_usd, "rpm": rpm, "tpm": tpm,
        "expires_at": expires_at, "expires_in": expires_in,
    }
    body = {k: v for k, v in given.items() if v is not None}
    if metadata is not None:
        try:
            body["metadata"] = json.loads(metadata)
        except ValueError as exc:
            err_console.print(f"--metadata is not JSON: {exc}", highlight=False)
            raise typer.Exit(2) from None

    async def op(keystore: Any) -> Any:
        spec = parse_key_spec(body)
        check_known_names(spec, list(settings.model_groups), [d.name for d in settings.deployments])
        return await keystore.create(spec)

    key, plaintext = _keys_run(settings, op, need_secret=True, as_json=as_json)
    _keys_plaintext(key.to_dict(), plaintext, as_json, "created")


@keys_app.command("list")
def keys_list(
    team: Annotated[Optional[str], typer.Option(help="only this team's keys")] = None,
    include_revoked: Annotated[bool, typer.Option("--include-revoked/--active-only", help="show revoked keys too")] = True,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """The virtual keys (never their plaintexts)."""
    settings = _load(config)

    async def op(keystore: Any) -> Any:
        return await keystore.list(team=team, include_revoked=include_revoked)

    keys = [k.to_dict() for k in _keys_run(settings, op, need_secret=False, as_json=as_json)]
    if as_json:
        sys.stdout.write(json.dumps({"object": "list", "data": keys}) + "\n")
        return
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"{len(keys)} API key(s)")
    for column in ("id", "prefix", "name", "team", "status", "models", "expires_at", "created_at"):
        table.add_column(column, no_wrap=column in ("id", "prefix", "status"), overflow="fold")
    for k in keys:
        cells = (
            k["id"], k["prefix"], k["name"] or "-", k["team"] or "-", k["status"],
            ", ".join(k["models"]) or "all", k["expires_at"] or "never", k["created_at"],
        )
        table.add_row(*(Text(cell) for cell in cells))
    console.print(table)


@keys_app.command("show")
def keys_show(
    key_id: Annotated[str, typer.Argument(help="the key's id (key_…)")],
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """One key's settings and status."""
    settings = _load(config)

    async def op(keystore: Any) -> Any:
        return await keystore.get(key_id)

    _keys_print(_keys_run(settings, op, need_secret=False, as_json=as_json).to_dict(), as_json,
                title=f"API key {key_id}")


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="the key's id (key_…)")],
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Revoke a key (at once in running gateways when Redis is configured)."""
    settings = _load(config)

    async def op(keystore: Any) -> Any:
        return await keystore.revoke(key_id)

    key = _keys_run(settings, op, need_secret=False, as_json=as_json)
    _keys_publish(settings, key_id)
    _keys_print(key.to_dict(), as_json, title=f"revoked API key {key_id}")


@keys_app.command("rotate")
def keys_rotate(
    key_id: Annotated[str, typer.Argument(help="the key's id (key_…)")],
    grace_s: Annotated[float, typer.Option("--grace-s", min=0, help="seconds the old key stays valid")] = 0,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """A new plaintext for a key (same id and settings); printed once."""
    settings = _load(config)

    async def op(keystore: Any) -> Any:
        return await keystore.rotate(key_id, grace_s)

    key, plaintext = _keys_run(settings, op, need_secret=True, as_json=as_json)
    _keys_publish(settings, key_id)
    _keys_plaintext(key.to_dict(), plaintext, as_json, "rotated")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
