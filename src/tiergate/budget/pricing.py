"""Prices: the pre-call maximum estimate a request reserves, and the cost of what it used.

Prices are USD per 1M input/output tokens per deployment (`Deployment.price`, presets from the
seeds, overridable in the config; local deployments carry zero or an amortised price). The actual
cost uses the upstream's reported usage; where a provider reports none, the gateway's token
estimate (about 4 characters a token) stands in and the request log marks it `tokens_estimated`.
The maximum a request can cost before it is sent is its prompt estimate at the input price plus
its `max_tokens` (or `budgets.estimate_max_tokens` when it sets none) at the output price; this is
what budgets reserve and what `max_cost` routing compares.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal

from ..config.models import Deployment
from ..routing.eligible import predicted_cost
from ..types import Usage

ZERO = Decimal(0)


def max_cost(d: Deployment, prompt_tokens: int, max_tokens: int) -> Decimal:
    """The most this request can cost on `d` (a request without max_tokens: the configured
    estimate; a longer answer can exceed it, and settles at what it really cost)."""
    return predicted_cost(d, prompt_tokens, max_tokens)


def actual_cost(d: Deployment, usage: Usage) -> Decimal:
    return predicted_cost(d, usage.prompt_tokens, usage.completion_tokens)


def is_free(d: Deployment) -> bool:
    return d.price.input == 0 and d.price.output == 0


def pico_per_token(d: Deployment) -> tuple[int, int]:
    """(input, output) price in pico-dollars (1e-12 USD) per token, rounded up: USD per 1M tokens
    x 1e6. Exact for prices with up to six decimals, so estimates on the hot path are int math."""
    return tuple(  # type: ignore[return-value]
        int((p * 1_000_000).to_integral_value(rounding=ROUND_CEILING)) for p in (d.price.input, d.price.output)
    )


def max_cost_nano(prices: tuple[int, int], prompt_tokens: int, max_tokens: int) -> int:
    """`max_cost` in nano-dollars (rounded up) from `pico_per_token` prices."""
    return -(-(prices[0] * prompt_tokens + prices[1] * max_tokens) // 1000)
