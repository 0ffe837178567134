"""Used signatures are forgotten by a background loop once they can no longer be replayed, not by every request."""

import asyncio
from datetime import UTC, datetime

from intake.dependencies import IntakeDeps
from intake.service_layer.unit_of_work import IntakeUnitOfWork
from shared.service import Runtime
from shared.unit_of_work import unit_of_work
from shared.worker import run_worker


async def forget_used_signatures(runtime: Runtime[IntakeDeps], stopping: asyncio.Event) -> None:
    """Drop signatures whose timestamp has left the window, every half window (at most every 30 s).

    Keeping one longer is safe: a signature outside its window is refused by its timestamp anyway, so this
    only bounds the table. The request path then records a signature in one statement, not three."""
    window = runtime.deps.settings.signature_window_s

    async def forget() -> bool:
        async with unit_of_work(runtime.db, IntakeUnitOfWork) as uow:
            await uow.nonces.forget_expired(datetime.now(UTC), window)
        return False

    await run_worker("used signatures", forget, stopping, idle_s=min(30.0, window / 2))
