"""Hospital request signatures: HMAC-SHA256 over timestamp, method, path and the body's hash.

    signature = hex(HMAC-SHA256(secret, f"{timestamp}\\n{METHOD}\\n{path}\\n{sha256_hex(body)}"))

Headers: X-Hospital-Id, X-Timestamp (unix seconds), X-Signature. Two secrets may be active per hospital
during a rotation; the caller keeps a replay store of accepted signatures.
"""

import hashlib
import hmac
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from shared.problems import ProblemError

HOSPITAL_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER = "X-Hospital-Id", "X-Timestamp", "X-Signature"
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_HEX_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


@dataclass(frozen=True)
class VerifiedRequest:
    hospital_id: str
    timestamp: int
    signature: str


def canonical_string(timestamp: str | int, method: str, path: str, body: bytes) -> str:
    """What is signed."""
    return f"{timestamp}\n{method.upper()}\n{path}\n{hashlib.sha256(body).hexdigest()}"


def sign(secret: str, timestamp: str | int, method: str, path: str, body: bytes) -> str:
    """The hex signature of one request."""
    message = canonical_string(timestamp, method, path, body).encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signed_headers(hospital_id: str, secret: str, method: str, path: str, body: bytes,
                   now: int | None = None) -> dict[str, str]:
    """The three headers a hospital sends with a request."""
    timestamp = str(int(time.time()) if now is None else now)
    return {HOSPITAL_HEADER: hospital_id, TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(secret, timestamp, method, path, body)}


def verify(headers: Mapping[str, str], method: str, path: str, body: bytes,
           secrets_by_hospital: Mapping[str, Sequence[str]], now: int, window_s: int = 300) -> VerifiedRequest:
    """Check a request's signature and freshness; raise a 401 problem otherwise."""
    hospital_id = headers.get(HOSPITAL_HEADER) or headers.get(HOSPITAL_HEADER.lower())
    timestamp = headers.get(TIMESTAMP_HEADER) or headers.get(TIMESTAMP_HEADER.lower())
    signature = headers.get(SIGNATURE_HEADER) or headers.get(SIGNATURE_HEADER.lower())
    if not hospital_id or not timestamp or not signature:
        raise ProblemError(401, "signature_missing", "X-Hospital-Id, X-Timestamp and X-Signature are required",
                           field="X-Signature")
    secrets = secrets_by_hospital.get(hospital_id)
    if not secrets:
        raise ProblemError(401, "unknown_hospital", "this hospital is not registered", field=HOSPITAL_HEADER)
    # Headers are input like any other: only ASCII digits of a plausible length are a time (int() of 5,000
    # digits raises, and str.isdigit() admits Arabic-Indic and full-width digits).
    if not _TIMESTAMP.fullmatch(timestamp) or abs(now - int(timestamp)) > window_s:
        raise ProblemError(401, "timestamp_out_of_window", f"X-Timestamp must be unix seconds within {window_s}s "
                           "of now", field=TIMESTAMP_HEADER)
    if not hex_digest_matches([sign(s, timestamp, method, path, body) for s in secrets], signature):
        raise ProblemError(401, "bad_signature", "the signature does not match", field=SIGNATURE_HEADER)
    return VerifiedRequest(hospital_id, int(timestamp), signature.lower())


def hex_digest_matches(expected: Sequence[str], given: str | None) -> bool:
    """Whether `given` (a header) is one of the `expected` hex SHA-256 digests, in constant time.

    Anything but 64 ASCII hex digits is simply no match: compare_digest raises on non-ASCII text, and that
    must never turn a forged header into a 500.
    """
    if given is None or not _HEX_SHA256.fullmatch(given):
        return False
    candidate = given.lower().encode()
    return any(hmac.compare_digest(e.encode(), candidate) for e in expected)
