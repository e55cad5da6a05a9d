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

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            database_url=os.environ.get("ACCRUAL_DATABASE_URL", DEFAULT_DATABASE_URL),
            host=os.environ.get("ACCRUAL_HOST", cls.host),
            port=int(os.environ.get("ACCRUAL_PORT", cls.port)),
            max_body_bytes=int(os.environ.get("ACCRUAL_MAX_BODY_BYTES", cls.max_body_bytes)),
            log_level=os.environ.get("ACCRUAL_LOG_LEVEL", cls.log_level),
        )
