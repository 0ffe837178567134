"""Every request body is checked before any handler, dependency or signature check sees it.

- `Content-Type` must be `application/json` (or a type the route declares, such as CSV for the registry
  import): 415 otherwise, decided from the headers before a byte of the body is read;
- the body may be at most `max_body_bytes`: a larger `Content-Length` is a 413 at once, and a body without
  one (chunked) is counted while it streams in and refused as soon as it passes the limit, so no request,
  signed or not, makes the service buffer more than the limit;
- JSON is parsed strictly: duplicate keys are refused (400 `duplicate_key`: otherwise one reader takes the
  first and another the last), and so is nesting deeper than `max_depth` (400 `too_deep`), before the
  parser's recursion could fail. The parsed document is kept for the handler (`parsed_json`). orjson reads
  first; the standard parser decides whenever orjson's document is not proven free of repeated keys
  (`parse_json`, docs/decisions/0034).

Routes that authenticate the raw bytes themselves (hospital signatures, bank callbacks) are listed as
`signed_prefixes`: for them a JSON problem is not answered at once but by `parsed_json`, which the handler calls
after the signature, so an unsigned request gets its 401 whatever its body holds.
"""

import json
import re
from collections.abc import Mapping
from typing import Any

import orjson
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.problems import ProblemError, problem_response

JSON = "application/json"
_BODYLESS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})
_STATE_KEY, _PROBLEM_KEY = "medassist.json", "medassist.json_problem"


class _DuplicateKey(ValueError):
    pass


class _TooDeep(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise _DuplicateKey
    return result


def _depth_and_keys(document: Any, limit: int) -> int | None:
    """The number of keys of every object in a parsed document (plain dicts and lists); None when it nests
    deeper than `limit`. Level by level, iteratively, so a document just inside the parser's own limit cannot
    overflow the stack here either."""
    keys, depth = 0, 0
    level = [document] if type(document) is dict or type(document) is list else []
    while level:
        depth += 1
        if depth > limit:
            return None
        below: list[Any] = []
        for value in level:
            children: Any = value
            if type(value) is dict:
                keys += len(value)
                children = value.values()
            below += [child for child in children if type(child) is dict or type(child) is list]
        level = below
    return keys


_QUOTE_THEN_SPACE = re.compile(rb'"[ \t\n\r]')
# orjson reads an integer beyond 64 bits as a float; one of 18 digits never is. Runs of digits are found as runs
# of zeros once every digit is a zero (a regular expression scans several times slower).
_DIGITS_AS_ZERO, _19_DIGITS = bytes.maketrans(b"123456789", b"000000000"), b"0" * 19


def _orjson_agrees(body: bytes, keys: int) -> bool:
    """Whether orjson's document (with `keys` keys in all) is the one the strict parser would return.

    orjson keeps the last of repeated keys instead of refusing them, and reads an integer beyond 64 bits (19
    digits or more) as a float. So its document is taken only for text without a run of 19 digits, in which no
    quote is followed by whitespace (compact JSON, as clients write it), and which holds no more keys than the
    document: there every key's closing quote is followed by its colon, so `":` occurs at least once per key
    written (more often when a string holds or starts with a colon); if it occurs as often as the document has
    keys, no key was written twice. False otherwise, and the strict parser decides."""
    return (body.count(b'":') == keys and _QUOTE_THEN_SPACE.search(body) is None
            and _19_DIGITS not in body.translate(_DIGITS_AS_ZERO))


def parse_json(body: bytes, max_depth: int) -> Any:
    """The document; ValueError subclasses for malformed JSON, duplicate keys or nesting beyond `max_depth`.

    orjson parses first (a quarter of the standard parser's CPU, which calls back into Python for every object
    to see its keys); when it fails, or its document is not proven to be the strict parser's (`_orjson_agrees`),
    the standard parser decides, so every document, every refusal and its reason are the strict parser's."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    else:
        keys = _depth_and_keys(document, max_depth)
        if keys is not None and _orjson_agrees(body, keys):
            return document
    try:
        document = json.loads(body, object_pairs_hook=_no_duplicates)
    except RecursionError:
        raise _TooDeep from None
    if _depth_and_keys(document, max_depth) is None:
        raise _TooDeep
    return document


def parsed_json(request: Request) -> Any:
    """The JSON body the guard parsed (strictly) for this request, None for an empty body; on a signed route,
    the 400 problem of a body that was not acceptable JSON."""
    state = request.scope.get("state", {})
    if _PROBLEM_KEY in state:
        raise state[_PROBLEM_KEY]
    return state.get(_STATE_KEY)


def _json_problem(body: bytes, max_depth: int) -> tuple[Any, ProblemError | None]:
    try:
        return parse_json(body, max_depth), None
    except _DuplicateKey:
        return None, ProblemError(400, "duplicate_key", "a JSON object names the same key twice")
    except _TooDeep:
        return None, ProblemError(400, "too_deep", f"JSON nested deeper than {max_depth} levels")
    except ValueError:  # includes UnicodeDecodeError
        return None, ProblemError(400, "malformed_json", "the body is not valid JSON")


class RequestGuard:
    """ASGI middleware: media type, streaming size limit, strict JSON (see the module docstring)."""

    def __init__(self, app: ASGIApp, max_body_bytes: int, media_types: Mapping[str, frozenset[str]] | None = None,
                 signed_prefixes: tuple[str, ...] = (), max_depth: int = 32) -> None:
        self.app, self.max_body_bytes, self.max_depth = app, max_body_bytes, max_depth
        self.media_types, self.signed_prefixes = media_types or {}, signed_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in _BODYLESS:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        refusal = self._refuse_by_headers(scope, headers)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await self._too_large()(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if body and _media_type(headers) == JSON:
            document, problem = _json_problem(body, self.max_depth)
            state = scope.setdefault("state", {})
            if problem is None:
                state[_STATE_KEY] = document
            elif scope["path"].startswith(self.signed_prefixes):
                state[_PROBLEM_KEY] = problem  # answered by parsed_json, after the signature
            else:
                await problem_response(problem.status, problem.code, problem.message)(scope, receive, send)
                return
        await self.app(scope, _replay(body, receive), send)

    def _refuse_by_headers(self, scope: Scope, headers: Headers) -> Any:
        length = headers.get("content-length")
        if length is not None:
            if not (length.isascii() and length.isdigit()) or len(length) > 18:
                return problem_response(400, "bad_request", "Content-Length is not a number", field="Content-Length")
            if int(length) > self.max_body_bytes:
                return self._too_large()
        has_body = (length is not None and int(length) > 0) or "transfer-encoding" in headers
        if not has_body:
            return None
        allowed = {JSON, *self.media_types.get(scope["path"], ())}
        media_type = _media_type(headers)
        charset = _charset(headers)
        if media_type not in allowed or charset not in (None, "utf-8"):
            return problem_response(415, "unsupported_media_type",
                                    f"send the body as {' or '.join(sorted(allowed))} (UTF-8)", field="Content-Type")
        return None

    def _too_large(self) -> Any:
        return problem_response(413, "payload_too_large", f"the body exceeds {self.max_body_bytes} bytes")


def _media_type(headers: Headers) -> str:
    return headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _charset(headers: Headers) -> str | None:
    for parameter in headers.get("content-type", "").split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip('"').lower()
    return None


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
