"""The background refill's process (started by :func:`branchenv.pool.refill.start_for` as
``python -m branchenv.pool.refill_worker``): it fills the pool through :mod:`branchenv.pool`,
which imports :mod:`branchenv.pool.refill` to start it, so this side lives apart (no import
cycle)."""

from __future__ import annotations

import os
import sys

from branchenv import detached
from branchenv.pool.refill import RefillSpec, _log, _record, paths, run


def fill_once(spec: RefillSpec) -> int:
    """One fill pass of the spec's pool: 0 when it is full, 1 when it failed (said)."""
    from branchenv import pool, provision
    from branchenv.errors import BranchenvError, one_line

    try:
        ctx = provision.resolve(
            spec.settings,
            branch="pool",
            target=spec.target,
            engine=spec.engine,
            program=spec.program,
        )
        if pool.pool_name(ctx) != spec.pool:
            _log(f"the program now makes pool {pool.pool_name(ctx)}, not {spec.pool}: left alone")
            return 1
        done = pool.fill(ctx, say=_log)
    except BranchenvError as exc:
        _log(f"fill failed: {exc}")
        return 1
    except Exception as exc:  # one line in the log, never a traceback (it may quote values)
        _log(f"fill failed: {one_line(exc, limit=300)}")
        return 1
    _log(
        f"pool {done.pool}: {len(done.created) + len(done.present)} of {done.size}; created "
        f"{', '.join(done.created) or 'none'} [{done.duration_s:.1f} s]"
    )
    return 0


def main() -> int:
    """The refill process: read the spec, detach, say ``started <pid>``, fill."""
    from branchenv.harness.watchdog import read_line

    spec = RefillSpec.decode(read_line(0))
    # Nobody's child in the releasing command's tree (a runner that kills that tree does not
    # reach it); the lock names this process before the release hears of it.
    detached.detach("started", before_saying=lambda: _record(spec.lock_fd))
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    os.close(devnull)
    where = paths(spec.settings, pool=spec.pool, target=spec.target, engine=spec.engine)
    _log(f"refilling pool {spec.pool} ({spec.engine} engine, {spec.target})")
    code = run(spec, where.wanted, fill=lambda: fill_once(spec))
    _log(f"done (exit {code})")
    return code


if __name__ == "__main__":
    # Run as the importable module, not as ``__main__``: the spec's class must be the one the
    # release pickled.
    from branchenv.pool.refill_worker import main as _main

    sys.exit(_main())
