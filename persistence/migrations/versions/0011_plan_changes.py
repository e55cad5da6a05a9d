"""subscription plan changes and fixed fee quantity changes

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-23
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

import persistence.types

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('subscription_plan_changes',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('org_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('subscription_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('plan_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('effective_date', persistence.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_at', persistence.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['org_id'], ['organisations.org_id'], ),
    sa.ForeignKeyConstraint(['plan_id'], ['plans.id'], ),
    sa.ForeignKeyConstraint(['subscription_id'], ['subscriptions.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('subscription_plan_changes', schema=None) as batch_op:
        batch_op.create_index('ix_subscription_plan_changes_subscription',
                              ['org_id', 'subscription_id', 'effective_date'], unique=False)
    op.create_table('subscription_price_quantities',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('org_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('subscription_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('price_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('quantity', persistence.types.Money(), nullable=False),
    sa.Column('effective_date', persistence.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_at', persistence.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['org_id'], ['organisations.org_id'], ),
    sa.ForeignKeyConstraint(['price_id'], ['prices.id'], ),
    sa.ForeignKeyConstraint(['subscription_id'], ['subscriptions.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('subscription_price_quantities', schema=None) as batch_op:
        batch_op.create_index('ix_subscription_price_quantities_subscription',
                              ['org_id', 'subscription_id', 'price_id', 'effective_date'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('subscription_price_quantities', schema=None) as batch_op:
        batch_op.drop_index('ix_subscription_price_quantities_subscription')
    op.drop_table('subscription_price_quantities')
    with op.batch_alter_table('subscription_plan_changes', schema=None) as batch_op:
        batch_op.drop_index('ix_subscription_plan_changes_subscription')
    op.drop_table('subscription_plan_changes')
