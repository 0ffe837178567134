"""Property-based fuzzing of every service's OpenAPI (Schemathesis) against the services running as processes.

Whatever the fuzzer sends, a service never answers 5xx, and every 4xx is `application/problem+json` with a
stable `code` and a human `detail`. Most cases carry the credentials a real caller would have (a staff JWT of a
role the operation admits, a hospital's HMAC signature over the exact bytes sent, the bank's callback
signature), so they reach the handlers; one in ten goes without credentials and one in ten with wrong ones. To get past
whole-document rules, half the bodies of an operation that documents an example are that example with a field
or two fuzzed, and path parameters reuse, half the time, ids the services handed out earlier in the run.

The schemas are the committed contracts/openapi/*.json (tests/contract checks they are what the code serves).
"""

import contextlib
import copy
import hashlib
import hmac
import itertools
import json
import os
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
import requests
import schemathesis
from requests.auth import AuthBase

from shared.contracts.generate import CONTRACTS
from shared.problems import MEDIA_TYPE
from shared.security.hospital_signing import signed_headers
from shared.security.roles import TOKEN_ROLES
from shared.security.staff_auth import Role, mint_dev_token
from shared.settings import ServiceSettings
from shared.testing import ROOT, SERVICES, stack_available, start_services, unique_prefix

pytestmark = pytest.mark.e2e

# Bounded for CI on two cores: the same cases on every run (fixed seed, derandomized), no shrinking.
# One to two minutes on two busy cores; FUZZ_MAX_EXAMPLES=300 digs deeper by hand (some minutes).
MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "50"))
CONFIG = {
    "seed": 20260301,
    "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "no-shrink": True, "database": "none"},
    "phases": {"stateful": {"enabled": False}},
    "request-timeout": 60,
}
# The development secrets the services start with (shared/settings.py, the intake and disbursement configs).
JWT_SECRET = ServiceSettings().jwt_secret.get_secret_value()
HOSPITALS = {"H001": "dev-secret-H001", "H002": "dev-secret-H002"}
BANK_CALLBACK_SECRET = "dev-bank-callback-secret"
AREA = {Role.clerk: ("310110", "310110001"), Role.district_reviewer: ("310110", None)}
HOSPITAL, BANK = "hospital", "bank"
R = Role
STAFF_READERS = (R.policy_admin, R.clerk, R.district_reviewer, R.ops)
# Who may call what (tests/e2e/test_authorization_matrix.py holds the services to it); the rest is for ops.
CALLERS: dict[tuple[str, str], tuple[str, ...]] = {
    ("eligibility", "POST /v1/registry/import"): (R.registry_officer,),
    ("eligibility", "POST /v1/consents"): (R.registry_officer, R.clerk),
    ("eligibility", "POST /v1/consents/{consent_id}/revoke"): (R.registry_officer, R.clerk),
    ("eligibility", "POST /v1/persons:lookup"): (R.registry_officer, R.ops),
    ("eligibility", "GET /v1/screenings/summary"): (R.registry_officer, R.ops),
    ("calculation", "GET /v1/policies"): STAFF_READERS,
    ("calculation", "POST /v1/policies"): (R.policy_admin,),
    ("calculation", "GET /v1/calculations/{settlement_id}"): STAFF_READERS,
    ("calculation", "GET /v1/recoveries"): (R.district_reviewer, R.ops),
    ("calculation", "GET /v1/ledgers/{person_ref}"): STAFF_READERS,
    ("approval", "GET /v1/cases"): (R.clerk, R.district_reviewer, R.ops),
    ("approval", "GET /v1/cases/{case_id}"): (R.clerk, R.district_reviewer, R.ops),
    ("approval", "POST /v1/cases/{case_id}/approve"): (R.clerk, R.district_reviewer),
    ("approval", "POST /v1/cases/{case_id}/reject"): (R.clerk, R.district_reviewer),
    ("approval", "POST /v1/cases/{case_id}/send-back"): (R.district_reviewer,),
    ("approval", "POST /v1/cases:batch-approve"): (R.clerk,),
    ("approval", "GET /v1/queues"): (R.ops, R.district_reviewer),
    ("disbursement", "GET /v1/payments"): (R.ops, R.district_reviewer),
    ("disbursement", "GET /v1/payments/by-case/{case_id}"): (R.ops, R.district_reviewer),
    ("disbursement", "GET /v1/reconciliation"): (R.ops, R.district_reviewer),
    ("disbursement", "POST /v1/bank/callbacks"): (BANK,),
    ("notification", "GET /v1/me/settlements"): (R.resident,),
    ("notification", "POST /v1/residents:lookup"): (R.clerk,),
    ("notification", "GET /v1/messages"): (R.ops,),
}
# What came back, per service: "200", "422 invalid_input", ... (printed and written at the end of the module).
OUTCOMES: dict[str, Counter[str]] = {service: Counter() for service in SERVICES}
HOSTILE: dict[str, Counter[str]] = {service: Counter() for service in SERVICES}  # status of mangled-header cases
CONFORMANCE = [schemathesis.checks.not_a_server_error, schemathesis.checks.status_code_conformance,
               schemathesis.checks.content_type_conformance, schemathesis.checks.response_schema_conformance]
CASES: Counter[str] = Counter()  # per operation ("approval POST /v1/cases/{case_id}/reject")
# Ids the services handed out (case_id, consent_id, settlement_id, person_ref, ...), by field name: path
# parameters of the same name use them half the time, so cases reach existing cases, consents and payments.
SEEN: dict[str, list[str]] = {}
_signed = itertools.count()


def callers(service: str, label: str) -> tuple[str, ...]:
    if (service, label) in CALLERS:
        return CALLERS[service, label]
    if service == "intake" and label.split(" ", 1)[1].startswith("/v1/"):
        return (HOSPITAL,)
    return (R.ops,)


class StaffToken(AuthBase):
    """`Authorization: Bearer <jwt>`, replacing whatever the fuzzer put there; None sends none at all."""

    def __init__(self, token: str | None) -> None:
        self.token = token

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers.pop("Authorization", None)
        if self.token is not None:
            r.headers["Authorization"] = f"Bearer {self.token}"
        return r


class HospitalSignature(AuthBase):
    """Signs the prepared request: the body bytes as sent, the path as the server decodes it.

    Each request gets its own timestamp inside the window, so two equal bodies are two requests rather than a
    replay (a hospital signs a retry anew).
    """

    def __init__(self, hospital_id: str, secret: str) -> None:
        self.hospital_id, self.secret = hospital_id, secret

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        path = unquote(urlsplit(r.url).path)
        now = int(time.time()) - next(_signed) % 240
        r.headers.update(signed_headers(self.hospital_id, self.secret, r.method or "GET", path, _body(r), now=now))
        return r


class BankSignature(AuthBase):
    """`X-Bank-Signature`: hex HMAC-SHA256 of the body, as the bank signs its callbacks."""

    def __init__(self, secret: str) -> None:
        self.secret = secret.encode()

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["X-Bank-Signature"] = hmac.new(self.secret, _body(r), hashlib.sha256).hexdigest()
        return r


def _body(r: requests.PreparedRequest) -> bytes:
    if r.body is None:
        return b""
    return r.body.encode() if isinstance(r.body, str) else bytes(r.body)


def staff_token(role: Role, key: str = JWT_SECRET) -> str:
    district, subdistrict = AREA.get(role, (None, None))
    # A resident's subject is their person_ref (64 hex digits); staff have a name of their own.
    subject = hashlib.sha256(b"fuzz-resident").hexdigest() if role is R.resident else f"fuzz-{role.value}"
    return mint_dev_token(key, subject, role, district, subdistrict)


# Credential headers as a hostile or broken client sends them: non-ASCII, absurdly long, other digits, empty.
HOSTILE_VALUES = ["é" * 64, "１" * 10, "٣" * 10, "9" * 5000, "0" * 63, "-1", "1e9", "x" * 10_000,
                  "Bearer", "Bearer " + "é" * 20, "Basic dXNlcjpwYXNz", "Ｈ001", "H001,H002"]
HOSTILE_HEADERS = {HOSPITAL: ["X-Signature", "X-Timestamp", "X-Hospital-Id"], BANK: ["X-Bank-Signature"]}


def odd_claims_token(pick: int) -> str:
    """A validly signed staff token whose claims are of the wrong type or shape."""
    import jwt

    claims: list[dict[str, Any]] = [{"district": ["310110"]}, {"district": 310110}, {"subdistrict": {"a": 1}},
                                    {"role": ["ops"]}, {"sub": 7}, {"district": "３１０１１０"},
                                    {"subdistrict": "310115001"}, {"role": None}]
    now = int(time.time())
    base = {"sub": "fuzz-odd", "role": "clerk", "district": "310110", "subdistrict": "310110001",
            "iss": "medassist-dev", "aud": "medassist", "iat": now, "exp": now + 3600}
    return jwt.encode({**base, **claims[pick % len(claims)]}, JWT_SECRET, algorithm="HS256")


class Hostile(AuthBase):
    """The caller's real credentials with one header replaced by a hostile value (raw bytes on the wire)."""

    def __init__(self, inner: AuthBase, header: str, value: str) -> None:
        self.inner, self.header, self.value = inner, header, value

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r = self.inner(r)
        r.headers[self.header] = self.value.encode()  # type: ignore[assignment]
        return r


def credentials(service: str, case: schemathesis.Case) -> tuple[str, AuthBase]:
    """Who a case calls as: mostly a caller the operation admits; one in ten none, one in ten a wrong one, one
    in ten the right one with a credential header (signature, timestamp, hospital id, authorization) mangled.

    Chosen from the case's content, so the fixed seed always gives the same callers.
    """
    allowed = callers(service, case.operation.label)
    digest = int(hashlib.sha256(repr((case.path_parameters, case.query, case.headers, case.body,
                                      case.media_type)).encode()).hexdigest(), 16)
    bucket, pick = digest % 10, digest // 10
    if bucket == 0:
        return "nobody", StaffToken(None)
    if bucket == 1:
        if allowed[0] == HOSPITAL:
            return "hospital with a wrong secret", HospitalSignature("H001", "not-the-secret")
        if allowed[0] == BANK:
            return "bank with a wrong secret", BankSignature("not-the-secret")
        others = [role for role in Role if role in TOKEN_ROLES and role not in allowed]  # roles a token can carry
        if others:
            role = others[pick % len(others)]
            return f"{role.value} (not admitted)", StaffToken(staff_token(role))
        return "token signed with another key", StaffToken(staff_token(R.ops, key="another-signing-key-" * 2))
    if bucket == 2:
        caller, auth = credentials_of(allowed[pick % len(allowed)], pick)
        headers = HOSTILE_HEADERS.get(allowed[0], ["Authorization"])
        header, value = headers[pick % len(headers)], HOSTILE_VALUES[pick // 7 % len(HOSTILE_VALUES)]
        if header == "Authorization" and pick % 3 == 0:
            return f"{caller} with odd claims", StaffToken(odd_claims_token(pick))
        return f"{caller} with a hostile {header}", Hostile(auth, header, value)
    return credentials_of(allowed[pick % len(allowed)], pick)


def credentials_of(kind: str, pick: int) -> tuple[str, AuthBase]:
    if kind == HOSPITAL:
        hospital = sorted(HOSPITALS)[pick // 3 % len(HOSPITALS)]
        return hospital, HospitalSignature(hospital, HOSPITALS[hospital])
    if kind == BANK:
        return BANK, BankSignature(BANK_CALLBACK_SECRET)
    return Role(kind).value, StaffToken(staff_token(Role(kind)))


def content_type(response: schemathesis.Response) -> str:
    return (response.headers.get("content-type") or [""])[0].split(";")[0].strip()


def assert_well_formed(service: str, case: schemathesis.Case, caller: str, response: schemathesis.Response) -> str:
    """No 5xx, and a 4xx is a problem document with a code and a message. Returns the outcome ("422 invalid_input")."""
    status = response.status_code
    where = (f"{service} {case.operation.label} as {caller} -> {status}\n"
             f"{case.as_curl_command(headers=dict(response.request.headers))}\n{response.text[:500]}")
    assert status < 500, f"server error: {where}"
    if status < 400:
        return str(status)
    assert content_type(response) == MEDIA_TYPE, f"not problem+json: {where}"
    problem = response.json()
    assert isinstance(problem, dict), f"the problem is not an object: {where}"
    assert isinstance(problem.get("code"), str) and problem["code"], f"a problem without a code: {where}"
    assert isinstance(problem.get("detail"), str) and problem["detail"], f"a problem without a message: {where}"
    assert problem.get("status") == status, f"the problem's status is not the response's: {where}"
    return f"{status} {problem['code']}"


@pytest.fixture(scope="module")
async def fuzz_stack() -> AsyncIterator[dict[str, str]]:
    if not await stack_available(ServiceSettings()):
        pytest.fail("PostgreSQL is not reachable: run `make up` (make test does it for you)")
    urls, processes = await start_services(unique_prefix("fuzz"), "fuzz")
    try:
        yield urls
    finally:
        for process in processes:
            process.stop()


@pytest.fixture(scope="module", autouse=True)
def report_counts(request: pytest.FixtureRequest) -> Iterator[None]:
    """Prints how many cases ran per service, and writes what came back to .run/logs/tests/openapi-fuzz.json."""
    started = time.monotonic()
    yield
    elapsed = time.monotonic() - started
    summary = {"seconds": round(elapsed, 1), "max_examples": MAX_EXAMPLES, "services": {
        s: {"cases": OUTCOMES[s].total(), "outcomes": dict(sorted(OUTCOMES[s].items())),
            "hostile_headers": dict(sorted(HOSTILE[s].items()))} for s in SERVICES},
               "operations": dict(sorted(CASES.items()))}
    out = ROOT / ".run" / "logs" / "tests" / "openapi-fuzz.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2) + "\n")
    lines = [f"OpenAPI fuzz: {sum(c.total() for c in OUTCOMES.values())} cases in {elapsed:.0f}s, "
             f"at most {MAX_EXAMPLES} generated per operation (outcomes: {out.relative_to(ROOT)})"]
    lines += [f"  {s:<13} {OUTCOMES[s].total():>5} cases, {HOSTILE[s].total():>4} with hostile credential headers"
              for s in SERVICES]
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        print("\n" + "\n".join(lines))


def documented_examples(document: dict[str, Any]) -> dict[str, Any]:
    """The example JSON body of each operation that documents one, by label ("POST /v1/settlements")."""
    found = {}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            media = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
            if "example" in media:
                found[f"{method.upper()} {path}"] = media["example"]
            elif media.get("examples"):
                found[f"{method.upper()} {path}"] = next(iter(media["examples"].values()))["value"]
    return found


def remember_ids(value: Any) -> None:
    if isinstance(value, list):
        for item in value:
            remember_ids(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, str) and (key.endswith("_id") or key == "person_ref"):
                seen = SEEN.setdefault(key, [])
                if item not in seen and len(seen) < 100:
                    seen.append(item)
            else:
                remember_ids(item)


def near_example(example: Any, generated: Any, rng: random.Random) -> Any:
    """The documented example with one or two of its fields (at any depth) taken from a generated body."""
    if isinstance(example, list) and example and isinstance(generated, list):
        return [near_example(example[0], item, rng) for item in generated]
    if not (isinstance(example, dict) and isinstance(generated, dict)) or not generated:
        return generated
    body = copy.deepcopy(example)
    for key in rng.sample(sorted(generated), k=min(len(generated), rng.choice((1, 1, 2)))):
        nested = isinstance(body.get(key), dict | list) and rng.random() < 0.5
        body[key] = near_example(body[key], generated[key], rng) if nested else generated[key]
    return body


def fuzz_test(service: str) -> Callable[..., None]:
    """One test per operation of the service's committed OpenAPI document."""
    schema = schemathesis.openapi.from_path(CONTRACTS / "openapi" / f"{service}.json",
                                            config=schemathesis.Config.from_dict(CONFIG))
    examples = documented_examples(schema.raw_schema)

    @schema.hook
    def map_body(context: schemathesis.HookContext, body: Any) -> Any:
        """Half the bodies of an operation with an example stay close to it, so they get past whole-document
        rules (a valid national ID, consistent amounts and dates) to the handler and the database."""
        example = examples.get(context.operation.label) if context.operation else None
        rng = random.Random(hashlib.sha256(repr(body).encode()).digest())
        if example is None or rng.random() < 0.5:
            return body
        return near_example(example, body, rng)

    @schema.hook
    def map_path_parameters(context: schemathesis.HookContext, parameters: dict[str, Any] | None) -> Any:
        if not parameters:
            return parameters
        rng = random.Random(hashlib.sha256(repr(parameters).encode()).digest())
        return {name: rng.choice(SEEN[name]) if SEEN.get(name) and rng.random() < 0.5 else value
                for name, value in parameters.items()}

    @schema.parametrize()
    def test(case: schemathesis.Case, fuzz_stack: dict[str, str]) -> None:
        caller, auth = credentials(service, case)
        response = case.call(base_url=fuzz_stack[service], auth=auth)
        OUTCOMES[service][assert_well_formed(service, case, caller, response)] += 1
        CASES[f"{service} {case.operation.label}"] += 1
        if "hostile" in caller or "odd claims" in caller:
            HOSTILE[service][str(response.status_code)] += 1
        # What came back is what the OpenAPI says: a documented status, its media type, its schema.
        case.validate_response(response, checks=CONFORMANCE)
        if response.status_code < 300 and content_type(response) == "application/json":
            remember_ids(response.json())

    return test  # type: ignore[no-any-return]


test_intake_openapi_fuzz = fuzz_test("intake")
test_eligibility_openapi_fuzz = fuzz_test("eligibility")
test_calculation_openapi_fuzz = fuzz_test("calculation")
test_approval_openapi_fuzz = fuzz_test("approval")
test_disbursement_openapi_fuzz = fuzz_test("disbursement")
test_notification_openapi_fuzz = fuzz_test("notification")


def test_the_fuzzer_got_past_authentication() -> None:
    """Guards the harness itself: cases that all bounce off 401/403 would prove nothing about the handlers."""
    ran = {service: outcomes for service, outcomes in OUTCOMES.items() if outcomes.total()}
    if not ran:
        pytest.skip("no fuzz cases ran (deselected)")
    for service, outcomes in ran.items():
        refused = sum(n for outcome, n in outcomes.items() if outcome.startswith(("401", "403")))
        assert any(outcome.startswith("2") for outcome in outcomes), f"{service}: no case succeeded"
        assert refused < outcomes.total() / 2, f"{service}: {refused} of {outcomes.total()} cases were refused"
