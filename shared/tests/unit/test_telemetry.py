"""Which spans are sampled: parentless database statements are dropped, everything else follows the default."""

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased

from shared.telemetry import NoParentlessQueries


def test_parentless_queries_are_dropped_and_queries_inside_a_trace_are_kept() -> None:
    tracer = TracerProvider(sampler=NoParentlessQueries(ParentBased(ALWAYS_ON))).get_tracer("test")
    query = {"db.system": "postgresql"}
    assert not tracer.start_span("SELECT", attributes=query).is_recording()
    assert not tracer.start_span("SELECT", attributes={"db.system.name": "postgresql"}).is_recording()
    assert tracer.start_span("settlement accepted").is_recording()
    with tracer.start_as_current_span("settlement.received process") as parent:
        child = tracer.start_span("INSERT", attributes=query)
        assert child.is_recording()
        assert child.get_span_context().trace_id == parent.get_span_context().trace_id
    assert trace.get_current_span() is trace.INVALID_SPAN
