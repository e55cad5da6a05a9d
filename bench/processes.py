"""Servers under measurement run as their own processes, so the load generator never shares their
event loop (on two cores: one for the server, one for the client)."""

from __future__ import annotations

import asyncio
import signal
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from bench.load import HOST


def free_port() -> int:
    """A port the kernel considers free now; the server binds it a moment later."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


@dataclass
class ServerProcess:
    name: str
    port: int
    process: asyncio.subprocess.Process
    log_path: Path
    log: IO[bytes]

    def log_tail(self, characters: int = 3000) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")[-characters:]

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 15)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        self.log.close()


async def start_server(
    name: str, argv: Sequence[str], *, port: int, cwd: Path, env: dict[str, str], log_path: Path,
    timeout: float = 60.0,
) -> ServerProcess:
    """Start `argv` (which must listen on HOST:`port`) and return once it accepts connections."""
    # Output goes to a file, not a pipe: a pipe nobody reads would block a chatty server mid-benchmark.
    log = log_path.open("wb")
    process = await asyncio.create_subprocess_exec(*argv, cwd=cwd, env=env, stdout=log,
                                                   stderr=asyncio.subprocess.STDOUT)
    server = ServerProcess(name, port, process, log_path, log)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        if process.returncode is not None:
            tail = server.log_tail()
            await server.stop()
            raise RuntimeError(f"{name} exited with {process.returncode} before listening:\n{tail}")
        try:
            _, writer = await asyncio.open_connection(HOST, port)
        except OSError:
            if loop.time() > deadline:
                await server.stop()
                raise RuntimeError(f"{name} did not listen on {HOST}:{port} within {timeout:.0f}s") from None
            await asyncio.sleep(0.1)
            continue
        writer.close()
        await writer.wait_closed()
        return server


def cancel_on_signals() -> None:
    """SIGINT and SIGTERM cancel the running task, so an interrupted run still unwinds (servers
    stopped, connections closed, PostgreSQL databases dropped). SIGINT is installed too because a
    shell starts background jobs with it ignored."""
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, task.cancel)
