"""The partner session: a request is instrumented (client span, traceparent) exactly where the services' sampler
can record its client span, and goes through a plain session elsewhere (ADR 0053)."""

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags

from shared.http_client import PartnerSession, client_span_recorded
from shared.testing import serving
from shared.tests.unit.test_telemetry import _contexts, production


@pytest.mark.parametrize("ratio", [0.0, 1.0])
def test_the_client_span_is_skipped_exactly_where_the_sampler_would_not_record_it(ratio: float) -> None:
    tracer, _, _ = production(ratio)
    decided = {}
    for name, context in _contexts(tracer).items():
        recorded = tracer.start_span("POST", context=context, kind=SpanKind.CLIENT).is_recording()
        assert client_span_recorded(trace.get_current_span(context).get_span_context()) is recorded, name
        decided[name] = recorded
    # a parentless call (the resolver's status inquiry) is a root: sampled by ratio or record-only, as before
    assert decided == {"none": True, "remote sampled": True, "remote unsampled": True, "local sampled": True,
                       "local record-only": False, "local UnsampledEntry": False}


@pytest.fixture
async def partner() -> AsyncIterator[tuple[list[str | None], str]]:
    seen: list[str | None] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(request.headers.get("traceparent"))
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/v1/things", handle)
    async with serving(app) as url:
        yield seen, url


def within(sampled: bool, remote: bool = False) -> Any:
    flags = TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
    context = SpanContext(int(uuid.uuid4().hex, 16), int(uuid.uuid4().hex[:16], 16), remote, flags)
    return trace.use_span(NonRecordingSpan(context))


async def test_only_a_request_whose_span_can_be_recorded_is_traced_and_carries_the_trace(
        partner: tuple[list[str | None], str]) -> None:
    seen, url = partner
    session = PartnerSession(url, timeout_s=2.0)
    try:
        for sampled, remote in ((True, False), (False, False), (False, True)):
            with within(sampled, remote):
                chosen = session.session()
                async with session.request("POST", "/v1/things", json={}) as response:
                    assert response.status == 200
            assert chosen is (session.plain if (sampled, remote) == (False, False) else session.traced)
        assert session.session() is session.traced, "no current span: a root of its own, traced as before"
    finally:
        await session.close()
    assert [s is not None for s in seen] == [True, False, True]
    assert seen[0] is not None and seen[0].endswith("-01")
