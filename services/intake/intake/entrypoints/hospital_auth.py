"""Hospitals sign every request (HMAC-SHA256); a signature is accepted once, inside its time window."""

import time
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import delete, text
from sqlalchemy.dialects.postgresql import insert

from intake.adapters.tables import RequestNonce
from shared.problems import ProblemError
from shared.security.hospital_signing import verify
from shared.service import Runtime


async def signed_hospital(request: Request) -> str:
    """The hospital id of a correctly signed, fresh, never-seen request; 401 otherwise."""
    runtime: Runtime = request.app.state.runtime
    settings = runtime.settings
    body = await request.body()  # at most max_body_bytes: shared.request_guard refused larger bodies streaming
    now = int(time.time())
    window = settings.signature_window_s
    verified = verify(request.headers, request.method, request.url.path, body,
                      secrets_by_hospital=settings.hospital_secrets, now=now, window_s=window)
    if request.method in ("GET", "HEAD"):
        # Reads change nothing, and a hospital polling twice in one second signs the same bytes twice:
        # they get the timestamp window but no nonce (docs/decisions/0005-request-signing.md).
        return verified.hospital_id
    async with runtime.db.transaction() as session:
        stored = await session.execute(
            insert(RequestNonce).values(hospital_id=verified.hospital_id, signature=verified.signature,
                                        expires_at=datetime.fromtimestamp(verified.timestamp + window, UTC))
            .on_conflict_do_nothing().returning(RequestNonce.signature)
        )
        if stored.scalar_one_or_none() is None:
            raise ProblemError(401, "replayed_request", "this signed request was already received")
        # A signature is accepted while now is within the window of its timestamp, on either side: one signed
        # 300 s ahead stays replayable for 600 s after it arrives. So a nonce is forgotten only once its own
        # timestamp has left the window (on the clock verify() uses), never by when it was seen.
        await session.execute(delete(RequestNonce).where(
            RequestNonce.expires_at < datetime.fromtimestamp(now, UTC)))  # type: ignore[operator]
        await session.execute(delete(RequestNonce).where(  # rows from before expires_at existed
            RequestNonce.expires_at.is_(None),  # type: ignore[union-attr]
            RequestNonce.seen_at < text(f"now() - interval '{2 * window} seconds'")))
    return verified.hospital_id


HospitalId = Annotated[str, Depends(signed_hospital)]
