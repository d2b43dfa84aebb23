"""positions.leverage and positions.margin_type: what a usdm entry set on its symbol

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 19:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("positions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("leverage", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("margin_type", sa.String(length=8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("positions", schema=None) as batch_op:
        batch_op.drop_column("margin_type")
        batch_op.drop_column("leverage")
