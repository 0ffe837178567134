"""OpenTelemetry and structured logging, set up once per process."""

import json
import logging
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult, _get_from_env_or_default
from opentelemetry.trace import Link, SpanKind
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes

_configured = False


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the current trace and span ids."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "service": self._service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            entry["trace_id"] = format(span.trace_id, "032x")
            entry["span_id"] = format(span.span_id, "016x")
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class NoParentlessQueries(Sampler):
    """Drops database spans that belong to no trace; everything else goes to the configured sampler.

    Background loops (outbox relay, payment workers, queue gauges) query the database many times a second.
    Without this each statement would be a trace of its own: about 1,000 one-span traces a second on an idle
    stack, which floods the trace store and costs CPU. Statements made while handling a request or an event
    have a parent and stay in their settlement's trace.
    """

    def __init__(self, delegate: Sampler) -> None:
        self._delegate = delegate

    def should_sample(self, parent_context: Context | None, trace_id: int, name: str,
                      kind: SpanKind | None = None, attributes: Attributes = None,
                      links: Sequence[Link] | None = None, trace_state: TraceState | None = None) -> SamplingResult:
        parent = trace.get_current_span(parent_context).get_span_context()
        if not parent.is_valid and attributes and (attributes.get("db.system") or attributes.get("db.system.name")):
            return SamplingResult(Decision.DROP)
        return self._delegate.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)

    def get_description(self) -> str:
        return f"NoParentlessQueries{{{self._delegate.get_description()}}}"


def setup_telemetry(service_name: str, log_level: str = "INFO") -> None:
    """Tracer provider and JSON logs on stderr.

    Spans go to OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set (a collector) and to Zipkin when
    OTEL_EXPORTER_ZIPKIN_ENDPOINT is set (the local trace viewer); to both when both are.
    """
    global _configured
    if _configured:
        return
    _configured = True
    # The sampler named by OTEL_TRACES_SAMPLER (default: parent-based, always on), minus parentless queries.
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}),
                              sampler=NoParentlessQueries(_get_from_env_or_default()))
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    if os.environ.get("OTEL_EXPORTER_ZIPKIN_ENDPOINT"):  # the local trace viewer (docs/decisions/0014)
        from opentelemetry.exporter.zipkin.json import ZipkinExporter

        provider.add_span_processor(BatchSpanProcessor(ZipkinExporter()))
    trace.set_tracer_provider(provider)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service_name))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(log_level)
    for noisy in ("aiokafka", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


tracer = trace.get_tracer("medassist")


def traceparent_of(span: trace.Span) -> str | None:
    """The W3C traceparent of a span, to store with a row whose later work continues the same trace."""
    ctx = span.get_span_context()
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-01" if ctx.is_valid else None


def context_from(traceparent: str | None) -> Context:
    """The trace context a stored traceparent continues (an empty context when there is none)."""
    return propagate.extract({"traceparent": traceparent} if traceparent else {})
