"""Authentication: an API key -> the principal making the request.

Only a digest of each key is kept in memory (keys are stored hashed); comparison is constant-time.
With no master key configured, every request is the anonymous principal and the server refuses
to listen anywhere but loopback (see `server.serve`).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from .errors import AuthenticationError


@dataclass(slots=True, frozen=True)
class Principal:
    key_id: str | None  # safe to log: a name or a digest prefix, never the key
    is_admin: bool = False


ANONYMOUS = Principal(None, is_admin=False)


def key_digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


class Authenticator:
    def __init__(self, master_key: str | None) -> None:
        self._master = key_digest(master_key) if master_key else None
        self._master_principal = Principal("master", is_admin=True)

    @property
    def enabled(self) -> bool:
        return self._master is not None

    async def authenticate(self, token: str | None) -> Principal:
        """Raises AuthenticationError for a missing or wrong key when auth is enabled."""
        if self._master is None:
            return ANONYMOUS
        if not token:
            raise AuthenticationError(
                "missing API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'"
            )
        if hmac.compare_digest(key_digest(token), self._master):
            return self._master_principal
        raise AuthenticationError("invalid API key")


def token_from_headers(authorization: str | None, x_api_key: str | None) -> str | None:
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value:
            return value.strip()
        return authorization.strip()
    return x_api_key.strip() if x_api_key else None
