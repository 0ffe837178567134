"""The collector's pauses as the services record them (shared.service.CollectorPauses)."""

import gc

from prometheus_client import CollectorRegistry, generate_latest

from shared.service import CollectorPauses


def test_each_pass_is_counted_in_its_generation_and_bucket() -> None:
    pauses = CollectorPauses()
    pauses("start", {"generation": 1})
    pauses("stop", {"generation": 1, "collected": 0, "uncollectable": 0})
    gc.callbacks.append(pauses)
    try:
        gc.collect(2)
    finally:
        gc.callbacks.remove(pauses)
    assert [sum(counts) for counts in pauses._counts] == [0, 1, 1]
    assert pauses._max_ns[2] > 0 and pauses._sum_ns[2] >= pauses._max_ns[2]
    pauses("start", {"generation": 0})
    pauses._started -= 30_000_000  # a pass of 30 ms: the 50 ms bucket
    pauses("stop", {"generation": 0, "collected": 0, "uncollectable": 0})
    assert pauses._counts[0][CollectorPauses.BOUNDS_MS.index(50)] == 1
    assert "gen0 1 passes, 30 ms, max 30.0 ms, 1 over 10 ms" in pauses.summary()
    assert pauses.longest_ms() == max(pauses._max_ns) / 1e6 >= 30
    registry = CollectorRegistry()
    registry.register(pauses)
    text = generate_latest(registry).decode()
    assert 'medassist_gc_pause_seconds_bucket{generation="0",le="0.025"} 0.0' in text
    assert 'medassist_gc_pause_seconds_bucket{generation="0",le="0.05"} 1.0' in text
    assert 'medassist_gc_pause_seconds_count{generation="2"} 1.0' in text
