"""Benchmark: `up` + `down` of the demo stack on the local cloud with the inprocess engine.

Goal: < 10 s for up and down together on this 2-core machine. Run on demand:

    .venv/bin/python benchmarks/provision.py [--runs 3]

Each run provisions a fresh branch stack (18 resources), checks its endpoint answers
``GET /health``, re-runs ``up`` (the idempotent no-change path), then destroys it. A private
local cloud is started for the benchmark and stopped afterwards; its start-up is timed too.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    import requests

    from branchenv.config import Settings
    from branchenv.engines import get_engine
    from branchenv.engines.base import ProgramInputs
    from branchenv.localcloud import LocalCloud
    from branchenv.metadata import StackMetadata
    from branchenv.naming import names_for
    from branchenv.programs import detect_program

    state = Path(tempfile.mkdtemp(prefix="bench-provision-"))
    cloud = LocalCloud(state)
    t0 = time.perf_counter()
    target = cloud.ensure("us-east-1")
    cloud_start = time.perf_counter() - t0
    engine = get_engine("inprocess", settings=Settings(project_dir=state), target=target)
    program = detect_program(REPO / "infra" / "aws")
    ups, reups, downs, firsts = [], [], [], []
    try:
        for i in range(args.runs):
            names = names_for(f"bench/{uuid.uuid4().hex[:6]}")
            md = StackMetadata.create(
                stack=names.stack,
                branch=names.branch,
                owner="bench",
                commit="0" * 40,
                ttl=dt.timedelta(hours=1),
                now=dt.datetime.now(dt.UTC),
                target="local",
                engine="inprocess",
            )
            inputs = ProgramInputs(
                prefix=names.prefix,
                profile="ephemeral",
                tags=md.to_tags(),
                region=target.region,
                functions_url=target.functions_url,
            )
            t = time.perf_counter()
            result = engine.up(
                stack=names.stack, program=program, target=target, metadata=md, inputs=inputs
            )
            ups.append(time.perf_counter() - t)
            t = time.perf_counter()
            health = requests.get(f"{result.outputs['endpoint']}/health", timeout=30)
            firsts.append(time.perf_counter() - t)
            assert health.status_code == 200, health.text
            t = time.perf_counter()
            engine.up(stack=names.stack, program=program, target=target, metadata=md, inputs=inputs)
            reups.append(time.perf_counter() - t)
            t = time.perf_counter()
            engine.destroy(stack=names.stack, program=program, target=target)
            downs.append(time.perf_counter() - t)
            print(
                f"run {i + 1}: up {ups[-1]:.2f} s, first request {firsts[-1]:.2f} s, "
                f"re-up {reups[-1]:.2f} s, down {downs[-1]:.2f} s",
                flush=True,
            )
    finally:
        cloud.stop()

    med_up, med_down = statistics.median(ups), statistics.median(downs)
    print()
    print(f"local cloud start:        {cloud_start:.2f} s")
    print(
        f"up   (18 resources):      median {med_up:.2f} s  (min {min(ups):.2f}, max {max(ups):.2f})"
    )
    print(f"re-up (no changes):       median {statistics.median(reups):.2f} s")
    print(f"first request (cold):     median {statistics.median(firsts):.2f} s")
    print(f"down:                     median {med_down:.2f} s")
    total = med_up + med_down
    verdict = "met" if total < 10 else "MISSED"
    print(f"up + down:                {total:.2f} s   goal < 10 s: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
