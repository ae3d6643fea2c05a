"""The neutral inputs as a Pulumi program's stack config (both Pulumi-program engines), and the
local-cloud wiring defined once (issue 11 item 3: the template listed 8 services, targets.py 12,
and the template won)."""

from __future__ import annotations

import json

import yaml

from branchenv.engines.base import ProgramInputs
from branchenv.engines.pulumi_program import LOCAL_ENDPOINT_SERVICES, stack_config
from branchenv.targets import Target
from tests.conftest import REPO_ROOT

LOCAL = Target("local", "us-east-1", endpoint_url="http://127.0.0.1:4566", functions_url=None)


def inputs(**template: str) -> ProgramInputs:
    return ProgramInputs(
        prefix="feature-x-1a2b3c4d",
        profile="ephemeral",
        tags={"branchenv:stack": "feature-x-1a2b3c4d"},
        region="eu-west-1",
        functions_url="http://127.0.0.1:9001",
        template=template,
    )


def test_the_local_wiring_wins_over_a_template_that_lists_fewer_services() -> None:
    narrow = json.dumps([{"s3": "http://127.0.0.1:4566"}])
    config = stack_config(inputs(**{"aws:endpoints": narrow, "app:color": "blue"}), LOCAL)
    endpoints = json.loads(config["aws:endpoints"])[0]
    assert set(endpoints) == set(LOCAL_ENDPOINT_SERVICES)
    assert config["app:color"] == "blue"  # the program's own keys pass through
    assert config["aws:region"] == "eu-west-1"
    assert config["branchenv:prefix"] == "feature-x-1a2b3c4d"
    assert config["branchenv:localFunctionsUrl"] == "http://127.0.0.1:9001"
    assert json.loads(config["branchenv:tags"]) == {"branchenv:stack": "feature-x-1a2b3c4d"}


def test_the_local_template_no_longer_repeats_the_wiring() -> None:
    template = yaml.safe_load((REPO_ROOT / "stacks" / "Pulumi.local.yaml").read_text())
    assert not any(key.startswith("aws:") and key != "aws:region" for key in template["config"])


def test_the_resource_tags_are_the_providers_default_tags_too() -> None:
    """A program that knows nothing of branchenv gets the tags from its default provider."""
    config = stack_config(inputs(), LOCAL)
    assert json.loads(config["aws:defaultTags"]) == {
        "tags": {"branchenv:stack": "feature-x-1a2b3c4d"}
    }
