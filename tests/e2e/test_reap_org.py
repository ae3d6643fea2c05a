"""`branchenv reap` across accounts and regions, as a scheduled org-wide job runs it: stacks and
orphans in two accounts x two regions of the local cloud (each reached by assuming
``branchenv-reaper`` in the account), one command for all four pairs.

An account outside the allowlist: exit 3, nothing destroyed anywhere. The role denied through
one region: exit 1 naming that pair and why, the other three reaped. Allowed again: exit 0,
every stale stack and orphan gone, the fresh stack and unmanaged resources kept."""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

from branchenv.config import load_settings
from branchenv.engines import get_engine
from branchenv.inventory import find_tagged
from branchenv.localcloud import LocalCloud
from branchenv.programs import default_program
from tests.conftest import cli_envelope, cli_result, subprocess_env
from tests.e2e.conftest import EXE
from tests.integration.reaper_seed import (
    ORG_PROGRAM,
    ROLE_TEMPLATE,
    org_stack,
    orphan_queue,
    pair_target,
    put_role,
)

A, B, C = "111111111111", "222222222222", "333333333333"
R1, R2 = "us-east-1", "eu-west-1"
PAIRS = [(A, R1), (A, R2), (B, R1), (B, R2)]
H = dt.timedelta(hours=1)


def test_org_wide_reap_cli(tmp_path: Path) -> None:
    (tmp_path / "prog").mkdir()
    (tmp_path / "prog" / "Pulumi.yaml").write_text("name: orgcli\nruntime: python\n")
    (tmp_path / "prog" / "__main__.py").write_text(ORG_PROGRAM)
    (tmp_path / "branchenv.toml").write_text(
        f'program = "prog"\ndefault_target = "local"\nallowed_account_ids = ["{A}", "{B}"]\n'
    )
    settings = load_settings(cwd=tmp_path, env={})
    cloud = LocalCloud(settings.state_path)
    base = cloud.ensure(R1)

    def reap(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(EXE), "reap", "--regions", f"{R1},{R2}", "--assume-role", ROLE_TEMPLATE, *args],
            cwd=tmp_path,
            env=subprocess_env(),
            capture_output=True,
            text=True,
            timeout=300,
        )

    try:
        for account in (A, B, C):
            put_role(base, account)
        engine = get_engine("inprocess", settings=settings, target=base)
        stale = {
            p: org_stack(engine, settings, pair_target(base, *p), "feature/old") for p in PAIRS
        }
        fresh = org_stack(engine, settings, pair_target(base, A, R1), "feature/new", ttl=9 * H)
        orphans = {p: orphan_queue(pair_target(base, *p), managed=True) for p in PAIRS}
        unmanaged = {p: orphan_queue(pair_target(base, *p), managed=False) for p in PAIRS}

        def stacks() -> set[str]:
            return {s.stack for s in engine.list_stacks(program=default_program(settings))}

        def resources() -> set[str]:
            return {
                r.arn
                for p in PAIRS
                for r in find_tagged(pair_target(base, *p), key="branchenv:stack")
            }

        before = stacks(), resources()
        # Stacks remember where they live; ls and cost show it.
        listed = subprocess.run(
            [str(EXE), "ls", "--json"], cwd=tmp_path, env=subprocess_env(),
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert listed.returncode == 0, listed.stderr
        where = {r["stack"]: (r["account"], r["region"]) for r in cli_result(listed.stdout)}
        assert all(where[stale[p]] == p for p in PAIRS)
        assert "account/region" in subprocess.run(
            [str(EXE), "ls"], cwd=tmp_path, env=subprocess_env(),
            capture_output=True, text=True, timeout=120,
        ).stdout  # fmt: skip
        costs = subprocess.run(
            [str(EXE), "cost", "--all", "--by", "account", "--json"], cwd=tmp_path,
            env=subprocess_env(), capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert costs.returncode == 0, costs.stderr
        assert {r["account"] for r in cli_result(costs.stdout)["rows"]} == {A, B}
        refused = reap("--yes", "--orphans", "--accounts", f"{A},{B},{C}")
        assert refused.returncode == 3, refused.stderr
        assert C in refused.stderr and "allowed_account_ids" in refused.stderr
        assert (stacks(), resources()) == before

        dry = reap("--orphans", "--accounts", f"{A},{B}", "--json")
        assert dry.returncode == 0, dry.stderr
        plan = cli_result(dry.stdout)
        assert [(p["account"], p["region"], p["status"]) for p in plan["pairs"]] == [
            (a, r, "planned") for a, r in PAIRS
        ]
        assert [a["account"] for a in plan["accounts"]] == [A, B]
        assert (stacks(), resources()) == before

        put_role(base, B, deny_regions=(R2,))
        denied = reap("--yes", "--orphans", "--accounts", f"{A},{B}", "--json")
        assert denied.returncode == 1, denied.stderr
        assert f"{B}/{R2}" in denied.stderr and "AccessDenied" in denied.stderr
        report = cli_envelope(denied.stdout)["result"]
        status = {(p["account"], p["region"]): p["status"] for p in report["pairs"]}
        assert status == {(A, R1): "done", (A, R2): "done", (B, R1): "done", (B, R2): "failed"}
        left, now = stacks(), resources()
        for p in PAIRS:
            assert (stale[p] in left) is (p == (B, R2))
            assert (orphans[p] in now) is (p == (B, R2))
            assert unmanaged[p] in now
        assert fresh in left

        put_role(base, B)
        done = reap(
            "--yes", "--orphans", "--accounts", f"{A},{B}",
            "--format", "markdown",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "### By account" in done.stdout and f"| {B} | {R2} | done |" in done.stdout
        assert not set(stale.values()) & stacks() and fresh in stacks()
        assert not set(orphans.values()) & resources()
        assert set(unmanaged.values()) <= resources()

    finally:
        cloud.stop()
