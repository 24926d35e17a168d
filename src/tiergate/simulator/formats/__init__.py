"""Simulated upstreams for the non-OpenAI wire formats, one module per format.

Each module exposes ``add_routes(app: web.Application) -> None``, registering its provider's
endpoints on an app whose ``app[STATE]`` (:class:`tiergate.simulator.server.SimState`) holds the
profile, the fault dice and the request stats (``/_sim/stats`` counts ``chat_requests`` and keeps
the last request body and headers, so tests can check what an upstream received).

Answers are planned by the same deterministic planner as the OpenAI simulator
(``server.plan_answer``: echo, tool calls, JSON mode, stop, max tokens, ``[[fault:KIND]]``
markers), and rendered in the provider's own wire format, following its public API reference.
"""
