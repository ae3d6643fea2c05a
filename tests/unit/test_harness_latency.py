"""The latency probe's arithmetic: nearest-rank percentiles and error counting."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from branchenv.harness.latency import LatencyStats, percentile, probe, summarize


@pytest.mark.parametrize(
    ("samples", "pct", "expected"),
    [
        ([5.0], 50, 5.0),
        ([5.0], 99, 5.0),
        ([1, 2, 3, 4], 50, 2),
        ([1, 2, 3, 4], 75, 3),
        ([1, 2, 3, 4], 100, 4),
        ([4, 3, 2, 1], 0, 1),  # unsorted input; p0 is the minimum
        (list(range(1, 101)), 95, 95),
        (list(range(1, 101)), 99, 99),
        (list(range(1, 21)), 95, 19),
    ],
)
def test_percentile_nearest_rank(samples: list[float], pct: float, expected: float) -> None:
    assert percentile(samples, pct) == expected


@pytest.mark.parametrize(("samples", "pct"), [([], 50), ([1.0], -1), ([1.0], 101)])
def test_percentile_rejects_bad_input(samples: list[float], pct: float) -> None:
    with pytest.raises(ValueError):
        percentile(samples, pct)


@given(st.lists(st.floats(min_value=0, max_value=1e6, allow_nan=False), min_size=1, max_size=200))
def test_summary_is_ordered_and_observed(samples: list[float]) -> None:
    s = summarize("x", samples, errors=0)
    assert s.min_ms <= s.p50_ms <= s.p95_ms <= s.p99_ms <= s.max_ms
    assert {s.p50_ms, s.p95_ms, s.p99_ms} <= set(samples)
    assert s.count == len(samples)


def test_probe_times_every_call_and_counts_errors() -> None:
    ticks = itertools.count()
    calls = iter([200, 503, ValueError("boom"), 404])

    class Response:
        def __init__(self, status: int) -> None:
            self.status_code = status

    def call() -> Response:
        item = next(calls)
        if isinstance(item, Exception):
            raise item
        return Response(item)

    # each call spans exactly one clock tick (1 s), errors included
    stats = probe(call, n=4, name="t", clock=lambda: float(next(ticks)))
    assert stats.count == 4 and stats.errors == 2  # the 503 and the exception; 404 is an answer
    assert stats.p50_ms == stats.max_ms == 1000.0


def test_stats_round_trip_json() -> None:
    s = summarize("GET /x", [1.0, 2.0, 3.0], errors=1)
    assert LatencyStats.from_json(s.to_json()) == s
    assert s.error_rate == pytest.approx(1 / 3)


def test_probe_needs_a_request() -> None:
    with pytest.raises(ValueError):
        probe(lambda: None, n=0)
