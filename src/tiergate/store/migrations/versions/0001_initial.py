"""Initial schema: the request log.

Revision ID: 0001
Revises:
Create Date: 2025-11-23

Written by hand to match `tiergate/store/models.py` (a test compares the two). Later tables
(ledger, keys, audit, cache, batches) come as 0002, 0003, ... with `down_revision` set to the
previous number.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "request_log",
        sa.Column("id", sa.String, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("key_id", sa.String, nullable=True),
        sa.Column("model_group", sa.String, nullable=False),
        sa.Column("deployment", sa.String, nullable=True),
        sa.Column("location", sa.String, nullable=True),
        sa.Column("residency", sa.String, nullable=True),
        sa.Column("privacy_level", sa.String, nullable=False),
        sa.Column("prompt_tokens", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("completion_tokens", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("total_tokens", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("tokens_estimated", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("cost_usd", sa.Numeric(18, 10), nullable=True),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("overhead_ms", sa.Float, nullable=False),
        sa.Column("upstream_ms", sa.Float, nullable=False),
        sa.Column("ttft_ms", sa.Float, nullable=True),
        sa.Column("status_code", sa.Integer, nullable=False),
        sa.Column("error_code", sa.String, nullable=True),
        sa.Column("stream", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("fallbacks", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("attempts", sa.Text, nullable=False, server_default=sa.text("'[]'")),
        sa.Column("request_body", sa.Text, nullable=True),
        sa.Column("response_body", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_request_log"),
    )
    op.create_index("ix_request_log_created_at", "request_log", ["created_at"])
    op.create_index(
        "ix_request_log_model_group_created_at", "request_log", ["model_group", "created_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_request_log_model_group_created_at", table_name="request_log")
    op.drop_index("ix_request_log_created_at", table_name="request_log")
    op.drop_table("request_log")
