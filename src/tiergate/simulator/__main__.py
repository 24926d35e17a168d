"""Standalone CLI: ``python -m tiergate.simulator --port P --profile X [--fast] [--fault KIND]``.

Owns only argument parsing; the server itself lives in :mod:`.server`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .profiles import FAULT_KINDS, PROFILES, WIRE_FORMATS, SimulatorConfig
from .server import run_simulator


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tiergate.simulator", description="Simulated OpenAI-compatible upstream.")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8200, help="port (0 = ephemeral; default 8200)")
    p.add_argument("--profile", choices=sorted(PROFILES), default="local")
    p.add_argument("--format", choices=WIRE_FORMATS, default="openai", help="wire format to speak")
    p.add_argument("--fast", action="store_true", help="no delays at all (latency/ttft/tps = 0)")
    p.add_argument("--latency-ms", type=float, default=None)
    p.add_argument("--ttft-ms", type=float, default=None)
    p.add_argument("--tps", type=float, default=None, help="tokens per second (0 = instant)")
    p.add_argument("--reply-tokens", type=int, default=None, help="words per generated reply")
    p.add_argument("--model", action="append", dest="models", default=None, help="model id (repeatable)")
    p.add_argument("--api-key", default=None, help="require 'Authorization: Bearer KEY'")
    p.add_argument("--fault", default=None, help=f"inject a fault: {', '.join(sorted(FAULT_KINDS))} (slow_first_byte:MS)")
    p.add_argument("--fault-rate", type=float, default=1.0, help="fraction of chat requests that fault (0..1)")
    p.add_argument("--hang-s", type=float, default=30.0, help="how long the 'timeout' fault hangs")
    return p


def config_from_args(args: argparse.Namespace) -> SimulatorConfig:
    zero = 0.0 if args.fast else None
    return SimulatorConfig(
        profile=args.profile,
        latency_ms=args.latency_ms if args.latency_ms is not None else zero,
        ttft_ms=args.ttft_ms if args.ttft_ms is not None else zero,
        tokens_per_s=args.tps if args.tps is not None else zero,
        reply_tokens=args.reply_tokens,
        models=args.models,
        api_key=args.api_key,
        fault=args.fault,
        fault_rate=args.fault_rate,
        hang_s=args.hang_s,
        format=args.format,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg = config_from_args(args)
        run_simulator(cfg, args.host, args.port)
    except ValueError as exc:
        print(f"tiergate simulate: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
