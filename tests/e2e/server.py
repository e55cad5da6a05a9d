"""The real `accrual` process for end-to-end tests: CLI commands, `serve` on a free port, and the
PostgreSQL databases they run on. Any failure shows the process's own output."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import orb
import pytest

ROOT = Path(__file__).resolve().parents[2]
PG_ADMIN_URL = os.environ.get("ACCRUAL_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
HOST = "127.0.0.1"
START_TIMEOUT = 30.0
COMMAND_TIMEOUT = 60.0
FIRST_KEY = re.compile(r"First API key \(shown once, keep it\): (one_pk_\S+)")


def accrual_command() -> list[str]:
    """The installed console script next to this interpreter, else the module it runs."""
    script = Path(sys.executable).with_name("accrual")
    return [str(script)] if script.exists() else [sys.executable, "-m", "gateway.cli"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def accrual_env(database_url: str, port: int | None = None) -> dict[str, str]:
    env = {**os.environ, "ACCRUAL_DATABASE_URL": database_url, "ACCRUAL_HOST": HOST, "PYTHONUNBUFFERED": "1"}
    # The checkout under test, not whichever one the editable install points at (git worktrees).
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    if port is not None:
        env["ACCRUAL_PORT"] = str(port)
    return env


def run_accrual(database_url: str, *args: str) -> str:
    """Run one CLI command to completion and return its stdout; any failure shows its output."""
    result = subprocess.run(
        [*accrual_command(), *args], check=False, cwd=ROOT, env=accrual_env(database_url),
        capture_output=True, text=True, timeout=COMMAND_TIMEOUT,
    )
    if result.returncode != 0:
        command = " ".join(args)
        pytest.fail(f"`accrual {command}` exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def mint_key(database_url: str, org: str) -> str:
    """`accrual keys create --org ORG` prints the secret (alone, on its last line)."""
    lines = run_accrual(database_url, "keys", "create", "--org", org).strip().splitlines()
    assert lines and lines[-1].startswith("one_pk_"), f"`accrual keys create` printed no key: {lines!r}"
    return lines[-1]


@dataclass
class ServerProcess:
    """A running `accrual serve`; its stdout and stderr go to `log` so a full pipe never blocks it."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}/v1"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_until_listening(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                code = self.process.returncode
                pytest.fail(f"`accrual serve` exited {code} before listening:\n{self.output()}")
            try:
                with socket.create_connection((HOST, self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        pytest.fail(f"`accrual serve` did not listen on port {self.port} within {timeout}s:\n{self.output()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start_server(database_url: str, folder: Path) -> ServerProcess:
    port = free_port()
    log = folder / f"serve-{port}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [*accrual_command(), "serve"], cwd=ROOT, env=accrual_env(database_url, port),
            stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT,
        )
    server = ServerProcess(process=process, port=port, log=log)
    try:
        server.wait_until_listening()
    except BaseException:
        server.stop()
        raise
    return server


async def _admin_execute(statement: str) -> None:
    admin = await asyncpg.connect(PG_ADMIN_URL, timeout=10)
    try:
        await admin.execute(statement)
    finally:
        await admin.close()


def postgres_admin(statement: str) -> None:
    """One statement on the admin database; an unreachable PostgreSQL fails the test, never skips it."""
    try:
        asyncio.run(_admin_execute(statement))
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(f"PostgreSQL at {PG_ADMIN_URL} refused `{statement}` ({exc!r}); set ACCRUAL_TEST_PG_URL, "
                    "or ACCRUAL_TEST_BACKENDS=sqlite to run SQLite only, on purpose")


def postgres_url(name: str) -> str:
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    return f"{base}/{name}"


@dataclass(frozen=True)
class AccrualServer:
    """What a test needs of the running server: where it is, how to reach its database, a valid key."""

    backend: str
    base_url: str
    database_url: str
    api_key: str

    def client(self, api_key: str | None = None) -> orb.Orb:
        """The official SDK, unchanged, pointed at us; strict validation makes every response parse."""
        return orb.Orb(api_key=api_key or self.api_key, base_url=self.base_url, max_retries=0, timeout=20.0,
                       _strict_response_validation=True)

    def new_tenant_client(self) -> orb.Orb:
        """A client of a brand-new organisation (minted by the CLI while the server runs): an empty tenant."""
        return self.client(mint_key(self.database_url, f"e2e-{uuid.uuid4().hex[:12]}"))
