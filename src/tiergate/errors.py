"""The gateway's one error hierarchy; every error knows its HTTP status and OpenAI error shape.

    GatewayError                      (500 api_error)
    ├── InvalidRequestError           (400 invalid_request_error, names the `param`)
    │   └── UnprocessableRequestError (422)
    ├── AuthenticationError           (401)
    ├── PolicyError                   (403 privacy/residency policy refused the request)
    ├── ModelNotFoundError            (404, lists the known model groups)
    ├── PayloadTooLargeError          (413)
    ├── RateLimitError                (429, keeps `retry_after`)
    ├── UpstreamError                 (502, one failed attempt at one deployment)
    │   ├── UpstreamTimeoutError      (504)
    │   ├── UpstreamConnectionError   (502)
    │   ├── UpstreamStatusError       (429 keeps retry-after, 401/403 -> 401 upstream_auth_error,
    │   │                              503/529 -> 503, other 5xx -> 502, other 4xx as they are)
    │   └── UpstreamProtocolError     (502 malformed JSON, truncated stream)
    ├── AllCandidatesFailedError      (502/504/429/503/401, lists every attempt)
    └── ServiceUnavailableError       (503)

Routing reads fields (`retryable`, `status`, `retry_after`), never message text.
"""

from __future__ import annotations

from typing import Any


class GatewayError(Exception):
    status: int = 500
    type: str = "api_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.headers: dict[str, str] = dict(headers or {})

    def to_dict(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


class InvalidRequestError(GatewayError):
    status = 400
    type = "invalid_request_error"


class UnprocessableRequestError(InvalidRequestError):
    status = 422


class AuthenticationError(GatewayError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class PolicyError(GatewayError):
    status = 403
    type = "permission_error"
    code = "privacy_policy_violation"


class ModelNotFoundError(GatewayError):
    status = 404
    type = "invalid_request_error"
    code = "model_not_found"


class PayloadTooLargeError(GatewayError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class RateLimitError(GatewayError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"


class ServiceUnavailableError(GatewayError):
    status = 503
    type = "api_error"
    code = "service_unavailable"


class UpstreamError(GatewayError):
    """One failed attempt at one deployment."""

    status = 502
    type = "upstream_error"
    code = "upstream_error"
    retryable = True

    def __init__(
        self,
        message: str,
        *,
        deployment: str = "",
        upstream_status: int | None = None,
        retry_after: float | None = None,
        body: Any = None,
        **kw: Any,
    ) -> None:
        super().__init__(message, **kw)
        self.deployment = deployment
        self.upstream_status = upstream_status
        self.retry_after = retry_after
        self.body = body


class UpstreamTimeoutError(UpstreamError):
    status = 504
    code = "upstream_timeout"


class UpstreamConnectionError(UpstreamError):
    status = 502
    code = "upstream_connection_error"


class UpstreamProtocolError(UpstreamError):
    status = 502
    code = "upstream_protocol_error"


class UpstreamStatusError(UpstreamError):
    """The upstream answered with an HTTP error status.

    429 and 5xx are retryable (fallback goes on); other 4xx are the client's problem and are
    returned as they are (with our error shape), without trying the next candidate.
    """

    def __init__(self, message: str, *, upstream_status: int, **kw: Any) -> None:
        super().__init__(message, upstream_status=upstream_status, **kw)
        # 401/403 are the gateway's own credentials being refused for this deployment: another
        # deployment may still answer, so they are retryable like 429 and 5xx.
        self.retryable = upstream_status in (401, 403, 429) or upstream_status >= 500
        if upstream_status == 429:
            self.status, self.type, self.code = 429, "rate_limit_error", "upstream_rate_limited"
        elif upstream_status in (401, 403):
            # The upstream refused *our* credentials: a gateway configuration problem, reported
            # as 401 with its own code (the message never carries the upstream key).
            self.status, self.type, self.code = 401, "authentication_error", "upstream_auth_error"
        elif upstream_status in (503, 529):  # 529: Anthropic's "overloaded"
            self.status, self.code = 503, "upstream_overloaded"
        elif upstream_status >= 500:
            self.status = 502
        else:
            self.status, self.type, self.code = upstream_status, "invalid_request_error", "upstream_rejected"
        if self.retry_after is not None:
            self.headers["retry-after"] = _fmt_seconds(self.retry_after)


class AllCandidatesFailedError(GatewayError):
    """Every candidate of the fallback chain failed; the message lists each attempt."""

    type = "upstream_error"
    code = "all_upstreams_failed"

    def __init__(self, attempts: list[UpstreamError]) -> None:
        parts = [f"{a.deployment}: {a.message}" for a in attempts]
        deployments = len({a.deployment for a in attempts})
        super().__init__(
            f"all {deployments} candidate deployment(s) failed ({len(attempts)} attempt(s)): " + "; ".join(parts)
        )
        self.attempts = attempts
        if attempts and all(isinstance(a, UpstreamTimeoutError) for a in attempts):
            self.status, self.code = 504, "upstream_timeout"
        elif attempts and all(a.upstream_status == 429 for a in attempts):
            self.status, self.type, self.code = 429, "rate_limit_error", "upstream_rate_limited"
            hints = [a.retry_after for a in attempts if a.retry_after is not None]
            if hints:
                self.headers["retry-after"] = _fmt_seconds(min(hints))
        elif attempts and all(a.status == 503 for a in attempts):
            self.status, self.type, self.code = 503, "api_error", "upstream_overloaded"
        elif attempts and all(a.code == "upstream_auth_error" for a in attempts):
            self.status, self.type, self.code = 401, "authentication_error", "upstream_auth_error"
        else:
            self.status = 502


def _fmt_seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.3f}"
