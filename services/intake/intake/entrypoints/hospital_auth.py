"""Hospitals sign every request (HMAC-SHA256); a signature is accepted once, inside its time window."""

import time
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
    body = await request.body()
    if len(body) > settings.max_body_bytes:
        raise ProblemError(413, "payload_too_large", f"body exceeds {settings.max_body_bytes} bytes")
    verified = verify(
        request.headers, request.method, request.url.path, body,
        secrets_by_hospital=settings.hospital_secrets, now=int(time.time()), window_s=settings.signature_window_s,
    )
    if request.method in ("GET", "HEAD"):
        # Reads change nothing, and a hospital polling twice in one second signs the same bytes twice:
        # they get the timestamp window but no nonce (docs/decisions/0005-request-signing.md).
        return verified.hospital_id
    async with runtime.db.transaction() as session:
        stored = await session.execute(
            insert(RequestNonce).values(hospital_id=verified.hospital_id, signature=verified.signature)
            .on_conflict_do_nothing().returning(RequestNonce.signature)
        )
        if stored.scalar_one_or_none() is None:
            raise ProblemError(401, "replayed_request", "this signed request was already received")
        # Nonces older than the window can never be replayed (their timestamp is refused), so forget them.
        await session.execute(delete(RequestNonce).where(
            RequestNonce.seen_at < text(f"now() - interval '{2 * settings.signature_window_s} seconds'")))
    return verified.hospital_id


HospitalId = Annotated[str, Depends(signed_hospital)]
