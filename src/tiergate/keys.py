"""Virtual API keys: what an operator issues to a team or an application instead of the master key.

A key is `tg-` + 43 URL-safe random characters (256 bits from `secrets.token_urlsafe(32)`); it is
shown once, when it is created or rotated, and never stored. The database keeps:

    id          `key_` + 16 hex characters: what logs, the admin API and the CLI name a key by
    prefix      the key's first 8 characters + "…", so people can tell their keys apart
    key_hash    HMAC-SHA256(secret, key), hex (`server.key_secret`, else the master key)
    prev_hash / prev_valid_until   the previous key after a rotation with a grace period

Why a keyed fast hash and not bcrypt/argon2: slow salted hashes protect *low-entropy* secrets
(passwords) against guessing. A 256-bit random key cannot be guessed whatever the hash, so the
slowness would buy nothing and cost milliseconds per lookup; and a per-row salt would rule out the
indexed lookup (the digest must be computable from the key alone to find its row in O(1)). The
HMAC key adds what a plain SHA-256 would not: a copy of the database alone does not even let
anyone check a candidate key. Equality on the digest in a B-tree leaks, at most, timing about the
digest, from which nothing about the key follows.

Restrictions and limits travel with the key (`VirtualKey`) into the request's `Principal`; this
module stores and validates them, enforcement lives in routing and budgets. Lists are JSON text in
the database (SQLite and PostgreSQL alike); empty means unrestricted.

`KeySpec` is what the admin API's body and the CLI's options become; its validation errors are
`InvalidRequestError`s (400) naming the field in `param`, as for chat requests (`request.py`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from .config.models import STRATEGIES
from .errors import GatewayError, InvalidRequestError
from .privacy.levels import parse_level
from .store.models import api_keys

KEY_PREFIX = "tg-"
KEY_RANDOM_BYTES = 32
KEY_LENGTH = len(KEY_PREFIX) + 43  # token_urlsafe(32): 43 characters
KEY_ID_PREFIX = "key_"
DISPLAY_CHARS = 8

MAX_LIST_ITEMS = 256
MAX_NAME_CHARS = 200
MAX_METADATA_BYTES = 8192
MAX_METADATA_KEY_CHARS = 64
MAX_EXPIRES_IN = timedelta(days=3650)
MAX_GRACE_S = 30 * 86400.0

_KEY_RE = re.compile(r"^tg-[A-Za-z0-9_-]{43}$")
_ID_RE = re.compile(r"^key_[0-9a-f]{16}$")
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}

Location = Literal["local", "sovereign", "cloud"]
Status = Literal["active", "revoked", "expired"]


class KeyNotFoundError(GatewayError):
    """No key with that id (404 in the admin API)."""

    status = 404
    type = "invalid_request_error"
    code = "key_not_found"


class KeyRevokedError(GatewayError):
    """The operation needs a key that is not revoked (rotating a revoked key)."""

    status = 409
    type = "invalid_request_error"
    code = "key_revoked"


def looks_like_key(token: str) -> bool:
    """Has `token` the shape of a virtual key (so it is worth a lookup)?"""
    return len(token) == KEY_LENGTH and _KEY_RE.match(token) is not None


def valid_key_id(key_id: str) -> bool:
    return _ID_RE.match(key_id) is not None


def parse_duration(value: str) -> timedelta:
    """`"30d"`, `"12h"`, `"15m"`, `"3600s"`, `"2w"` -> timedelta (ValueError otherwise)."""
    m = _DURATION_RE.match(value)
    if m is None:
        raise ValueError(f"must be a duration such as 30d, 12h, 15m, 3600s or 2w (got {value!r})")
    return timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2).lower()])


# ---------------------------------------------------------------------------------------- spec
class KeySpec(BaseModel):
    """A key's settings as the admin API and the CLI accept them (every field optional).

    For an update, only the fields given change (`model_fields_set`); null clears a limit and an
    empty list lifts a restriction.
    """

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=MAX_NAME_CHARS)
    team: str | None = Field(None, min_length=1, max_length=128)
    models: list[str] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)
    deployments: list[str] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)
    locations: list[Location] = Field(default_factory=list, max_length=3)
    residencies: list[str] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)
    default_privacy: str | None = None
    default_strategy: str | None = None
    daily_usd: Decimal | None = Field(None, ge=0, max_digits=18, decimal_places=10)
    monthly_usd: Decimal | None = Field(None, ge=0, max_digits=18, decimal_places=10)
    rpm: int | None = Field(None, ge=1, strict=True)
    tpm: int | None = Field(None, ge=1, strict=True)
    expires_at: AwareDatetime | None = None
    expires_in: timedelta | None = None  # "30d", "12h", ISO 8601 "P30D", or seconds
    metadata: dict[str, JsonValue] = Field(default_factory=dict)

    @field_validator("name", "team")
    @classmethod
    def _text(cls, v: str | None) -> str | None:
        if v is None:
            return None
        if v != v.strip() or any(ord(c) < 32 for c in v):
            raise ValueError("must not start or end with spaces or hold control characters")
        return v

    @field_validator("models", "deployments", "residencies")
    @classmethod
    def _names(cls, v: list[str]) -> list[str]:
        out: list[str] = []
        for i, item in enumerate(v):
            if not item or len(item) > MAX_NAME_CHARS or item != item.strip():
                raise ValueError(f"item {i} must be a non-empty name without surrounding spaces")
            if item not in out:
                out.append(item)
        return out

    @field_validator("locations")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        return list(dict.fromkeys(v))

    @field_validator("default_privacy")
    @classmethod
    def _privacy(cls, v: str | None) -> str | None:
        return None if v is None else parse_level(v).name

    @field_validator("default_strategy")
    @classmethod
    def _strategy(cls, v: str | None) -> str | None:
        if v is not None and v not in STRATEGIES:
            raise ValueError(f"must be one of {', '.join(STRATEGIES)} (got {v!r})")
        return v

    @field_validator("expires_in", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> Any:
        if isinstance(v, str) and _DURATION_RE.match(v):
            return parse_duration(v)
        return v

    @field_validator("expires_in")
    @classmethod
    def _positive(cls, v: timedelta | None, info: ValidationInfo) -> timedelta | None:
        if v is None:
            return None
        if info.data.get("expires_at") is not None:
            raise ValueError("give expires_at or expires_in, not both")
        if v <= timedelta(0) or v > MAX_EXPIRES_IN:
            raise ValueError("must be more than 0 and at most 3650 days")
        return v

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, v: dict[str, Any]) -> dict[str, Any]:
        for k in v:
            if not k or len(k) > MAX_METADATA_KEY_CHARS:
                raise ValueError(f"keys must have 1 to {MAX_METADATA_KEY_CHARS} characters")
        size = len(json.dumps(v, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
        if size > MAX_METADATA_BYTES:
            raise ValueError(f"is {size} bytes as JSON; at most {MAX_METADATA_BYTES} are allowed")
        return v

    def resolved_expiry(self, now: datetime) -> datetime | None:
        """`expires_at`, or `now + expires_in`."""
        if self.expires_in is not None:
            return now + self.expires_in
        return self.expires_at


_SPEC_FIELDS = tuple(KeySpec.model_fields)


def _param(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.startswith(("function-", "literal[", "constrained-", "union[")) or part in (
            "str", "int", "decimal", "datetime", "timedelta",
        ):
            continue  # pydantic's union-branch markers are no part of the field path
        else:
            out += f".{part}" if out else part
    return out


def _message(err: Mapping[str, Any]) -> str:
    kind = err["type"]
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return f"is not a key setting; known: {', '.join(_SPEC_FIELDS)}"
    if kind == "literal_error":
        return f"must be one of {err['ctx']['expected']}"
    msg = str(err["msg"])
    msg = msg.removeprefix("Value error, ")
    return msg.replace("Input should be", "must be").replace("Input should have", "must have")


def parse_key_spec(body: Any) -> KeySpec:
    """Validate an admin API body or the CLI's options into a `KeySpec`.

    Raises:
        InvalidRequestError: naming the first wrong field in `param`.
    """
    if isinstance(body, KeySpec):
        return body
    if not isinstance(body, dict):
        raise InvalidRequestError("the body must be a JSON object of key settings", param=None)
    try:
        return KeySpec.model_validate(body)
    except ValidationError as exc:
        errs = exc.errors(include_url=False)
        first = min(errs, key=lambda e: len(e["loc"]))
        param = _param(first["loc"]) or None
        where = f"'{param}' " if param else ""
        raise InvalidRequestError(f"invalid key settings: {where}{_message(first)}", param=param) from None


def check_known_names(spec: KeySpec, models: Sequence[str], deployments: Sequence[str]) -> None:
    """Refuse restrictions to model names or deployments this gateway's config does not have
    (a typo would make the key silently useless). Raises InvalidRequestError naming the item."""
    known_models = set(models) | set(deployments)
    for i, name in enumerate(spec.models):
        if name not in known_models:
            raise InvalidRequestError(
                f"invalid key settings: 'models[{i}]' {name!r} is not a configured model group or "
                f"deployment; known: {', '.join(sorted(known_models))}",
                param=f"models[{i}]",
            )
    for i, name in enumerate(spec.deployments):
        if name not in deployments:
            raise InvalidRequestError(
                f"invalid key settings: 'deployments[{i}]' {name!r} is not a configured deployment; "
                f"known: {', '.join(sorted(deployments))}",
                param=f"deployments[{i}]",
            )


# ---------------------------------------------------------------------------------------- value
def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value is not None else None


def _usd(value: Decimal | None) -> str | None:
    return None if value is None else format(value.normalize(), "f")


@dataclass(frozen=True, slots=True)
class VirtualKey:
    """One virtual key as the gateway sees it (never its plaintext, never its hash)."""

    id: str
    prefix: str
    name: str | None
    team: str | None
    models: tuple[str, ...]
    deployments: tuple[str, ...]
    locations: tuple[str, ...]
    residencies: tuple[str, ...]
    default_privacy: str | None
    default_strategy: str | None
    daily_usd: Decimal | None
    monthly_usd: Decimal | None
    rpm: int | None
    tpm: int | None
    expires_at: datetime | None
    revoked_at: datetime | None
    metadata: Mapping[str, Any]
    created_at: datetime
    updated_at: datetime
    # Until when the key this one replaced (rotation with a grace period) is still accepted.
    prev_valid_until: datetime | None = field(default=None)

    def status(self, now: datetime | None = None) -> Status:
        now = now or datetime.now(UTC)
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"

    def to_dict(self, now: datetime | None = None) -> dict[str, Any]:
        """JSON-safe (money as decimal strings, times as ISO 8601 UTC); never any hash."""
        now = now or datetime.now(UTC)
        prev = self.prev_valid_until if self.prev_valid_until and self.prev_valid_until > now else None
        return {
            "id": self.id,
            "object": "api_key",
            "prefix": self.prefix,
            "name": self.name,
            "team": self.team,
            "status": self.status(now),
            "models": list(self.models),
            "deployments": list(self.deployments),
            "locations": list(self.locations),
            "residencies": list(self.residencies),
            "default_privacy": self.default_privacy,
            "default_strategy": self.default_strategy,
            "daily_usd": _usd(self.daily_usd),
            "monthly_usd": _usd(self.monthly_usd),
            "rpm": self.rpm,
            "tpm": self.tpm,
            "expires_at": _iso(self.expires_at),
            "revoked_at": _iso(self.revoked_at),
            "previous_key_valid_until": _iso(prev),
            "metadata": dict(self.metadata),
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
        }


def _loads_list(text: str | None) -> tuple[str, ...]:
    value = json.loads(text) if text else []
    return tuple(str(x) for x in value) if isinstance(value, list) else ()


def _key_from_row(row: Mapping[str, Any]) -> VirtualKey:
    metadata = json.loads(row["metadata"]) if row["metadata"] else {}
    return VirtualKey(
        id=row["id"],
        prefix=row["prefix"],
        name=row["name"],
        team=row["team"],
        models=_loads_list(row["models"]),
        deployments=_loads_list(row["deployments"]),
        locations=_loads_list(row["locations"]),
        residencies=_loads_list(row["residencies"]),
        default_privacy=row["default_privacy"],
        default_strategy=row["default_strategy"],
        daily_usd=_decimal(row["daily_usd"]),
        monthly_usd=_decimal(row["monthly_usd"]),
        rpm=row["rpm"],
        tpm=row["tpm"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
        metadata=metadata if isinstance(metadata, dict) else {},
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        prev_valid_until=row["prev_valid_until"] if row["prev_hash"] is not None else None,
    )


def _decimal(value: Any) -> Decimal | None:
    if value is None:
        return None
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _columns(spec: KeySpec, fields: set[str], now: datetime) -> dict[str, Any]:
    """The column values of the given spec fields."""
    values: dict[str, Any] = {}
    for name in fields:
        if name == "expires_in":
            continue
        if name == "expires_at":
            values["expires_at"] = spec.resolved_expiry(now)
        elif name in ("models", "deployments", "locations", "residencies", "metadata"):
            values[name] = _dumps(getattr(spec, name))
        else:
            values[name] = getattr(spec, name)
    if "expires_in" in fields:
        values["expires_at"] = spec.resolved_expiry(now)
    return values


def _now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    return now.astimezone(UTC)


# ---------------------------------------------------------------------------------------- store
class KeyStore:
    """Virtual keys in the `api_keys` table (SQLite or PostgreSQL, through one AsyncEngine).

    `now` parameters exist for tests (and for one consistent time per operation); by default it is
    the current UTC time.
    """

    def __init__(self, engine: AsyncEngine, secret: str) -> None:
        self.engine = engine
        # SQLite: every write transaction takes the write lock up front (BEGIN IMMEDIATE, see
        # `store.db`). A deferred one that reads first cannot upgrade to a write once another
        # connection (the request log writer) has committed since: "database is locked" at once,
        # which busy_timeout does not cover.
        sqlite = engine.dialect.name == "sqlite"
        self._writer = engine.execution_options(sqlite_begin="IMMEDIATE") if sqlite else engine
        self._secret = secret.encode("utf-8") if secret else b""

    def digest(self, plaintext: str) -> str:
        """HMAC-SHA256(secret, key) as hex: what `key_hash` holds."""
        if not self._secret:
            raise RuntimeError("no HMAC secret for virtual keys (server.key_secret or the master key)")
        return hmac.new(self._secret, plaintext.encode("utf-8"), hashlib.sha256).hexdigest()

    @staticmethod
    def new_plaintext() -> str:
        return KEY_PREFIX + secrets.token_urlsafe(KEY_RANDOM_BYTES)

    @staticmethod
    def display_prefix(plaintext: str) -> str:
        return plaintext[:DISPLAY_CHARS] + "…"

    async def create(self, spec: KeySpec, *, now: datetime | None = None) -> tuple[VirtualKey, str]:
        """A new key: (its record, the plaintext: shown once, never stored)."""
        now = _now(now)
        plaintext = self.new_plaintext()
        key_id = KEY_ID_PREFIX + secrets.token_hex(8)
        values = _columns(spec, set(_SPEC_FIELDS), now)
        values.update(
            id=key_id, key_hash=self.digest(plaintext), prev_hash=None, prev_valid_until=None,
            prefix=self.display_prefix(plaintext), revoked_at=None, created_at=now, updated_at=now,
        )
        async with self._writer.begin() as conn:
            await conn.execute(sa.insert(api_keys).values(**values))
            key = await self._get(conn, key_id)
        return key, plaintext

    async def get(self, key_id: str) -> VirtualKey:
        """Raises KeyNotFoundError."""
        async with self.engine.connect() as conn:
            return await self._get(conn, key_id)

    async def _get(self, conn: Any, key_id: str) -> VirtualKey:
        row = (await conn.execute(sa.select(api_keys).where(api_keys.c.id == key_id))).mappings().first()
        if row is None:
            raise KeyNotFoundError(f"no API key with id {key_id!r}", param="id")
        return _key_from_row(row)

    async def list(self, team: str | None = None, include_revoked: bool = True) -> list[VirtualKey]:
        """Every key (of `team`), oldest first."""
        query = sa.select(api_keys).order_by(api_keys.c.created_at, api_keys.c.id)
        if team is not None:
            query = query.where(api_keys.c.team == team)
        if not include_revoked:
            query = query.where(api_keys.c.revoked_at.is_(None))
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [_key_from_row(row) for row in rows]

    async def lookup(self, plaintext: str, now: datetime | None = None) -> VirtualKey | None:
        """The key `plaintext` belongs to (revoked and expired ones included: the caller says why
        it refuses them), or None. A rotated key's previous plaintext matches until
        `prev_valid_until`."""
        now = _now(now)
        digest = self.digest(plaintext)
        query = sa.select(api_keys).where(
            sa.or_(
                api_keys.c.key_hash == digest,
                sa.and_(api_keys.c.prev_hash == digest, api_keys.c.prev_valid_until > now),
            )
        )
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).mappings().first()
        return _key_from_row(row) if row is not None else None

    async def revoke(self, key_id: str, *, now: datetime | None = None) -> VirtualKey:
        """Revoke at once (its previous key too). Revoking a revoked key keeps the first time."""
        now = _now(now)
        async with self._writer.begin() as conn:
            await conn.execute(
                sa.update(api_keys)
                .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=now, updated_at=now, prev_hash=None, prev_valid_until=None)
            )
            return await self._get(conn, key_id)

    async def rotate(
        self, key_id: str, grace_s: float = 0, *, now: datetime | None = None
    ) -> tuple[VirtualKey, str]:
        """A new plaintext for the key (same id, settings and limits). The old plaintext stays
        valid for `grace_s` seconds (0: not at all); a key rotated again within the grace period
        drops the older one. Raises KeyNotFoundError, KeyRevokedError."""
        if not 0 <= grace_s <= MAX_GRACE_S:
            raise InvalidRequestError(
                f"'grace_s' must be from 0 to {int(MAX_GRACE_S)} seconds", param="grace_s"
            )
        now = _now(now)
        plaintext = self.new_plaintext()
        if grace_s > 0:
            # SET expressions read the row as it was: prev_hash gets the current key_hash.
            prev = {"prev_hash": api_keys.c.key_hash, "prev_valid_until": now + timedelta(seconds=grace_s)}
        else:
            prev = {"prev_hash": None, "prev_valid_until": None}
        async with self._writer.begin() as conn:
            current = await self._get(conn, key_id)
            if current.revoked_at is not None:
                raise KeyRevokedError(
                    f"API key {key_id} was revoked at {_iso(current.revoked_at)}; it cannot be rotated",
                    param="id",
                )
            await conn.execute(
                sa.update(api_keys)
                .where(api_keys.c.id == key_id)
                .values(
                    key_hash=self.digest(plaintext), prefix=self.display_prefix(plaintext),
                    updated_at=now, **prev,
                )
            )
            key = await self._get(conn, key_id)
        return key, plaintext

    async def update(
        self, key_id: str, spec_changes: KeySpec | Mapping[str, Any], *, now: datetime | None = None
    ) -> VirtualKey:
        """Change the given settings (only those: `model_fields_set` of a KeySpec, the keys of a
        mapping). Raises KeyNotFoundError, InvalidRequestError."""
        now = _now(now)
        spec = spec_changes if isinstance(spec_changes, KeySpec) else parse_key_spec(dict(spec_changes))
        values = _columns(spec, set(spec.model_fields_set), now)
        async with self._writer.begin() as conn:
            await self._get(conn, key_id)
            if values:
                values["updated_at"] = now
                await conn.execute(sa.update(api_keys).where(api_keys.c.id == key_id).values(**values))
            return await self._get(conn, key_id)
