"""Running the billing jobs on their own: a loop shared by `accrual worker` and `accrual serve`'s
in-process background task (off when ACCRUAL_JOBS=off, and in the tests' app)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from domains.billing import jobs
from domains.clock import Clock
from domains.unit_of_work import UnitOfWork

log = logging.getLogger("accrual.jobs")


async def run_jobs_once(sessions: async_sessionmaker[AsyncSession], clock: Clock) -> int:
    """One pass of every job; the number of invoices issued."""
    uow = UnitOfWork(sessions, clock=clock)
    try:
        issued = await jobs.close_periods(uow)
    finally:
        await uow.close()
    if issued:
        log.info("issued %d invoice(s) for closed billing periods", len(issued))
    return len(issued)


async def run_jobs_forever(sessions: async_sessionmaker[AsyncSession], clock: Clock, interval: float) -> None:
    """Pass after pass, ``interval`` seconds apart; a failed pass is logged and the next one runs."""
    while True:
        try:
            await run_jobs_once(sessions, clock)
        except Exception:
            log.exception("a billing jobs pass failed; retrying in %ss", interval)
        await asyncio.sleep(interval)


def background_jobs(sessions_key: web.AppKey[async_sessionmaker[AsyncSession]], clock: Clock,
                    interval: float) -> object:
    """A cleanup_ctx running the jobs in-process while the app runs (after the database is open)."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(run_jobs_forever(app[sessions_key], clock, interval))
        yield
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass

    return context
