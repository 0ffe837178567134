"""The review desk's web console: static pages, a same-origin pass-through to the services' staff APIs, and
the development sign-in (ADR 0020).

The pages are plain HTML, CSS and JavaScript shipped in this package: nothing is loaded from another
origin (the Content-Security-Policy says so to the browser). The pass-through forwards the staff member's
own bearer token; each service still decides what that person may see and do.
"""

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

import httpx
from fastapi import FastAPI, Request, Response
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field

from console.config import ConsoleSettings
from shared.contracts.types import DISTRICT_CODE_PATTERN, SUBDISTRICT_CODE_PATTERN
from shared.problems import ProblemError, install_problem_handlers
from shared.security.staff_auth import Role, mint_dev_token
from shared.telemetry import setup_telemetry

STATIC = Path(__file__).resolve().parent / "static"
# Only the staff APIs pass through; everything else of a service (docs, metrics) stays on its own port.
_PASSED_PREFIXES = ("v1/", "ops/kafka")
# The local Zipkin (make traces) finds a settlement's trace by the settlement.id tag of intake's root span.
LOCAL_TRACE_SEARCH = "http://127.0.0.1:9411/zipkin/?serviceName=intake&annotationQuery=settlement.id%3D{settlement_id}"
_FORWARDED_HEADERS = ("authorization", "content-type", "accept", "traceparent")
_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "no-store",
}


class DevSignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Role
    district_code: Annotated[str | None, Field(pattern=DISTRICT_CODE_PATTERN)] = None
    subdistrict_code: Annotated[str | None, Field(pattern=SUBDISTRICT_CODE_PATTERN)] = None
    subject: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._@-]+$")]


def create_app(settings: ConsoleSettings | None = None) -> FastAPI:
    settings = settings or ConsoleSettings()
    setup_telemetry(settings.service_name, settings.log_level)
    upstreams = settings.upstreams()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with httpx.AsyncClient(timeout=settings.upstream_timeout_s) as client:
            app.state.http = client
            yield

    app = FastAPI(title="Review desk console", lifespan=lifespan, docs_url=None, redoc_url=None)
    install_problem_handlers(app)

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        response.headers.update(_SECURITY_HEADERS)
        return response

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/healthz", include_in_schema=False)
    @app.get("/readyz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/console/config")
    async def config() -> dict[str, Any]:
        """What the sign-in page offers: the development sign-in, or the identity provider's login."""
        oidc = ({"authorize_url": settings.oidc_authorize_url, "client_id": settings.oidc_client_id}
                if settings.oidc_authorize_url and settings.oidc_client_id else None)
        traces = settings.trace_search_url or (LOCAL_TRACE_SEARCH if settings.environment == "development" else None)
        return {"environment": settings.environment, "dev_sign_in": settings.environment == "development",
                "oidc": oidc, "trace_search_url": traces}

    @app.post("/console/dev-sign-in")
    async def dev_sign_in(body: DevSignIn) -> dict[str, str]:
        """Development only: a staff token for the chosen role and area, signed with the development key."""
        if settings.environment != "development":
            raise ProblemError(403, "dev_sign_in_disabled", "the development sign-in exists only in development")
        needs = {Role.clerk: ("district_code", "subdistrict_code"), Role.district_reviewer: ("district_code",)}
        for name in needs.get(body.role, ()):
            if getattr(body, name) is None:
                raise ProblemError(422, "invalid_input", f"a {body.role.value} needs {name}", field=name)
        token = mint_dev_token(settings.jwt_secret.get_secret_value(), body.subject, body.role, body.district_code,
                               body.subdistrict_code if body.role == Role.clerk else None, ttl_s=8 * 3600,
                               issuer=settings.jwt_issuer, audience=settings.jwt_audience)
        return {"token": token}

    @app.api_route("/api/{service}/{path:path}", methods=["GET", "POST"], include_in_schema=False)
    async def pass_through(service: str, path: str, request: Request) -> Response:
        base = upstreams.get(service)
        if base is None or not path.startswith(_PASSED_PREFIXES) or ".." in path:
            raise ProblemError(404, "not_found", "no such API behind the console")
        headers = {k: v for k, v in request.headers.items() if k.lower() in _FORWARDED_HEADERS}
        try:
            upstream = await request.app.state.http.request(
                request.method, f"{base}/{path}", params=request.query_params.multi_items(), headers=headers,
                content=await request.body())
        except httpx.HTTPError as exc:
            raise ProblemError(503, "service_unavailable", f"the {service} service does not answer; try again",
                               headers={"Retry-After": "5"}) from exc
        kept = {k: v for k, v in upstream.headers.items() if k.lower() in ("content-type", "retry-after")}
        return Response(upstream.content, status_code=upstream.status_code, headers=kept)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
