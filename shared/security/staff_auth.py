"""Staff bearer tokens (JWT): roles plus the sub-district / district a person works in.

Development verifies with a shared HS256 secret; production with the identity provider's JWKS.
"""

import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import jwt

from shared.problems import ProblemError

MAX_SUBJECT_LENGTH = 64  # the audit trails' actor columns

class Role(StrEnum):
    clerk = "clerk"
    district_reviewer = "district_reviewer"
    registry_officer = "registry_officer"
    policy_admin = "policy_admin"
    ops = "ops"


@dataclass(frozen=True)
class Principal:
    subject: str
    role: Role
    district_code: str | None
    subdistrict_code: str | None


class TokenVerifier:
    """Verifies signature, expiry, issuer and audience, and the claims each role needs."""

    def __init__(self, *, issuer: str, audience: str, secret: str | None = None, jwks_url: str | None = None,
                 jwks_client: Any = None) -> None:
        if not (secret or jwks_url or jwks_client):
            raise ValueError("a shared secret (development) or a JWKS URL (production) is required")
        self._issuer, self._audience, self._secret = issuer, audience, secret
        self._jwks = jwks_client or (jwt.PyJWKClient(jwks_url, cache_keys=True) if jwks_url else None)

    def verify(self, token: str) -> Principal:
        """The principal of a valid token; a 401 problem otherwise."""
        try:
            if self._jwks is not None:
                key: Any = self._jwks.get_signing_key_from_jwt(token).key
                algorithms = ["RS256", "ES256"]
            else:
                key, algorithms = self._secret, ["HS256"]
            claims = jwt.decode(token, key, algorithms=algorithms, issuer=self._issuer, audience=self._audience,
                                options={"require": ["exp", "iat", "sub", "iss", "aud"]})
        except jwt.ExpiredSignatureError:
            raise ProblemError(401, "token_expired", "the token has expired", field="Authorization") from None
        except (jwt.PyJWTError, ValueError):
            raise ProblemError(401, "token_invalid", "the token is not valid", field="Authorization") from None
        try:
            role = Role(claims.get("role", ""))  # missing: "" is no role, ValueError as for any unknown value
        except ValueError:
            raise ProblemError(401, "token_invalid", "the token has no known role", field="Authorization") from None
        subject = str(claims["sub"])
        if not 0 < len(subject) <= MAX_SUBJECT_LENGTH or not subject.isprintable():
            # the subject is written to audit trails (64 characters): refuse it here, not in the database
            raise ProblemError(401, "token_invalid", "the token's subject is not a usable staff id",
                               field="Authorization")
        district, subdistrict = claims.get("district"), claims.get("subdistrict")
        if role == Role.clerk and not (district and subdistrict):
            raise ProblemError(401, "token_invalid", "a clerk token needs district and subdistrict claims",
                               field="Authorization")
        if role == Role.district_reviewer and not district:
            raise ProblemError(401, "token_invalid", "a reviewer token needs a district claim", field="Authorization")
        return Principal(subject, role, district, subdistrict)


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer ...` header; a 401 problem when absent."""
    if not authorization or not authorization.lower().startswith("bearer ") or not authorization[7:].strip():
        raise ProblemError(401, "token_missing", "a bearer token is required", field="Authorization")
    return authorization[7:].strip()


def require(principal: Principal, roles: tuple[Role, ...]) -> Principal:
    """The principal when its role is one of `roles`; a 403 problem otherwise."""
    if principal.role not in roles:
        raise ProblemError(403, "forbidden_role", f"this needs one of: {', '.join(r.value for r in roles)}",
                           field="Authorization")
    return principal


def mint_dev_token(secret: str, subject: str, role: Role | str, district: str | None = None,
                   subdistrict: str | None = None, ttl_s: int = 3600, issuer: str = "medassist-dev",
                   audience: str = "medassist", now: int | None = None) -> str:
    """An HS256 token for local use and tests (production tokens come from the identity provider)."""
    issued = int(time.time()) if now is None else now
    claims: dict[str, Any] = {"sub": subject, "role": Role(role).value, "iss": issuer, "aud": audience,
                              "iat": issued, "exp": issued + ttl_s}
    if district:
        claims["district"] = district
    if subdistrict:
        claims["subdistrict"] = subdistrict
    return jwt.encode(claims, secret, algorithm="HS256")
