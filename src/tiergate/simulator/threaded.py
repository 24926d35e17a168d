"""Run a simulator on a background thread (for sync code: sync tests, scripts).

Owns :class:`SimulatorThread`, a context manager that starts
:func:`~tiergate.simulator.server.start_simulator` on its own event loop in a
daemon thread and exposes the bound ``port`` / ``base_url``.
"""

from __future__ import annotations

import asyncio
import threading
from types import TracebackType

from aiohttp import web

from .profiles import SimulatorConfig
from .server import start_simulator


class SimulatorThread:
    """``with SimulatorThread(cfg) as sim: OpenAI(base_url=sim.base_url)``."""

    def __init__(self, cfg: SimulatorConfig, host: str = "127.0.0.1", port: int = 0) -> None:
        self.cfg = cfg
        self.host = host
        self.port = port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tiergate-simulator", daemon=True)
        self._runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def start(self) -> SimulatorThread:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(start_simulator(self.cfg, self.host, self.port), self._loop)
        try:
            self._runner, self.port = future.result(timeout=10)
        except BaseException:
            self._stop_loop()
            raise
        return self

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
            self._runner = None
        self._stop_loop()

    def _stop_loop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        if not self._loop.is_closed() and not self._loop.is_running():
            self._loop.close()

    def __enter__(self) -> SimulatorThread:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
