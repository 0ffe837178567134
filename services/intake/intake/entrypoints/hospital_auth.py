"""Hospitals sign every request (HMAC-SHA256); a signature is accepted once, inside its time window."""

import time
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request

from intake.entrypoints.dependencies import IntakeRuntime
from intake.service_layer.unit_of_work import IntakeUnitOfWork
from shared.problems import ProblemError
from shared.security.hospital_signing import verify
from shared.unit_of_work import unit_of_work


async def signed_hospital(request: Request, runtime: IntakeRuntime) -> str:
    """The hospital id of a correctly signed, fresh, never-seen request; 401 otherwise."""
    settings = runtime.deps.settings
    body = await request.body()  # at most max_body_bytes: shared.request_guard refused larger bodies streaming
    now = int(time.time())
    window = settings.signature_window_s
    verified = verify(request.headers, request.method, request.url.path, body,
                      secrets_by_hospital=settings.hospital_secrets, now=now, window_s=window)
    if request.method in ("GET", "HEAD"):
        # Reads change nothing, and a hospital polling twice in one second signs the same bytes twice:
        # they get the timestamp window but no nonce (docs/decisions/0005-request-signing.md).
        return verified.hospital_id
    async with unit_of_work(runtime.db, IntakeUnitOfWork) as uow:
        if not await uow.nonces.remember(verified.hospital_id, verified.signature,
                                         expires_at=datetime.fromtimestamp(verified.timestamp + window, UTC)):
            raise ProblemError(401, "replayed_request", "this signed request was already received")
    # A signature is accepted while now is within the window of its timestamp, on either side: one signed 300 s
    # ahead stays replayable for 600 s after it arrives. So a nonce is kept until its own timestamp has left the
    # window (`expires_at`), never by when it was seen; a background loop forgets the expired ones
    # (service_layer/signatures.py).
    return verified.hospital_id


HospitalId = Annotated[str, Depends(signed_hospital)]
