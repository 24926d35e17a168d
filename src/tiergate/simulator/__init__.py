"""Simulated OpenAI-compatible upstream tier (``tiergate simulate``).

Owns the public simulator API used by the CLI, the gateway's demo mode, tests
and benchmarks::

    from tiergate.simulator import SimulatorConfig, build_app, start_simulator, run_simulator

Submodules: ``profiles`` (presets + config), ``content`` (deterministic
replies), ``wire`` (OpenAI wire format), ``faults`` (fault injection),
``server`` (aiohttp app and runners), ``threaded`` (background-thread
runner for sync callers), ``__main__`` (standalone CLI).
"""

from __future__ import annotations

from .profiles import FAULT_KINDS, PROFILES, Profile, SimulatorConfig, resolve_profile
from .server import STATE, build_app, run_simulator, serve_forever, start_simulator
from .threaded import SimulatorThread

__all__ = [
    "FAULT_KINDS",
    "PROFILES",
    "STATE",
    "Profile",
    "SimulatorConfig",
    "SimulatorThread",
    "build_app",
    "resolve_profile",
    "run_simulator",
    "serve_forever",
    "start_simulator",
]
