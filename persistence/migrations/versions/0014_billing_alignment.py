"""billing alignment: a subscription's billing anchor and invoice memo, a plan change's re-anchoring and trial

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-24
"""
import sqlalchemy as sa
from alembic import op

import persistence.types

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('subscriptions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('billing_anchor', persistence.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('default_invoice_memo', sa.String(), nullable=True))
    with op.batch_alter_table('subscription_plan_changes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('billing_cycle_alignment', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('trial_duration_days', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('subscription_plan_changes', schema=None) as batch_op:
        batch_op.drop_column('trial_duration_days')
        batch_op.drop_column('billing_cycle_alignment')
    with op.batch_alter_table('subscriptions', schema=None) as batch_op:
        batch_op.drop_column('default_invoice_memo')
        batch_op.drop_column('billing_anchor')
