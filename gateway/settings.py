"""Configuration from the environment, with the embedded defaults a first run needs."""

from __future__ import annotations

import os
from dataclasses import dataclass

from persistence.db import DEFAULT_DATABASE_URL


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = 5 * 1024 * 1024
    log_level: str = "INFO"
    # Billing jobs (closing periods) in-process: on for `accrual serve` from the environment
    # (ACCRUAL_JOBS=off turns them off, e.g. when `accrual worker` runs them apart); off when
    # Settings are built in code, as the tests' app does, so no job runs under a test's feet.
    run_jobs: bool = False
    jobs_interval_seconds: float = 60.0

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            database_url=os.environ.get("ACCRUAL_DATABASE_URL", DEFAULT_DATABASE_URL),
            host=os.environ.get("ACCRUAL_HOST", cls.host),
            port=int(os.environ.get("ACCRUAL_PORT", cls.port)),
            max_body_bytes=int(os.environ.get("ACCRUAL_MAX_BODY_BYTES", cls.max_body_bytes)),
            log_level=os.environ.get("ACCRUAL_LOG_LEVEL", cls.log_level),
            run_jobs=os.environ.get("ACCRUAL_JOBS", "on").lower() not in ("off", "0", "false", "no"),
            jobs_interval_seconds=float(os.environ.get("ACCRUAL_JOBS_INTERVAL", cls.jobs_interval_seconds)),
        )
