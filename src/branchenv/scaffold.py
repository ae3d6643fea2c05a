"""`branchenv init`: make an existing Pulumi (or Terraform) project a branchenv project.

Writes two files, after checking everything first (nothing is half-created): a commented
``branchenv.toml`` naming the program, and an example integration suite in
``tests/integration/`` that uses the pytest plugin's fixtures and runs against any stack (the
parts that need an HTTP endpoint or a function skip themselves when the stack has none).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from branchenv.errors import UsageError

CONFIG_FILE = "branchenv.toml"
SUITE_DIR = Path("tests") / "integration"
EXAMPLE_FILE = SUITE_DIR / "test_branchenv_example.py"


@dataclasses.dataclass(frozen=True)
class InitOutcome:
    """What `init` wrote: the files (relative to the project), the program and its kind."""

    project_dir: Path
    program: str
    kind: str
    project: str
    written: tuple[str, ...]
    next_steps: tuple[str, ...]


def _config_text(program: str, kind: str) -> str:
    what = (
        "a Pulumi program (the directory holding Pulumi.yaml; its `main:` is honoured)"
        if kind == "pulumi"
        else "a Terraform/OpenTofu root module (the directory holding its *.tf files)"
    )
    return f"""\
# branchenv settings for this project: every git branch gets its own short-lived stack.
# Each key can also be set with a BRANCHENV_<KEY> variable or a flag (those win);
# `branchenv config show` lists every setting, its value and where it came from.
# See docs/own-program.md and docs/own-suite.md.

# The program each branch's stack runs: {what}.
program = "{program}"

# Where stacks live unless `--target` says otherwise: "local" (the local cloud: a moto server
# and a function runner on 127.0.0.1, started for you) or "aws" (the account your credentials
# reach; set allowed_account_ids below first).
default_target = "local"

# How long a branch stack lives after its last `up` before `branchenv reap` may destroy it.
default_ttl = "24h"

# The integration suite `branchenv test` and `branchenv ci` run against the branch's stack.
suite = "{SUITE_DIR.as_posix()}"

# Branches and stacks branchenv never creates, updates or destroys (shell-style patterns).
# protected_patterns = ["prod*", "production*", "staging*", "main", "master"]

# On AWS: the only account ids branchenv may act in.
# allowed_account_ids = ["123456789012"]

# Budget gates for `branchenv cost` and `branchenv ci`, in USD.
# max_hourly = 0.50
# max_total = 5

# The p95 latency objective the suite's `branchenv_slo` fixture holds you to, in milliseconds.
# latency_p95_ms = 500
"""


EXAMPLE_SUITE = '''\
"""Integration tests against this branch's own stack (written by `branchenv init`; edit freely).

Run them with `branchenv test` (against the stack `branchenv up` made) or `branchenv ci` (up,
wait until ready, test, tear down whatever happens). Every `branchenv_*` fixture comes from
branchenv's pytest plugin; docs/own-suite.md describes each one. Outside branchenv (a plain
`pytest`), these tests skip, so the suite can live beside your unit tests.
"""

from __future__ import annotations

from typing import Any

import pytest


def test_the_stack_has_its_outputs(branchenv_outputs: dict[str, Any]) -> None:
    # What `pulumi stack output` / `terraform output` shows for this branch's stack.
    assert isinstance(branchenv_outputs, dict)


def test_the_stack_resources_carry_its_tag(branchenv_stack: Any, branchenv_boto3_session: Any) -> None:
    # branchenv tags every taggable resource with the stack's identity: find them by tag.
    tagging = branchenv_boto3_session.client("resourcegroupstaggingapi")
    found = tagging.get_resources(
        TagFilters=[{"Key": "branchenv:stack", "Values": [branchenv_stack.stack]}]
    )["ResourceTagMappingList"]
    if not found:
        pytest.skip("no resource of this stack is listed by the tagging API")
    assert all(
        {t["Key"]: t["Value"] for t in r["Tags"]}["branchenv:managed-by"] == "branchenv"
        for r in found
    )


def _endpoint(request: pytest.FixtureRequest) -> str:
    endpoints = request.getfixturevalue("branchenv_endpoints")
    if not endpoints:
        pytest.skip("the stack exports no `endpoint` output (an http(s) URL)")
    return str(request.getfixturevalue("branchenv_endpoint"))


def test_the_endpoint_answers(request: pytest.FixtureRequest) -> None:
    _endpoint(request)
    http = request.getfixturevalue("branchenv_http")  # relative URLs join the endpoint
    response = http.get("/")
    assert response.status_code < 500, response.text


def test_the_endpoint_meets_its_latency_objective(request: pytest.FixtureRequest) -> None:
    _endpoint(request)
    http = request.getfixturevalue("branchenv_http")
    probe = request.getfixturevalue("branchenv_latency")
    slo = request.getfixturevalue("branchenv_slo")
    stats = probe(lambda: http.get("/"), n=20, name="GET /")
    assert stats.p95_ms <= slo.latency_p95_ms, stats


FAULT_PATH: str | None = None
"""A path of your service that reads the dependency below (e.g. "/orders/1"); set it to run
the fault test."""
FAULT_DEPENDENCY = "dynamodb"


def test_a_dependency_outage_fails_cleanly(request: pytest.FixtureRequest) -> None:
    # Fault injection (local target only): a proxy between the stack's function (its
    # `function_name` output) and one dependency, which then goes down.
    if FAULT_PATH is None:
        pytest.skip("set FAULT_PATH to a path that reads the dependency to run this test")
    _endpoint(request)
    from branchenv.harness.faults import FaultMode

    proxy = request.getfixturevalue("branchenv_fault_proxy")(FAULT_DEPENDENCY)
    proxy.set_mode(FaultMode.DOWN)
    # A clean failure: an error answer within the client's timeout, never a hang.
    response = request.getfixturevalue("branchenv_http").get(FAULT_PATH)
    assert response.status_code >= 500, response.text
'''


def _relative(path: Path, root: Path) -> str:
    rel = os.path.relpath(path, root)
    return "." if rel == "." else Path(rel).as_posix()


def init_project(
    project_dir: Path, *, program: str | None = None, force: bool = False
) -> InitOutcome:
    """Write ``branchenv.toml`` and the example suite into ``project_dir``. Everything is
    checked before anything is written: a directory without a program (or ``program`` naming
    none) and existing files (without ``force``) are refused, exit 2, nothing written."""
    from branchenv.programs import detect_program

    root = project_dir.resolve()
    if not root.is_dir():
        raise UsageError(f"{project_dir} is not a directory; run `branchenv init` in your project")
    where = (root / program).resolve() if program else root
    try:
        found = detect_program(where, setting="--program")
    except UsageError as exc:
        raise UsageError(
            f"no Pulumi.yaml or *.tf files in {where}: run `branchenv init` in your project's "
            "root, or pass `--program DIR` (the directory holding Pulumi.yaml or the *.tf files)"
        ) from exc
    # The program setting: the directory holding the project file (Pulumi's `main:` is read
    # from there), relative to the project.
    program_setting = _relative(found.project_dir if found.kind == "pulumi" else found.path, root)
    files = {
        CONFIG_FILE: _config_text(program_setting, found.kind),
        str(EXAMPLE_FILE): EXAMPLE_SUITE,
    }
    existing = [name for name in files if (root / name).exists()]
    if existing and not force:
        raise UsageError(
            f"{', '.join(existing)} already {'exists' if len(existing) == 1 else 'exist'} in {root}; pass `--force` to replace, or "
            "edit them by hand"
        )
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)
    return InitOutcome(
        project_dir=root,
        program=program_setting,
        kind=found.kind,
        project=found.project,
        written=tuple(files),
        next_steps=(
            "branchenv up            # this branch's stack, on the local cloud",
            "branchenv test          # the suite in tests/integration against it",
            "branchenv ci            # up, wait until ready, test, tear down",
        ),
    )
