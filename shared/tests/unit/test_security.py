"""Signatures, tokens, field encryption, pseudonyms, masking, national IDs: table-driven, no infrastructure."""

import base64
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from shared.problems import ProblemError
from shared.security.crypto import (
    DecryptionError,
    FieldCipher,
    mask_account,
    mask_name,
    mask_national_id,
    person_ref,
)
from shared.security.hospital_signing import sign, signed_headers, verify
from shared.security.national_id import validate_national_id
from shared.security.staff_auth import Role, TokenVerifier, mint_dev_token

NOW = 1_790_000_000
SECRETS = {"H001": ["old-secret", "new-secret"], "H002": ["h2"]}
BODY = b'{"a": 1}'


def headers(hospital: str = "H001", secret: str = "new-secret", now: int = NOW, body: bytes = BODY,
            method: str = "POST", path: str = "/v1/settlements") -> dict[str, str]:
    return signed_headers(hospital, secret, method, path, body, now=now)


@pytest.mark.parametrize(
    ("case", "hdrs", "body", "path", "now", "code"),
    [
        ("good, new secret", headers(), BODY, "/v1/settlements", NOW, None),
        ("good, old secret during rotation", headers(secret="old-secret"), BODY, "/v1/settlements", NOW, None),
        ("missing headers", {}, BODY, "/v1/settlements", NOW, "signature_missing"),
        ("unknown hospital", headers(hospital="H999"), BODY, "/v1/settlements", NOW, "unknown_hospital"),
        ("wrong hospital's secret", headers(hospital="H002", secret="new-secret"), BODY, "/v1/settlements", NOW,
         "bad_signature"),
        ("stale", headers(now=NOW - 301), BODY, "/v1/settlements", NOW, "timestamp_out_of_window"),
        ("from the future", headers(now=NOW + 301), BODY, "/v1/settlements", NOW, "timestamp_out_of_window"),
        ("body changed", headers(), b'{"a": 2}', "/v1/settlements", NOW, "bad_signature"),
        ("path changed", headers(), BODY, "/v1/settlements:batch", NOW, "bad_signature"),
    ],
)
def test_hospital_signature(case: str, hdrs: dict[str, str], body: bytes, path: str, now: int,
                            code: str | None) -> None:
    if code is None:
        assert verify(hdrs, "POST", path, body, SECRETS, now).hospital_id == "H001", case
    else:
        with pytest.raises(ProblemError) as exc:
            verify(hdrs, "POST", path, body, SECRETS, now)
        assert (exc.value.status, exc.value.code) == (401, code), case


def test_signature_is_hmac_over_the_documented_canonical_string() -> None:
    import hashlib
    import hmac

    canonical = f"{NOW}\nPOST\n/v1/settlements\n{hashlib.sha256(BODY).hexdigest()}".encode()
    assert sign("s", NOW, "post", "/v1/settlements", BODY) == hmac.new(b"s", canonical, hashlib.sha256).hexdigest()


SECRET = "test-secret-that-is-long-enough-for-hs256"
VERIFIER = TokenVerifier(issuer="medassist-dev", audience="medassist", secret=SECRET)


@pytest.mark.parametrize(
    ("case", "token", "code"),
    [
        ("expired", mint_dev_token(SECRET, "c", Role.clerk, "310110", "310110001", now=int(time.time()) - 7200),
         "token_expired"),
        ("wrong key", mint_dev_token("another-secret-also-long-enough-for-it", "c", Role.ops), "token_invalid"),
        ("clerk without sub-district", mint_dev_token(SECRET, "c", Role.clerk, "310110"), "token_invalid"),
        ("reviewer without district", mint_dev_token(SECRET, "r", Role.district_reviewer), "token_invalid"),
        ("wrong audience", jwt.encode({"sub": "x", "role": "ops", "iss": "medassist-dev", "aud": "other",
                                       "iat": int(time.time()), "exp": int(time.time()) + 3600}, SECRET),
         "token_invalid"),
        ("unknown role", jwt.encode({"sub": "x", "role": "admin", "iss": "medassist-dev", "aud": "medassist",
                                     "iat": int(time.time()), "exp": int(time.time()) + 3600}, SECRET),
         "token_invalid"),
        ("the system's role, which no person holds", mint_dev_token(SECRET, "x", Role.system, "310110"),
         "token_invalid"),
        ("garbage", "not.a.token", "token_invalid"),
        ("subject longer than an audit trail holds", mint_dev_token(SECRET, "x" * 65, Role.ops), "token_invalid"),
        ("subject with a control character", mint_dev_token(SECRET, "ops\x00", Role.ops), "token_invalid"),
    ],
)
def test_bad_tokens_are_refused(case: str, token: str, code: str) -> None:
    with pytest.raises(ProblemError) as exc:
        VERIFIER.verify(token)
    assert (exc.value.status, exc.value.code) == (401, code), case


def test_good_token_carries_role_and_area() -> None:
    principal = VERIFIER.verify(mint_dev_token(SECRET, "clerk-7", Role.clerk, "310110", "310110002"))
    assert (principal.subject, principal.role, principal.district_code, principal.subdistrict_code) == (
        "clerk-7", Role.clerk, "310110", "310110002")


def test_production_tokens_verify_against_the_identity_providers_keys() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    class OneKey:  # stands in for PyJWKClient: the JWKS endpoint's one key
        def get_signing_key_from_jwt(self, token: str) -> jwt.PyJWK:
            return jwt.PyJWK.from_dict({**jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True),
                                        "alg": "RS256"})

    verifier = TokenVerifier(issuer="idp", audience="medassist", jwks_client=OneKey())
    now = int(time.time())
    token = jwt.encode({"sub": "ops-1", "role": "ops", "iss": "idp", "aud": "medassist", "iat": now,
                        "exp": now + 60}, key, algorithm="RS256")
    assert verifier.verify(token).role == Role.ops
    with pytest.raises(ProblemError):
        verifier.verify(mint_dev_token(SECRET, "x", Role.ops, issuer="idp"))  # HS256 is refused in production


KEY1, KEY2 = base64.b64encode(b"1" * 32).decode(), base64.b64encode(b"2" * 32).decode()


def test_field_cipher_round_trip_rotation_and_tamper_detection() -> None:
    old = FieldCipher.from_config(f"k1={KEY1}", active="k1")
    token = old.encrypt("110101199003074578", aad="person-a")
    assert token.startswith("k1:") and "110101199003074578" not in token
    rotated = FieldCipher.from_config(f"k1={KEY1},k2={KEY2}", active="k2")
    assert rotated.decrypt(token, aad="person-a") == "110101199003074578"
    assert rotated.encrypt("x").startswith("k2:")
    with pytest.raises(DecryptionError):
        rotated.decrypt(token, aad="person-b")  # moved to another person
    with pytest.raises(DecryptionError):
        rotated.decrypt(token[:-4] + "AAAA", aad="person-a")
    with pytest.raises(DecryptionError):
        FieldCipher.from_config(f"k2={KEY2}", active="k2").decrypt(token, aad="person-a")


def test_person_ref_is_a_stable_keyed_pseudonym() -> None:
    a = person_ref(b"pepper", "11010119900307457x")
    assert a == person_ref(b"pepper", " 11010119900307457X ") and len(a) == 64
    assert a != person_ref(b"other-pepper", "11010119900307457X")


@pytest.mark.parametrize(("fn", "value", "masked"), [
    (mask_national_id, "110101199003074578", "110***********4578"),
    (mask_account, "6222020200112233", "************2233"),
    (mask_name, "王小明", "王**"),
    (mask_name, "李", "李*"),
])
def test_masking(fn, value: str, masked: str) -> None:
    assert fn(value) == masked


@pytest.mark.parametrize(("value", "ok"), [
    ("310110198001011236", True),
    ("310110198001011237", False),  # check digit
    ("310110198013011236", False),  # month 13
    ("31011019800101123", False),  # too short
    ("abc", False),
])
def test_national_id(value: str, ok: bool) -> None:
    if ok:
        assert validate_national_id(value) == value
    else:
        with pytest.raises(ProblemError) as exc:
            validate_national_id(value, field="patient.national_id")
        assert exc.value.code == "invalid_national_id" and value not in exc.value.message
        assert exc.value.field == "patient.national_id"
