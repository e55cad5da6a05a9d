"""plan phases: a plan's phases, each price's phase, and a subscription's phase transitions

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-24
"""
import sqlalchemy as sa
from alembic import op

import persistence.types

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('plans', schema=None) as batch_op:
        batch_op.add_column(sa.Column('plan_phases', persistence.types.JSONDocument(), nullable=True))
    with op.batch_alter_table('prices', schema=None) as batch_op:
        batch_op.add_column(sa.Column('plan_phase_order', sa.Integer(), nullable=True))
    with op.batch_alter_table('subscription_plan_changes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('plan_phase_order', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('subscription_plan_changes', schema=None) as batch_op:
        batch_op.drop_column('plan_phase_order')
    with op.batch_alter_table('prices', schema=None) as batch_op:
        batch_op.drop_column('plan_phase_order')
    with op.batch_alter_table('plans', schema=None) as batch_op:
        batch_op.drop_column('plan_phases')
