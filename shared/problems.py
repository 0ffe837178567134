"""RFC 9457 problem details: every error any service returns has a stable code, a message and the field."""

import functools
import logging
from collections.abc import Sequence
from typing import Any, TypeVar

import asyncpg
import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.errors import Conflict, DomainError, Forbidden, Invalid, NotFound

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)
MEDIA_TYPE = "application/problem+json"
_STATUS_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                 405: "method_not_allowed", 406: "not_acceptable", 409: "conflict", 413: "payload_too_large",
                 415: "unsupported_media_type", 422: "invalid_input", 429: "too_many_requests"}


RETRY_AFTER_S = 5  # what a 503 tells clients to wait before retrying
_OUTAGES = (
    OSError,  # refused, reset, unreachable, timed out (TimeoutError is an OSError)
    asyncpg.PostgresConnectionError, asyncpg.exceptions.OperatorInterventionError,  # lost, shutting down
    asyncpg.exceptions.InsufficientResourcesError, asyncpg.InterfaceError,  # too many connections, closed
    sqlalchemy.exc.TimeoutError,  # no pooled connection came free in time
)
_CONTENTION = (asyncpg.exceptions.TransactionRollbackError,)  # deadlock or serialization failure: retry
_DOMAIN_STATUS: dict[type[DomainError], int] = {NotFound: 404, Conflict: 409, Forbidden: 403, Invalid: 422}


class ProblemError(Exception):
    """Raise anywhere in a request to answer with a problem document."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None,
                 errors: list[dict[str, Any]] | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field, self.errors = status, code, message, field, errors
        self.headers = headers


def dependency_failure(exc: BaseException) -> ProblemError | None:
    """A 503 problem (with Retry-After) when `exc` is an outage of a dependency rather than a defect.

    Follows the exception's causes, because SQLAlchemy wraps the driver's error and the driver wraps the
    socket's. None for anything else (a bug stays a 500)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, sqlalchemy.exc.DBAPIError) and current.connection_invalidated:
            break
        if isinstance(current, _CONTENTION):
            return ProblemError(503, "database_busy", "the database could not finish this now; retry it",
                                headers={"Retry-After": "1"})
        if isinstance(current, _OUTAGES):
            break
        current = current.__cause__ or current.__context__
    else:
        return None
    return ProblemError(503, "database_unavailable", "a service this depends on is unavailable; nothing was "
                        "stored, retry later", headers={"Retry-After": str(RETRY_AFTER_S)})


def problem_response(status: int, code: str, message: str, field: str | None = None,
                     errors: list[dict[str, Any]] | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    """A problem+json response: {type, title, status, detail, code, field[, errors]}."""
    body: dict[str, Any] = {
        "type": f"https://medassist.example/problems/{code}",
        "title": code.replace("_", " "),
        "status": status,
        "detail": message,
        "code": code,
        "field": field,
    }
    if errors:
        body["errors"] = errors
    if status == 503:
        headers = {"Retry-After": str(RETRY_AFTER_S), **(headers or {})}
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def validated(model: type[M], data: Any) -> M:
    """`data` (already parsed JSON, or a form) as `model`, or the same 422 problem a request body gets.

    For bodies a route reads itself (signed callbacks, multi-format uploads); input values are never echoed."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_input=False)) from None


@functools.cache
def _list_of(model: type[BaseModel]) -> TypeAdapter[list[Any]]:
    return TypeAdapter(list[model])  # type: ignore[valid-type]  # a model class known only at run time


def validated_items(model: type[M], items: Sequence[Any], *, field: str, noun: str = "item",
                    whole: str = "the batch") -> list[M]:
    """Every item of a batch (`items`, found at `field` of the body) as `model`, validated in one call, or one
    422 problem naming every invalid item: each error's `field` starts `<field>.<index>` and its `index` is the
    item's. All or nothing: the caller stores none of a batch with one bad item. Input values are never echoed."""
    try:
        valid: list[M] = _list_of(model).validate_python(items)
    except ValidationError as exc:
        errors: list[dict[str, Any]] = [
            {"field": ".".join(str(p) for p in (field, *e["loc"])), "code": e["type"], "message": e["msg"],
             "index": e["loc"][0]} for e in exc.errors(include_input=False)]
        raise ProblemError(422, "invalid_input", f"{len({e['index'] for e in errors})} {noun}(s) invalid; {whole} "
                           "was refused whole and nothing was stored", field=errors[0]["field"], errors=errors
                           ) from None
    return valid


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:] if parts[0] == "body" else parts
    return ".".join(parts)


def install_problem_handlers(app: FastAPI) -> None:
    """Map every error to problem+json; input values are never echoed (they may be national IDs)."""

    @app.exception_handler(ProblemError)
    async def _problem(_: Request, exc: ProblemError) -> JSONResponse:
        return problem_response(exc.status, exc.code, exc.message, exc.field, exc.errors, exc.headers)

    @app.exception_handler(DomainError)
    async def _domain(_: Request, exc: DomainError) -> JSONResponse:
        status = next((s for kind, s in _DOMAIN_STATUS.items() if isinstance(exc, kind)), 422)
        return problem_response(status, exc.code, exc.message, exc.field, exc.errors)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"field": _field(tuple(e.get("loc", ()))), "code": e.get("type", "invalid"),
                   "message": e.get("msg", "invalid")} for e in exc.errors()]
        if any(e["code"] == "json_invalid" for e in errors):
            return problem_response(400, "malformed_json", "the body is not valid JSON")
        return problem_response(422, "invalid_input", "the request is invalid; nothing was stored",
                                errors[0]["field"] if errors else None, errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        return problem_response(exc.status_code, code, message, headers=getattr(exc, "headers", None))

    async def _dependency(_: Request, exc: Exception) -> JSONResponse:
        # Registered per class (not only under Exception), so the answer comes from inside the app and the
        # server keeps the connection: a client retrying an outage on a kept-alive connection gets its 503.
        outage = dependency_failure(exc)
        if outage is None:
            log.error("unhandled error: %s", type(exc).__name__, exc_info=exc)
            return problem_response(500, "internal_error", "an internal error occurred; it has been logged")
        log.warning("answered 503 %s: %s", outage.code, type(exc).__name__)
        return problem_response(503, outage.code, outage.message, headers=outage.headers)

    for kind in (*_OUTAGES, *_CONTENTION, sqlalchemy.exc.DBAPIError):
        app.add_exception_handler(kind, _dependency)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        if dependency_failure(exc) is not None:  # wrapped in something else: still an outage
            return await _dependency(request, exc)
        log.error("unhandled error: %s", type(exc).__name__, exc_info=exc)
        return problem_response(500, "internal_error", "an internal error occurred; it has been logged")
