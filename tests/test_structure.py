"""Conventions the code base holds itself to: schema in sync, tenancy column everywhere, layers point down."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sqlmodel import SQLModel

import persistence.tables  # noqa: F401
from gateway.graphql.schema import export_sdl

ROOT = Path(__file__).resolve().parents[1]


def test_schema_graphql_is_exported_from_the_schema() -> None:
    committed = (ROOT / "schema.graphql").read_text()
    assert committed == export_sdl(), "schema.graphql is stale: run `accrual export-schema -o schema.graphql`"


def test_every_table_has_org_id_leading_every_index() -> None:
    for table in SQLModel.metadata.sorted_tables:
        assert "org_id" in table.columns, f"{table.name} has no org_id"
        for index in table.indexes:
            first = next(iter(index.columns)).name
            # api_keys are found by the hash of the presented secret, before the org is known.
            if (table.name, index.name) == ("api_keys", "ix_api_keys_hash"):
                continue
            assert first == "org_id", f"{table.name}.{index.name} does not lead with org_id"


def test_layers_point_down() -> None:
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint_imports)], cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_migrations_match_the_tables(tmp_path: Path) -> None:
    """Alembic's autogenerate finds nothing to add: every table change came with a migration."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy import create_engine

    from persistence.migrations import runner

    url = f"sqlite:///{tmp_path / 'm.db'}"
    runner.upgrade(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")
    with create_engine(url).connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
    assert diff == []
