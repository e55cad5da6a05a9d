"""`accrual keys create` as an operator types it, against the real server's database."""

from __future__ import annotations

import orb
import pytest

from tests.e2e.server import AccrualServer, mint_key


def test_a_second_key_for_an_existing_organisation_sees_the_same_customers(accrual_server: AccrualServer) -> None:
    first, second = mint_key(accrual_server.database_url, "ops"), mint_key(accrual_server.database_url, "ops")
    assert first != second
    with accrual_server.client(first) as one, accrual_server.client(second) as other:
        created = one.customers.create(name="Ops", email="ops@example.com")
        assert other.customers.fetch(created.id).name == "Ops"
        # A key of another organisation still sees nothing of this one.
        with accrual_server.client(mint_key(accrual_server.database_url, "elsewhere")) as stranger, \
                pytest.raises(orb.NotFoundError):
            stranger.customers.fetch(created.id)
