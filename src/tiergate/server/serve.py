"""Running the gateway: bind checks, migrations, simulated upstreams, worker processes, shutdown.

`serve()` runs in the parent process: it refuses an unauthenticated bind beyond loopback, runs the
store's migrations once, starts the simulated upstreams when (and only when) the settings are the
simulated defaults, prints the banner, then serves in-process (`workers=1`) or forks N workers
sharing the port through SO_REUSEPORT. SIGTERM/SIGINT stop accepting, let in-flight requests and
streams finish within `server.shutdown_grace_s`, and flush the request log.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from typing import Any

from aiohttp import web

from ..config.models import Settings
from ..pipeline import Gateway
from ..store import RequestLogWriter, Store, run_migrations
from .app import build_app

log = logging.getLogger("tiergate.serve")

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


class ServeError(RuntimeError):
    pass


def check_bind(settings: Settings, host: str, master_key_set: bool) -> None:
    if not master_key_set and host not in LOOPBACK_HOSTS and not host.startswith("127."):
        raise ServeError(
            f"refusing to listen on {host} without a master key: anyone who can reach it could "
            "use every configured provider. Set TIERGATE_MASTER_KEY (or server.master_key), or "
            "listen on 127.0.0.1."
        )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    """In a simulator child: get SIGTERM if the gateway dies without stopping it (Linux)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        pass


def _wait_http(url: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1.0) as r:  # noqa: S310 - loopback only
                if r.status == 200:
                    return True
        except OSError:
            time.sleep(0.05)
    return False


def start_simulators(settings: Settings) -> tuple[Settings, list[subprocess.Popen[bytes]]]:
    """Start one simulated upstream process per simulated deployment; fill in their URLs."""
    procs: list[subprocess.Popen[bytes]] = []
    started: list[tuple[Any, int]] = []
    for d in settings.deployments:
        if not d.simulated:
            continue
        port = _free_port()
        cmd = [sys.executable, "-m", "tiergate.simulator", "--port", str(port), "--profile", d.simulated]
        procs.append(
            subprocess.Popen(
                cmd, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent
            )
        )
        started.append((d, port))
    for d, port in started:
        if not _wait_http(f"http://127.0.0.1:{port}/health", 15.0):
            stop_processes(procs)
            raise ServeError(f"simulated upstream for {d.name} did not start on port {port}")
    urls = {d.name: f"http://127.0.0.1:{port}/v1" for d, port in started}
    deployments = [
        d.model_copy(update={"base_url": urls[d.name]}) if d.name in urls else d
        for d in settings.deployments
    ]
    return settings.model_copy(update={"deployments": tuple(deployments)}), procs


def stop_processes(procs: list[Any], timeout: float = 5.0) -> None:
    for p in procs:
        if _alive(p):
            p.terminate()
    deadline = time.monotonic() + timeout
    for p in procs:
        remaining = max(0.1, deadline - time.monotonic())
        try:
            if isinstance(p, subprocess.Popen):
                p.wait(remaining)
            else:
                p.join(remaining)
        except subprocess.TimeoutExpired:
            pass
        if _alive(p):
            p.kill()


def _alive(p: Any) -> bool:
    return p.poll() is None if isinstance(p, subprocess.Popen) else bool(p.is_alive())


async def run_worker(settings: Settings, host: str, port: int, *, reuse_port: bool = False) -> None:
    """One serving process: store, request-log writer, gateway, HTTP site; until SIGTERM/SIGINT."""
    store = await Store.open(settings.store.url, migrate=False)
    writer = RequestLogWriter(
        store, flush_interval_ms=settings.store.flush_interval_ms, batch_size=settings.store.batch_size
    )
    writer.start()
    gateway = Gateway(settings, log_writer=writer, store=store)
    await gateway.start()
    app = build_app(gateway, store=store)
    grace = settings.server.shutdown_grace_s
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=grace)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_port=reuse_port or None, backlog=1024)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        await gateway.close()
        await writer.close()
        await store.close()
        raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("worker %d serving on http://%s:%d", os.getpid(), host, port)
    try:
        await stop.wait()
        log.info("worker %d shutting down (grace %.0fs)", os.getpid(), grace)
    finally:
        await runner.cleanup()  # stops accepting, waits for in-flight requests and streams
        await gateway.close()
        await writer.close()  # flushes the request log
        await store.close()


def _run(coro: Any) -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - non-Linux
        asyncio.run(coro)
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(coro)


def _worker_entry(settings: Settings, host: str, port: int) -> None:
    _run(run_worker(settings, host, port, reuse_port=True))


def serve_workers(settings: Settings, host: str, port: int, workers: int) -> None:
    """Serve with `workers` processes (fork) sharing the port; returns after all have stopped."""
    if workers <= 1:
        _run(run_worker(settings, host, port))
        return
    if port == 0:
        raise ServeError("--workers > 1 needs a fixed port (not 0)")
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_worker_entry, args=(settings, host, port), daemon=False) for _ in range(workers)]
    for p in procs:
        p.start()
    stopping = False

    def _forward(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for p in procs:
            if p.is_alive() and p.pid:
                os.kill(p.pid, signal.SIGTERM)

    old = {s: signal.signal(s, _forward) for s in (signal.SIGTERM, signal.SIGINT)}
    crashed: list[int | None] = []
    try:
        while any(p.is_alive() for p in procs):
            for p in procs:
                p.join(0.5)
            if not stopping and any(not p.is_alive() for p in procs):
                crashed = [p.exitcode for p in procs if not p.is_alive()]
                log.error("a worker exited unexpectedly (exit codes %s); stopping the others", crashed)
                _forward(signal.SIGTERM, None)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        stop_processes(procs, settings.server.shutdown_grace_s + 5)
    if crashed:
        raise ServeError(f"a worker process exited unexpectedly (exit codes {crashed})")


def prepare(settings: Settings) -> None:
    """Parent-side preparation before any worker serves: migrations, once."""
    run_migrations(settings.store.url)
