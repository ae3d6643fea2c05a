"""The background refill's lock and loop (issue 17: at most one refill per pool at a time, and
the running one fills to size anyway), with real files and real ``flock`` locks; the refill
as a real detached process is in tests/e2e/test_pool.py."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest

from branchenv.config import Settings, load_settings
from branchenv.pool import refill
from branchenv.pool.claims import Claim
from branchenv.pool.outcome import Refill


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    (tmp_path / "branchenv.toml").write_text("pool_size = 1\n")
    return load_settings(cwd=tmp_path, env={})


def _start(settings: Settings) -> Refill:
    return refill.start(
        settings, pool="shop-pool", target="local", engine="inprocess", program=None
    )


def test_off_starts_nothing_and_says_who_replaces_the_stack(tmp_path: Path) -> None:
    (tmp_path / "branchenv.toml").write_text('pool_size = 1\npool_refill = "off"\n')
    done = _start(load_settings(cwd=tmp_path, env={}))
    assert done.status == "off" and done.pid is None
    assert "pool fill" in done.describe()
    assert not (tmp_path / ".branchenv").exists()  # nothing written


def test_a_pool_without_a_size_is_not_refilled(tmp_path: Path) -> None:
    done = _start(load_settings(cwd=tmp_path, env={}))
    assert done.status == "skipped" and "pool_size" in (done.reason or "")


def test_a_release_while_a_refill_runs_starts_no_other(settings: Settings) -> None:
    """While the lock is held (here by this process, as a running refill holds it), a release
    starts nothing, names the holder, and leaves its wanted mark for the holder to take up."""
    where = refill.paths(settings, pool="shop-pool", target="local", engine="inprocess")
    with refill.held(settings, pool="shop-pool", target="local", engine="inprocess", say=print):
        assert refill.state(
            settings, pool="shop-pool", target="local", engine="inprocess"
        ) == refill.RefillState(running=True, pid=os.getpid(), log=str(where.log))
        for _ in range(2):
            done = _start(settings)
            assert done.status == "running" and done.pid == os.getpid(), done
            assert "fills the pool to size" in done.describe()
        assert where.wanted.exists()
    assert not refill.state(settings, pool="shop-pool", target="local", engine="inprocess").running


def _spec(settings: Settings, fd: int) -> refill.RefillSpec:
    return refill.RefillSpec(
        settings=settings,
        pool="shop-pool",
        target="local",
        engine="inprocess",
        program=None,
        lock_fd=fd,
    )


def _locked(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


def test_a_mark_left_during_a_pass_makes_another_pass(settings: Settings) -> None:
    where = refill.paths(settings, pool="shop-pool", target="local", engine="inprocess")
    fd = _locked(where.lock)
    try:
        where.wanted.write_text("x")
        passes: list[int] = []

        def fill() -> int:
            passes.append(1)
            if len(passes) == 1:
                where.wanted.write_text("a release while this pass ran")
            return 0

        assert refill.run(_spec(settings, fd), where.wanted, fill=fill) == 0
        assert len(passes) == 2 and not where.wanted.exists()
        # The lock is let go at the end: a release can take it.
        other = _locked(where.lock)
        os.close(other)
    finally:
        os.close(fd)


def test_marks_left_for_ever_stop_after_max_passes(settings: Settings) -> None:
    where = refill.paths(settings, pool="shop-pool", target="local", engine="inprocess")
    fd = _locked(where.lock)
    try:
        where.wanted.write_text("x")
        passes: list[int] = []

        def fill() -> int:
            passes.append(1)
            where.wanted.write_text("again")
            return 1

        assert refill.run(_spec(settings, fd), where.wanted, fill=fill) == 1
        assert len(passes) == refill.MAX_PASSES
    finally:
        os.close(fd)


def test_a_service_claim_whose_maker_died_is_gone_and_a_live_one_is_not() -> None:
    import socket
    import subprocess
    import sys

    from branchenv.harness.watchdog import start_time
    from branchenv.pool import maker_gone

    host = socket.gethostname()
    me = os.getpid()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    base = Claim(
        "s", "(pool fill)", "branchenv", "2026-01-01T00:00:00Z", "2999-01-01T00:00:00Z", "t"
    )
    live = Claim(**{**base.__dict__, "maker": f"{host} {me} {start_time(me)}"})
    gone = Claim(**{**base.__dict__, "maker": f"{host} {dead.stdout.strip()} 1"})
    elsewhere = Claim(**{**base.__dict__, "maker": "another-host 1 1"})
    expired = Claim(**{**live.__dict__, "expires_at": "2020-01-01T00:00:00Z"})
    assert not maker_gone(live)
    assert maker_gone(gone)
    assert not maker_gone(elsewhere)  # trusted until its claim expires
    assert maker_gone(expired)
    # A record written before makers were recorded still reads.
    assert Claim.from_json(b'{"stack": "s", "branch": "b", "owner": "o", "claimed_at": "a", '
                           b'"expires_at": "e", "token": "t"}') is not None  # fmt: skip
