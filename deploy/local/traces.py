"""Where one settlement's trace is in the local Zipkin (make traces): used by the demo and the browser test."""

import os
from typing import Any

import httpx

# The services that one paid settlement's trace crosses, from the hospital's request to the bank call.
JOURNEY = ("intake", "eligibility", "calculation", "approval", "disbursement")


def zipkin_url() -> str:
    return f"http://127.0.0.1:{os.environ.get('ZIPKIN_PORT', '9411')}"


async def zipkin_services(base: str | None = None) -> list[str] | None:
    """The services that sent spans to Zipkin, or None when Zipkin does not answer."""
    try:
        async with httpx.AsyncClient(base_url=base or zipkin_url(), timeout=2) as client:
            response = await client.get("/api/v2/services")
            response.raise_for_status()
            return list(response.json())
    except (httpx.HTTPError, ValueError):
        return None


async def settlement_trace(settlement_id: str, base: str | None = None) -> tuple[str, set[str]] | None:
    """(trace id, services with spans in it) of the trace whose intake span carries this settlement id.

    Intake's "settlement accepted" span is the trace's root and carries `settlement.id`; Zipkin finds it by tag.
    """
    base = base or zipkin_url()
    query = {"serviceName": "intake", "annotationQuery": f"settlement.id={settlement_id}", "limit": "5",
             "lookback": str(24 * 3600 * 1000)}
    async with httpx.AsyncClient(base_url=base, timeout=5) as client:
        response = await client.get("/api/v2/traces", params=query)
        response.raise_for_status()
        traces: list[list[dict[str, Any]]] = response.json()
    if not traces:
        return None
    spans = max(traces, key=len)
    services = {s.get("localEndpoint", {}).get("serviceName", "") for s in spans}
    return spans[0]["traceId"], services


async def trace_spans(trace_id: str, base: str | None = None) -> set[str]:
    """The spans of one trace as the UI labels them: "service: span name"."""
    async with httpx.AsyncClient(base_url=base or zipkin_url(), timeout=5) as client:
        response = await client.get(f"/api/v2/trace/{trace_id}")
        if response.status_code == 404:
            return set()
        response.raise_for_status()
        spans: list[dict[str, Any]] = response.json()
    return {f"{s.get('localEndpoint', {}).get('serviceName', '')}: {s.get('name', '')}" for s in spans}


def trace_page(trace_id: str, base: str | None = None) -> str:
    """The Zipkin UI page of one trace."""
    return f"{base or zipkin_url()}/zipkin/traces/{trace_id}"


def settlement_search_page(settlement_id: str, base: str | None = None) -> str:
    """The Zipkin UI search that finds a settlement's trace by its id (no trace id needed: links from the console)."""
    return f"{base or zipkin_url()}/zipkin/?serviceName=intake&annotationQuery=settlement.id%3D{settlement_id}"
