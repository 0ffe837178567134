"""Bearer tokens (JWT): staff roles plus the sub-district / district a person works in, and residents.

A resident's token names the resident by `sub` = their person_ref (never a national ID); it opens only the
resident's own status view. Development verifies with a shared HS256 secret; production with the identity
provider's JWKS (for residents: the city app's OIDC identity, exchanged at the edge, docs/decisions/0023).
"""

import re
import time
from dataclasses import dataclass
from typing import Any

import jwt

from shared.problems import ProblemError
from shared.security.area import Area
from shared.security.roles import TOKEN_ROLES
from shared.security.roles import Role as Role  # defined there (framework-free); routes import it from here

MAX_SUBJECT_LENGTH = 64  # the audit trails' actor columns
_DISTRICT = re.compile(r"[0-9]{6}")
_SUBDISTRICT = re.compile(r"[0-9]{9,12}")
_PERSON_REF = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Principal:
    subject: str
    role: Role
    district_code: str | None
    subdistrict_code: str | None

    @property
    def area(self) -> Area:
        """Where this staff member may see and change persons' data (shared.security.area)."""
        if self.role == Role.district_reviewer:
            return Area(self.district_code)
        if self.role in (Role.clerk, Role.registry_officer):
            return Area(self.district_code, self.subdistrict_code)
        if self.role == Role.resident:
            return Area("", "")  # no district or sub-district has an empty code: a resident's area holds nobody
        return Area()


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
        except jwt.PyJWKClientConnectionError:
            # the identity provider's keys cannot be fetched: an outage to retry, not a bad token
            raise ProblemError(503, "identity_provider_unavailable", "the identity provider's keys cannot be read",
                               field="Authorization") from None
        except (jwt.PyJWTError, ValueError, TypeError):
            raise ProblemError(401, "token_invalid", "the token is not valid", field="Authorization") from None
        return principal_from_claims(claims)


def _invalid(message: str) -> ProblemError:
    return ProblemError(401, "token_invalid", message, field="Authorization")


def _code_claim(claims: dict[str, Any], name: str, pattern: re.Pattern[str]) -> str | None:
    value = claims.get(name)
    if value is None:
        return None
    # A validly signed token is still input: a list, a number or full-width digits are no area code.
    if not isinstance(value, str) or not value.isascii() or not pattern.fullmatch(value):
        raise _invalid(f"the token's {name} claim is not a {name} code")
    return value


def principal_from_claims(claims: dict[str, Any]) -> Principal:
    """The principal of verified claims; a 401 problem for any claim of the wrong type or shape."""
    role_claim = claims.get("role")
    if not isinstance(role_claim, str) or role_claim not in TOKEN_ROLES:
        raise _invalid("the token has no known role")
    role = Role(role_claim)
    subject = claims.get("sub")
    if not isinstance(subject, str) or not 0 < len(subject) <= MAX_SUBJECT_LENGTH or not subject.isprintable():
        # the subject is written to audit trails (64 characters): refuse it here, not in the database
        raise _invalid("the token's subject is not a usable staff id")
    district = _code_claim(claims, "district", _DISTRICT)
    subdistrict = _code_claim(claims, "subdistrict", _SUBDISTRICT)
    if subdistrict is not None and (district is None or not subdistrict.startswith(district)):
        raise _invalid("the token's subdistrict is not in its district")
    if role == Role.clerk and not (district and subdistrict):
        raise _invalid("a clerk token needs district and subdistrict claims")
    if role == Role.district_reviewer and not district:
        raise _invalid("a reviewer token needs a district claim")
    if role == Role.resident and not _PERSON_REF.fullmatch(subject):
        raise _invalid("a resident token's subject is a person_ref")
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
