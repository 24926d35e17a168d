"""Budgets, virtual keys and the request log columns cost accounting and caching need.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23

Written by hand to match `api_keys`, `budgets`, `budget_usage`, `budget_reservations` and the new
`request_log` columns in `tiergate/store/models.py` (`tests/store/test_migrations.py` compares
them). ADD COLUMN of nullable columns and plain CREATE TABLEs: valid on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("request_log") as batch:
        batch.add_column(sa.Column("team", sa.String, nullable=True))
        batch.add_column(sa.Column("task_class", sa.String, nullable=True))
        batch.add_column(sa.Column("cache", sa.String, nullable=True))
        batch.add_column(sa.Column("saved_usd", sa.Numeric(18, 10), nullable=True))
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String, nullable=False),
        sa.Column("key_hash", sa.String, nullable=False),
        sa.Column("prev_hash", sa.String, nullable=True),
        sa.Column("prev_valid_until", _TS, nullable=True),
        sa.Column("prefix", sa.String, nullable=False),
        sa.Column("name", sa.String, nullable=True),
        sa.Column("team", sa.String, nullable=True),
        sa.Column("models", sa.Text, nullable=False, server_default=sa.text("'[]'")),
        sa.Column("deployments", sa.Text, nullable=False, server_default=sa.text("'[]'")),
        sa.Column("locations", sa.Text, nullable=False, server_default=sa.text("'[]'")),
        sa.Column("residencies", sa.Text, nullable=False, server_default=sa.text("'[]'")),
        sa.Column("default_privacy", sa.String, nullable=True),
        sa.Column("default_strategy", sa.String, nullable=True),
        sa.Column("daily_usd", sa.Numeric(18, 10), nullable=True),
        sa.Column("monthly_usd", sa.Numeric(18, 10), nullable=True),
        sa.Column("rpm", sa.Integer, nullable=True),
        sa.Column("tpm", sa.Integer, nullable=True),
        sa.Column("expires_at", _TS, nullable=True),
        sa.Column("revoked_at", _TS, nullable=True),
        sa.Column("metadata", sa.Text, nullable=False, server_default=sa.text("'{}'")),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.UniqueConstraint("key_hash", name="uq_api_keys_key_hash"),
    )
    op.create_index("ix_api_keys_prev_hash", "api_keys", ["prev_hash"])
    op.create_index("ix_api_keys_team", "api_keys", ["team"])
    op.create_table(
        "budgets",
        sa.Column("scope", sa.String, nullable=False),
        sa.Column("daily_usd", sa.Numeric(18, 10), nullable=True),
        sa.Column("monthly_usd", sa.Numeric(18, 10), nullable=True),
        sa.Column("rpm", sa.Integer, nullable=True),
        sa.Column("tpm", sa.Integer, nullable=True),
        sa.Column("on_store_unavailable", sa.String, nullable=True),
        sa.Column("updated_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("scope", name="pk_budgets"),
    )
    op.create_table(
        "budget_usage",
        sa.Column("window", sa.String, nullable=False),
        sa.Column("spent_nano", sa.BigInteger, nullable=False, server_default=sa.text("0")),
        sa.Column("ends_at", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("window", name="pk_budget_usage"),
    )
    op.create_table(
        "budget_reservations",
        sa.Column("window", sa.String, nullable=False),
        sa.Column("request_id", sa.String, nullable=False),
        sa.Column("amount_nano", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("window", "request_id", name="pk_budget_reservations"),
    )


def downgrade() -> None:
    op.drop_table("budget_reservations")
    op.drop_table("budget_usage")
    op.drop_table("budgets")
    op.drop_index("ix_api_keys_team", table_name="api_keys")
    op.drop_index("ix_api_keys_prev_hash", table_name="api_keys")
    op.drop_table("api_keys")
    with op.batch_alter_table("request_log") as batch:
        batch.drop_column("saved_usd")
        batch.drop_column("cache")
        batch.drop_column("task_class")
        batch.drop_column("team")
