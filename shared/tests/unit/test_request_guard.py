"""The request guard: media type, size while streaming, strict JSON; and header parsing of signatures."""

from collections.abc import Iterator

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from shared.problems import install_problem_handlers
from shared.request_guard import RequestGuard, parse_json, parsed_json
from shared.security.hospital_signing import hex_digest_matches, signed_headers, verify


def app() -> FastAPI:
    application = FastAPI()
    install_problem_handlers(application)
    application.add_middleware(RequestGuard, max_body_bytes=100, media_types={"/csv": frozenset({"text/csv"})},
                               signed_prefixes=("/signed",))

    @application.post("/json")
    async def echo(request: Request) -> object:
        return {"got": parsed_json(request)}

    @application.post("/csv")
    async def csv(request: Request) -> dict[str, int]:
        return {"bytes": len(await request.body())}

    @application.post("/signed")
    async def signed(request: Request) -> object:
        if request.headers.get("x-ok") != "yes":
            return {"refused": "unsigned"}  # stands for the 401 a real signature check answers first
        return {"got": parsed_json(request)}

    return application


client = TestClient(app(), raise_server_exceptions=False)
JSON = {"Content-Type": "application/json"}


@pytest.mark.parametrize(("path", "body", "headers", "status", "code"), [
    ("/json", b'{"a": 1}', JSON, 200, None),
    ("/json", b'{"a": 1}', {"Content-Type": "application/json; charset=UTF-8"}, 200, None),
    ("/json", b'{"a": 1}', {"Content-Type": "text/plain"}, 415, "unsupported_media_type"),
    ("/json", b'{"a": 1}', {"Content-Type": "application/json; charset=utf-16"}, 415, "unsupported_media_type"),
    ("/json", b'{"a": 1}', {}, 415, "unsupported_media_type"),
    ("/json", b"a,b\n", {"Content-Type": "text/csv"}, 415, "unsupported_media_type"),
    ("/csv", b"a,b\n", {"Content-Type": "text/csv"}, 200, None),
    ("/json", b'{"a": 1, "a": 2}', JSON, 400, "duplicate_key"),
    ("/json", b'{"a": {"b": 1, "b": 1}}', JSON, 400, "duplicate_key"),
    # compact JSON, which orjson reads first (shared.request_guard._orjson_agrees), refused all the same:
    ("/json", b'{"a":1,"a":2}', JSON, 400, "duplicate_key"),
    ("/json", b'{"a":{"b":1,"b":1}}', JSON, 400, "duplicate_key"),
    ("/json", b'{"a":1,"a" :2}', JSON, 400, "duplicate_key"),
    ("/json", b'{"a":1,"a"\n:2}', JSON, 400, "duplicate_key"),
    ("/json", b'{"k":":","k":1}', JSON, 400, "duplicate_key"),
    ("/json", b'{"a\\"":1,"a\\"":2}', JSON, 400, "duplicate_key"),
    ("/json", b'{"a":":b","c":"d\\":"}', JSON, 200, None),
    ("/json", b'{"a":NaN}', JSON, 200, None),  # as the standard parser has always read it
    ("/json", b"[" * 33 + b"]" * 33, JSON, 400, "too_deep"),
    ("/json", b"[" * 32 + b"]" * 32, JSON, 200, None),
    ("/json", b'{"a": ', JSON, 400, "malformed_json"),
    ("/json", b"\xff\xfe", JSON, 400, "malformed_json"),
    ("/json", b" " * 101, JSON, 413, "payload_too_large"),
    ("/csv", b" " * 101, {"Content-Type": "text/csv"}, 413, "payload_too_large"),
    ("/signed", b'{"a": 1, "a": 2}', JSON, 200, None),  # the handler refuses it unsigned, before reading it
    ("/signed", b'{"a": 1, "a": 2}', {**JSON, "X-Ok": "yes"}, 400, "duplicate_key"),
])
def test_bodies_are_refused_by_form(path: str, body: bytes, headers: dict[str, str], status: int,
                                    code: str | None) -> None:
    response = client.post(path, content=body, headers=headers)
    assert response.status_code == status, response.text
    if code:
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == code


def test_a_chunked_body_is_counted_as_it_streams() -> None:
    def chunks() -> Iterator[bytes]:
        yield b"[1,"
        yield b" " * 200
        yield b"2]"

    response = client.post("/json", content=chunks(), headers=JSON)
    assert response.status_code == 413


@pytest.mark.parametrize("body", [
    b'{"items":[{"a":"1","b":{"c":2}},{"a":"x\\u738b:"}]}', b'{"a": 1, "b": [1, 2, {"c": null}]}', b'[]', b'"s"',
    b'{"a":":"}', b'{"\\"":1}', b'{"a":1.5e3,"b":-0,"c":true}', "{\"名\":\"王芳\"}".encode(),
    b'{"a":-9223372036854775809,"b":18446744073709551616,"c":999999999999999999}', b'{"a":"6222021234567890123"}',
])
def test_both_parsers_read_the_same_document(body: bytes) -> None:
    import json

    parsed, strict = parse_json(body, max_depth=32), json.loads(body)
    assert parsed == strict and repr(parsed) == repr(strict)  # the same values of the same types


def test_the_parser_fails_cleanly_far_beyond_its_recursion_limit() -> None:
    with pytest.raises(ValueError):
        parse_json(b"[" * 50_000 + b"]" * 50_000, max_depth=32)


SECRETS = {"H1": ["s3cret"]}


@pytest.mark.parametrize(("header", "value"), [
    ("X-Timestamp", "９" * 10), ("X-Timestamp", "٣" * 10), ("X-Timestamp", "9" * 5000), ("X-Timestamp", "-5"),
    ("X-Timestamp", "1e9"), ("X-Signature", "é" * 64), ("X-Signature", "０" * 64), ("X-Signature", "0" * 63),
    ("X-Signature", "g" * 64), ("X-Hospital-Id", "Ｈ1"),
])
def test_signature_headers_are_parsed_defensively(header: str, value: str) -> None:
    from shared.problems import ProblemError

    headers = signed_headers("H1", "s3cret", "POST", "/p", b"{}", now=1_800_000_000)
    verify(headers, "POST", "/p", b"{}", SECRETS, now=1_800_000_000)
    with pytest.raises(ProblemError) as raised:
        verify({**headers, header: value}, "POST", "/p", b"{}", SECRETS, now=1_800_000_000)
    assert raised.value.status == 401


@pytest.mark.parametrize(("given", "match"), [
    ("ab" * 32, True), ("AB" * 32, True), ("ab" * 31, False), ("é" * 64, False), (None, False), ("", False)])
def test_hex_digests_compare_without_raising(given: str | None, match: bool) -> None:
    assert hex_digest_matches(["ab" * 32], given) is match
