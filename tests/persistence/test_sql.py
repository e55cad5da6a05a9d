"""keys_array: an expanding parameter written out as PostgreSQL's ARRAY[...], one placeholder per key."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import CompileError

from persistence.sql import keys_array


def test_each_key_is_a_placeholder_of_the_array():
    wanted = func.unnest(keys_array("keys")).table_valued("id").render_derived(name="wanted")
    compiled = select(wanted.c.id).compile(dialect=postgresql.asyncpg.dialect())
    for keys in (["a"], ["a", "b"]):
        expanded = compiled.construct_expanded_state({"keys": keys})
        placeholders = ", ".join(f"${n}::VARCHAR" for n in range(1, len(keys) + 1))
        assert f"unnest(ARRAY[{placeholders}]) AS wanted(id)" in expanded.statement
        assert [expanded.parameters[name] for name in expanded.positiontup] == keys


def test_other_dialects_refuse_it():
    with pytest.raises(CompileError):
        select(func.unnest(keys_array("keys"))).compile(dialect=sqlite.dialect())
