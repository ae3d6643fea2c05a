"""`branchenv cost` as a user runs it, after a real `up` of the demo stack on the local cloud."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from fractions import Fraction

from branchenv.config import Settings
from branchenv.cost.estimate import cost_of_tagged, stack_cost
from branchenv.engines import get_engine
from branchenv.inventory import find_tagged
from tests.conftest import cli_envelope, program_at
from tests.e2e.conftest import Project
from tests.unit.test_cost_estimate import US_HOURLY, q

BRANCH = "feature/cost-e2e"
MICRO = Decimal("0.000001")


def test_cost_report_and_budget_gate_after_up(project: Project) -> None:
    up = project.json("up", "--branch", BRANCH, "--target", "local")
    stack = up["stack"]
    try:
        report = project.json("cost", "--branch", BRANCH)
        [row] = report["rows"]
        assert row["stack"] == stack and row["stacks"] == 1
        # The real inventory of the 18 demo resources prices exactly as computed by hand.
        # money in JSON: a decimal string rounded to 6 places, with its currency
        assert row["hourly"] == {"amount": str(q(US_HOURLY).quantize(MICRO)), "currency": "USD"}
        assert row["unpriced_types"] == [] and row["unavailable"] == 0
        so_far = Decimal(row["so_far"]["amount"])
        projected = Decimal(row["projected_to_expiry"]["amount"])
        # ttl 2h (the project's default_ttl): projection = hourly x 2 h (to the 6 places shown)
        assert abs(projected - q(US_HOURLY) * 2) <= MICRO
        assert 0 <= so_far <= projected

        # Over --max-hourly: the report still prints, then exit 1 naming stack, limit, value.
        over = project.run("cost", "--branch", BRANCH, "--max-hourly", "0.001")
        assert over.returncode == 1, over.stderr
        err = over.stderr.strip()
        assert err.count("\n") == 0
        assert f"stack {stack}" in err
        assert "--max-hourly $0.0010/h" in err and "$0.0095/h" in err
        assert stack in over.stdout

        # The same gate from a setting (BRANCHENV_MAX_TOTAL), on the projection to expiry.
        total = project.run("cost", "--branch", BRANCH, BRANCHENV_MAX_TOTAL="0.01")
        assert total.returncode == 1
        assert f"stack {stack}" in total.stderr and "--max-total $0.0100" in total.stderr
        assert "$0.0190" in total.stderr

        # Within budget: exit 0.
        ok = project.run("cost", "--branch", BRANCH, "--max-hourly", "1", "--max-total", "5")
        assert ok.returncode == 0, ok.stderr

        # Other formats and groupings over every stack.
        csv_out = project.run("cost", "--all", "--by", "owner", "--format", "csv", check=True)
        rows = list(csv.reader(io.StringIO(csv_out.stdout)))
        assert rows[0][0] == "owner" and rows[-1][0] == "total"
        assert rows[-1][2] == str(q(US_HOURLY).quantize(Decimal("0.0001")))
        md = project.run("cost", "--branch", BRANCH, "--format", "markdown", check=True).stdout
        assert md.startswith("### branchenv cost by stack") and f"| {stack} | 1 |" in md
        table = project.run("cost", "--branch", BRANCH, check=True).stdout
        assert stack in table and "0.0095" in table

        # The calls ls / ci / reap make, on the same stack.
        engine = get_engine("inprocess", settings=Settings(project_dir=project.root))
        program = program_at(project.root / "infra" / "aws")
        md = engine.metadata(stack=stack, program=program)
        from_engine = stack_cost(
            engine, stack=stack, program=program, metadata=md, region="us-east-1"
        )
        assert from_engine.hourly == q(US_HOURLY) and from_engine.complete
        # reap: the tagging API's view (no outputs there, so the function counts as 128 MB).
        tagged = find_tagged(project.target(), key="branchenv:stack", values={stack})
        by_tags = cost_of_tagged(tagged, stack=stack, default_region="us-east-1")
        assert by_tags.hourly == q(US_HOURLY - Fraction("0.00020833375"))
        assert by_tags.branch == BRANCH and by_tags.complete
    finally:
        project.run("down", "--branch", BRANCH, "--target", "local")
    gone = project.run("cost", "--branch", BRANCH, "--json")
    assert gone.returncode == 1  # no stack is an error, not an empty table (issue 16)
    assert cli_envelope(gone.stdout)["error"]["code"] == "stack_not_found"


def test_cost_usage_errors_exit_2(project: Project) -> None:
    for args in (
        ("cost", "--all", "--format", "xml"),
        ("cost", "--all", "--by", "team"),
        ("cost", "--all", "--branch", "x"),
        ("cost", "--all", "--max-hourly", "lots"),
    ):
        proc = project.run(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert proc.stderr.strip().count("\n") == 0


def test_refresh_prices_without_credentials_fails_in_one_line(project: Project) -> None:
    proc = project.run("cost", "refresh-prices", "--out", str(project.root / "p.json"))
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0
    assert "Price List API" in proc.stderr and "pricing:GetProducts" in proc.stderr
    assert not (project.root / "p.json").exists()
