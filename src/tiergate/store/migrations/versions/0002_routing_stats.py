"""Routing statistics: learning totals per (deployment, task class) and user feedback.

Revision ID: 0002
Revises: 0001
Create Date: 2025-11-30

Written by hand to match `deployment_stats` and `feedback` in `tiergate/store/models.py`
(`tests/store/test_migrations.py` compares the two). Plain CREATE TABLEs: valid on SQLite and
PostgreSQL alike.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    zero = sa.text("0")
    op.create_table(
        "deployment_stats",
        sa.Column("deployment", sa.String, nullable=False),
        sa.Column("task_class", sa.String, nullable=False),
        sa.Column("requests", sa.BigInteger, nullable=False, server_default=zero),
        sa.Column("successes", sa.BigInteger, nullable=False, server_default=zero),
        sa.Column("failures", sa.BigInteger, nullable=False, server_default=zero),
        sa.Column("latency_ms_sum", sa.Float, nullable=False, server_default=zero),
        sa.Column("cost_usd_sum", sa.Float, nullable=False, server_default=zero),
        sa.Column("feedback_count", sa.BigInteger, nullable=False, server_default=zero),
        sa.Column("feedback_sum", sa.Float, nullable=False, server_default=zero),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("deployment", "task_class", name="pk_deployment_stats"),
    )
    op.create_table(
        "feedback",
        sa.Column("request_id", sa.String, nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("comment", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deployment", sa.String, nullable=False),
        sa.Column("task_class", sa.String, nullable=False),
        sa.PrimaryKeyConstraint("request_id", name="pk_feedback"),
    )
    op.create_index("ix_feedback_created_at", "feedback", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_feedback_created_at", table_name="feedback")
    op.drop_table("feedback")
    op.drop_table("deployment_stats")
