"""Runs and their key figures (the first catalogue schema).

Revision ID: 0001_runs
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_runs"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ``runs`` and ``key_figures`` with their indexes."""
    op.create_table(
        "runs",
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("station", sa.String(128), nullable=False),
        sa.Column("host", sa.String(128), nullable=False),
        sa.Column("sample", sa.String(128), nullable=False),
        sa.Column("device", sa.String(128), nullable=False),
        sa.Column("pixel", sa.String(128), nullable=False),
        sa.Column("operator", sa.String(128), nullable=False),
        sa.Column("procedure", sa.String(128), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("status_reason", sa.Text(), nullable=False),
        sa.Column("started_utc", sa.DateTime(), nullable=True),
        sa.Column("ended_utc", sa.DateTime(), nullable=True),
        sa.Column("simulated", sa.Boolean(), nullable=True),
        sa.Column("file_size", sa.BigInteger(), nullable=True),
        sa.Column("file_mtime_ns", sa.BigInteger(), nullable=True),
        sa.Column("updated_utc", sa.DateTime(), nullable=False),
    )
    for column in ("path", "station", "sample", "procedure", "status", "started_utc"):
        op.create_index(f"ix_runs_{column}", "runs", [column])
    op.create_table(
        "key_figures",
        sa.Column(
            "run_id",
            sa.String(64),
            sa.ForeignKey("runs.run_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("unit", sa.String(32), nullable=False),
    )
    op.create_index("ix_key_figures_name_value", "key_figures", ["name", "value"])


def downgrade() -> None:
    """Drop both tables."""
    op.drop_table("key_figures")
    op.drop_table("runs")
