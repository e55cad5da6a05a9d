"""Apply and check Alembic migrations programmatically (used by `accrual migrate` / `serve` and tests)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine

_HERE = Path(__file__).parent


def alembic_config(url: str) -> Config:
    config = Config(str(_HERE / "alembic.ini"))
    config.set_main_option("script_location", str(_HERE))
    config.set_main_option("version_locations", str(_HERE / "versions"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at `url` to `revision` (blocking; runs its own event loop)."""
    command.upgrade(alembic_config(url), revision)


async def upgrade_async(engine: AsyncEngine, revision: str = "head") -> None:
    config = alembic_config(engine.url.render_as_string(hide_password=False))

    def _upgrade(connection: object) -> None:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    async with engine.begin() as connection:
        await connection.run_sync(_upgrade)


async def pending_revisions(engine: AsyncEngine) -> list[str]:
    """Revisions not yet applied: empty when the schema is current."""
    script = ScriptDirectory.from_config(alembic_config(engine.url.render_as_string(hide_password=False)))
    head = script.get_current_head()

    def _current(connection: object) -> set[str]:
        return set(MigrationContext.configure(connection).get_current_heads())  # type: ignore[arg-type]

    async with engine.connect() as connection:
        current = await connection.run_sync(_current)
    if head is None or head in current:
        return []
    return [rev.revision for rev in script.iterate_revisions(head, "base") if rev.revision not in current]
