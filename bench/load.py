"""A small HTTP/1.1 load generator over asyncio streams: fixed concurrency, keep-alive, bounded time.

Why not aiohttp's client: on this machine it tops out near 3,300 req/s against a bare aiohttp handler
that can answer ~11,000, so the client, not the server, would set the baseline and every ratio against
it would look better than it is. Writing pre-encoded requests and reading `Content-Length` bodies costs
the client a fraction of that, which leaves the measurement to the server.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

# Every request of the benchmarks goes to the loopback interface, never elsewhere.
HOST = "127.0.0.1"


class UnexpectedResponse(Exception):
    """A benchmark request did not succeed: measuring error pages would give a meaningless figure."""


def encode_request(method: str, path: str, *, headers: Mapping[str, str] | None = None, body: bytes = b"") -> bytes:
    """One request as the bytes sent on the wire (encoded once, written many times)."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Connection:
    """One keep-alive connection; requests on it go one at a time (no pipelining)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(HOST, port)
        return cls(reader, writer)

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        """Send `request`, return the response's status and body."""
        self._writer.write(request)
        head = await self._reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        lowered = head.lower()
        start = lowered.find(b"\r\ncontent-length:")
        if start < 0:
            # Both servers answer with a Content-Length; anything else is a change worth noticing.
            raise UnexpectedResponse(f"response without Content-Length: {head[:200]!r}")
        start += len(b"\r\ncontent-length:")
        length = int(lowered[start:lowered.index(b"\r\n", start)])
        return status, await self._reader.readexactly(length)

    async def close(self) -> None:
        self._writer.close()
        try:
            await self._writer.wait_closed()
        except ConnectionError:
            pass


def _check(status: int, body: bytes, request: bytes) -> None:
    if status != 200:
        line = request.split(b"\r\n", 1)[0].decode()
        raise UnexpectedResponse(f"{line} answered {status}: {body[:300]!r}")


@dataclass(frozen=True)
class Tally:
    """Requests completed in a stretch of wall-clock time."""

    requests: int
    seconds: float

    def __add__(self, other: Tally) -> Tally:
        return Tally(self.requests + other.requests, self.seconds + other.seconds)

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


async def throughput(port: int, requests: Sequence[bytes], *, seconds: float, concurrency: int) -> Tally:
    """Keep `concurrency` connections busy for `seconds`; each cycles through `requests`."""
    connections = await asyncio.gather(*(Connection.open(port) for _ in range(concurrency)))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds

    async def drive(connection: Connection, offset: int) -> int:
        done, index = 0, offset
        while loop.time() < deadline:
            request = requests[index % len(requests)]
            status, body = await connection.exchange(request)
            _check(status, body, request)
            done += 1
            index += concurrency
        return done

    # The clock starts after the connections are open: connecting is not what is measured.
    started = time.perf_counter()
    try:
        counts = await asyncio.gather(*(drive(c, i) for i, c in enumerate(connections)))
    finally:
        await asyncio.gather(*(c.close() for c in connections))
    return Tally(sum(counts), time.perf_counter() - started)


async def latencies(port: int, requests: Sequence[bytes], *, seconds: float) -> list[float]:
    """Seconds per request, one request at a time on one connection: latency free of queueing."""
    connection = await Connection.open(port)
    samples: list[float] = []
    deadline = time.perf_counter() + seconds
    try:
        while time.perf_counter() < deadline:
            request = requests[len(samples) % len(requests)]
            started = time.perf_counter()
            status, body = await connection.exchange(request)
            elapsed = time.perf_counter() - started
            _check(status, body, request)
            samples.append(elapsed)
    finally:
        await connection.close()
    return samples


Sample = TypeVar("Sample")


async def alternately(
    runs: Mapping[str, Callable[[float], Awaitable[Sample]]], *, seconds: float, rounds: int, warmup: float
) -> dict[str, list[Sample]]:
    """Run each target for `seconds` in total, in `rounds` interleaved slices after a warm-up each.

    The machine is shared and noisy: interleaving spreads any slow spell over every target instead of
    letting it land on one of them.
    """
    for run in runs.values():
        await run(warmup)
    samples: dict[str, list[Sample]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            samples[name].append(await run(seconds / rounds))
    return samples
