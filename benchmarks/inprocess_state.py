"""Benchmark: one journaled state write of the inprocess engine (an 18-resource stack, the
demo's size): JSON, a unique temp file, fsync, the ``.bak`` hard link, the rename. Each create
or delete costs two of them (intent, then settle). Run on demand:

    .venv/bin/python benchmarks/inprocess_state.py [--writes 200]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=200)
    args = parser.parse_args()

    from branchenv.engines.inprocess.state import ResourceEntry, StackState, StateStore

    root = Path(tempfile.mkdtemp(prefix="bench-state-"))
    store = StateStore(root)
    state = StackState(
        project="bench",
        stack="s",
        target={"name": "local"},
        tags={"branchenv:managed-by": "branchenv"},
        resources=[
            ResourceEntry(
                urn=f"urn:pulumi:s::bench::aws:sqs/queue:Queue::q{i}",
                type="aws:sqs/queue:Queue",
                name=f"q{i}",
                id=f"http://127.0.0.1:5000/123456789012/q{i}",
                outputs={"arn": f"arn:aws:sqs:us-east-1:123456789012:q{i}", "pad": "x" * 400},
                dependencies=[],
                inputs={"name": f"q{i}", "visibilityTimeoutSeconds": 30},
                tags={"branchenv:stack": "s"},
            )
            for i in range(18)
        ],
        outputs={},
    )
    times = []
    for _ in range(args.writes):
        t0 = time.perf_counter()
        store.save(state)
        times.append(time.perf_counter() - t0)
    times.sort()
    print(
        f"state write (18 resources, fsync + backup link): median {statistics.median(times) * 1000:.2f} ms, "
        f"p95 {times[int(len(times) * 0.95) - 1] * 1000:.2f} ms over {args.writes} writes"
    )
    print(f"per created resource (intent + settle): ~{2 * statistics.median(times) * 1000:.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
