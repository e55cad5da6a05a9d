"""persistence.read_pool on PostgreSQL: reuse, the size bound, and the connections it must not hand out again."""

from __future__ import annotations

import asyncio

import pytest

from persistence.read_pool import ReadPool


@pytest.fixture
def dsn(database) -> str:
    if database.backend != "postgresql":
        pytest.skip("the read pool serves PostgreSQL reads only")
    return database.url.replace("postgresql+asyncpg://", "postgresql://", 1)


def _pool(dsn: str, size: int, setups: list) -> ReadPool:
    async def setup(connection) -> None:
        setups.append(connection)
    return ReadPool(dsn, size, setup)


async def test_a_released_connection_is_handed_out_again_and_set_up_once(dsn):
    setups: list = []
    pool = _pool(dsn, 2, setups)
    first = await pool.acquire()
    pool.release(first)
    again = await pool.acquire()
    assert again is first and setups == [first]
    assert await again.fetchval("SELECT 1") == 1
    pool.release(again)
    await pool.close()
    assert first.is_closed()


async def test_past_its_size_a_caller_waits_for_a_connection_to_come_back(dsn):
    pool = _pool(dsn, 1, [])
    held = await pool.acquire()
    waiting = asyncio.ensure_future(pool.acquire())
    await asyncio.sleep(0.05)
    assert not waiting.done()
    pool.release(held)
    assert await asyncio.wait_for(waiting, 5) is held
    pool.release(held)
    await pool.close()


async def test_a_connection_left_in_a_transaction_or_lost_is_not_handed_out_again(dsn):
    setups: list = []
    pool = _pool(dsn, 2, setups)
    in_transaction = await pool.acquire()
    await in_transaction.execute("BEGIN")
    pool.release(in_transaction)
    assert in_transaction.is_closed()
    lost = await pool.acquire()
    assert lost is not in_transaction
    pool.release(lost)
    lost.terminate()  # dropped while idle: skipped on the next acquire
    fresh = await pool.acquire()
    assert fresh is not lost and not fresh.is_closed() and len(setups) == 3
    pool.release(fresh)
    await pool.close()


async def test_a_failed_setup_gives_its_slot_back_and_a_closed_pool_refuses(dsn):
    calls = []

    async def failing(connection) -> None:
        calls.append(connection)
        if len(calls) == 1:
            raise RuntimeError("setup failed")
    pool = ReadPool(dsn, 1, failing)
    with pytest.raises(RuntimeError, match="setup failed"):
        await pool.acquire()
    assert calls[0].is_closed()
    connection = await asyncio.wait_for(pool.acquire(), 5)  # the one slot is free again
    await pool.close()
    pool.release(connection)  # back after the close: terminated, not kept
    assert connection.is_closed()
    with pytest.raises(RuntimeError, match="closed"):
        await pool.acquire()


async def test_a_new_connection_is_opened_past_the_idle_ones_within_the_size(dsn):
    """For a read whose connection was lost: the idle ones may have been lost with it, unnoticed yet."""
    setups: list = []
    pool = _pool(dsn, 2, setups)
    idle = await pool.acquire()
    pool.release(idle)
    new = await pool.acquire_new()
    assert new is not idle and setups == [idle, new] and await new.fetchval("SELECT 1") == 1
    assert await pool.acquire() is idle  # the second slot
    waiting = asyncio.ensure_future(pool.acquire_new())
    await asyncio.sleep(0.05)
    assert not waiting.done()  # both slots are taken
    pool.release(new)
    third = await asyncio.wait_for(waiting, 5)
    assert third is not new and len(setups) == 3
    pool.release(third)
    pool.release(idle)
    await pool.close()
