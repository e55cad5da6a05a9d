"""billing anchor month: the month a billing_cycle_anchor_configuration gave, read back as configured

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-24
"""
import sqlalchemy as sa
from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('subscriptions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('billing_anchor_month', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('subscriptions', schema=None) as batch_op:
        batch_op.drop_column('billing_anchor_month')
