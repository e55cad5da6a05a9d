"""Where the billing jobs run: in-process for `accrual serve` unless ACCRUAL_JOBS=off; never in
an app built with Settings in code (the tests' app)."""

from __future__ import annotations

from gateway.app import create_app
from gateway.settings import Settings


def test_jobs_run_in_process_from_the_environment_unless_turned_off(monkeypatch):
    monkeypatch.delenv("ACCRUAL_JOBS", raising=False)
    monkeypatch.setenv("ACCRUAL_JOBS_INTERVAL", "5")
    settings = Settings.from_env()
    assert (settings.run_jobs, settings.jobs_interval_seconds) == (True, 5.0)
    monkeypatch.setenv("ACCRUAL_JOBS", "off")
    assert Settings.from_env().run_jobs is False
    assert Settings().run_jobs is False


def test_the_app_adds_the_jobs_task_only_when_asked():
    quiet = create_app(Settings(database_url="sqlite+aiosqlite:///:memory:"))
    busy = create_app(Settings(database_url="sqlite+aiosqlite:///:memory:", run_jobs=True))
    assert len(busy.cleanup_ctx) == len(quiet.cleanup_ctx) + 1
