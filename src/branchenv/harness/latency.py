"""The latency probe: N calls -> p50/p95/p99 and an error count.

A call is any zero-argument function; it counts as an error when it raises or when ``ok``
rejects its result (for HTTP: a response with a 5xx status, by default). Every call is timed,
errors included: a request that fails slowly is still slow.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class LatencyStats:
    """Summary of one probe. Times in milliseconds."""

    name: str
    count: int
    errors: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    min_ms: float
    max_ms: float
    mean_ms: float

    @property
    def error_rate(self) -> float:
        return self.errors / self.count if self.count else 0.0

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LatencyStats:
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls)})


def percentile(samples: Sequence[float], pct: float) -> float:
    """The ``pct`` percentile (0-100) of ``samples`` by the nearest-rank method.

    Nearest rank never reports a value that was not observed, and p100 is the maximum.
    """
    if not samples:
        raise ValueError("percentile of no samples")
    if not 0 <= pct <= 100:
        raise ValueError(f"percentile must be within 0..100, got {pct}")
    ordered = sorted(samples)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def summarize(name: str, durations_ms: Sequence[float], errors: int) -> LatencyStats:
    """Stats over measured durations (ms); ``errors`` of them failed."""
    if not durations_ms:
        raise ValueError("a latency probe needs at least one request")
    return LatencyStats(
        name=name,
        count=len(durations_ms),
        errors=errors,
        p50_ms=percentile(durations_ms, 50),
        p95_ms=percentile(durations_ms, 95),
        p99_ms=percentile(durations_ms, 99),
        min_ms=min(durations_ms),
        max_ms=max(durations_ms),
        mean_ms=sum(durations_ms) / len(durations_ms),
    )


def http_ok(response: Any) -> bool:
    """Default success test for HTTP responses: anything below 500 (4xx is an answer)."""
    status = getattr(response, "status_code", None)
    return status is None or int(status) < 500


def probe(
    call: Callable[[], T],
    *,
    n: int = 50,
    name: str = "probe",
    ok: Callable[[T], bool] = http_ok,
    clock: Callable[[], float] = time.perf_counter,
) -> LatencyStats:
    """Run ``call`` ``n`` times in a row and summarize how long each took."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    durations: list[float] = []
    errors = 0
    for _ in range(n):
        start = clock()
        try:
            result = call()
        except Exception:
            errors += 1
        else:
            if not ok(result):
                errors += 1
        durations.append((clock() - start) * 1000.0)
    return summarize(name, durations, errors)
